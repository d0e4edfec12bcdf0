"""The generator PULSE searches: StyleGAN2 (Karras et al. 2020) in plain PyTorch, and GAN training for CPU-sized ones.

One architecture serves two uses in notebook 07:

* :class:`StyleGenerator` - a small StyleGAN2 (32 px, 64-d latents, ~0.4 M parameters) that the course trains on
  its procedural faces (:mod:`course_utils.faces`) with :func:`train_gan_steps` (``python -m course_utils.train
  pulse-balanced`` / ``pulse-skewed``). Its state dict carries the Gaussian fit PULSE needs (:func:`fit_gaussian`).
* :class:`StyleGAN2Generator` at 1024 px with the parameter names and shapes of the widely used rosinality
  ``stylegan2-pytorch`` checkpoints (``g_ema``), so a public FFHQ conversion loads unchanged
  (:func:`load_stylegan2_state`, :func:`course_utils.pulse.load_stylegan2_ffhq`).

The generator (Karras et al. 2020, fig. 2d; the rosinality layout):

    w      = mapping(z) = MLP_{n_mlp}(PixelNorm(z))                        z, w in R^d (d = style_dim)
    W+     = (w_0, ..., w_{L-1}),  L = 2 log2(size) - 2                      one w per style input
    x_4    = learned constant (C, 4, 4);  conv1 (w_0), to_rgb1 (w_1)
    per resolution r = 8, 16, ..., size:
        x  = act(modconv3x3_up(x, w_i) + s_n noise) ; x = act(modconv3x3(x, w_{i+1}) + s_n noise)
        rgb = upsample(rgb) + torgb1x1(x, w_{i+2})                          skip architecture
    modconv: weights w'_oik = s_i w_oik (s = A(w), an affine map of the style), then demodulated
             w''_oik = w'_oik / sqrt(sum_ik w'_oik^2 + 1e-8);   act = sqrt(2) LeakyReLU_0.2(x + b)

Upsampling is StyleGAN2's transposed convolution followed by the [1, 3, 3, 1] FIR filter (:func:`upfirdn2d`,
written with ``conv2d``; no custom CUDA ops). Weights use the equalised learning rate (stored N(0, 1), scaled by
1/sqrt(fan_in) at run time). The output is an image in about [-1, 1]; :meth:`StyleGAN2Generator.to_unit` maps it
to [0, 1] for the public boundary.
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_number, check_positive_int

# ----------------------------------------------------------------------------------------------------------------
# building blocks (parameter names as in rosinality/stylegan2-pytorch, so its checkpoints load)


def make_kernel(taps) -> torch.Tensor:
    """The normalised 2-D FIR kernel k k^T / sum from 1-D taps (e.g. [1, 3, 3, 1])."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None] if k.dim() == 1 else k
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """StyleGAN2's resampling primitive: upsample by zero insertion (``up``), pad by ``pad = (before, after)`` on
    both axes, filter with ``kernel`` (true convolution, i.e. flipped), keep every ``down``-th sample.
    (B, C, H, W) -> (B, C, (H up + p0 + p1 - kh) // down + 1, ...)."""
    b, c, h, w = x.shape
    if up > 1:                                                              # zeros after every sample
        x = F.pad(x.reshape(b, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1)).reshape(b, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    kh, kw = kernel.shape
    weight = kernel.flip(0, 1).to(x).expand(c, 1, kh, kw)                   # one filter per channel
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Upsample(nn.Module):
    """x2 upsampling of the RGB skip: zero insertion + the FIR kernel (x 4 to keep the mean). (B, C, H, W) -> 2H."""

    def __init__(self, kernel=(1, 3, 3, 1), factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """The FIR low-pass filter after a transposed convolution (``pad`` chosen by the caller)."""

    def __init__(self, kernel, pad, upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2,
                     scale: float = math.sqrt(2)) -> torch.Tensor:
    """StyleGAN2's bias + activation: sqrt(2) LeakyReLU_0.2(x + b), b broadcast over channel dim 1."""
    return F.leaky_relu(x + bias.view(1, -1, *[1] * (x.dim() - 2)), negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    """z / sqrt(mean(z^2) + 1e-8) over the feature dimension."""

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Dense layer with the equalised learning rate: y = (lr_mul / sqrt(in)) W x + lr_mul b, W stored as
    N(0, 1) / lr_mul. ``activation='fused_lrelu'`` applies :func:`fused_leaky_relu` with the bias."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_dim), lr_mul, activation

    def forward(self, x):
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul if self.bias is not None else None)


class EqualConv2d(nn.Module):
    """Convolution with the equalised learning rate (weights N(0, 1) scaled by 1/sqrt(fan_in) when used)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.padding = 1 / math.sqrt(in_channels * kernel_size ** 2), padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (Karras et al. 2020, eq. 1-3), optionally x2 upsampling.

    (B, C_in, H, W), style (B, d) -> (B, C_out, H', W'). Computed as "modulate the input, convolve with the shared
    weights, demodulate the output" - equal to convolving with the per-sample weights w''_oik (the demodulation is
    one factor per sample and output channel), and much faster on a CPU than grouped convolutions."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:                                       # transposed conv (2H + 1) -> blur -> 2H
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1)   # the affine map A: w -> s

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)                                           # (B, C_in)
        weight = self.scale * self.weight[0]                                 # (C_out, C_in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))   # (B, C_out, 2H, 2W)
        else:
            out = F.conv2d(x, weight, padding=self.kernel_size // 2)         # (B, C_out, H, W)
        if self.demodulate:                                                  # 1 / ||w''_o|| per sample and output
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).sum((2, 3)).T + 1e-8)   # (B, C_out)
            out = out * d[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """x + s_n * noise, with one learned strength s_n per layer (zero at initialisation)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned constant (1, C, 4, 4) the synthesis starts from."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int):
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv -> noise -> bias + sqrt(2) LeakyReLU (one "layer" with its own w and noise map)."""

    def __init__(self, in_channels, out_channels, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, plus the upsampled RGB of the previous resolution (skip)."""

    def __init__(self, in_channels, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


# ----------------------------------------------------------------------------------------------------------------
# the generator


def channel_widths(size: int, channel_multiplier: int = 2, channel_base: int = 16384, channel_max: int = 512) -> dict:
    """Feature channels per resolution: min(channel_max, channel_base * channel_multiplier / r). The defaults are
    StyleGAN2 config-f (512 up to 64 px, then 256, 128, 64, 32 at 1024 with multiplier 2)."""
    return {2 ** i: max(1, min(channel_max, channel_base * channel_multiplier // 2 ** i))
            for i in range(2, int(math.log2(size)) + 1)}


class StyleGAN2Generator(nn.Module):
    """StyleGAN2's generator (see the module docstring) with rosinality's parameter names.

    ``size`` (a power of two >= 8), ``style_dim`` d, ``n_mlp`` mapping layers, channels from
    :func:`channel_widths`. ``n_latent`` = L = 2 log2(size) - 2 style inputs (W+), ``num_layers`` =
    2 log2(size) - 3 noise maps (the first at 4 x 4, then two per resolution).

    Buffers ``gaussian_mean``/``gaussian_std`` (d,) hold PULSE's Gaussian fit of LeakyReLU_5(mapping(z))
    (:func:`fit_gaussian`); here they are not part of the state dict (a rosinality checkpoint has no such keys),
    in :class:`StyleGenerator` they are.
    """

    ships_gaussian_fit = False

    def __init__(self, size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 channel_base: int = 16384, channel_max: int = 512, lr_mlp: float = 0.01, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        size = check_positive_int(size, "size", minimum=8)
        if size & (size - 1):
            raise ValueError(f"size must be a power of two >= 8, got {size}")
        self.size, self.style_dim = size, check_positive_int(style_dim, "style_dim")
        n_mlp = check_positive_int(n_mlp, "n_mlp")
        self.config = dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
                           channel_base=channel_base, channel_max=channel_max, lr_mlp=lr_mlp)
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        self.channels = channel_widths(size, channel_multiplier, channel_base, channel_max)
        self.log_size = int(math.log2(size))
        self.num_layers = 2 * self.log_size - 3               # noise maps
        self.n_latent = 2 * self.log_size - 2                 # style inputs (W+)
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for layer in range(self.num_layers):                  # fixed noise maps: 4, 8, 8, 16, 16, ...
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_channels = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channels = self.channels[2 ** i]
            self.convs.append(StyledConv(in_channels, out_channels, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channels, out_channels, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channels, style_dim))
            in_channels = out_channels
        persistent = self.ships_gaussian_fit
        self.register_buffer("gaussian_mean", torch.zeros(style_dim), persistent=persistent)
        self.register_buffer("gaussian_std", torch.zeros(style_dim), persistent=persistent)

    # -- shapes -----------------------------------------------------------------------------------------------

    def noise_shapes(self) -> list:
        """[(1, 1, r, r) for each of the ``num_layers`` noise maps] (r = 4, 8, 8, 16, 16, ...)."""
        return [tuple(getattr(self.noises, f"noise_{i}").shape) for i in range(self.num_layers)]

    def fixed_noise(self) -> list:
        """The stored noise maps (rosinality's ``noises.noise_i``): deterministic synthesis."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def random_noise(self, batch: int, generator: torch.Generator | None = None) -> list:
        """Fresh N(0, 1) noise maps (batch, 1, r, r) drawn from ``generator`` (on CPU, then moved)."""
        dev = self.input.input.device
        return [torch.randn((batch, *shape[1:]), generator=generator).to(dev) for shape in self.noise_shapes()]

    @property
    def has_gaussian_fit(self) -> bool:
        return bool(self.gaussian_std.abs().sum() > 0)

    # -- the two networks ---------------------------------------------------------------------------------------

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """w = MLP(PixelNorm(z)): (..., d) -> (..., d). Its last layer ends with sqrt(2) LeakyReLU_0.2."""
        if z.shape[-1] != self.style_dim:
            raise ValueError(f"z must have {self.style_dim} features in its last dimension, got shape "
                             f"{tuple(z.shape)}")
        return self.style(z.reshape(-1, self.style_dim)).reshape(z.shape)

    def synthesis(self, w: torch.Tensor, noise=None) -> torch.Tensor:
        """The synthesis network. ``w``: (B, L, d) W+ (one w per style input) or (B, d) (the same w everywhere);
        ``noise``: a list of ``num_layers`` maps broadcastable to (B, 1, r, r), or None for the fixed ones.
        -> (B, 3, size, size), roughly in [-1, 1] (not clamped)."""
        if w.dim() == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        if w.dim() != 3 or w.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(f"w must have shape (B, {self.n_latent}, {self.style_dim}) (W+: one {self.style_dim}-d "
                             f"w per style input) or (B, {self.style_dim}), got {tuple(w.shape)}")
        noise = self.fixed_noise() if noise is None else list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise must be a list of {self.num_layers} maps, got {len(noise)}")
        for i, (n, shape) in enumerate(zip(noise, self.noise_shapes())):
            if n.dim() != 4 or n.shape[1:] != shape[1:] or n.shape[0] not in (1, w.shape[0]):
                raise ValueError(f"noise[{i}] must have shape (B or 1, 1, {shape[2]}, {shape[3]}), got "
                                 f"{tuple(n.shape)}")
        x = self.conv1(self.input(w.shape[0]), w[:, 0], noise[0])           # (B, C_4, 4, 4)
        skip = self.to_rgb1(x, w[:, 1])                                      # (B, 3, 4, 4)
        i = 1
        for conv_up, conv, noise_up, noise_same, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                             noise[2::2], self.to_rgbs):
            x = conv_up(x, w[:, i], noise_up)                                # (B, C_r, r, r): twice the size
            x = conv(x, w[:, i + 1], noise_same)
            skip = to_rgb(x, w[:, i + 2], skip)                              # (B, 3, r, r)
            i += 2
        return skip

    def forward(self, z: torch.Tensor, noise=None) -> torch.Tensor:
        """G(z) = synthesis(mapping(z)) with the same w for every layer: (B, d) -> (B, 3, size, size) in ~[-1, 1]."""
        return self.synthesis(self.mapping(z), noise)

    @staticmethod
    def to_unit(x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] generator output -> [0, 1] image (clamped): the public boundary."""
        return ((x + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: int = 256) -> torch.Tensor:
        """``n`` random images (n, 3, size, size) in [0, 1]: z ~ N(0, I) and noise maps from ``generator``."""
        n, out = check_positive_int(n, "n"), []
        dev = self.input.input.device
        for start in range(0, n, batch):
            b = min(batch, n - start)
            z = torch.randn(b, self.style_dim, generator=generator).to(dev)
            out.append(self.to_unit(self(z, self.random_noise(b, generator))).cpu())
        return torch.cat(out)


class StyleGenerator(StyleGAN2Generator):
    """The course's small StyleGAN2 for its procedural faces (defaults: 32 px, d = 64, 4 mapping layers, 128 -> 32
    channels: ~0.4 M parameters). Same architecture as :class:`StyleGAN2Generator`; its state dict also holds
    PULSE's Gaussian fit (``gaussian_mean``, ``gaussian_std``), computed when it is trained."""

    ships_gaussian_fit = True

    def __init__(self, size: int = 32, style_dim: int = 64, n_mlp: int = 4, channel_multiplier: int = 1,
                 channel_base: int = 1024, channel_max: int = 128, lr_mlp: float = 0.01):
        super().__init__(size, style_dim, n_mlp, channel_multiplier, channel_base, channel_max, lr_mlp)


@torch.no_grad()
def fit_gaussian(G: StyleGAN2Generator, n: int = 100_000, generator: torch.Generator | None = None,
                 batch: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """PULSE's Gaussian fit of the mapping network's output: mean and std (per feature) of
    v = LeakyReLU_5(mapping(z)), z ~ N(0, I) (``n`` samples; the authors used 10^6). LeakyReLU_5 inverts the last
    LeakyReLU_0.2 (the sqrt(2) gain commutes), so v is the pre-activation, which is close to Gaussian. Stores them
    in ``G.gaussian_mean`` / ``G.gaussian_std`` (d,) and returns them."""
    n, batch = check_positive_int(n, "n", minimum=2), check_positive_int(batch, "batch")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    dev = G.input.input.device
    total = torch.zeros(G.style_dim, dtype=torch.float64, device=dev)
    squares = torch.zeros_like(total)
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), G.style_dim, generator=generator).to(dev)
        v = F.leaky_relu(G.mapping(z), 5.0).double()                       # (b, d): the last LeakyReLU undone
        total += v.sum(0)
        squares += v.pow(2).sum(0)
    mean = total / n
    std = ((squares - n * mean ** 2) / (n - 1)).clamp_min(0).sqrt()
    G.gaussian_mean.copy_(mean.float())
    G.gaussian_std.copy_(std.float())
    return G.gaussian_mean.clone(), G.gaussian_std.clone()


# ----------------------------------------------------------------------------------------------------------------
# rosinality's checkpoint layout


def rosinality_keys(size: int = 1024, n_mlp: int = 8) -> list:
    """Every key of a rosinality ``stylegan2-pytorch`` generator state dict (``g_ema``) for ``size`` and ``n_mlp``:
    ``style.1.weight`` ... ``style.{n_mlp}.bias``, ``input.input``, ``conv1.*``, ``to_rgb1.*``, ``convs.N.*``
    (N even: the upsampling convs with their ``blur.kernel``), ``to_rgbs.N.*`` (with ``upsample.kernel``),
    ``noises.noise_N``."""
    size = check_positive_int(size, "size", minimum=8)
    n_mlp = check_positive_int(n_mlp, "n_mlp")
    log_size = int(math.log2(size))
    styled = lambda p, up: ([f"{p}.conv.weight"] + ([f"{p}.conv.blur.kernel"] if up else [])   # noqa: E731
                            + [f"{p}.conv.modulation.weight", f"{p}.conv.modulation.bias", f"{p}.noise.weight",
                               f"{p}.activate.bias"])
    to_rgb = lambda p, up: ([f"{p}.bias"] + ([f"{p}.upsample.kernel"] if up else [])          # noqa: E731
                            + [f"{p}.conv.weight", f"{p}.conv.modulation.weight", f"{p}.conv.modulation.bias"])
    keys = [f"style.{i}.{k}" for i in range(1, n_mlp + 1) for k in ("weight", "bias")]
    keys += ["input.input"] + styled("conv1", False) + to_rgb("to_rgb1", False)
    for n in range(2 * (log_size - 2)):
        keys += styled(f"convs.{n}", n % 2 == 0)
    for n in range(log_size - 2):
        keys += to_rgb(f"to_rgbs.{n}", True)
    keys += [f"noises.noise_{n}" for n in range(2 * log_size - 3)]
    return keys


def load_stylegan2_state(G: StyleGAN2Generator, state, source: str = "state_dict") -> StyleGAN2Generator:
    """Load a rosinality-format generator state dict (a checkpoint's ``g_ema``) into ``G``. Missing keys, keys that
    are not the generator's and tensors of the wrong shape are refused with their names
    (:func:`course_utils.pretrained.check_state_dict`). The Gaussian fit is not in such checkpoints: run
    :func:`fit_gaussian` afterwards."""
    from .pretrained import check_state_dict

    wanted = {k: v for k, v in G.state_dict().items() if k not in ("gaussian_mean", "gaussian_std")}
    G.load_state_dict(check_state_dict(wanted, state, source, what="rosinality StyleGAN2 generator state dict"),
                      strict=False)
    return G


# ----------------------------------------------------------------------------------------------------------------
# the discriminator and GAN training (non-saturating logistic loss, lazy R1)


def half(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling (B, C, H, W) -> (B, C, H/2, W/2): pairs of rows summed, then pairs of columns (about
    twice as fast as ``avg_pool2d`` forward + backward on a CPU)."""
    b, c, h, w = x.shape
    rows = x.reshape(b, c, h // 2, 2, w).sum(dim=3)                         # (B, C, H/2, W)
    return rows.reshape(b, c, h // 2, w // 2, 2).sum(dim=4) * 0.25


class ConvLayer(nn.Sequential):
    """EqualConv2d (k x k, 'same' padding) -> bias + sqrt(2) LeakyReLU, optionally followed by 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False):
        super().__init__(EqualConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         FusedLeakyReLU(out_channels))
        self.downsample = downsample

    def forward(self, x):
        x = super().forward(x)
        return half(x) if self.downsample else x


class ResBlock(nn.Module):
    """StyleGAN2's residual discriminator block: (conv3x3, conv3x3 + /2) plus a 1x1 skip + /2, summed / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(half(x))) / math.sqrt(2)


class Discriminator(nn.Module):
    """A small StyleGAN2-style residual discriminator (average pooling instead of FIR downsampling):
    fromRGB 1x1 -> ResBlocks down to 4x4 -> minibatch standard deviation (groups of up to 4) -> conv3x3 ->
    dense -> dense 1. (B, 3, size, size) in [-1, 1] -> (B,) logits."""

    def __init__(self, size: int = 32, channel_multiplier: int = 1, channel_base: int = 1024, channel_max: int = 128):
        super().__init__()
        self.size = check_positive_int(size, "size", minimum=8)
        ch = channel_widths(size, channel_multiplier, channel_base, channel_max)
        self.from_rgb = ConvLayer(3, ch[size], 1)
        self.blocks = nn.Sequential(*[ResBlock(ch[2 ** i], ch[2 ** (i - 1)])
                                      for i in range(int(math.log2(size)), 2, -1)])
        self.final_conv = ConvLayer(ch[4] + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activation="fused_lrelu"),
                                          EqualLinear(ch[4], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"x must have shape (B, 3, {self.size}, {self.size}), got {tuple(x.shape)}")
        out = self.blocks(self.from_rgb(x))                                  # (B, C_4, 4, 4)
        b = out.shape[0]
        group = min(b, 4)
        while b % group:
            group -= 1
        std = out.reshape(group, -1, *out.shape[1:]).std(dim=0, unbiased=False)   # (B / group, C, 4, 4)
        std = (std + 1e-8 if group > 1 else std).mean(dim=(1, 2, 3))        # one number per group
        std = std.repeat(group)[:, None, None, None].expand(-1, 1, 4, 4)
        out = self.final_conv(torch.cat([out, std], dim=1))
        return self.final_linear(out.flatten(1))[:, 0]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's non-saturating logistic loss: E softplus(-D(x)) + E softplus(D(G(z))) = -log sigmoid(D(x)) - log(1 -
    sigmoid(D(G(z))))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss E softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real images (differentiable, for the D update)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3)).mean()


def mixed_styles(G: StyleGAN2Generator, batch: int, mixing: float, generator: torch.Generator) -> torch.Tensor:
    """W+ for training with style mixing (StyleGAN's regulariser): w = mapping(z1) for all L inputs, or with
    probability ``mixing`` mapping(z1) before a random crossover index and mapping(z2) after. -> (B, L, d)."""
    dev = G.input.input.device
    z = torch.randn(2, batch, G.style_dim, generator=generator).to(dev)
    w = G.mapping(z)                                                        # (2, B, d)
    cut = G.n_latent
    if float(torch.rand((), generator=generator)) < mixing:
        cut = int(torch.randint(1, G.n_latent, (), generator=generator))
    index = (torch.arange(G.n_latent, device=dev) >= cut).long()            # 0 = first style, 1 = second
    return w[index].transpose(0, 1)                                         # (B, L, d)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta ema + (1 - beta) model (parameters); buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - beta)
    for (name, e), (_, b) in zip(ema.named_buffers(), model.named_buffers()):
        if name not in ("gaussian_mean", "gaussian_std"):
            e.copy_(b)


GAN_KEYS = ("loss", "d_loss", "r1", "d_real", "d_fake")


def gan_step(G, D, G_ema, optimizer_g, optimizer_d, real: torch.Tensor, *, step: int, generator: torch.Generator,
             r1_gamma: float = 0.05, r1_every: int = 16, mixing: float = 0.9, ema_beta: float = 0.999) -> dict:
    """One StyleGAN2 training step on ``real`` (B, 3, H, W) in [-1, 1]:

        D:  minimise softplus(D(G(w))) + softplus(-D(x))            (fakes detached)
            every ``r1_every`` steps also r1_gamma/2 * E||grad_x D(x)||^2 * r1_every   (lazy R1)
        G:  minimise softplus(-D(G(w)))                               (non-saturating)
        G_ema <- EMA of G with ``ema_beta``

    w from :func:`mixed_styles`, noise maps fresh from ``generator``. Returns detached scalars
    ``{"loss" (G), "d_loss", "r1" (0 between lazy steps), "d_real", "d_fake"}`` (d_* = mean sigmoid(D))."""
    batch = real.shape[0]
    # discriminator
    G.requires_grad_(False)
    D.requires_grad_(True)
    with torch.no_grad():
        fake = G.synthesis(mixed_styles(G, batch, mixing, generator), G.random_noise(batch, generator))
    real_logits, fake_logits = D(real), D(fake)
    d_loss = d_logistic_loss(real_logits, fake_logits)
    optimizer_d.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizer_d.step()
    r1 = torch.zeros((), device=real.device)
    if r1_every and r1_gamma > 0 and step % r1_every == 0:
        r1 = r1_penalty(D, real)
        optimizer_d.zero_grad(set_to_none=True)
        (r1_gamma / 2 * r1 * r1_every).backward()
        optimizer_d.step()
    # generator
    G.requires_grad_(True)
    D.requires_grad_(False)
    fake = G.synthesis(mixed_styles(G, batch, mixing, generator), G.random_noise(batch, generator))
    g_loss = g_nonsaturating_loss(D(fake))
    optimizer_g.zero_grad(set_to_none=True)
    g_loss.backward()
    optimizer_g.step()
    D.requires_grad_(True)
    ema_update(G_ema, G, ema_beta)
    values = {"loss": g_loss, "d_loss": d_loss, "r1": r1, "d_real": torch.sigmoid(real_logits).mean(),
              "d_fake": torch.sigmoid(fake_logits).mean()}
    return {k: v.detach().float() for k, v in values.items()}


def ema_beta(step: int, batch: int, ema_images: float = 10_000, rampup: float = 0.05) -> float:
    """StyleGAN2-ADA's EMA decay: half-life of min(ema_images, rampup * images seen) images, per step of ``batch``."""
    half_life = min(ema_images, max(rampup * step * batch, 1e-8))
    return 0.5 ** (batch / half_life)


def train_gan_steps(G, D, G_ema, optimizer_g, optimizer_d, data, steps: int, *, batch: int,
                    generator: torch.Generator, r1_gamma: float = 0.05, r1_every: int = 16, mixing: float = 0.9,
                    ema_images: float = 10_000, history: dict | None = None, start: int = 0, log_every: int = 10,
                    progress: bool = True, callback=None) -> dict:
    """Run ``steps`` :func:`gan_step` s; ``data(batch, generator)`` returns real images (B, 3, H, W) in [0, 1].
    Returns the history ``{"step", "loss", "d_loss", "r1", "d_real", "d_fake", "seconds"}`` (means over each
    ``log_every`` steps; r1 averaged over the lazy steps that computed it, NaN in a window without one), extending
    ``history`` when resuming."""
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps", minimum=0)
    batch = check_positive_int(batch, "batch")
    r1_gamma = check_number(r1_gamma, "r1_gamma", minimum=0)
    mixing = check_number(mixing, "mixing", minimum=0, maximum=1)
    history = history if history is not None else {"step": [], **{k: [] for k in GAN_KEYS}, "seconds": []}
    dev = next(G.parameters()).device
    G.train(), D.train()
    running, count, r1_count, t0 = dict.fromkeys(GAN_KEYS, 0.0), 0, 0, time.perf_counter()
    elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
    bar = tqdm(range(start, start + steps), desc="train StyleGAN2", leave=False, mininterval=1, disable=not progress)
    for step in bar:
        real = data(batch, generator).to(dev) * 2 - 1                        # [0, 1] -> [-1, 1]
        values = gan_step(G, D, G_ema, optimizer_g, optimizer_d, real, step=step, generator=generator,
                          r1_gamma=r1_gamma, r1_every=r1_every, mixing=mixing,
                          ema_beta=ema_beta(step, batch, ema_images))
        for k, v in values.items():
            running[k] += float(v)
        count += 1
        r1_count += bool(r1_every and r1_gamma > 0 and step % r1_every == 0)
        if count == log_every or step == start + steps - 1:
            history["step"].append(step + 1)
            for k in GAN_KEYS:                                               # r1: NaN in a window without R1
                history[k].append(running[k] / count if k != "r1" else
                                  running[k] / r1_count if r1_count else float("nan"))
            history["seconds"].append(elapsed0 + time.perf_counter() - t0)
            bar.set_postfix(g=f"{history['loss'][-1]:.3f}", d=f"{history['d_loss'][-1]:.3f}")
            running, count, r1_count = dict.fromkeys(GAN_KEYS, 0.0), 0, 0
            if callback is not None:
                callback(step + 1, history)
    return history


def make_optimizers(G, D, lr: float = 0.002, r1_every: int = 16):
    """Adam(betas (0, 0.99)) for G and D as StyleGAN2; D's lr and betas corrected for lazy R1 (c = k / (k + 1))."""
    c = r1_every / (r1_every + 1) if r1_every else 1.0
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99)),
            torch.optim.Adam(D.parameters(), lr=lr * c, betas=(0.0, 0.99 ** c)))


def copy_for_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of G that :func:`ema_update` averages into."""
    ema = copy.deepcopy(G)
    ema.requires_grad_(False)
    return ema.eval()
