"""The network of SR3 (notebook 06): the conditional UNet f(x, y_t, sqrt(gamma)) -> eps.

DDPM's UNet with the bicubic-upsampled low-res image x as extra input channels: given the noisy target y_t and its
noise level sqrt(gamma), it predicts the noise eps that was added (:mod:`course_utils.sr3_diffusion` turns that
prediction into a reverse step; :mod:`course_utils.sr3` builds SR3 and its regression baseline on it).

Shapes: ``UNet(...)(x_up, y_t, sqrt_gamma)``: x_up, y_t (B, 3, H, W) in [-1, 1] (y_t unbounded), sqrt_gamma (B,)
-> eps (B, 3, H, W), H and W multiples of 2^(levels - 1). Inside, level k works at 1/2^k of the size with
c * multipliers[k] channels; :func:`noise_level_embedding` turns sqrt(gamma) (B,) into (B, c) sinusoids, which an
MLP maps to a (B, 4c) vector that every :class:`ResBlock` projects to its channels and adds between its convs;
:class:`SelfAttention` works at the lowest resolution (and at the levels in ``attention``).

Import it from :mod:`course_utils.sr3` (``sr3.UNet``), the public path; this module does not import that one.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_number, check_positive_int


# ----------------------------------------------------------------------------------------------------------------
# 3. the conditional UNet f(x, y_t, sqrt(gamma)) -> eps

def noise_level_embedding(sqrt_gamma: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of the continuous noise level (Transformer/DDPM style, as WaveGrad and SR3 do):
    (B,) sqrt(gamma) in [0, 1] -> (B, dim) = [sin(s v w_k), cos(s v w_k)], w_k = 10000^(-k / (dim/2)).
    ``scale`` s = 1000 spreads [0, 1] over the range DDPM's integer timesteps 0..1000 had, so that neighbouring
    levels get distinguishable codes (unscaled, the fastest frequency would turn less than one radian)."""
    half = dim // 2
    w = torch.exp(-math.log(10000.0) * torch.arange(half, device=sqrt_gamma.device, dtype=torch.float32) / half)
    angle = scale * sqrt_gamma.float()[:, None] * w[None]                       # (B, dim/2)
    codes = [angle.sin(), angle.cos()] + ([torch.zeros_like(angle[:, :1])] if dim % 2 else [])
    return torch.cat(codes, dim=1)                                               # (B, dim)


def _groups(groups: int, channels: int) -> int:
    return math.gcd(groups, channels)


class ResBlock(nn.Module):
    """DDPM's residual block with the noise level added between the convolutions:

        h = conv3x3(SiLU(GN(x))) + Linear(SiLU(emb));  h = conv3x3(Dropout(SiLU(GN(h))));  out = (skip(x) + h) / sqrt 2

    (the 1/sqrt(2) on the skip sum is the paper's; the second conv starts at zero, so each block starts as the
    identity up to that factor). (B, c_in, H, W), (B, emb) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.noise = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(_groups(groups, c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.noise(F.silu(emb))[:, :, None, None]                       # the noise level, per channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(x) + h) / math.sqrt(2)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H W positions (DDPM's block), residual: x + proj(softmax(q k^T /
    sqrt(C)) v). Global context where the feature map is smallest. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)   # 3 x (B, HW, C)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]          # (B, HW, C)
        return x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))


class _Level(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, block: ResBlock, attention: SelfAttention | None):
        super().__init__()
        self.block, self.attention = block, attention

    def forward(self, h, emb):
        h = self.block(h, emb)
        return self.attention(h) if self.attention is not None else h


class _Down(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h, emb):
        return self.conv(h)                                                     # (B, C, H/2, W/2)


class _Up(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h):
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))   # (B, C, 2H, 2W)


class UNet(nn.Module):
    """SR3's denoiser f(x, y_t, sqrt(gamma)) -> eps (DDPM's UNet with the low-res image as extra input channels).

    ``forward(x_up, y_t, sqrt_gamma)``: x_up = the bicubic-upsampled low-res image and y_t = the noisy target, both
    (B, 3, H, W) in [-1, 1] (y_t unbounded), sqrt_gamma (B,) -> eps prediction (B, 3, H, W). H and W must be
    divisible by 2^(len(multipliers) - 1) (the UNet halves the size that many times).

    ``channels`` c at full resolution, ``multipliers`` (one per level: level k has c * multipliers[k] channels at
    1/2^k of the size), ``blocks`` residual blocks per level, ``attention`` = the levels whose blocks also get
    self-attention (level k = 1/2^k of the input size; the middle block, at the lowest resolution, always has it;
    default none else: attention costs (H W)^2, so on a 256x256 image at level 2 it would cost more than all the
    convolutions), ``dropout``,
    ``norm_groups`` (GroupNorm groups, reduced to divide the channels), ``embedding_scale`` (see
    :func:`noise_level_embedding`). The last convolution starts at zero (eps prediction 0 = loss E|eps| at step 0).
    The paper's 16->128 face model has multipliers (1, 2, 4, 8, 8) and 3 blocks per level with BigGAN-style
    blocks and far more channels (Appendix A); ``UNet(channels=64, multipliers=(1, 2, 4, 8, 8), blocks=3,
    attention=(3,), dropout=0.2)`` is that shape with these plain DDPM blocks.
    ``forward`` is the middle-attention DDPM layout: conv_in, [blocks x ResBlock(+attention), Down] per level,
    ResBlock + attention + ResBlock, [(blocks + 1) x ResBlock on concatenated skips, Up] per level, GN-SiLU-conv.
    """

    def __init__(self, channels: int = 32, multipliers=(1, 2, 2), blocks: int = 1, attention=None,
                 dropout: float = 0.0, norm_groups: int = 32, embedding_scale: float = 1000.0,
                 image_channels: int = 3):
        super().__init__()
        c = self.channels = check_positive_int(channels, "channels", minimum=2)
        if not isinstance(multipliers, (list, tuple)) or not multipliers or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in multipliers):
            raise ValueError(f"multipliers must be a non-empty list of integers >= 1 (channels per level / "
                             f"channels), got {multipliers!r}")
        self.multipliers = tuple(multipliers)
        self.levels = len(self.multipliers)
        blocks = check_positive_int(blocks, "blocks")
        last = self.levels - 1
        attention = () if attention is None else attention
        if not isinstance(attention, (list, tuple)) or not all(
                isinstance(a, int) and not isinstance(a, bool) and 0 <= a <= last for a in attention):
            raise ValueError(f"attention must be a list of levels in 0..{last} (level k works at 1/2^k of the "
                             f"image size), got {attention!r}")
        self.attention = tuple(sorted(set(attention)))
        dropout = check_number(dropout, "dropout", minimum=0, maximum=1)
        norm_groups = check_positive_int(norm_groups, "norm_groups")
        self.embedding_scale = check_number(embedding_scale, "embedding_scale", minimum=0, strict_min=True)
        self.image_channels = check_positive_int(image_channels, "image_channels")
        emb = 4 * c
        self.embed = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = nn.Conv2d(2 * self.image_channels, c, 3, padding=1)

        def level(c_in, c_out, k):
            return _Level(ResBlock(c_in, c_out, emb, dropout, norm_groups),
                          SelfAttention(c_out, norm_groups) if k in self.attention else None)

        # encoder: remember the width of every skip connection
        self.down, widths, width = nn.ModuleList(), [c], c
        for k, m in enumerate(self.multipliers):
            for _ in range(blocks):
                self.down.append(level(width, c * m, k))
                width = c * m
                widths.append(width)
            if k < last:
                self.down.append(_Down(width))
                widths.append(width)
        self.middle = nn.ModuleList([_Level(ResBlock(width, width, emb, dropout, norm_groups),
                                            SelfAttention(width, norm_groups)),           # always attention
                                     level(width, width, -1)])
        # decoder: blocks + 1 blocks per level, each taking one skip connection
        self.up = nn.ModuleList()
        for k, m in reversed(list(enumerate(self.multipliers))):
            for _ in range(blocks + 1):
                self.up.append(level(width + widths.pop(), c * m, k))
                width = c * m
            if k > 0:
                self.up.append(_Up(width))
        self.norm_out = nn.GroupNorm(_groups(norm_groups, width), width)
        self.conv_out = nn.Conv2d(width, self.image_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.config = dict(channels=c, multipliers=list(self.multipliers), blocks=blocks,
                           attention=list(self.attention), dropout=dropout, norm_groups=norm_groups,
                           embedding_scale=self.embedding_scale, image_channels=self.image_channels)

    @property
    def multiple(self) -> int:
        """H and W of the input must be multiples of this: 2^(levels - 1)."""
        return 2 ** (self.levels - 1)

    def check_size(self, h: int, w: int, name: str = "y_t") -> None:
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"{name} of size {h}x{w} does not fit this UNet: height and width must be multiples of "
                             f"2^(levels-1) = {self.multiple} (it halves the size {self.levels - 1} times); crop "
                             f"it, e.g. course_utils.images.modcrop(x, {self.multiple})")

    def forward(self, x_up: torch.Tensor, y_t: torch.Tensor, sqrt_gamma: torch.Tensor) -> torch.Tensor:
        if x_up.dim() != 4 or x_up.shape != y_t.shape or x_up.shape[1] != self.image_channels:
            raise ValueError(f"x_up and y_t must both have shape (B, {self.image_channels}, H, W), got "
                             f"{tuple(x_up.shape)} and {tuple(y_t.shape)}")
        if sqrt_gamma.shape != (x_up.shape[0],):
            raise ValueError(f"sqrt_gamma must have shape (B,) = ({x_up.shape[0]},), got {tuple(sqrt_gamma.shape)}")
        self.check_size(*y_t.shape[-2:])
        emb = self.embed(noise_level_embedding(sqrt_gamma, self.channels, self.embedding_scale))   # (B, 4c)
        h = self.conv_in(torch.cat([x_up, y_t], dim=1))                         # (B, 6, H, W) -> (B, c, H, W)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb)
            skips.append(h)
        for layer in self.middle:                                               # lowest resolution
            h = layer(h, emb)
        for layer in self.up:
            h = layer(h) if isinstance(layer, _Up) else layer(torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))                          # (B, 3, H, W)
