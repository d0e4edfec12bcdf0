"""Spectral bias of the Deep Image Prior (Shi et al., "On Measuring and Controlling the Spectral Bias of the Deep
Image Prior", IJCV 2022): measure which frequencies the network has fitted, control how fast it fits the high ones,
and stop without a reference image.

* :func:`fbc` - frequency-band correspondence: per concentric frequency band, the mean of
  min(1, |F(output)| / |F(reference)|)  (paper Eq. 5). Low bands reach 1 first: the spectral bias.
* :class:`LipschitzConv2d` - a Conv2d whose weight is divided by max(1, sigma_max(W) / lambda) (Eq. 6), which
  bounds each layer's Lipschitz constant and so slows down the fitting of high frequencies.
* :class:`GaussianUpsample` - fixed x2 upsampling: zero insertion followed by a Gaussian low-pass of width sigma
  (Eq. 7), normalised to unit DC gain.
* :class:`MeanOnlyBatchNorm` and :func:`random_fourier_input` - the pieces of the paper's upsampling-only decoder
  :class:`DecoderNet`; :func:`skip_net` - the DIP skip network of notebooks 01-02 with the same controls.
* :func:`blur_sharpness_ratio` and :class:`PlateauStop` - the no-reference stopping criterion (Eq. 8): stop when the
  ratio of a blur measure to a sharpness measure of the output stops changing.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import dip
from ._checks import check_image, check_number, check_positive_int
from .images import rgb_to_gray

# ----------------------------------------------------------------------------------------------------------------
# measuring: frequency-band correspondence

_BAND_CACHE: dict = {}


def _band_index(h: int, w: int, bands: int, device) -> torch.Tensor:
    """(H, W) long tensor: the band (0..bands-1) of each centred FFT coefficient, or ``bands`` for the corners
    outside the largest circle. Normalised radius r = sqrt((fx / (W/2))^2 + (fy / (H/2))^2), so for a square image
    the annuli have radii (W/2) * {1/bands, 2/bands, ..., 1}, as in the paper; a non-square image gets ellipses."""
    key = (h, w, bands, str(device))
    if key not in _BAND_CACHE:
        fy = (torch.arange(h, device=device, dtype=torch.float64) - h // 2) / (h / 2)
        fx = (torch.arange(w, device=device, dtype=torch.float64) - w // 2) / (w / 2)
        radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
        band = torch.ceil(radius * bands - 1e-9).long() - 1
        band = band.clamp(min=0)            # the DC coefficient (radius 0) belongs to the first band
        band[radius > 1 + 1e-9] = bands     # corners: outside every annulus
        _BAND_CACHE[key] = band
    return _BAND_CACHE[key]


def fbc(output: torch.Tensor, reference: torch.Tensor, bands: int = 5) -> torch.Tensor:
    """Frequency-band correspondence of ``output`` with ``reference`` (the *degraded observation* the network is
    fitted to, as in the paper).

    Both images (C, H, W) or (B, C, H, W) in [0, 1] are converted to gray; the ratio of their centred FFT
    magnitudes |F(output)| / |F(reference)| is clipped to [0, 1] and averaged over each of ``bands`` concentric
    annuli. Returns a (bands,) tensor (or (B, bands) for a batch), low frequencies first, each in [0, 1].
    """
    check_image(output, "output", channels=(1, 3))
    check_image(reference, "reference", channels=(1, 3))
    bands = check_positive_int(bands, "bands")
    if output.shape[-2:] != reference.shape[-2:]:
        raise ValueError(f"output and reference must have the same height and width, got "
                         f"{tuple(output.shape[-2:])} and {tuple(reference.shape[-2:])}")
    if min(output.shape[-2:]) < 2 * bands:
        raise ValueError(f"images of size {tuple(output.shape[-2:])} are too small for {bands} bands")
    single = output.dim() == 3
    out, ref = rgb_to_gray(output.detach()), rgb_to_gray(reference.detach())
    if single:
        out, ref = out[None], ref[None]
    out, ref = torch.broadcast_tensors(out, ref)
    spectrum = lambda img: torch.fft.fftshift(torch.fft.fft2(img.double()[:, 0]), dim=(-2, -1)).abs()  # noqa: E731
    ratio = (spectrum(out) / (spectrum(ref) + 1e-8)).clamp(0, 1)              # (B, H, W)
    band = _band_index(*ratio.shape[-2:], bands, ratio.device).flatten()
    sums = torch.zeros(ratio.shape[0], bands + 1, dtype=ratio.dtype, device=ratio.device)
    sums.index_add_(1, band, ratio.flatten(1))
    counts = torch.bincount(band, minlength=bands + 1).to(ratio.dtype)
    result = (sums / counts)[:, :bands].float()
    return result[0] if single else result


# ----------------------------------------------------------------------------------------------------------------
# controlling: Lipschitz-bounded convolutions and Gaussian upsampling

class LipschitzConv2d(nn.Conv2d):
    """Drop-in ``nn.Conv2d`` with a bounded Lipschitz constant (paper Eq. 6):

        W_hat = W / max(1, sigma_max(W) / lambda),

    sigma_max = the largest singular value of W reshaped to (out, in * k * k), computed without gradient at every
    forward pass. Smaller ``lipschitz`` (lambda) = smoother network = slower fitting of high frequencies.
    """

    def __init__(self, *args, lipschitz: float = 2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lipschitz = check_number(lipschitz, "lipschitz", minimum=0, strict_min=True)

    def spectral_norm(self) -> torch.Tensor:
        """sigma_max of the (out, in*k*k) weight matrix, exactly, as sqrt(largest eigenvalue of its small Gram
        matrix): about 10x cheaper than an SVD of the weight itself."""
        with torch.no_grad():
            matrix = self.weight.flatten(1).float()
            gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
            return torch.linalg.eigvalsh(gram)[-1].clamp(min=0).sqrt().to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.clamp(self.spectral_norm() / self.lipschitz, min=1.0)
        return self._conv_forward(x, self.weight / scale, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", lipschitz={self.lipschitz:g}"


def gaussian_upsample_taps(sigma: float, radius: int | None = None, dc_gain: float = 1.0) -> torch.Tensor:
    """1-D taps of the x2 Gaussian upsampler: exp(-d^2 / 2 sigma^2) with d = t / 2 the distance in *input* pixels of
    output offset t = -r..r (the paper's convention: sigma = 0.5 input pixels = 1 output pixel). ``radius`` r
    defaults to max(2, ceil(6 sigma)); the paper's code uses r = 2 (a 5 x 5 kernel).

    Zero insertion keeps 1 pixel in 4, so a 2-D kernel summing to 4 = stride^2 keeps the mean brightness
    (``dc_gain=1``: each 1-D filter sums to 2). The paper's code normalises its kernel to sum 1 instead, a DC gain
    of 1/4 (``dc_gain=0.25``); the mean-only normalisation and the next convolution then work at a quarter of the
    scale.
    """
    sigma = check_number(sigma, "sigma", minimum=0, strict_min=True)
    dc_gain = check_number(dc_gain, "dc_gain", minimum=0, strict_min=True)
    radius = max(2, int(math.ceil(6 * sigma))) if radius is None else check_positive_int(radius, "radius")
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (t / (2 * sigma)) ** 2)
    return (2 * math.sqrt(dc_gain) * taps / taps.sum()).float()


class GaussianUpsample(nn.Module):
    """Fixed (not learned) x2 upsampling (paper Eq. 7): insert zeros between pixels, then blur with a separable
    Gaussian of width ``sigma`` (in input pixels), reflect-padded. (B, C, H, W) -> (B, C, 2H, 2W).

    sigma ~ 0.5 (one output pixel) interpolates smoothly; larger sigma removes more high frequencies, which is the
    point: the network cannot produce them easily. sigma -> 0 (e.g. 0.1) degenerates to plain zero insertion: the
    inserted pixels stay 0 and, with unit DC gain, the kept ones carry four times their value (a checkerboard with
    the same mean). ``radius`` and ``dc_gain``: see :func:`gaussian_upsample_taps` (the paper's code: 2 and 1/4).
    """

    def __init__(self, sigma: float = 0.5, radius: int | None = None, dc_gain: float = 1.0):
        super().__init__()
        self.sigma = check_number(sigma, "sigma", minimum=0, strict_min=True)
        self.dc_gain = dc_gain
        self.register_buffer("taps", gaussian_upsample_taps(self.sigma, radius, dc_gain), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        r = self.taps.numel() // 2
        if r >= 2 * min(h, w):
            raise ValueError(f"input of size {h}x{w} is too small for a Gaussian upsampler with sigma={self.sigma}")
        # zero insertion + blur = one transposed convolution of stride 2 with the 2-D kernel (depthwise), as in the
        # paper's code; the input is reflect-padded by p pixels first (2p output pixels, cropped again after)
        p = (r + 1) // 2
        kernel = torch.outer(self.taps, self.taps).to(x.dtype).expand(c, 1, -1, -1)    # (C, 1, 2r+1, 2r+1)
        padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
        up = F.conv_transpose2d(padded, kernel, stride=2, padding=r, output_padding=1, groups=c)
        return up[..., 2 * p: 2 * p + 2 * h, 2 * p: 2 * p + 2 * w]                   # (B, C, 2H, 2W)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, radius={self.taps.numel() // 2}, dc_gain={self.dc_gain:g}"


class MeanOnlyBatchNorm(nn.Module):
    """Batch normalisation without the variance division: x - mean_{H,W}(x) + beta (the paper's decoder uses it so
    that normalisation does not undo the Lipschitz bound)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(check_positive_int(channels, "channels")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=(2, 3), keepdim=True) + self.bias.view(1, -1, 1, 1)


def random_fourier_input(channels: int, size, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's "fourier" network input: (1, channels, H, W) = [sin(2 pi u), cos(2 pi u)] with u ~ U(0, 1) drawn
    per pixel for channels / 2 planes (random phases on the unit circle), from ``generator``."""
    channels = check_positive_int(channels, "channels", minimum=2)
    if channels % 2:
        raise ValueError(f"channels must be even (a sin and a cos plane per phase), got {channels}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    u = torch.rand(1, channels // 2, h, w, generator=generator)
    return torch.cat([torch.sin(2 * math.pi * u), torch.cos(2 * math.pi * u)], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# controlled networks: the DIP skip net with the controls, and the paper's upsampling-only decoder

NORMS = ("batch", "mean")
UPSAMPLES = ("bilinear", "nearest", "gaussian")


def controlled_layers(lipschitz: float | None = None, norm: str = "batch", upsample: str = "bilinear",
                      upsample_sigma: float = 0.5, upsample_radius: int | None = None,
                      upsample_gain: float = 1.0) -> dict:
    """The layer factories of a controlled network, as keyword arguments for :class:`course_utils.dip.SkipNet`:
    ``lipschitz`` = lambda swaps every convolution for a :class:`LipschitzConv2d` (None = plain ``nn.Conv2d``);
    ``norm='mean'`` uses :class:`MeanOnlyBatchNorm` (ordinary BatchNorm divides the Lipschitz bound away);
    ``upsample='gaussian'`` uses :class:`GaussianUpsample` of width ``upsample_sigma`` (radius and DC gain:
    ``upsample_radius``, ``upsample_gain``)."""
    if upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if lipschitz is not None:
        lipschitz = check_number(lipschitz, "lipschitz", minimum=0, strict_min=True)
    upsample_sigma = check_number(upsample_sigma, "upsample_sigma", minimum=0, strict_min=True)

    def conv_layer(cin, cout, k, stride=1):
        if lipschitz is None:
            return nn.Conv2d(cin, cout, k, stride=stride)
        return LipschitzConv2d(cin, cout, k, stride=stride, lipschitz=lipschitz)

    return {"conv_layer": conv_layer,
            "norm_layer": nn.BatchNorm2d if norm == "batch" else MeanOnlyBatchNorm,
            "upsample": (lambda: GaussianUpsample(upsample_sigma, upsample_radius, upsample_gain))
            if upsample == "gaussian" else upsample}


def skip_net(out_channels: int = 3, *, channels=128, skip=4, depth: int = 5, in_channels: int = 32,
             upsample: str = "bilinear", lipschitz: float | None = None, norm: str = "batch",
             upsample_sigma: float = 0.5) -> dip.SkipNet:
    """:func:`course_utils.dip.skip_net` with the spectral-bias controls of :func:`controlled_layers`
    (defaults: none, i.e. the plain DIP network)."""
    layers = controlled_layers(lipschitz, norm, upsample, upsample_sigma)
    return dip.SkipNet(in_channels, out_channels, channels, skip, depth, layers.pop("upsample"), **layers)


PAPER_LIPSCHITZ, PAPER_LR = 1.4, 1e-3   # the paper's code: lambda on every 3x3 convolution, Adam's learning rate


class DecoderNet(dip.DIPNet):
    """Shi et al.'s upsampling-only decoder, as in the paper's code: a low-resolution random-phase input
    (:func:`random_fourier_input`, 32 channels at 1 / 2^depth of the image size), a block of two 3x3 convolutions,
    then ``depth`` times (x2 upsampling, the same block), then a 1x1 convolution and a sigmoid. A block is
    conv - norm - LeakyReLU(``slope``) twice; convolutions are reflect-padded and Kaiming-uniform initialised.
    No encoder, no skips: every high frequency of the output has to be made by the upsampling path, which the
    controls can throttle.

    z: (B, in_channels, H / 2^depth, W / 2^depth) -> (B, out_channels, H, W) in (0, 1). The defaults are the
    paper's controlled decoder: 128 channels, Gaussian upsampling with widths (0.1, 0.1, 0.1, 0.5, 0.5) input pixels
    (coarse to fine) and the code's 5-tap kernel of DC gain 1/4, lambda = 1.4 on every 3x3 convolution (as in the
    code, not on the final 1x1 layer, which only mixes channels: the output starts flat and that layer amplifies
    the contrast the others build; bounding it too slows every fit), mean-only BatchNorm, LeakyReLU slope 0.01.
    ``upsample='bilinear', lipschitz=None`` is the uncontrolled decoder of its ablation (the code keeps mean-only
    BatchNorm in every variant).
    """

    PAPER_SIGMAS = (0.1, 0.1, 0.1, 0.5, 0.5)

    def __init__(self, in_channels: int = 32, out_channels: int = 3, channels: int = 128, depth: int = 5,
                 upsample: str = "gaussian", *, upsample_sigma=None, upsample_radius: int | None = 2,
                 upsample_gain: float = 0.25, lipschitz: float | None = PAPER_LIPSCHITZ, norm: str = "mean",
                 slope: float = 0.01):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", minimum=2)
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.depth = check_positive_int(depth, "depth")
        channels = check_positive_int(channels, "channels")
        slope = check_number(slope, "slope", minimum=0)
        if upsample_sigma is None:  # the paper's widths, finest scales last: (..., 0.1, 0.1, 0.5, 0.5)
            upsample_sigma = ((0.1,) * depth + self.PAPER_SIGMAS)[-depth:]
        sigmas = [upsample_sigma] * depth if isinstance(upsample_sigma, (int, float)) else list(upsample_sigma)
        if len(sigmas) != depth:
            raise ValueError(f"upsample_sigma must be a number or {depth} numbers (one per scale), got {upsample_sigma!r}")
        layers = [controlled_layers(lipschitz, norm, upsample, sigma, upsample_radius, upsample_gain)
                  for sigma in sigmas]
        conv_layer, norm_layer = layers[0]["conv_layer"], layers[0]["norm_layer"]

        def block(cin):
            return nn.Sequential(dip.conv(cin, channels, 3, layer=conv_layer), norm_layer(channels),
                                 nn.LeakyReLU(slope), dip.conv(channels, channels, 3, layer=conv_layer),
                                 norm_layer(channels), nn.LeakyReLU(slope))

        self.head = block(in_channels)
        self.ups = nn.ModuleList(dip.upsample2x(layer["upsample"]) for layer in layers)
        self.blocks = nn.ModuleList(block(channels) for _ in range(depth))
        self.out = dip.conv(channels, out_channels, 1)  # the paper's code leaves the 1x1 output layer unbounded
        for module in self.modules():                   # the paper's code: Kaiming-uniform, fan_in
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=0, mode="fan_in")

    def check_input(self, z: torch.Tensor) -> None:
        check_image(z, "z", ndim=4, channels=self.in_channels, unit_range=False)
        if min(z.shape[-2:]) < 2:
            raise ValueError(f"z of size {tuple(z.shape[-2:])} is too small: the decoder's input needs at least 2x2 "
                             f"pixels (an output of at least {self.min_size}x{self.min_size})")

    def make_input(self, size, generator: torch.Generator | None = None) -> torch.Tensor:
        """The paper's random-phase input at 1 / 2^depth of the (padded) image size, drawn from ``generator``."""
        h, w = dip.padded_size(size, self.multiple)
        return random_fourier_input(self.in_channels, (h // self.multiple, w // self.multiple), generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z)                                 # (B, channels, H / 2^depth, W / 2^depth)
        for up, block in zip(self.ups, self.blocks):
            h = block(up(h))                             # x2 per scale
        return torch.sigmoid(self.out(h))                # (B, out_channels, H, W) in (0, 1)


# ----------------------------------------------------------------------------------------------------------------
# stopping without a reference: blur / sharpness ratio

def blur_measure(image: torch.Tensor, filter_size: int = 9) -> float:
    """No-reference perceptual blur (Crete-Roffet et al. 2007), in [0, 1], higher = blurrier: how much of the
    image's neighbour differences survive a further box blur of ``filter_size`` pixels, worst of the two axes."""
    gray = rgb_to_gray(check_image(image, "image", ndim=3, channels=(1, 3)).detach())[0].double()
    filter_size = check_positive_int(filter_size, "filter_size", minimum=2)
    if min(gray.shape) < 2 * filter_size:
        raise ValueError(f"image of size {tuple(gray.shape)} is too small for filter_size={filter_size}")
    scores = []
    for dim in (0, 1):
        box = torch.ones(filter_size, dtype=gray.dtype) / filter_size
        kernel = box.view(-1, 1) if dim == 0 else box.view(1, -1)
        blurred = F.conv2d(gray[None, None], kernel[None, None], padding="same")[0, 0]
        d_image = gray.diff(dim=dim).abs()[filter_size:-filter_size, filter_size:-filter_size]
        d_blurred = blurred.diff(dim=dim).abs()[filter_size:-filter_size, filter_size:-filter_size]
        lost = (d_image - d_blurred).clamp(min=0).sum()
        total = d_image.sum().clamp(min=1e-12)
        scores.append(float((total - lost) / total))
    return max(scores)


def sharpness_measure(image: torch.Tensor, top: int = 1000, decay: float = 0.01) -> float:
    """No-reference sharpness from the maximum local variation (Bahrami & Kot 2014): each pixel's largest
    increase towards one of its 8 neighbours; the ``top`` largest, weighted by exp(-decay * rank), give
    sqrt(mean(weighted^2)). Higher = sharper (noise is also "sharp")."""
    gray = rgb_to_gray(check_image(image, "image", ndim=3, channels=(1, 3)).detach())[0].double()
    centre = gray[1:-1, 1:-1]
    h, w = centre.shape
    neighbours = torch.stack([gray[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    variation = (neighbours - centre).amax(dim=0).flatten()
    values = torch.topk(variation, min(top, variation.numel())).values
    weights = torch.exp(-decay * torch.arange(1, values.numel() + 1, dtype=values.dtype))
    return float(torch.sqrt(((values * weights) ** 2).mean()))


def blur_sharpness_ratio(image: torch.Tensor) -> float:
    """The paper's stopping signal: blur_measure / sharpness_measure of the network output (C, H, W)."""
    return blur_measure(image) / max(sharpness_measure(image), 1e-12)


class PlateauStop:
    """Fires when a signal stops changing (paper Eq. 8): at iteration i, compare the mean of the values recorded in
    (i - 2n, i - n] with those in (i - n, i]; stop when they differ by less than ``tolerance``.

    ``stop = PlateauStop(window=100, tolerance=0.01)``; call ``stop.update(iteration, value)`` after each
    measurement (any spacing); it returns True once (and ``stop.iteration`` remembers when).
    """

    def __init__(self, window: int = 100, tolerance: float = 0.01):
        self.window = check_positive_int(window, "window")
        self.tolerance = check_number(tolerance, "tolerance", minimum=0, strict_min=True)
        self.iterations: list[int] = []
        self.values: list[float] = []
        self.iteration: int | None = None

    def update(self, iteration: int, value: float) -> bool:
        self.iterations.append(int(iteration))
        self.values.append(float(value))
        if self.iteration is not None or iteration < 2 * self.window:
            return False
        its = torch.tensor(self.iterations)
        vals = torch.tensor(self.values, dtype=torch.float64)
        recent = vals[its > iteration - self.window]
        before = vals[(its > iteration - 2 * self.window) & (its <= iteration - self.window)]
        if len(recent) and len(before) and abs(float(recent.mean() - before.mean())) < self.tolerance:
            self.iteration = int(iteration)
            return True
        return False


def stopping_iteration(iterations, values, window: int = 100, tolerance: float = 0.01) -> int | None:
    """Replay :class:`PlateauStop` over a recorded history; returns the iteration where it fires, or None."""
    if len(iterations) != len(values):
        raise ValueError(f"iterations and values must have the same length, got {len(iterations)} and {len(values)}")
    stop = PlateauStop(window, tolerance)
    for it, value in zip(iterations, values):
        if stop.update(it, value):
            return stop.iteration
    return None


# ----------------------------------------------------------------------------------------------------------------
# the notebook's experiments (thin wrappers around dip.fit)

def variants(lipschitz: float = PAPER_LIPSCHITZ, sigma=None) -> dict:
    """The four networks of the paper's ablation as :class:`DecoderNet` options: plain, Lipschitz only, Gaussian
    upsampling only, and both. As in the paper's code every variant keeps mean-only BatchNorm, so only the control
    differs. ``sigma``: the upsampler widths (None = the paper's per-scale widths)."""
    lipschitz = check_number(lipschitz, "lipschitz", minimum=0, strict_min=True)
    return {
        "plain DIP": dict(upsample="bilinear", lipschitz=None),
        "Lipschitz only": dict(upsample="bilinear", lipschitz=lipschitz),
        "Gaussian upsampling only": dict(upsample="gaussian", upsample_sigma=sigma, lipschitz=None),
        "both (Shi et al.)": dict(upsample="gaussian", upsample_sigma=sigma, lipschitz=lipschitz),
    }


def fit_with_spectra(y: torch.Tensor, *, clean: torch.Tensor | None = None, operator=None, network: str = "decoder",
                     options: dict | None = None, channels: int = 32, depth: int = 5, iters: int = 1000,
                     lr: float = 0.01, every: int = 25, seed: int = 0, reg_noise_std: float = 0.0,
                     progress: bool = False):
    """Fit a DIP network to the observation ``y`` (C, H, W) while recording, every ``every`` steps, the FBC of the
    output against ``y`` (``history["fbc"]``, one (5,) tensor per check) and the blur/sharpness ratio
    (``history["ratio"]``). ``network``: 'decoder' (:class:`DecoderNet`) or 'skip' (:func:`skip_net`),
    built with ``options`` (e.g. one of :func:`variants`). Returns the :class:`dip.FitResult`."""
    if network not in ("decoder", "skip"):
        raise ValueError(f"network must be 'decoder' or 'skip', got {network!r}")
    check_image(y, "y", ndim=3)
    torch.manual_seed(seed)
    options = dict(options or {})
    if network == "decoder":
        net = DecoderNet(out_channels=y.shape[0], channels=channels, depth=depth, **options)
    else:
        net = skip_net(y.shape[0], channels=channels, depth=depth, **options)
    # the FBC reference is the observation y itself, so the output is compared through the forward model A
    monitors = {"fbc": lambda out: fbc(out if operator is None else operator(out), y),
                "ratio": blur_sharpness_ratio}
    return dip.fit(net, y, operator, iters=iters, lr=lr, clean=clean, every=every, seed=seed,
                   reg_noise_std=reg_noise_std, progress=progress, monitors=monitors)


def band_reach_iterations(history: dict, threshold: float = 0.5) -> list:
    """For each FBC band, the first recorded iteration at which it reaches ``threshold`` (``inf`` if never)."""
    threshold = check_number(threshold, "threshold", minimum=0, maximum=1)
    if not history.get("fbc"):
        raise ValueError("history has no 'fbc' entries; fit with spectral.fit_with_spectra")
    curves = torch.stack(history["fbc"])  # (checks, bands)
    reach = []
    for band in range(curves.shape[1]):
        hits = (curves[:, band] >= threshold).nonzero()
        reach.append(history["iter"][int(hits[0])] if len(hits) else math.inf)
    return reach


def plateau_slope(history: dict, key: str = "psnr", last: float = 1 / 3) -> float:
    """Least-squares slope of ``history[key]`` against ``history["iter"]`` over the ``last`` fraction of the run,
    in units per 1000 iterations (e.g. dB / 1000 it): about 0 on a plateau, clearly negative while a fit decays."""
    values, iters = history.get(key), history.get("iter")
    if not values or len(values) != len(iters):
        raise ValueError(f"history has no {key!r} entries recorded at history['iter'] (fit with clean= to track PSNR)")
    last = check_number(last, "last", minimum=0, maximum=1, strict_min=True)
    start = max(0, min(len(values) - 2, int(round(len(values) * (1 - last)))))
    x = torch.tensor(iters[start:], dtype=torch.float64)
    y = torch.tensor(values[start:], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum().clamp(min=1e-12) * 1000)


def decay(history: dict, key: str = "psnr") -> tuple[float, int, float]:
    """(peak value, its iteration, peak - final) of ``history[key]``: how much a fit lost by running too long."""
    values = history.get(key)
    if not values:
        raise ValueError(f"history has no {key!r} entries (fit with clean= to track PSNR)")
    best = max(range(len(values)), key=values.__getitem__)
    return values[best], history["iter"][best], values[best] - values[-1]
