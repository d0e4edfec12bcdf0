"""SRResNet, the SRGAN discriminator, VGG19 features, the perceptual loss and GAN training (notebook 05)."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import images, sr, srcnn, srgan, train


@pytest.mark.parametrize("scale,shuffles", [(2, [2]), (3, [3]), (4, [2, 2])])
def test_srresnet_shapes_and_sub_pixel_blocks(scale, shuffles):
    model = srgan.SRResNet(scale, n_blocks=2, channels=8)
    assert model(torch.rand(2, 1, 12, 10)).shape == (2, 1, 12 * scale, 10 * scale)
    assert [m.upscale_factor for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)] == shuffles
    rgb = srgan.SRResNet(scale, n_blocks=1, channels=8, image_channels=3)
    assert rgb(torch.rand(1, 3, 9, 9)).shape == (1, 3, 9 * scale, 9 * scale)


def test_srresnet_follows_the_paper():
    model = srgan.SRResNet(4)                                      # paper: 16 blocks, 64 channels, 9x9 head and tail
    assert len(model.blocks) == 16 and model.head[0].kernel_size == (9, 9) and model.tail.kernel_size == (9, 9)
    block = model.blocks[0].body
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "PReLU", "Conv2d", "BatchNorm2d"]
    assert 1.4e6 < model.n_parameters < 1.6e6                  # ~1.5M parameters (Y input)
    # the long skip: with the blocks' output zeroed, the body returns the head's features
    x = torch.rand(1, 1, 10, 10)
    model.eval()
    with torch.no_grad():
        torch.nn.init.zeros_(model.body_end[0].weight)
        torch.nn.init.zeros_(model.body_end[0].bias)
        torch.nn.init.zeros_(model.body_end[1].bias)
        f0 = model.head(x)
        assert torch.allclose(f0 + model.body_end(model.blocks(f0)), f0)


def test_srresnet_bicubic_skip_starts_at_bicubic():
    y = torch.rand(2, 1, 12, 10)
    model = srgan.SRResNet(4, n_blocks=2, channels=8, bicubic_skip=True)
    assert torch.allclose(model(y), srcnn.Bicubic(4)(y), atol=1e-6)
    assert model.config["bicubic_skip"] and not srgan.SRResNet(4, n_blocks=1, channels=4).config["bicubic_skip"]


def test_srresnet_rejects_bad_input():
    with pytest.raises(ValueError, match="image_channels"):
        srgan.SRResNet(4, image_channels=2)
    with pytest.raises(ValueError, match="1 channel"):
        srgan.SRResNet(4, n_blocks=1, channels=4)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="3 channels"):
        srgan.SRResNet(4, n_blocks=1, channels=4, image_channels=3)(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="receptive field"):
        srgan.SRResNet(4, n_blocks=1, channels=4)(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="n_blocks"):
        srgan.SRResNet(4, n_blocks=-1)


def test_srgan_is_an_srresnet_and_super_resolve_handles_rgb_models(rgb):
    assert isinstance(sr.build_model("srgan", 4, n_blocks=1, channels=4), srgan.SRResNet)
    model = srgan.SRResNet(2, n_blocks=1, channels=4, image_channels=3)
    assert sr.super_resolve(model, rgb[:, :16, :16]).shape == (3, 32, 32)
    assert sr.super_resolve(model, images.rgb_to_y(rgb)[:, :16, :16]).shape == (1, 32, 32)
    result = sr.evaluate_image(model, rgb)
    assert set(result) == {"psnr", "ssim", "hf", "detail", "grid", "lattice", "lattice_truth", "consistency",
                           "ms"} and math.isfinite(result["psnr"])


def test_discriminator_follows_the_paper():
    d = srgan.Discriminator(3)
    convs = [m for m in d.layers.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [m.stride[0] for m in convs] == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.layers.modules()) == 7   # none after the first conv
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert [m.out_features for m in d.head if isinstance(m, torch.nn.Linear)] == [1024, 1]
    small = srgan.Discriminator(1, channels=8)
    assert small(torch.rand(3, 1, 96, 96)).shape == (3,)
    assert small(torch.rand(2, 1, 64, 64)).shape == (2,)                          # other patch sizes work too
    with pytest.raises(ValueError, match="x must have 1 channel"):
        small(torch.rand(2, 3, 64, 64))


def test_feature_matching_and_random_phase():
    a, b = [torch.ones(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)], [torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)]
    assert float(srgan.feature_matching_loss(a, b)) == pytest.approx(0.5)       # mean over layers of the MSE
    with pytest.raises(ValueError, match="same length"):
        srgan.feature_matching_loss(a, b[:1])
    x = torch.arange(2 * 10 * 10.).reshape(2, 1, 10, 10)
    shifts = set()
    for seed in range(20):
        crop = srgan.random_phase(x, 4, torch.Generator().manual_seed(seed))
        assert crop.shape == (2, 1, 7, 7)
        shifts.add(int(crop[0, 0, 0, 0]))
    assert len(shifts) > 8                                                        # many of the 16 phases
    d = srgan.Discriminator(1, channels=4)
    logits, maps = d(torch.rand(2, 1, 32, 32), return_features=True)
    assert logits.shape == (2,) and len(maps) == 8 and maps[-1].shape == (2, 32, 2, 2)


def test_vgg19_layout_matches_torchvision():
    assert srgan.VGG19_LAYERS["vgg22"] == 8 and srgan.VGG19_LAYERS["vgg54"] == 35 and len(srgan.VGG19_LAYERS) == 16
    assert len(srgan.VGG19_KEYS) == 38                                                 # 16 convs + 3 dense, w + b
    full = srgan.VGG19Features("vgg54")
    convs = [k.rsplit(".", 1)[0] for k in srgan.VGG19_KEYS if k.startswith("features.") and k.endswith("weight")]
    assert list(full.state_dict()) == [k for k in srgan.VGG19_KEYS if k.startswith("features.")]
    assert convs[-1] == "features.34" and isinstance(full.features[35], torch.nn.ReLU)
    assert list(srgan.VGG19Features("vgg22").state_dict()) == ["features.0.weight", "features.0.bias",
                                                            "features.2.weight", "features.2.bias",
                                                            "features.5.weight", "features.5.bias",
                                                            "features.7.weight", "features.7.bias"]
    with pytest.raises(ValueError, match="layer must be one of"):
        srgan.VGG19Features("vgg66")


def test_vgg19_features_are_frozen_but_pass_gradients_and_repeat_gray():
    vgg = srgan.VGG19Features("vgg22")
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    out = vgg(x)
    assert out.shape == (2, 128, 16, 16) and (out >= 0).all()                      # after ReLU, one pooling
    out.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())
    assert torch.equal(vgg(x.detach()), vgg(x.detach().expand(-1, 3, -1, -1)))
    vgg.train()
    assert not vgg.training                                                         # a fixed instrument
    assert "random" in vgg.weights and "NOT ImageNet" in vgg.weights


def test_content_losses():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 32, 32, generator=g)
    output = (target + 0.1 * torch.randn(target.shape, generator=g)).requires_grad_(True)
    # the paper's MSE is on images in [-1, 1]: 4 x the [0, 1] MSE (the scale the adversarial weight 1e-3 assumes)
    assert srgan.ContentLoss("mse")(output, target).item() == pytest.approx(4 * F.mse_loss(output, target).item())
    vgg = srgan.VGG19Features("vgg22")
    loss = srgan.ContentLoss("vgg22", vgg)
    assert loss(target, target).item() == 0
    value = loss(output, target)
    manual = F.mse_loss(vgg(output) / 12.75, vgg(target) / 12.75)       # eq. 5 with the paper's 1/12.75
    assert value.item() == pytest.approx(manual.item(), rel=1e-5) and value.item() > 0
    value.backward()
    assert output.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="kind must be"):
        srgan.ContentLoss("l1")
    with pytest.raises(ValueError, match="computes layer 'vgg22' but kind is 'vgg54'"):
        srgan.ContentLoss("vgg54", vgg)
    with pytest.raises(ValueError, match="same shape"):
        loss(output, target[:, :, :16])


def test_matching_feature_scale_puts_the_vgg_loss_on_the_mse_scale():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 1, 32, 32, generator=g)
    output = F.avg_pool2d(target, 3, 1, 1)
    vgg = srgan.VGG19Features("vgg22")
    scale = srgan.matching_feature_scale(vgg, output, target, value_range=1)
    loss = srgan.ContentLoss("vgg22", vgg, feature_scale=scale)(output, target)
    assert loss.item() == pytest.approx(F.mse_loss(output, target).item(), rel=1e-4)
    # default: the paper's MSE on [-1, 1] images, 4x the MSE on [0, 1]
    assert srgan.matching_feature_scale(vgg, output, target) == pytest.approx(2 * scale, rel=1e-5)


def test_adversarial_and_discriminator_losses():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    assert srgan.adversarial_loss(logits).item() == pytest.approx(-torch.log(torch.sigmoid(logits)).mean().item())
    real, fake = torch.tensor([4.0, 2.0]), torch.tensor([-3.0, 1.0])
    want = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert srgan.discriminator_loss(real, fake).item() == pytest.approx(want.item(), rel=1e-6)
    x = torch.rand(1, 1, 8, 8)
    total, content, adv = srgan.perceptual_loss(x * 0.9, x, srgan.ContentLoss("mse"), logits[:1], 1e-3)
    assert total.item() == pytest.approx(content.item() + 1e-3 * adv.item())
    total, _, adv = srgan.perceptual_loss(x * 0.9, x, srgan.ContentLoss("mse"))
    assert adv.item() == 0


def test_gan_steps_update_both_networks_and_log():
    tiny = [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]
    sampler = sr.PatchSampler(tiny, 4, 9)
    gen_net, disc = srgan.SRResNet(4, n_blocks=1, channels=8), srgan.Discriminator(1, channels=4)
    before_g = [p.detach().clone() for p in gen_net.parameters()]
    before_d = [p.detach().clone() for p in disc.parameters()]
    seen = []
    history = srgan.train_gan_steps(gen_net, disc, srgan.ContentLoss("mse"), sampler,
                                 torch.optim.Adam(gen_net.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 1e-3),
                                 3, batch=2, generator_rng=torch.Generator().manual_seed(0), log_every=2,
                                 progress=False, callback=lambda step, h: seen.append(step))
    assert history["step"] == [2, 3] and seen == [2, 3]
    assert set(history) == {"step", "loss", "content", "adversarial", "features", "discriminator", "d_real",
                            "d_fake", "seconds"}
    assert all(0 <= v <= 1 for v in history["d_real"] + history["d_fake"])
    assert any(not torch.equal(a, b) for a, b in zip(before_g, gen_net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, disc.parameters()))


def test_discriminator_judges_real_and_generated_patches_in_one_batch():
    # with BatchNorm in D, separate real / generated batches are each normalised on their own, hiding their difference
    g = torch.Generator().manual_seed(0)
    gen_net, disc = srgan.SRResNet(4, n_blocks=1, channels=8), srgan.Discriminator(1, channels=4)
    sizes = []
    disc.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    low, high = torch.rand(3, 1, 9, 9, generator=g), torch.rand(3, 1, 36, 36, generator=g)
    srgan.gan_step(gen_net, disc, srgan.ContentLoss("mse"), torch.optim.Adam(gen_net.parameters()),
                   torch.optim.Adam(disc.parameters()), low, high)
    assert sizes == [6, 6]                                  # D step and G step: real and generated together


def test_train_srgan_from_an_srresnet_checkpoint(tmp_path, monkeypatch, capsys):
    tiny = [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]
    init = train.train("srresnet", 4, 1, tmp_path / "srresnet_x4.pt", images=tiny, progress=False, batch=2,
                       patch_hr=32, model=dict(n_blocks=1, channels=8))
    gan = train.train("srgan", 4, 2, tmp_path / "srgan_x4.pt", images=tiny, progress=False, batch=2, patch_hr=40,
                      content="vgg22", discriminator=dict(channels=4), init=str(tmp_path / "srresnet_x4.pt"))
    assert gan["config"] == init["config"] == {"n_blocks": 1, "channels": 8}
    assert gan["recipe"]["vgg"] == "random" and gan["recipe"]["feature_scale"] > 1     # rescaled substitute
    assert "random" in capsys.readouterr().out
    assert len(gan["history"]["d_fake"]) == 1
    model = sr.build_model("srgan", 4, **gan["config"])
    model.load_state_dict(gan["state_dict"])
    fs = train.train("srgan", 4, 1, tmp_path / "fs_x4.pt", images=tiny, progress=False, batch=2, patch_hr=40,
                     content="lowpass", sigma=2.0, init=str(tmp_path / "srresnet_x4.pt"),
                     discriminator=dict(channels=4, blurpool=True, highpass=2.0))     # the frequency-separation recipe
    assert fs["recipe"]["sigma"] == 2.0 and "sigma=2.0" in fs["command"] and "blurpool" in fs["command"]
    assert train._parse_set(["sigma=1.5"]) == {"sigma": 1.5}
    with pytest.raises(SystemExit, match=r"unknown recipe key\(s\) \['vgg'\] for srresnet"):
        train.main(["srresnet", "--scale", "4", "--set", "vgg=imagenet"])
    with pytest.raises(SystemExit, match="init: no checkpoint file"):
        train.main(["srgan", "--scale", "4", "--set", f"init={tmp_path / 'none.pt'}"])
    with pytest.raises(ValueError, match="init: .* is a srgan x4 checkpoint, not an SRResNet/SRGAN generator at x2"):
        train.train("srgan", 2, 1, tmp_path / "x.pt", images=tiny, init=str(tmp_path / "srgan_x4.pt"))


def test_make_content_loss():
    tiny = [images.load_skimage("camera", size=64)]
    assert srgan.make_content_loss("mse").vgg is None
    loss = srgan.make_content_loss("vgg22", "random", sampler=sr.PatchSampler(tiny, 4, 8), patches=4)
    assert loss.vgg.layer == "vgg22" and loss.feature_scale > 1 / 12.75
    with pytest.raises(ValueError, match="sampler is needed"):
        srgan.make_content_loss("vgg22", "random")


def test_icnr_starts_the_sub_pixel_layers_without_a_checkerboard():
    torch.manual_seed(0)
    model = srgan.SRResNet(4, n_blocks=1, channels=8, icnr=True)
    assert model.config["icnr"] is True
    features = torch.randn(1, 8, 5, 5)
    up = model.upsample[0][:2](features)                     # conv + PixelShuffle(2): (1, 8, 10, 10)
    blocks = up.unfold(2, 2, 2).unfold(3, 2, 2)              # every 2x2 block comes from one low-res position
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6)   # nearest-neighbour at init
    plain = srgan.SRResNet(4, n_blocks=1, channels=8)
    up = plain.upsample[0][:2](features).unfold(2, 2, 2).unfold(3, 2, 2)
    assert not torch.allclose(up, up[..., :1, :1].expand_as(up), atol=1e-3)
    assert "icnr" not in plain.config                        # older checkpoints' configs stay valid


def test_frequency_separation_content_loss_ignores_fine_detail_and_keeps_the_rest():
    g = torch.Generator().manual_seed(0)
    target = 0.25 + 0.5 * torch.rand(2, 1, 32, 32, generator=g)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = 0.1 * ((-1.0) ** (yy + xx))                                      # all of its power at Nyquist
    lowpass, mse = srgan.ContentLoss("lowpass", sigma=1.5), srgan.ContentLoss("mse")
    assert mse(target + checker, target).item() == pytest.approx(0.04, rel=1e-5)
    assert lowpass(target + checker, target).item() < 1e-4 * mse(target + checker, target).item()
    assert lowpass(target + 0.1, target).item() == pytest.approx(0.04, rel=1e-3)   # a brightness error still costs
    assert isinstance(srgan.make_content_loss("lowpass", sigma=2.0).blur, srgan.ops.GaussianBlur)


def test_blurpool_and_the_anti_aliased_high_pass_discriminator():
    pool = srgan.BlurPool(3)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checker = ((-1.0) ** (yy + xx)).expand(1, 3, 16, 16)
    assert pool(checker).shape == (1, 3, 8, 8)
    assert pool(checker)[..., 1:-1, 1:-1].abs().max() < 1e-6                  # a strided conv would alias it to +-1
    assert torch.allclose(pool(torch.full((1, 3, 9, 9), 0.3)), torch.full((1, 3, 5, 5), 0.3))
    d = srgan.Discriminator(1, channels=4, blurpool=True, highpass=1.5).eval()
    convs = [m for m in d.layers.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride[0] for m in convs] == [1] * 8
    assert sum(isinstance(m, srgan.BlurPool) for m in d.modules()) == 4
    x = 0.2 + 0.5 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    logits, maps = d(x, return_features=True)
    assert maps[-1].shape == (2, 32, 2, 2)                                     # the same sizes as the strided D
    shifted = d(x + 0.2, return_features=True)[1]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(shifted, maps))  # it judges the detail layer only
    plain = srgan.Discriminator(1, channels=4).eval()
    assert not torch.allclose(plain.features(x + 0.2)[0], plain.features(x)[0], atol=1e-3)
    with pytest.raises(ValueError, match="highpass"):
        srgan.Discriminator(1, highpass=-1)
