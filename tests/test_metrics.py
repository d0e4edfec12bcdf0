import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from course_utils import images, metrics, operators as ops
from course_utils.images import rgb_to_y


def test_psnr_matches_definition_and_skimage(rgb):
    noisy = (rgb + 0.05 * torch.randn(rgb.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mse = float(((noisy - rgb) ** 2).mean())
    assert metrics.psnr(noisy, rgb) == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)
    ref = peak_signal_noise_ratio(rgb.numpy(), noisy.numpy(), data_range=1)
    assert metrics.psnr(noisy, rgb) == pytest.approx(ref, abs=1e-4)
    assert metrics.psnr(rgb, rgb) == math.inf
    assert metrics.psnr(torch.stack([noisy, noisy]), torch.stack([rgb, rgb])) == pytest.approx(ref, abs=1e-4)


def test_ssim_bounds_and_skimage(rgb):
    assert metrics.ssim(rgb, rgb) == pytest.approx(1.0)
    other = rgb.flip(-1)
    value = metrics.ssim(other, rgb)
    ref = structural_similarity(rgb.permute(1, 2, 0).double().numpy(), other.permute(1, 2, 0).double().numpy(),
                                data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert value == pytest.approx(ref) and value < 0.9


def test_sr_psnr_uses_y_channel_and_crops_border(rgb):
    sr = rgb.clone()
    sr[:, :3, :] = 0  # damage confined to a 3-pixel border
    assert metrics.sr_psnr(sr, rgb, scale=3) == math.inf
    assert metrics.sr_psnr(sr, rgb, scale=2) < 40
    # a colour change that keeps luma unchanged is invisible to the Y-channel protocol
    shifted = rgb.clone()
    shifted[0] = (rgb[0] + 0.02).clamp(max=1)
    manual = 10 * np.log10(1 / float(((rgb_to_y(shifted) - rgb_to_y(rgb))[:, 4:-4, 4:-4] ** 2).mean()))
    assert metrics.sr_psnr(shifted, rgb, scale=4) == pytest.approx(manual, abs=1e-3)


def test_metric_bad_input(rgb):
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(rgb, rgb[:, :40])
    with pytest.raises(ValueError, match=r"image values must lie in \[0, 1\]"):
        metrics.psnr(rgb + 1, rgb)
    with pytest.raises(TypeError, match="reference must be a floating-point"):
        metrics.psnr(rgb, (rgb * 255).byte())
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(rgb[:, :5, :5], rgb[:, :5, :5])
    with pytest.raises(ValueError, match="too small to crop a border"):
        metrics.sr_psnr(rgb[:, :6, :6], rgb[:, :6, :6], scale=4)
    with pytest.raises(ValueError, match="channel"):
        metrics.sr_psnr(torch.rand(2, 20, 20), torch.rand(2, 20, 20), scale=2)


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


def test_region_psnr_counts_only_the_region(rgb):
    other = rgb.clone()
    other[:, :24] = 0                                          # ruin the top half only
    bottom = torch.zeros(48, 48)
    bottom[24:] = 1
    assert metrics.region_psnr(other, rgb, bottom) == math.inf
    assert metrics.region_psnr(other, rgb, 1 - bottom) < metrics.psnr(other, rgb)   # the damage is all there
    with pytest.raises(ValueError, match="region must be one"):
        metrics.region_psnr(other, rgb, torch.ones(10, 10))
    with pytest.raises(ValueError, match="selects no pixel"):
        metrics.region_psnr(other, rgb, torch.zeros(48, 48))


def test_derivative_kurtosis_separates_natural_detail_from_noise_and_grids():
    photo = images.load_skimage("astronaut", size=128)
    noise = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert metrics.derivative_kurtosis(photo) > 6                     # sparse derivatives
    assert abs(metrics.derivative_kurtosis(noise) - 2.4) < 0.5        # a dense (uniform-noise) field: low
    smooth = ops.Upsample(4)(ops.Downsample(4)(photo)).clamp(0, 1)
    noisy = (smooth + 0.04 * torch.randn(smooth.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert metrics.derivative_kurtosis(noisy) < 0.5 * metrics.derivative_kurtosis(photo)   # noise is not texture
    with pytest.raises(ValueError, match="constant"):
        metrics.derivative_kurtosis(torch.full((1, 16, 16), 0.5))


def test_grid_artifact_score_finds_a_sub_pixel_checkerboard():
    photo = images.load_skimage("astronaut", size=128)
    blurry = ops.Upsample(4)(ops.Downsample(4)(photo)).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checker = (((yy // 2 + xx // 2) % 2).float() * 2 - 1)[None]      # period 4, as two x2 pixel shuffles leave
    gridded = (blurry + 0.01 * checker).clamp(0, 1)
    assert metrics.grid_artifact_score(photo, 4) < 15
    assert metrics.grid_artifact_score(blurry, 4) < 15
    assert metrics.grid_artifact_score(gridded, 4) > 30
    with pytest.raises(ValueError, match="too small"):
        metrics.grid_artifact_score(photo[:, :20, :20], 4)


def test_local_detail_error_rewards_detail_in_the_right_place_not_noise():
    g = torch.Generator().manual_seed(0)
    # the truth: flat on the left half, fine texture (above a x4 low-res image's Nyquist) on the right
    truth = torch.full((1, 64, 64), 0.5)
    texture = 0.2 * torch.randn(1, 64, 32, generator=g)
    truth[..., 32:] += texture
    truth = truth.clamp(0, 1)
    assert metrics.local_detail_error(truth, truth, 4) == 0
    blurry = ops.Upsample(4)(ops.Downsample(4)(truth))
    other_texture = truth.clone()                                   # texture in the right place, not the true one
    other_texture[..., 32:] = (0.5 + 0.2 * torch.randn(1, 64, 32, generator=g)).clamp(0, 1)
    noise = (blurry + 0.14 * torch.randn(blurry.shape, generator=g)).clamp(0, 1)      # detail spread everywhere
    hf_noise = metrics.high_frequency_ratio(noise, truth, 4)
    assert 0.5 < hf_noise < 2                                        # about the truth's amount of detail ...
    errors = {k: metrics.local_detail_error(v, truth, 4) for k, v in
              {"blurry": blurry, "other": other_texture, "noise": noise}.items()}
    assert errors["other"] < 1 < errors["noise"]                     # ... but in the wrong places
    assert errors["other"] < errors["blurry"]
    with pytest.raises(ValueError, match="reference"):
        metrics.local_detail_error(truth, truth[..., :32], 4)
    with pytest.raises(ValueError, match="scale"):
        metrics.local_detail_error(truth, truth, 1)
    with pytest.raises(ValueError, match="divisible"):
        metrics.local_detail_error(truth[..., :62], truth[..., :62], 4)
    assert metrics.sr_local_detail_error(truth, truth, 4) == 0


def test_grid_amplitude_measures_the_size_of_a_periodic_error_in_grey_levels():
    g = torch.Generator().manual_seed(0)
    reference = (0.5 + 0.1 * torch.randn(1, 64, 64, generator=g)).clamp(0, 1)
    assert metrics.grid_amplitude(reference, reference, 4) == 0
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = ((((yy % 4) < 2) ^ ((xx % 4) < 2)).float() * 2 - 1) / 255          # +-1 grey level, period 4
    assert metrics.grid_amplitude((reference + 3 * checker).clamp(0, 1), reference, 4) == pytest.approx(3, rel=0.05)
    noise = (reference + 3 / 255 * torch.randn(reference.shape, generator=g)).clamp(0, 1)    # same size, no grid
    assert metrics.grid_amplitude(noise, reference, 4) < 0.5
    with pytest.raises(ValueError, match="period"):
        metrics.grid_amplitude(reference, reference, 1)
    with pytest.raises(ValueError, match="too small"):
        metrics.grid_amplitude(reference[..., :8, :8], reference[..., :8, :8], 4)


def test_lattice_share_finds_a_grid_and_not_natural_detail():
    photo = images.center_crop(images.load_skimage("astronaut"), 128)
    natural = metrics.lattice_share(photo, 4)
    assert natural < 0.01                                                     # chance level ~ 15 / 16,000 bins
    dots = torch.zeros(1, 128, 128)
    dots[:, ::4, ::4] = 0.05                                                  # a faint sub-pixel dot lattice
    assert metrics.lattice_share((photo + dots).clamp(0, 1), 4) > 3 * natural
    noise = (photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert metrics.lattice_share(noise, 4) < 0.01                             # noise is detail, not a lattice
    assert metrics.sr_lattice_share(photo, 4) == pytest.approx(metrics.lattice_share(photo[:, 4:-4, 4:-4], 4))
    with pytest.raises(ValueError, match="too small"):
        metrics.lattice_share(photo[:, :12, :12], 4)


def test_fool_rate_tells_blur_from_truth_and_ties_are_half():
    photo = images.load_skimage("astronaut")
    high = torch.stack([photo[:, y:y + 32, x:x + 32] for y in range(100, 420, 40) for x in range(100, 420, 40)])
    blurred = ops.Upsample(4)(ops.Downsample(4)(high))
    assert metrics.fool_rate(high, high, steps=20) == pytest.approx(0.5)      # identical pairs: every call a tie
    assert metrics.fool_rate(high, blurred, steps=150) < 0.25                 # bicubic is easy to spot
    with pytest.raises(ValueError, match="at least 4 pairs"):
        metrics.fool_rate(high[:3], high[:3])
    with pytest.raises(ValueError, match="same shape"):
        metrics.fool_rate(high, blurred[:, :, :16])


def test_t_interval_is_scipys_student_t_interval_and_none_below_two_values():
    from scipy import stats

    values = [0.1, 0.4, -0.2, 0.3, 0.05]
    mean, low, high = metrics.t_interval(torch.tensor(values))
    want = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and (low, high) == pytest.approx(want)
    assert metrics.t_interval([0.3]) == (0.3, None, None)
