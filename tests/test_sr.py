"""What every SR method shares: the SRModel interface, the protocol, patches, the supervised loop."""
import pytest
import torch

from course_utils import images, operators as ops, sr, srcnn


def test_ycbcr_round_trip_and_shared_y():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ycc = images.rgb_to_ycbcr(x)
    assert torch.allclose(ycc[:, :1], images.rgb_to_y(x))
    assert torch.allclose(images.ycbcr_to_rgb(ycc), x, atol=1e-5)
    white = images.rgb_to_ycbcr(torch.ones(3, 1, 1)).flatten() * 255
    assert torch.allclose(white, torch.tensor([235.0, 128.0, 128.0]), atol=1e-3)
    with pytest.raises(ValueError, match="3 channel"):
        images.rgb_to_ycbcr(torch.rand(1, 4, 4))


def test_super_resolve_gray_and_rgb(rgb):
    model = sr.build_model("bicubic", 2)
    out = sr.super_resolve(model, rgb)
    assert out.shape == (3, 96, 96) and 0 <= out.min() and out.max() <= 1
    # Y through the model, Cb/Cr by bicubic: with a bicubic "model" this is plain bicubic up to clipping
    assert (out - ops.Upsample(2)(rgb)).abs().max() < 0.02
    assert sr.super_resolve(model, rgb[:1]).shape == (1, 96, 96)
    with pytest.raises(ValueError, match="channel"):
        sr.super_resolve(model, torch.rand(2, 8, 8))
    with pytest.raises(TypeError, match="model"):
        sr.super_resolve(torch.nn.Identity(), rgb)


def test_patch_sampler_is_aligned_seeded_and_augmented():
    image = images.load_skimage("camera", size=96)
    sampler = sr.PatchSampler([image], scale=3, patch=8)
    low, high = sampler.sample(6, torch.Generator().manual_seed(0))
    assert low.shape == (6, 1, 8, 8) and high.shape == (6, 1, 24, 24)
    # aligned: each low-res patch is (close to) the downsampled high-res patch (only borders differ)
    inner = (ops.Downsample(3)(high) - low)[..., 2:-2, 2:-2].abs().max()
    assert inner < 0.02
    again, _ = sampler.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(low, again)
    other, _ = sampler.sample(6, torch.Generator().manual_seed(1))
    assert not torch.equal(low, other)
    with pytest.raises(ValueError, match="smaller than one high-res patch"):
        sr.PatchSampler([images.load_skimage("camera", size=20)], scale=3, patch=8)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    sampler = sr.PatchSampler([images.load_skimage("camera", size=96)], scale=2, patch=10)
    model = srcnn.ESPCN(2)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    history = sr.train_steps(model, sampler, opt, 60, batch=8, generator=torch.Generator().manual_seed(0),
                             log_every=10, progress=False)
    assert history["step"] == [10, 20, 30, 40, 50, 60]
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    with pytest.raises(ValueError, match="loss"):
        sr.train_steps(model, sampler, opt, 1, loss="l3", generator=torch.Generator(), progress=False)


def test_evaluate_image_protocol(rgb):
    result = sr.evaluate_image(sr.build_model("bicubic", 3), rgb)
    high, low = sr.make_low_res(images.rgb_to_y(rgb), 3)
    from course_utils.metrics import sr_psnr
    assert result["psnr"] == pytest.approx(sr_psnr(ops.Upsample(3)(low), high, 3))
    assert 0 < result["ssim"] < 1 and result["ms"] >= 0
    gray = sr.evaluate_image(sr.build_model("bicubic", 3), images.rgb_to_y(rgb))
    assert gray["psnr"] == pytest.approx(result["psnr"], abs=1e-4)   # RGB is judged on its Y
    with pytest.raises(ValueError, match="receptive field"):
        sr.evaluate_image(sr.build_model("vdsr", 3), rgb[:, :30, :30])
