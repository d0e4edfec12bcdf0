"""SRResNet, the SRGAN discriminator, VGG19 features + loader, the perceptual loss and GAN training (issue 6)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import images, metrics, sr, train


# ---------------------------------------------------------------------------------------------------------------
# models

@pytest.mark.parametrize("scale,shuffles", [(2, [2]), (3, [3]), (4, [2, 2])])
def test_srresnet_shapes_and_sub_pixel_blocks(scale, shuffles):
    model = sr.SRResNet(scale, n_blocks=2, channels=8)
    assert model(torch.rand(2, 1, 12, 10)).shape == (2, 1, 12 * scale, 10 * scale)
    assert [m.upscale_factor for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)] == shuffles
    rgb = sr.SRResNet(scale, n_blocks=1, channels=8, image_channels=3)
    assert rgb(torch.rand(1, 3, 9, 9)).shape == (1, 3, 9 * scale, 9 * scale)


def test_srresnet_follows_the_paper():
    model = sr.SRResNet(4)                                      # paper: 16 blocks, 64 channels, 9x9 head and tail
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
    model = sr.SRResNet(4, n_blocks=2, channels=8, bicubic_skip=True)
    assert torch.allclose(model(y), sr.Bicubic(4)(y), atol=1e-6)
    assert model.config["bicubic_skip"] and not sr.SRResNet(4, n_blocks=1, channels=4).config["bicubic_skip"]


def test_srresnet_rejects_bad_input():
    with pytest.raises(ValueError, match="image_channels"):
        sr.SRResNet(4, image_channels=2)
    with pytest.raises(ValueError, match="1 channel"):
        sr.SRResNet(4, n_blocks=1, channels=4)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="3 channels"):
        sr.SRResNet(4, n_blocks=1, channels=4, image_channels=3)(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="receptive field"):
        sr.SRResNet(4, n_blocks=1, channels=4)(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="n_blocks"):
        sr.SRResNet(4, n_blocks=-1)


def test_srgan_is_an_srresnet_and_super_resolve_handles_rgb_models(rgb):
    assert isinstance(sr.build_model("srgan", 4, n_blocks=1, channels=4), sr.SRResNet)
    model = sr.SRResNet(2, n_blocks=1, channels=4, image_channels=3)
    assert sr.super_resolve(model, rgb[:, :16, :16]).shape == (3, 32, 32)
    assert sr.super_resolve(model, images.rgb_to_y(rgb)[:, :16, :16]).shape == (1, 32, 32)
    result = sr.evaluate_image(model, rgb)
    assert set(result) == {"psnr", "ssim", "hf", "ms"} and math.isfinite(result["psnr"])


def test_discriminator_follows_the_paper():
    d = sr.Discriminator(3)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [m.stride[0] for m in convs] == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 7       # none after the first conv
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert [m.out_features for m in d.head if isinstance(m, torch.nn.Linear)] == [1024, 1]
    small = sr.Discriminator(1, channels=8)
    assert small(torch.rand(3, 1, 96, 96)).shape == (3,)
    assert small(torch.rand(2, 1, 64, 64)).shape == (2,)                          # other patch sizes work too
    with pytest.raises(ValueError, match="x must have 1 channel"):
        small(torch.rand(2, 3, 64, 64))


# ---------------------------------------------------------------------------------------------------------------
# VGG19 features and the loader

def test_vgg19_layout_matches_torchvision():
    assert sr.VGG19_LAYERS["vgg22"] == 8 and sr.VGG19_LAYERS["vgg54"] == 35 and len(sr.VGG19_LAYERS) == 16
    assert len(sr.VGG19_KEYS) == 38                                                 # 16 convs + 3 dense, w + b
    full = sr.VGG19Features("vgg54")
    convs = [k.rsplit(".", 1)[0] for k in sr.VGG19_KEYS if k.startswith("features.") and k.endswith("weight")]
    assert list(full.state_dict()) == [k for k in sr.VGG19_KEYS if k.startswith("features.")]
    assert convs[-1] == "features.34" and isinstance(full.features[35], torch.nn.ReLU)
    assert list(sr.VGG19Features("vgg22").state_dict()) == ["features.0.weight", "features.0.bias",
                                                            "features.2.weight", "features.2.bias",
                                                            "features.5.weight", "features.5.bias",
                                                            "features.7.weight", "features.7.bias"]
    with pytest.raises(ValueError, match="layer must be one of"):
        sr.VGG19Features("vgg66")


def test_vgg19_features_are_frozen_but_pass_gradients_and_repeat_gray():
    vgg = sr.VGG19Features("vgg22")
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


def _torchvision_like_state_dict(seed=1):
    """A random state dict with exactly torchvision vgg19's keys (the dense layers are not used by the course,
    so they are stored small here; only the feature tensors must have the real shapes)."""
    state = sr.VGG19Features("vgg54", seed=seed).state_dict()
    state = {k: v.clone() for k, v in state.items()}
    for i in (0, 3, 6):
        state[f"classifier.{i}.weight"], state[f"classifier.{i}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    assert tuple(state) == sr.VGG19_KEYS
    return state


def test_load_vgg19_from_a_saved_state_dict(tmp_path):
    state = _torchvision_like_state_dict()
    torch.save(state, tmp_path / "vgg19.pth")
    vgg = sr.load_vgg19("vgg22", "imagenet", path=tmp_path / "vgg19.pth")
    assert torch.equal(vgg.features[7].weight, state["features.7.weight"])
    assert "ImageNet" in vgg.weights
    deep = sr.load_vgg19("vgg54", "imagenet", path=tmp_path / "vgg19.pth")
    assert torch.equal(deep.features[34].bias, state["features.34.bias"])


def test_wrong_keys_or_shapes_are_refused_by_name(tmp_path):
    model = sr.VGG19Features("vgg22")
    state = _torchvision_like_state_dict()
    renamed = dict(state)
    renamed["features.2.kernel"] = renamed.pop("features.2.weight")
    with pytest.raises(ValueError, match=r"missing keys \['features.2.weight'\].*not torchvision vgg19's "
                                         r"\['features.2.kernel'\]"):
        sr.load_vgg19_state(model, renamed)
    reshaped = dict(state)
    reshaped["features.5.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(ValueError, match=r"wrong shapes \['features.5.weight: \(128, 64, 5, 5\) instead of "
                                         r"\(128, 64, 3, 3\)'\]"):
        sr.load_vgg19_state(model, reshaped)
    torch.save(reshaped, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth is not a VGG19 state dict"):
        sr.load_vgg19("vgg22", "imagenet", path=tmp_path / "bad.pth")
    with pytest.raises(TypeError, match="must be a dict"):
        sr.load_vgg19_state(model, [1, 2])
    with pytest.raises(FileNotFoundError, match="path: no VGG19 weights file"):
        sr.load_vgg19("vgg22", "imagenet", path=tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="weights must be"):
        sr.load_vgg19("vgg22", "places365")


def test_imagenet_weights_are_downloaded_only_on_opt_in(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"not cached.*download=True.*weights='random'"):
        sr.load_vgg19("vgg22", "imagenet")
    assert not (tmp_path / "hub").exists()                     # nothing was fetched without the opt-in


def test_download_offline_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    offline = "http://127.0.0.1:9/vgg19-dcbb9e9d.pth"            # nothing listens there: like having no network
    with pytest.raises(ConnectionError, match=r"could not download the VGG19 weights.*offline.*weights='random'"):
        sr.load_vgg19("vgg22", "imagenet", download=True, url=offline)
    # the training CLI turns it into one line, no traceback maze
    tiny = [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]
    monkeypatch.setattr(images, "image_set", lambda split: {"a": tiny[0], "b": tiny[1]})
    monkeypatch.setattr(sr, "VGG19_URL", offline)
    train.train("srresnet", 4, 1, tmp_path / "g.pt", images=tiny, progress=False, batch=1, patch_hr=32,
                model=dict(n_blocks=1, channels=4))
    with pytest.raises(SystemExit, match="error: could not download the VGG19 weights"):
        train.main(["srgan", "--scale", "4", "--steps", "1", "--set", "vgg=imagenet", f"init={tmp_path / 'g.pt'}",
                    "--download", "--out", str(tmp_path / "gan.pt")])


def test_download_verifies_the_hash_and_caches(tmp_path, monkeypatch):
    """The real download path, fed by a file:// URL: cached under torch's hub folder, hash-checked."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    source = tmp_path / "served.pth"
    torch.save(_torchvision_like_state_dict(), source)
    from course_utils.checkpoints import sha256
    prefix = sha256(source)[:8]
    vgg = sr.load_vgg19("vgg22", "imagenet", download=True, url=source.as_uri(), sha256_prefix=prefix)
    assert sr.vgg19_cache_path().is_file() and "ImageNet" in vgg.weights
    source.unlink()                                            # second time: from the cache, no download
    sr.load_vgg19("vgg22", "imagenet", sha256_prefix=prefix)
    with pytest.raises(ValueError, match="corrupted or not torchvision's VGG19"):
        sr.load_vgg19("vgg22", "imagenet")                     # the official prefix does not match this file


# ---------------------------------------------------------------------------------------------------------------
# losses

def test_content_losses():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 32, 32, generator=g)
    output = (target + 0.1 * torch.randn(target.shape, generator=g)).requires_grad_(True)
    assert sr.ContentLoss("mse")(output, target).item() == pytest.approx(F.mse_loss(output, target).item())
    vgg = sr.VGG19Features("vgg22")
    loss = sr.ContentLoss("vgg22", vgg)
    assert loss(target, target).item() == 0
    value = loss(output, target)
    manual = F.mse_loss(vgg(output) / 12.75, vgg(target) / 12.75)       # eq. 5 with the paper's 1/12.75
    assert value.item() == pytest.approx(manual.item(), rel=1e-5) and value.item() > 0
    value.backward()
    assert output.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="kind must be"):
        sr.ContentLoss("l1")
    with pytest.raises(ValueError, match="computes layer 'vgg22' but kind is 'vgg54'"):
        sr.ContentLoss("vgg54", vgg)
    with pytest.raises(ValueError, match="same shape"):
        loss(output, target[:, :, :16])


def test_matching_feature_scale_puts_the_vgg_loss_on_the_mse_scale():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 1, 32, 32, generator=g)
    output = F.avg_pool2d(target, 3, 1, 1)
    vgg = sr.VGG19Features("vgg22")
    scale = sr.matching_feature_scale(vgg, output, target, value_range=1)
    loss = sr.ContentLoss("vgg22", vgg, feature_scale=scale)(output, target)
    assert loss.item() == pytest.approx(F.mse_loss(output, target).item(), rel=1e-4)
    # default: the paper's MSE on [-1, 1] images, 4x the MSE on [0, 1]
    assert sr.matching_feature_scale(vgg, output, target) == pytest.approx(2 * scale, rel=1e-5)


def test_adversarial_and_discriminator_losses():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    assert sr.adversarial_loss(logits).item() == pytest.approx(-torch.log(torch.sigmoid(logits)).mean().item())
    real, fake = torch.tensor([4.0, 2.0]), torch.tensor([-3.0, 1.0])
    want = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert sr.discriminator_loss(real, fake).item() == pytest.approx(want.item(), rel=1e-6)
    x = torch.rand(1, 1, 8, 8)
    total, content, adv = sr.perceptual_loss(x * 0.9, x, sr.ContentLoss("mse"), logits[:1], 1e-3)
    assert total.item() == pytest.approx(content.item() + 1e-3 * adv.item())
    total, _, adv = sr.perceptual_loss(x * 0.9, x, sr.ContentLoss("mse"))
    assert adv.item() == 0


def test_gan_steps_update_both_networks_and_log():
    tiny = [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]
    sampler = sr.PatchSampler(tiny, 4, 9)
    gen_net, disc = sr.SRResNet(4, n_blocks=1, channels=8), sr.Discriminator(1, channels=4)
    before_g = [p.detach().clone() for p in gen_net.parameters()]
    before_d = [p.detach().clone() for p in disc.parameters()]
    seen = []
    history = sr.train_gan_steps(gen_net, disc, sr.ContentLoss("mse"), sampler,
                                 torch.optim.Adam(gen_net.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 1e-3),
                                 3, batch=2, generator_rng=torch.Generator().manual_seed(0), log_every=2,
                                 progress=False, callback=lambda step, h: seen.append(step))
    assert history["step"] == [2, 3] and seen == [2, 3]
    assert set(history) == {"step", "loss", "content", "adversarial", "discriminator", "d_real", "d_fake", "seconds"}
    assert all(0 <= v <= 1 for v in history["d_real"] + history["d_fake"])
    assert any(not torch.equal(a, b) for a, b in zip(before_g, gen_net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, disc.parameters()))


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
    with pytest.raises(SystemExit, match=r"unknown recipe key\(s\) \['vgg'\] for srresnet"):
        train.main(["srresnet", "--scale", "4", "--set", "vgg=imagenet"])
    with pytest.raises(SystemExit, match="init: no checkpoint file"):
        train.main(["srgan", "--scale", "4", "--set", f"init={tmp_path / 'none.pt'}"])
    with pytest.raises(ValueError, match="init: .* is a srgan x4 checkpoint, not an SRResNet/SRGAN generator at x2"):
        train.train("srgan", 2, 1, tmp_path / "x.pt", images=tiny, init=str(tmp_path / "srgan_x4.pt"))


# ---------------------------------------------------------------------------------------------------------------
# the high-frequency measure

def test_radial_power_spectrum():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 128, 128, generator=g)
    freq, power = metrics.radial_power_spectrum(noise, bins=16)
    assert freq.shape == power.shape == (16,) and 0 < freq[0] < freq[-1] < 0.5
    assert power[4:].max() / power[4:].min() < 1.5                    # white noise: flat away from DC
    photo = images.load_skimage("camera", size=128)
    _, p = metrics.radial_power_spectrum(photo, bins=16)
    assert p[1] > 30 * p[-1]                                           # natural images: power falls with f


def test_high_frequency_ratio():
    photo = images.load_skimage("astronaut", size=128)
    assert metrics.high_frequency_ratio(photo, photo, 4) == pytest.approx(1.0)
    from course_utils import operators as ops
    blurry = ops.Upsample(4)(ops.Downsample(4)(photo)).clamp(0, 1)
    assert metrics.high_frequency_ratio(blurry, photo, 4) < 0.2        # bicubic cannot invent detail
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert metrics.high_frequency_ratio(noisy, photo, 4) > 1           # noise is "detail" too: not a quality score
    with pytest.raises(ValueError, match="same shape"):
        metrics.high_frequency_ratio(photo[:, :64], photo, 4)
    assert np.isfinite(metrics.high_frequency_ratio(blurry, photo, 2))
    # the SR-protocol version: Y channel, border of `scale` pixels cropped
    want = metrics.high_frequency_ratio(images.rgb_to_y(blurry)[:, 4:-4, 4:-4], images.rgb_to_y(photo)[:, 4:-4, 4:-4], 4)
    assert metrics.sr_high_frequency_ratio(blurry, photo, 4) == pytest.approx(want)


# ---------------------------------------------------------------------------------------------------------------
# notebook 05's widget and exercises

def test_srgan_demo_and_panel_headless(rgb):
    from course_utils import widgets

    tiny = [images.load_skimage("camera", size=64)]
    start = sr.SRResNet(4, n_blocks=1, channels=8)
    result = widgets.srgan_demo(rgb, "vgg22", 1e-2, 2, generator=start, train_images=tiny, batch=2, patch=9,
                                zoom=16, top=0, left=1)
    assert list(result["images"]) == ["high-res (truth)", "bicubic", "start (SRResNet)", "after 2 GAN steps"]
    assert result["images"]["after 2 GAN steps"].shape == (3, 48, 48) and result["box"] == (0, 32, 16, 16)
    assert result["history"]["step"] == [2] and "random" in result["vgg"]
    assert all(math.isfinite(v) for v in result["psnr"].values()) and result["hf"]["bicubic"] < 1
    assert not any(p.grad is not None for p in start.parameters())            # the start model is not touched
    panel = widgets.srgan_panel(rgb, iters=1, generator=start, train_images=tiny, batch=1, patch=9, zoom=16)
    controls = {c.description: c for c in panel.children if hasattr(c, "value")}
    controls["content"].value = "mse"
    controls["iterations"].value = 0
    result = panel.update()
    assert result["vgg"] == "none (pixel MSE)" and result["history"] == {}
    with pytest.raises(ValueError, match="adversarial_weight"):
        widgets.srgan_demo(rgb, "mse", -1, 1, generator=start, train_images=tiny)


def test_exercise_checkers_accept_right_and_reject_wrong(capsys):
    from course_utils.exercises import srgan as ex

    def todo(*args):
        raise NotImplementedError

    assert ex.check_mse_optimal_guess(lambda s: s.mean(0)) is True
    assert ex.check_mse_optimal_guess(lambda s: s[0]) is False                   # a plausible sample loses on MSE
    assert ex.check_mse_optimal_guess(lambda s: s.median(0).values) is False
    assert ex.check_mse_optimal_guess(todo) is None
    good_g = lambda f: -F.logsigmoid(f).mean()                                    # noqa: E731
    good_d = lambda r, f: -F.logsigmoid(r).mean() - F.logsigmoid(-f).mean()       # noqa: E731
    naive_g = lambda f: -torch.log(torch.sigmoid(f)).mean()                       # noqa: E731
    assert ex.check_gan_losses(good_g, good_d) is True
    assert ex.check_gan_losses(naive_g, good_d) is False                          # overflows at logit -200
    assert ex.check_gan_losses(lambda f: F.logsigmoid(f).mean(), good_d) is False  # wrong sign
    assert ex.check_gan_losses(todo, todo) is None
    index = {(b, c): v for (b, c), v in ((tuple(map(int, k[3:5])), v) for k, v in sr.VGG19_LAYERS.items())}
    assert ex.check_vgg_layer_index(lambda i, j: index[(i, j)]) is True
    assert ex.check_vgg_layer_index(lambda i, j: index[(i, j)] - 1) is False      # that is the conv, not the ReLU
    assert ex.check_vgg_layer_index(todo) is None
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "correct" in out


def test_make_content_loss():
    tiny = [images.load_skimage("camera", size=64)]
    assert sr.make_content_loss("mse").vgg is None
    loss = sr.make_content_loss("vgg22", "random", sampler=sr.PatchSampler(tiny, 4, 8), patches=4)
    assert loss.vgg.layer == "vgg22" and loss.feature_scale > 1 / 12.75
    with pytest.raises(ValueError, match="sampler is needed"):
        sr.make_content_loss("vgg22", "random")
