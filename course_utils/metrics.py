"""Image quality metrics, wrapping ``skimage.metrics``.

    PSNR(x, y) = 10 log10( MAX^2 / MSE(x, y) ),   MAX = 1 for images in [0, 1].

SSIM compares local means, variances and covariances (Wang et al. 2004; Gaussian window sigma = 1.5 as in the
paper). :func:`sr_psnr` / :func:`sr_ssim` follow the super-resolution papers' protocol: compare the Y channel
(BT.601 studio range) after cropping a border of ``scale`` pixels.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from . import operators as ops
from ._checks import check_image, check_number, check_positive_int, check_same_shape
from .images import rgb_to_y


def _pairs(image, reference, name="image"):
    """Validate two (C, H, W) or (B, C, H, W) images in [0, 1] -> list of (H, W, C) float64 array pairs."""
    check_image(image, name)
    check_image(reference, "reference")
    check_same_shape(image, reference, name, "reference")
    if image.dim() == 3:
        image, reference = image[None], reference[None]
    to_np = lambda t: t.detach().double().cpu().numpy().transpose(0, 2, 3, 1)  # noqa: E731
    return list(zip(to_np(image), to_np(reference)))


def mse(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean squared error (mean over a batch)."""
    return float(np.mean([mean_squared_error(r, a) for a, r in _pairs(image, reference)]))


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of ``image`` against ``reference`` (both in [0, 1], same shape); a batch gives the mean PSNR.
    Identical images give ``inf``."""
    values = []
    for a, r in _pairs(image, reference):
        values.append(np.inf if np.array_equal(a, r) else peak_signal_noise_ratio(r, a, data_range=1.0))
    return float(np.mean(values))


def region_psnr(image: torch.Tensor, reference: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR over the pixels where ``region`` (H, W) is nonzero (e.g. the missing pixels of an inpainting mask: the
    observed ones are given, so only the filled-in ones measure the method). Images (C, H, W) in [0, 1]."""
    check_image(image, "image", ndim=3)
    check_image(reference, "reference", ndim=3)
    check_same_shape(image, reference, "image", "reference")
    if not isinstance(region, torch.Tensor) or region.numel() != image.shape[-1] * image.shape[-2]:
        raise ValueError(f"region must be one (H, W) plane of the image's size {tuple(image.shape[-2:])}, got "
                         f"{tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__}")
    keep = region.reshape(image.shape[-2:]).bool()
    if not keep.any():
        raise ValueError("region selects no pixel")
    error = float(((image.detach().double() - reference.detach().double())[:, keep] ** 2).mean())
    return float("inf") if error == 0 else 10 * float(np.log10(1 / error))


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """SSIM (Gaussian window, sigma 1.5, as Wang et al.) of ``image`` against ``reference``; batch -> mean.
    Images need at least 7 x 7 pixels."""
    values = []
    for a, r in _pairs(image, reference):
        if min(a.shape[:2]) < 7:
            raise ValueError(f"image must be at least 7x7 pixels for SSIM, got {a.shape[0]}x{a.shape[1]}")
        values.append(structural_similarity(r, a, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False))
    return float(np.mean(values))


def _sr_view(image, reference, scale):
    scale = check_positive_int(scale, "scale")
    check_image(image, "image", channels=(1, 3))
    check_image(reference, "reference", channels=(1, 3))
    check_same_shape(image, reference, "image", "reference")
    h, w = image.shape[-2:]
    if h <= 2 * scale or w <= 2 * scale:
        raise ValueError(f"image of size {h}x{w} is too small to crop a border of scale={scale} pixels")
    crop = lambda t: rgb_to_y(t)[..., scale: h - scale, scale: w - scale]  # noqa: E731
    return crop(image.clamp(0, 1)), crop(reference)


def sr_psnr(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """PSNR with the SR papers' protocol: Y channel (BT.601, 16-235), border of ``scale`` pixels cropped."""
    return psnr(*_sr_view(image, reference, scale))


def sr_ssim(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """SSIM with the SR papers' protocol (Y channel, border of ``scale`` pixels cropped)."""
    return ssim(*_sr_view(image, reference, scale))



# ----------------------------------------------------------------------------------------------------------------
# high-frequency content: PSNR/SSIM reward smooth averages; these measure whether the fine detail is there at all

def _luminance(image: torch.Tensor) -> torch.Tensor:
    """(1 or 3, H, W) -> (H, W) float64 on the CPU: the grey channel, or BT.601 Y of an RGB image."""
    return (image[0] if image.shape[0] == 1 else rgb_to_y(image)[0]).detach().double().cpu()


def radial_power_spectrum(image: torch.Tensor, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of an image's luminance. (C, H, W) in [0, 1] ->
    ``(frequency, power)``: ``bins`` radial frequencies in cycles per pixel (0 .. 0.5] and the mean |FFT|^2 of the
    Hann-windowed, mean-removed luminance at each (natural images fall roughly as 1 / f^2).
    Needs no reference and no pretrained network (LPIPS would need downloaded weights)."""
    check_image(image, "image", ndim=3, channels=(1, 3))
    bins = check_positive_int(bins, "bins", minimum=2)
    gray = (image.detach().double().cpu().mean(0) if image.shape[0] == 1 else
            rgb_to_y(image.detach().double().cpu())[0])
    h, w = gray.shape
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * \
        torch.hann_window(w, periodic=False, dtype=torch.float64)[None, :]
    spectrum = torch.fft.fft2((gray - gray.mean()) * window).abs() ** 2 / (h * w)
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    edges = torch.linspace(0, 0.5, bins + 1, dtype=torch.float64)
    index = torch.bucketize(radius.flatten(), edges[1:-1], right=True)   # bin k holds (edges[k], edges[k+1]]
    inside = radius.flatten() <= 0.5
    power = torch.zeros(bins, dtype=torch.float64).index_add_(0, index[inside], spectrum.flatten()[inside])
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, index[inside],
                                                               torch.ones_like(radius.flatten()[inside]))
    centres = (edges[:-1] + edges[1:]) / 2
    return centres.numpy(), (power / counts.clamp(min=1)).numpy()


def high_frequency_ratio(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """Power of ``image`` above the low-res Nyquist frequency 0.5 / ``scale`` (the band a x``scale`` low-res
    image cannot carry: whatever is there was *invented* by the upsampler) divided by the reference's power in the
    same band, from :func:`radial_power_spectrum`. 1 = as much fine detail as the ground truth; bicubic << 1.
    Both (C, H, W) in [0, 1], same shape. Says how much detail, not whether it is the right detail."""
    check_same_shape(check_image(image, "image", ndim=3), check_image(reference, "reference", ndim=3),
                     "image", "reference")
    scale = check_positive_int(scale, "scale", minimum=2)
    freq, p_image = radial_power_spectrum(image)
    _, p_reference = radial_power_spectrum(reference)
    band = freq > 0.5 / scale
    return float(p_image[band].sum() / p_reference[band].sum())


def sr_high_frequency_ratio(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """:func:`high_frequency_ratio` with the SR papers' protocol (Y channel, border of ``scale`` pixels cropped),
    the companion of :func:`sr_psnr` / :func:`sr_ssim`. (C, H, W) images in [0, 1]."""
    return high_frequency_ratio(*_sr_view(image, reference, scale), scale)


def lattice_share(image: torch.Tensor, period: int) -> float:
    """The share of an image's fine detail that is a lattice locked to the ``period``-pixel grid (the phase of a
    x``period`` upsampler), no reference needed. With L the luminance (mean removed) cropped to multiples of
    ``period``, F = |FFT(L)|^2 and the fine-detail band = frequencies above 0.5 / period cycles/px (what a
    x``period`` low-res image cannot hold, as in :func:`high_frequency_ratio`):

        share = sum of F over the lattice frequencies (k_y / period, k_x / period), not both 0, in the band
                / sum of F over the band

    The lattice frequencies carry exactly the tiled pattern of the period x period phase means (Parseval), i.e.
    the part of the detail that repeats at every grid cell. Natural detail puts ~ (period^2 - 1) / (pixels in
    the band) of its energy there by chance (0.1 % for 128 px at x4); a sub-pixel checkerboard puts all of its.
    (C, H, W) in [0, 1]; the image must hold at least 4 periods each way."""
    check_image(image, "image", ndim=3, channels=(1, 3))
    period = check_positive_int(period, "period", minimum=2)
    gray = _luminance(image)
    h, w = (gray.shape[0] // period) * period, (gray.shape[1] // period) * period
    if h < 4 * period or w < 4 * period:
        raise ValueError(f"image of size {tuple(gray.shape)} is too small to measure a lattice of period {period}")
    gray = gray[:h, :w] - gray[:h, :w].mean()
    power = torch.fft.fft2(gray).abs() ** 2                                     # (h, w)
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    band = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) > 0.5 / period
    lattice = torch.zeros(h, w, dtype=torch.bool)
    lattice[:: h // period, :: w // period] = True                              # k h / period, k w / period
    total = power[band].sum()
    return float(power[band & lattice].sum() / total) if total > 0 else 0.0


def sr_lattice_share(image: torch.Tensor, scale: int) -> float:
    """:func:`lattice_share` of period ``scale`` on the SR papers' view (Y channel, border of ``scale`` pixels
    cropped)."""
    return lattice_share(image[..., scale:-scale, scale:-scale], scale)


def local_detail_error(image: torch.Tensor, reference: torch.Tensor, scale: int, c: float = 1e-5) -> float:
    """Is the invented detail in the right places? In dB, 0 = the truth's amount of fine detail everywhere.

        d = x - U(D(x))          the detail layer: what a x``scale`` low-res image cannot carry (antialiased bicubic
                                 down- and upsampling, no clamping)
        E = G_sigma * d^2        its local energy, Gaussian window sigma = 2 ``scale`` pixels
        error = mean over pixels |10 log10((E_image + c) / (E_reference + c))|

    Bicubic has too little detail everywhere; white noise (or a checkerboard) with as much total high-frequency power
    as the truth puts detail into flat regions and too little into textured ones, so it scores badly although
    :func:`high_frequency_ratio` rates it perfect; a generator that puts texture where the truth has texture scores
    well even if it is not the true texture. ``c`` = the energy floor, (0.003)^2: below it detail is invisible.
    (C, H, W) images in [0, 1] of the same shape, H and W divisible by ``scale``. Needs no pretrained network."""
    check_same_shape(check_image(image, "image", ndim=3, channels=(1, 3)),
                     check_image(reference, "reference", ndim=3, channels=(1, 3)), "image", "reference")
    scale = check_positive_int(scale, "scale", minimum=2)
    c = check_number(c, "c", minimum=0, strict_min=True)
    down, up = ops.Downsample(scale, clamp=False), ops.Upsample(scale, clamp=False)
    blur = ops.GaussianBlur(2.0 * scale)

    def energy(x):                                     # (C, H, W) -> (1, 1, H, W) local detail energy
        y = x[None].double() if x.shape[0] == 1 else rgb_to_y(x[None].double())
        d = y - up.forward(down.forward(y, None), None)      # forward: the unclamped linear operators
        return blur.forward(d ** 2, None)

    ratio = (energy(image) + c) / (energy(reference) + c)
    return float(10 * torch.log10(ratio).abs().mean())


def sr_local_detail_error(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """:func:`local_detail_error` with the SR papers' protocol (Y channel, border of ``scale`` pixels cropped)."""
    return local_detail_error(*_sr_view(image, reference, scale), scale)


def derivative_kurtosis(image: torch.Tensor) -> float:
    """Kurtosis E[d^4] / E[d^2]^2 of the luminance's horizontal and vertical first differences d of a (C, H, W)
    image. Natural images have sparse, heavy-tailed derivatives (mostly flat, a few strong edges): kurtosis well
    above 3. White noise is Gaussian (3), a regular grid is dense (below 3). So invented detail that looks natural
    keeps the truth's kurtosis; noise or a checkerboard pulls it down, whatever power they add."""
    check_image(image, "image", ndim=3, channels=(1, 3))
    gray = _luminance(image)
    d = torch.cat([gray.diff(dim=0).flatten(), gray.diff(dim=1).flatten()])
    d = d - d.mean()
    var = float((d ** 2).mean())
    if var == 0:
        raise ValueError("image is constant: its derivatives have no spread")
    return float((d ** 4).mean()) / var ** 2


def grid_artifact_score(image: torch.Tensor, period: int) -> float:
    """How strongly a (C, H, W) image contains a grid of ``period`` pixels, in dB: the largest 2-D power-spectrum
    peak at the grid's frequencies (k / period cycles per pixel on either axis, k = 0 .. period - 1, not both 0)
    above the median power of its neighbourhood (Hann-windowed luminance). Natural images and bicubic: about
    3-13 dB; the checkerboard that x2 sub-pixel layers can leave behind (period 2^k): 25 dB and more."""
    check_image(image, "image", ndim=3, channels=(1, 3))
    period = check_positive_int(period, "period", minimum=2)
    gray = _luminance(image)
    h, w = gray.shape
    if min(h, w) < 8 * period:
        raise ValueError(f"image of size {h}x{w} is too small to look for a grid of period {period}")
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * \
        torch.hann_window(w, periodic=False, dtype=torch.float64)[None, :]
    power = torch.fft.fft2((gray - gray.mean()) * window).abs() ** 2
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    best = 0.0
    for ky in range(period):
        for kx in range(period):
            if ky == kx == 0:
                continue
            ty, tx = (ky / period + 0.5) % 1 - 0.5, (kx / period + 0.5) % 1 - 0.5      # in [-0.5, 0.5)
            iy, ix = int((fy - ty).abs().argmin()), int((fx - tx).abs().argmin())
            peak = power.roll((-iy + 1, -ix + 1), (0, 1))[:3, :3].max()             # the peak, +-1 bin
            around = power.roll((-iy + 8, -ix + 8), (0, 1))[:17, :17].clone()       # a 17 x 17 neighbourhood
            around[6:11, 6:11] = float("nan")                                      # ... without the peak itself
            best = max(best, float(peak / around.nanmedian().clamp(min=1e-30)))
    return 10 * float(np.log10(best))


def grid_amplitude(image: torch.Tensor, reference: torch.Tensor, period: int) -> float:
    """How *large* a grid of ``period`` pixels is, in 8-bit grey levels: the RMS amplitude of the part of the error
    e = image - reference (luminance) that repeats every ``period`` pixels, i.e. the spread of its period x period
    phase means  m[a, b] = mean(e[a::period, b::period]):

        amplitude = 255 * std_{a,b} m[a, b]

    :func:`grid_artifact_score` says whether a periodic pattern is there at all, however faint (a 0.2-grey-level
    pattern already peaks 40 dB above its neighbourhood); this says how big it is, as an RMS over the whole image (the
    shipped SRGAN's 0.63 on astronaut shows faintly as dots on the flat background; 0.1-0.3 did not show in the
    course's crops). (C, H, W) images in [0, 1] of the same shape."""
    check_same_shape(check_image(image, "image", ndim=3, channels=(1, 3)),
                     check_image(reference, "reference", ndim=3, channels=(1, 3)), "image", "reference")
    period = check_positive_int(period, "period", minimum=2)
    e = _luminance(image) - _luminance(reference)
    h, w = (e.shape[0] // period) * period, (e.shape[1] // period) * period
    if h < 4 * period or w < 4 * period:
        raise ValueError(f"image of size {tuple(e.shape)} is too small to measure a grid of period {period}")
    phases = e[:h, :w].reshape(h // period, period, w // period, period).mean((0, 2))   # (period, period)
    return 255 * float(phases.std(unbiased=False))


def sr_grid_amplitude(image: torch.Tensor, reference: torch.Tensor, scale: int) -> float:
    """:func:`grid_amplitude` of period ``scale`` with the SR papers' protocol (Y channel, border of ``scale`` pixels
    cropped), the companion of :func:`sr_psnr`."""
    return grid_amplitude(*_sr_view(image, reference, scale), scale)


# ----------------------------------------------------------------------------------------------------------------
# a fool rate without human raters: SR3's 2AFC study (sec. 4.2) with a small trained classifier as the judge

def _critic() -> torch.nn.Module:
    """A small patch classifier on luminance: 4 convolutions 3x3 (8-16-32-32 channels, stride 2 from the second),
    LeakyReLU 0.2, global average pooling, one logit. (B, 1, H, W) -> (B,)."""
    nn = torch.nn
    layers, previous = [], 1
    for i, width in enumerate((8, 16, 32, 32)):
        layers += [nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1), nn.LeakyReLU(0.2)]
        previous = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, 1), nn.Flatten(0))


def fool_rate(real: torch.Tensor, fake: torch.Tensor, *, steps: int = 200, batch: int = 16, lr: float = 2e-3,
              seed: int = 0) -> float:
    """How often a method's outputs pass for real, judged like SR3's two-alternative forced choice (2AFC) study
    (Saharia et al. sec. 4.2: raters see the real image and the output side by side and pick the real one;
    fool rate = how often they pick the output; 50 % = indistinguishable), with a classifier instead of people.

    ``real`` and ``fake``: (N, C, H, W) *paired* patches in [0, 1] (fake_i = the method's output for real_i's low-res
    input), N >= 4. A fresh :func:`_critic` is trained on the luminance of the first half (Adam ``lr``, ``steps``
    steps of ``batch`` real + ``batch`` fake patches, binary cross-entropy real = 1), then judges each pair i of the
    second half: it is fooled when it scores fake_i more real than real_i (a tie counts half). -> the fooled
    fraction in [0, 1].
    A proxy with a budget: a stronger or longer-trained critic is fooled less by every method, so compare methods
    only with the same settings (and seed: the critic's weights and batches come from ``seed``)."""
    check_image(real, "real", ndim=4, channels=(1, 3))
    check_image(fake, "fake", ndim=4, channels=(1, 3))
    check_same_shape(real, fake, "real", "fake")
    if real.shape[0] < 4:
        raise ValueError(f"real and fake need at least 4 pairs (half to train the critic, half to judge), got "
                         f"{real.shape[0]}")
    steps, batch = check_positive_int(steps, "steps"), check_positive_int(batch, "batch")
    lr = check_number(lr, "lr", minimum=0, strict_min=True)
    to_y = lambda x: (x if x.shape[1] == 1 else rgb_to_y(x)).detach().float().cpu()   # noqa: E731
    real, fake = to_y(real), to_y(fake)
    half = real.shape[0] // 2
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = _critic()
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    labels = torch.cat([torch.ones(min(batch, half)), torch.zeros(min(batch, half))])
    for _ in range(steps):
        pick = torch.randperm(half, generator=generator)[:batch]
        logits = critic(torch.cat([real[pick], fake[pick]]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        fake_score, real_score = critic(fake[half:]), critic(real[half:])
    return float(((fake_score > real_score).float() + 0.5 * (fake_score == real_score).float()).mean())


def t_interval(values, level: float = 0.95) -> tuple[float, float | None, float | None]:
    """(mean, low, high): the Student-t confidence interval (``level``) of the mean of ``values`` (a 1-D sequence,
    array or tensor): mean -+ t_{(1+level)/2, n-1} s / sqrt(n). low and high are None when n < 2."""
    import math

    from scipy import stats

    values = np.asarray(torch.as_tensor(values, dtype=torch.float64).reshape(-1))
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1)) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half
