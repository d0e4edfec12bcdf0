"""Degradation operators: the forward models y = A(x) + n of image restoration.

Every operator has one interface: ``op(x, generator=None)`` takes a (C, H, W) or (B, C, H, W) float image in
[0, 1] and returns the degraded image with the same rank. Operators are plain differentiable torch code, so
Deep Image Prior can fit ``A(f(z))`` to an observation through them. Randomness (noise, masks) comes only
from an explicit ``torch.Generator``: same generator seed, same picture.

* :class:`GaussianNoise` - y = x + n,  n ~ N(0, (sigma/255)^2), sigma on the 0-255 scale as in the papers.
* :class:`Downsample`    - antialiased bicubic (Keys a = -0.5, MATLAB ``imresize`` / PIL ``BICUBIC``) or Lanczos-3.
* :class:`Upsample`      - the same kernels for enlarging (the "bicubic" baseline of every SR paper).
* :class:`GaussianBlur`  - convolution with a normalised Gaussian, reflect padding.
* :class:`Inpaint`       - y = m * x with a binary mask m (1 = observed); masks from :func:`bernoulli_mask`,
  :func:`text_mask`, :func:`block_mask`.
* :class:`Compose`       - apply several in order, e.g. blur, then downsample, then noise.

Resizing is a linear map, so it is written as one: ``y = R_h x R_w^T`` with small dense matrices built by
:func:`resize_matrix`. That makes the operator exact, batched, differentiable and easy to inspect.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_image, check_number, check_positive_int


class Operator:
    """Base class. Subclasses implement ``forward(x, generator)`` on a (B, C, H, W) tensor."""

    linear = True  # A(a x + b y) = a A(x) + b A(y)? (noise is not)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x, "x")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        single = x.dim() == 3
        y = self.forward(x[None] if single else x, generator)
        return y[0] if single else y

    def forward(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Identity(Operator):
    """A(x) = x: the forward model of denoising (the noise is added separately)."""

    def forward(self, x, generator):
        return x


class GaussianNoise(Operator):
    """y = x + (sigma / 255) * n,  n ~ N(0, I). ``sigma`` on the 0-255 scale (sigma=25 in the DIP paper).

    ``clip=True`` clips y to [0, 1], as the DIP reference code does when it makes noisy images.
    """

    linear = False

    def __init__(self, sigma: float, clip: bool = True):
        self.sigma = check_number(sigma, "sigma", minimum=0)
        self.clip = bool(clip)

    def forward(self, x, generator):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                            device=generator.device if generator is not None else x.device).to(x.device)
        y = x + (self.sigma / 255.0) * noise
        return y.clamp(0, 1) if self.clip else y


# --------------------------------------------------------------------------------------------------------------
# resizing

def cubic_kernel(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel; a = -0.5 is MATLAB's ``imresize`` and PIL's ``BICUBIC``."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1                      # |t| <= 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a                  # 1 < |t| < 2
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def lanczos_kernel(t: torch.Tensor, a: int = 3) -> torch.Tensor:
    """Lanczos window sinc(t) sinc(t / a) for |t| < a (a = 3, PIL's ``LANCZOS``)."""
    return torch.where(t.abs() < a, torch.sinc(t) * torch.sinc(t / a), torch.zeros_like(t))


KERNELS = {"bicubic": (cubic_kernel, 2.0), "lanczos": (lanczos_kernel, 3.0)}


def resize_matrix(in_size: int, out_size: int, kernel: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """The (out_size, in_size) matrix R of 1-D resizing, so that ``y = R x`` (float64).

    Output pixel i sits at input coordinate c_i = (i + 0.5) * in/out - 0.5 (pixel centres aligned, as in MATLAB
    and PIL). Its weights are k((c_i - j) * s) * s, normalised to sum 1, where s = min(out/in, 1) stretches the
    kernel when shrinking (antialiasing). Taps falling outside the image are mirrored (MATLAB's symmetric
    padding), so every row is a proper average.
    """
    in_size, out_size = check_positive_int(in_size, "in_size"), check_positive_int(out_size, "out_size")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    fn, radius = KERNELS[kernel]
    scale = out_size / in_size
    stretch = min(scale, 1.0) if antialias else 1.0
    support = radius / stretch
    centers = (torch.arange(out_size, dtype=torch.float64) + 0.5) / scale - 0.5
    taps = int(math.ceil(2 * support)) + 2
    index = torch.floor(centers - support)[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    weights = fn((centers[:, None] - index) * stretch) * stretch
    weights = weights / weights.sum(dim=1, keepdim=True)
    # symmetric (mirror) boundary: ... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
    period = 2 * in_size
    mirrored = torch.remainder(index.long(), period)
    mirrored = torch.where(mirrored >= in_size, period - 1 - mirrored, mirrored)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix


class _Resize(Operator):
    """Separable resizing y = R_h x R_w^T with cached matrices."""

    def __init__(self, scale: int, kernel: str = "bicubic", antialias: bool = True, clamp: bool = True):
        self.scale = check_positive_int(scale, "scale")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        self.kernel, self.antialias, self.clamp = kernel, bool(antialias), bool(clamp)
        self._cache: dict = {}

    def _output_size(self, h: int, w: int) -> tuple[int, int]:
        raise NotImplementedError

    def _matrices(self, h, w, dtype, device):
        key = (h, w, dtype, device)
        if key not in self._cache:
            oh, ow = self._output_size(h, w)
            self._cache[key] = (resize_matrix(h, oh, self.kernel, self.antialias).to(device=device, dtype=dtype),
                                resize_matrix(w, ow, self.kernel, self.antialias).T.contiguous()
                                .to(device=device, dtype=dtype))
        return self._cache[key]

    def forward(self, x, generator):
        rows, cols_t = self._matrices(*x.shape[-2:], x.dtype, x.device)
        y = rows @ x @ cols_t
        return y.clamp(0, 1) if self.clamp else y


class Downsample(_Resize):
    """Shrink by an integer ``scale`` with an antialiased kernel: 'bicubic' (Keys a = -0.5, = MATLAB
    ``imresize(x, 1/scale)`` away from the border, = PIL ``BICUBIC``) or 'lanczos' (Lanczos-3).

    H and W must be divisible by ``scale`` (use :func:`course_utils.images.modcrop`). ``clamp`` clips the
    kernel's small over/undershoot to [0, 1], as saving the low-res image to 8 bits does; pass ``clamp=False``
    for the exactly linear operator.
    """

    def _output_size(self, h, w):
        if h % self.scale or w % self.scale:
            raise ValueError(f"x of size {h}x{w} is not divisible by scale={self.scale}; "
                             f"crop it first with course_utils.images.modcrop(x, {self.scale})")
        if h < self.scale or w < self.scale:
            raise ValueError(f"x of size {h}x{w} is smaller than scale={self.scale}")
        return h // self.scale, w // self.scale

    def project(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """The image nearest to ``x`` (least squares) whose downsampled version (unclamped) is exactly ``low``:

            x + A^+ (low - A x),   A x = R_h x R_w^T,   A^+ y = R_h^+ y (R_w^+)^T,   R^+ = R^T (R R^T)^-1

        Only the part of ``x`` that the low-res image sees (the range of A^T) changes; the rest, the null space
        that no low-res image can tell apart, is kept (DDNM's range-space correction, Wang et al. 2023).
        ``x`` (..., H, W), ``low`` (..., H/s, W/s), any range (the operator is linear)."""
        h, w = x.shape[-2:]
        oh, ow = self._output_size(h, w)
        if low.shape[-2:] != (oh, ow):
            raise ValueError(f"low must be {oh}x{ow} (x of size {h}x{w} downsampled by {self.scale}), got "
                             f"{tuple(low.shape[-2:])}")
        key = ("pinv", h, w, x.dtype, x.device)
        if key not in self._cache:
            rows = resize_matrix(h, oh, self.kernel, self.antialias)            # (oh, h) float64
            cols = resize_matrix(w, ow, self.kernel, self.antialias)            # (ow, w)
            self._cache[key] = tuple(m.to(device=x.device, dtype=x.dtype) for m in
                                     (rows, cols.T, torch.linalg.pinv(rows), torch.linalg.pinv(cols).T))
        rows, cols_t, rows_pinv, cols_pinv_t = self._cache[key]
        return x + rows_pinv @ (low - rows @ x @ cols_t) @ cols_pinv_t


class Upsample(_Resize):
    """Enlarge by an integer ``scale`` with the same kernels (bicubic upsampling = the SR papers' baseline)."""

    def _output_size(self, h, w):
        return h * self.scale, w * self.scale


def resize(x: torch.Tensor, size, kernel: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """Resize (C, H, W) or (B, C, H, W) to ``size = (h, w)`` with :func:`resize_matrix` (no clamping)."""
    check_image(x, "x", unit_range=False)
    oh, ow = (size, size) if isinstance(size, int) else tuple(size)
    rows = resize_matrix(x.shape[-2], oh, kernel, antialias).to(x)
    cols = resize_matrix(x.shape[-1], ow, kernel, antialias).to(x)
    return rows @ x @ cols.T


# --------------------------------------------------------------------------------------------------------------
# blur

def gaussian_kernel1d(sigma: float, radius: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps exp(-t^2 / 2 sigma^2), t = -radius..radius (radius = ceil(3 sigma))."""
    sigma = check_number(sigma, "sigma", minimum=0, strict_min=True)
    radius = int(math.ceil(3 * sigma)) if radius is None else check_positive_int(radius, "radius", minimum=0)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (t / sigma) ** 2)
    return taps / taps.sum()


class GaussianBlur(Operator):
    """y = g_sigma * x: separable Gaussian convolution (``sigma`` in pixels), reflect padding, same size."""

    def __init__(self, sigma: float):
        self.sigma = check_number(sigma, "sigma", minimum=0, strict_min=True)
        self._taps = gaussian_kernel1d(self.sigma)

    def forward(self, x, generator):
        b, c, h, w = x.shape
        radius = self._taps.numel() // 2
        if radius >= min(h, w):
            raise ValueError(f"x of size {h}x{w} is too small for a blur of sigma={self.sigma} "
                             f"(kernel radius {radius} needs at least {radius + 1} pixels)")
        taps = self._taps.to(x)
        flat = F.pad(x.reshape(b * c, 1, h, w), (radius, radius, radius, radius), mode="reflect")
        flat = F.conv2d(flat, taps.view(1, 1, 1, -1))
        flat = F.conv2d(flat, taps.view(1, 1, -1, 1))
        return flat.reshape(b, c, h, w)


# --------------------------------------------------------------------------------------------------------------
# inpainting

def _mask_size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return check_positive_int(h, "size"), check_positive_int(w, "size")


def bernoulli_mask(size, drop: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """(1, 1, H, W) mask with each pixel missing (0) with probability ``drop``, else observed (1)."""
    h, w = _mask_size(size)
    drop = check_number(drop, "drop", minimum=0, maximum=1)
    return (torch.rand(1, 1, h, w, generator=generator) >= drop).float()


def block_mask(size, n_blocks: int = 8, block_size: int = 16,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(1, 1, H, W) mask with ``n_blocks`` square holes of side ``block_size`` at random positions."""
    h, w = _mask_size(size)
    n_blocks = check_positive_int(n_blocks, "n_blocks", minimum=0)
    block_size = check_positive_int(block_size, "block_size")
    if block_size > min(h, w):
        raise ValueError(f"block_size={block_size} does not fit in a {h}x{w} mask")
    mask = torch.ones(1, 1, h, w)
    tops = torch.randint(0, h - block_size + 1, (n_blocks,), generator=generator)
    lefts = torch.randint(0, w - block_size + 1, (n_blocks,), generator=generator)
    for top, left in zip(tops.tolist(), lefts.tolist()):
        mask[..., top: top + block_size, left: left + block_size] = 0
    return mask


def text_mask(size, text: str = "Deep Image Prior", font_size: int | None = None,
              line_spacing: float = 1.6) -> torch.Tensor:
    """(1, 1, H, W) mask with ``text`` written over the image in lines (0 under the letters), like the DIP
    paper's text-inpainting experiment. Deterministic: drawn with Pillow's built-in font."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = _mask_size(size)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    font_size = max(8, h // 12) if font_size is None else check_positive_int(font_size, "font_size")
    font = ImageFont.load_default(size=font_size)
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    step = int(font_size * line_spacing)
    for row, top in enumerate(range(font_size // 3, h, step)):
        shift = (row * font_size * 2) % max(1, w // 2)
        line = (text + "  ") * (w // max(1, font_size // 2) // max(1, len(text)) + 2)
        draw.text((-shift, top), line, fill=0, font=font)
    return (torch.from_numpy(np.array(canvas)).float() / 255.0 > 0.5).float()[None, None]


class Inpaint(Operator):
    """y = m * x: only the pixels where ``mask`` is 1 are observed.

    ``mask``: (H, W), (1, H, W), (1, 1, H, W) or (B, 1, H, W) of 0/1 values; it must match the image's H and W.
    """

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dim() not in (2, 3, 4):
            raise ValueError(f"mask must have shape (H, W), (1, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
        mask = mask.float()
        while mask.dim() < 4:
            mask = mask[None]
        if mask.shape[1] != 1:
            raise ValueError(f"mask must have one channel, got shape {tuple(mask.shape)}")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must contain only 0 (missing) and 1 (observed)")
        self.mask = mask

    @property
    def observed_fraction(self) -> float:
        return float(self.mask.mean())

    def forward(self, x, generator):
        if tuple(self.mask.shape[-2:]) != tuple(x.shape[-2:]):
            raise ValueError(f"mask of size {tuple(self.mask.shape[-2:])} does not match x of size "
                             f"{tuple(x.shape[-2:])}; build the mask with the image's height and width")
        if self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"mask batch size {self.mask.shape[0]} does not match x batch size {x.shape[0]}")
        return x * self.mask.to(x)


# --------------------------------------------------------------------------------------------------------------
# composition

class Compose(Operator):
    """Apply ``operators`` left to right: ``Compose(GaussianBlur(1), Downsample(2), GaussianNoise(10))``."""

    def __init__(self, *operators: Operator):
        if not operators:
            raise ValueError("Compose needs at least one operator")
        for i, op in enumerate(operators):
            if not isinstance(op, Operator):
                raise TypeError(f"operators[{i}] must be a course_utils.operators.Operator, got {type(op).__name__}")
        self.operators = operators
        self.linear = all(op.linear for op in operators)

    def forward(self, x, generator):
        for op in self.operators:
            x = op.forward(x, generator)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.operators)) + ")"


def compose(*operators: Operator) -> Compose:
    """Shorthand for :class:`Compose`."""
    return Compose(*operators)
