import pytest
import torch

from course_utils import dip
from course_utils import operators as ops
from course_utils.metrics import psnr


def tiny(out_channels=3, **kw):
    torch.manual_seed(0)
    return dip.skip_net(out_channels, **{"channels": 8, "skip": 2, "depth": 2, **kw})


def test_skip_net_matches_the_paper_layout():
    net = dip.skip_net(3)
    assert net.depth == 5 and net.in_channels == 32 and net.skip_channels == [4] * 5
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # per scale: 1x1 skip, stride-2 3x3, 3x3, 3x3 up, 1x1 up; then the 1x1 output conv
    assert len(convs) == 5 * 5 + 1
    assert sum(1 for c in convs if c.stride == (2, 2) and c.kernel_size == (3, 3)) == 5
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 3
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    z = dip.make_input(64, 32, multiple=net.multiple, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1, 32, 64, 64) and 0 <= z.min() and z.max() <= 0.1
    out = net(z)
    assert out.shape == (1, 3, 64, 64) and 0 < out.min() and out.max() < 1  # sigmoid


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_configurable_width_depth_skip(upsample):
    net = tiny(1, channels=[4, 6], skip=[0, 3], upsample=upsample)
    out = net(torch.rand(1, 32, 16, 16))
    assert out.shape == (1, 1, 16, 16)


def test_input_padding_for_odd_sizes():
    z = dip.make_input((37, 50), 32, multiple=4)
    assert z.shape == (1, 32, 40, 52)
    assert dip.padded_size(64, 32) == (64, 64)


def test_network_rejects_bad_z_with_clear_errors():
    net = tiny()
    with pytest.raises(ValueError, match="divisible by 2\\^depth"):
        net.check_input(torch.rand(1, 32, 18, 16))
    with pytest.raises(ValueError, match="too small"):
        net.check_input(torch.rand(1, 32, 4, 4))
    with pytest.raises(ValueError, match="channel"):
        net.check_input(torch.rand(1, 5, 16, 16))
    with pytest.raises(ValueError, match="upsample"):
        dip.skip_net(3, upsample="bicubic")
    with pytest.raises(ValueError, match="channels"):
        dip.skip_net(3, channels=[8, 8], depth=3)


def test_fit_denoising_runs_records_history_and_improves(rgb):
    y = ops.GaussianNoise(25)(rgb[:, :32, :32], torch.Generator().manual_seed(0))
    clean = rgb[:, :32, :32]
    r = dip.fit(tiny(), y, iters=60, every=20, clean=clean, progress=False)
    h = r.history
    assert len(h["loss"]) == 60 and h["step"][-1] == 60
    assert h["iter"] == [20, 40, 60] and len(h["psnr"]) == len(h["psnr_avg"]) == 3
    assert h["loss"][-1] < h["loss"][0] / 2  # it fits
    assert r.output.shape == r.average.shape == clean.shape
    assert r.best_iter in h["iter"] and r.best_psnr == max(h["psnr"])
    assert r.final_psnr == pytest.approx(psnr(r.output, clean))
    assert r.final_psnr_avg == pytest.approx(psnr(r.average, clean))


def test_fit_is_deterministic_per_seed(rgb):
    y = rgb[:, :16, :16]
    a = dip.fit(tiny(), y, iters=5, progress=False, seed=3)
    b = dip.fit(tiny(), y, iters=5, progress=False, seed=3)
    assert torch.equal(a.output, b.output)


def test_fit_crops_odd_sizes_and_runs_sr_and_inpainting(rgb):
    odd = rgb[:, :21, :18]
    r = dip.fit(tiny(), odd, iters=3, progress=False)
    assert r.output.shape == odd.shape
    hr = rgb[:, :32, :32]
    lr = ops.Downsample(2)(hr)
    r = dip.fit(tiny(), lr, ops.Downsample(2), out_size=32, clean=hr, iters=3, every=1, progress=False)
    assert r.output.shape == hr.shape and len(r.history["psnr"]) == 3
    mask = ops.bernoulli_mask(32, 0.5, torch.Generator().manual_seed(0))
    r = dip.fit(tiny(), ops.Inpaint(mask)(hr), ops.Inpaint(mask), iters=3, progress=False)
    assert r.output.shape == hr.shape


def test_backtracking_restores_weights_when_loss_jumps(rgb):
    y = rgb[:, :16, :16]
    net = tiny()

    def sabotage(step, history):  # after the check at step 20 succeeded, wreck the output layer
        if step == 20:
            with torch.no_grad():
                net.out[-1].bias.fill_(20.0)  # sigmoid(20) ~ 1 on a dark patch: the loss jumps

    r = dip.fit(net, y, iters=40, every=10, backtrack=2.0, progress=False, callback=sabotage)
    assert r.backtracks == [30]
    assert r.history["iter"] == [10, 20, 40]  # the failed check is not recorded
    assert r.history["loss_check"][-1] < 2 * r.history["loss_check"][-2]
    assert float(net.out[-1].bias.detach().max()) < 5  # the good weights came back
    # the same sabotage without backtracking leaves the loss high
    net = tiny()
    r = dip.fit(net, y, iters=40, every=10, backtrack=None, progress=False, callback=sabotage)
    assert r.backtracks == [] and r.history["loss_check"][2] > 2 * r.history["loss_check"][1]


def test_fit_bad_input(rgb):
    net, y = tiny(), rgb[:, :32, :32]
    with pytest.raises(ValueError, match="observation y has shape"):
        dip.fit(net, y, ops.Downsample(2), iters=1, progress=False)  # forgot out_size
    with pytest.raises(ValueError, match="mask of size"):
        dip.fit(net, y, ops.Inpaint(torch.ones(16, 16)), iters=1, progress=False)
    with pytest.raises(ValueError, match="iters"):
        dip.fit(net, y, iters=0, progress=False)
    with pytest.raises(TypeError, match="iters"):
        dip.fit(net, y, iters=2.5, progress=False)
    with pytest.raises(ValueError, match="too small"):
        dip.fit(dip.skip_net(3, channels=4, depth=5), y, iters=1, progress=False)
    with pytest.raises(ValueError, match="deterministic"):
        dip.fit(net, y, ops.GaussianNoise(25), iters=1, progress=False)
    with pytest.raises(TypeError, match="operator"):
        dip.fit(net, y, lambda x: x, iters=1, progress=False)
    with pytest.raises(ValueError, match="channels"):
        dip.fit(net, y[:1], iters=1, progress=False)
    with pytest.raises(ValueError, match="clean"):
        dip.fit(net, y, clean=rgb[:, :16, :16], iters=1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        dip.fit(net, y, lr=0, iters=1, progress=False)
    with pytest.raises(TypeError, match="net"):
        dip.fit(torch.nn.Identity(), y, iters=1, progress=False)


@pytest.mark.parametrize("method", ["bm3d", "nlm", "tv"])
def test_classical_denoisers_improve_psnr(rgb, method):
    noisy = ops.GaussianNoise(25)(rgb, torch.Generator().manual_seed(0))
    out = dip.classical_denoise(noisy, 25, method)
    assert out.shape == rgb.shape and out.dtype == torch.float32
    assert psnr(out, rgb) > psnr(noisy, rgb) + 1


def test_classical_denoise_bad_input(rgb):
    with pytest.raises(ValueError, match="sigma"):
        dip.classical_denoise(rgb, 300)
    with pytest.raises(ValueError, match="sigma"):
        dip.classical_denoise(rgb, 0)
    with pytest.raises(ValueError, match="method"):
        dip.classical_denoise(rgb, 25, "median")


def test_fit_bf16_autocast_returns_float32_and_fits(rgb):
    y = rgb[:, :16, :16]
    r = dip.fit(tiny(), y, iters=30, every=10, progress=False, bf16=True)
    assert r.output.dtype == r.average.dtype == torch.float32
    assert r.history["loss"][-1] < r.history["loss"][0]


def test_classical_inpaint_fills_the_holes_only():
    from course_utils.images import load_skimage

    image = load_skimage("astronaut", size=48)
    mask = ops.bernoulli_mask(48, 0.5, torch.Generator().manual_seed(0))
    observed = ops.Inpaint(mask)(image)
    filled = dip.classical_inpaint(observed, mask)
    keep = mask.reshape(48, 48).bool()
    assert torch.allclose(filled[:, keep], image[:, keep], atol=1e-6)        # observed pixels untouched
    from course_utils.metrics import psnr
    assert psnr(filled, image) > psnr(observed, image) + 10                  # the holes get plausible values
    with pytest.raises(ValueError, match="mask must be one"):
        dip.classical_inpaint(observed, torch.ones(1, 1, 24, 24))


def test_pixel_net_has_no_spatial_structure():
    net = dip.PixelNet(8, 3, channels=16, layers=2).eval()
    z = net.make_input(12, generator=torch.Generator().manual_seed(0))
    out = net(z)
    assert out.shape == (1, 3, 12, 12) and 0 < out.min() and out.max() < 1
    changed = z.clone()
    changed[..., 5, 7] += 1                                     # one pixel's code changes ...
    diff = (net(changed) - out).abs().sum(dim=1)[0]
    assert diff[5, 7] > 0 and diff.sum() == diff[5, 7]          # ... and only that output pixel moves
    result = dip.fit(dip.PixelNet(32, 3, channels=8, layers=1), torch.rand(3, 10, 10), iters=3, progress=False)
    assert result.output.shape == (3, 10, 10)


def test_dip_sr_is_the_dip_fit_through_the_sr_interface(rgb):
    """``DIPSR.upscale`` = ``fit`` with A = Downsample(scale), one seed drawn from the generator, the averaged output;
    and the fit explains its input (its downsampled output is far closer to the low-res image than at the start)."""
    from course_utils import sr

    high, low = sr.make_low_res(rgb[:, :32, :32], 2)
    model = sr.build_model("dip", 2, width=8, iters=60, depth=2)
    out = model.upscale(low, generator=torch.Generator().manual_seed(5))
    seed = int(torch.randint(2 ** 31 - 1, (1,), generator=torch.Generator().manual_seed(5)))
    torch.manual_seed(seed)
    net = dip.skip_net(3, channels=8, depth=2)
    by_hand = dip.fit(net, low, ops.Downsample(2), out_size=(32, 32), iters=60, lr=0.01, reg_noise_std=0.03,
                      every=6, seed=seed, progress=False)
    assert out.shape == (3, 32, 32) and torch.allclose(out, by_hand.average, atol=1e-6)
    start, fitted = (sr.build_model("dip", 2, width=8, iters=n, depth=2).upscale(low, generator=torch.Generator()
                                                                                  .manual_seed(5)) for n in (1, 400))
    assert sr.consistency(fitted, low, 2) < sr.consistency(start, low, 2) / 100   # measured: 0.0002 vs 0.146
    with pytest.raises(ValueError, match="smaller than the receptive field"):
        sr.build_model("dip", 4, width=8, iters=1).upscale(low[:, :8, :8])   # depth 5 needs a 64 px output
