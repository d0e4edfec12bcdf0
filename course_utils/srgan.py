"""Notebook 05: supervised super-resolution II - SRResNet and SRGAN (Ledig et al. 2017).

A deep residual generator :class:`SRResNet` trained first with the pixel MSE, then as the generator G of a GAN with
the *perceptual loss* (eq. 3)

    l_SR = l_content + 1e-3 * l_adv,   l_content = MSE(phi_54(G(y)), phi_54(x)),   l_adv = -log D(G(y))

where phi_54 are the VGG19 features of the 4th convolution (after ReLU) before the 5th max-pooling
(:class:`VGG19Features`, :class:`ContentLoss`, :func:`adversarial_loss`) and D is :class:`Discriminator`.
:func:`gan_step` is one alternating discriminator + generator update; :func:`train_gan_steps` the loop.

The course's models work on the Y channel like notebook 04's (the paper worked in RGB; ``image_channels=3`` is
available). ``RECIPES`` and :func:`trainer` are what ``python -m course_utils.train {srresnet,srgan}`` runs.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import operators as ops
from ._checks import check_number, check_positive_int
from .pretrained import check_state_dict, fetch
from .sr import PatchSampler, SRModel, Trainer, build_model, learning_rate, register_model
from .srcnn import COMMON

class ResidualBlock(nn.Module):
    """SRResNet's block (Ledig et al. 2017, fig. 4): conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class SRResNet(SRModel):
    """SRResNet, the generator G of SRGAN (Ledig et al. 2017, fig. 4), working in low-res space like ESPCN:

        f0 = PReLU(conv9x9(y))                                   head, 64 channels
        f  = f0 + BN(conv3x3(B residual blocks(f0)))            long skip over the blocks
        f  = [PReLU(PS_2(conv3x3(f)))] x log2(s)                 sub-pixel upsampling, x2 per block (x3: one PS_3)
        x  = conv9x9(f)                                          tail, back to ``image_channels``

    The paper has ``n_blocks=16``, ``channels=64``; smaller values make the CPU profiles affordable.
    ``image_channels=1`` (the course's default) works on Y like the other models here; 3 = RGB as in the paper.
    ``bicubic_skip=True`` adds bicubic(y) to the output and zero-initialises the tail, so the network starts
    exactly at bicubic and learns the residual (VDSR's idea, not in the paper): it needs far fewer steps to beat
    bicubic, which is what the course's CPU-trained checkpoints can afford (the paper trained 10^6 steps).
    (B, C, h, w) in [0, 1] -> (B, C, s h, s w), unbounded (clamp for display; the paper ended with tanh on [-1, 1]).
    """

    def __init__(self, scale: int = 4, n_blocks: int = 16, channels: int = 64, image_channels: int = 1,
                 bicubic_skip: bool = False, icnr: bool = False):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        n_blocks = check_positive_int(n_blocks, "n_blocks", minimum=0)
        channels = check_positive_int(channels, "channels")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (Y) or 3 (RGB), got {image_channels!r}")
        self.image_channels = self.channels = image_channels
        self.config = dict(n_blocks=n_blocks, channels=channels, image_channels=image_channels,
                           bicubic_skip=bool(bicubic_skip), **({"icnr": True} if icnr else {}))
        self.head = nn.Sequential(nn.Conv2d(image_channels, channels, 9, padding=4), nn.PReLU(channels))
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(n_blocks)])
        self.body_end = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        if self.scale & (self.scale - 1) == 0:                   # 2, 4, 8: x2 sub-pixel blocks
            factors = [2] * int(math.log2(self.scale))
        else:                                                    # 3, 5, ...: one sub-pixel block
            factors = [self.scale]
        self.upsample = nn.Sequential(*[nn.Sequential(nn.Conv2d(channels, channels * r * r, 3, padding=1),
                                                      nn.PixelShuffle(r), nn.PReLU(channels)) for r in factors])
        self.tail = nn.Conv2d(channels, image_channels, 9, padding=4)
        self.bicubic = ops.Upsample(self.scale) if bicubic_skip else None
        if bicubic_skip:                                         # start exactly at bicubic
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        if icnr:
            for block, r in zip(self.upsample, factors):
                icnr_(block[0], r)
        self.receptive_field = 9

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_shape(y)
        f0 = self.head(y)                                         # (B, channels, h, w): low-res space
        f = f0 + self.body_end(self.blocks(f0))                   # long skip connection
        x = self.tail(self.upsample(f))                           # (B, image_channels, s h, s w)
        return x + self.bicubic.forward(y, None) if self.bicubic is not None else x




def icnr_(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """ICNR initialisation (Aitken et al. 2017) of the convolution in front of ``PixelShuffle(r)``: draw one kernel
    per output channel and copy it to all r^2 sub-pixel positions (output channels c r^2 ... c r^2 + r^2 - 1), so the
    sub-pixel convolution starts as nearest-neighbour upsampling of one feature map: no checkerboard at the start,
    the grid artefact sub-pixel layers otherwise tend to produce."""
    out_channels = conv.out_channels // (r * r)
    kernel = torch.empty(out_channels, conv.in_channels, *conv.kernel_size)
    nn.init.kaiming_normal_(kernel, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.copy_(kernel.repeat_interleave(r * r, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(torch.zeros(out_channels).repeat_interleave(r * r))
    return conv


# "srgan" is an SRResNet too: the SRGAN generator differs only in the loss it was trained with.
register_model("srresnet", SRResNet, tiny=dict(n_blocks=1, channels=8))
register_model("srgan", SRResNet, tiny=dict(n_blocks=1, channels=8))


# ----------------------------------------------------------------------------------------------------------------
# the discriminator, VGG19 features and the perceptual loss (sec. 2.2-2.4)

# SRGAN: discriminator, VGG19 features, perceptual loss (Ledig et al. 2017, sec. 2.2-2.4)

class BlurPool(nn.Module):
    """Anti-aliased downsampling by 2 (Zhang, *Making Convolutional Networks Shift-Invariant Again*, ICML 2019): the
    binomial low-pass [1, 2, 1]^T [1, 2, 1] / 16 per channel, then every second pixel. (B, C, H, W) -> (B, C, ceil(H/2),
    ceil(W/2)), reflect padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (taps[:, None] * taps[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel.to(x.dtype), stride=2,
                        groups=self.channels)


class Discriminator(nn.Module):
    """SRGAN's discriminator D (Ledig et al. 2017, fig. 4): 8 convolutions 3x3, channels c, c, 2c, 2c, 4c, 4c, 8c,
    8c (c = 64 in the paper), stride 2 on every second one, BatchNorm on all but the first, LeakyReLU(0.2); then
    dense 1024 - LeakyReLU - dense 1. An adaptive average pool to 6x6 in front of the dense head keeps the paper's
    head for 96 px inputs (where it is the identity) and accepts other patch sizes.

    Two options beyond the paper, both against the period-``scale`` lattice a GAN grows in G's output (model card):
    ``blurpool=True`` makes every stride-2 layer anti-aliased (stride-1 convolution, then :class:`BlurPool`; Zhang
    2019): a strided D is not shift-invariant, its gradient to G carries its own stride grid, and G's sub-pixel
    layers turn that into a lattice at no cost; ``highpass`` = sigma > 0 shows D only the detail layer
    x - G_sigma * x (+ 0.5), as the frequency-separation GANs do (Fritsche et al. 2019): D judges texture, the
    content loss (``ContentLoss('lowpass')``) the rest.

    (B, C, H, W) high-res images in [0, 1] -> (B,) logits (D(x) = sigmoid(logit) = probability "real");
    ``features(x)`` -> the 8 activation maps after each LeakyReLU (what a feature-matching loss compares)."""

    def __init__(self, image_channels: int = 1, channels: int = 64, blurpool: bool = False,
                 highpass: float = 0.0):
        super().__init__()
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (Y) or 3 (RGB), got {image_channels!r}")
        c = check_positive_int(channels, "channels")
        self.highpass = check_number(highpass, "highpass", minimum=0)
        self.blur = ops.GaussianBlur(self.highpass) if self.highpass else None
        widths = [c, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c]
        self.layers, previous = nn.ModuleList(), image_channels
        for i, width in enumerate(widths):
            stride = 1 + i % 2
            layer = [nn.Conv2d(previous, width, 3, stride=1 if blurpool else stride, padding=1)]
            if i > 0:
                layer.append(nn.BatchNorm2d(width))
            layer.append(nn.LeakyReLU(0.2, inplace=True))
            if blurpool and stride == 2:
                layer.append(BlurPool(width))                  # anti-aliased stride 2 (Zhang 2019)
            self.layers.append(nn.Sequential(*layer))
            previous = width
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(8 * c * 36, 1024),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))
        self.image_channels = image_channels

    def _check(self, x):
        if x.dim() != 4 or x.shape[1] != self.image_channels:
            raise ValueError(f"x must have {self.image_channels} channel{'s' if self.image_channels > 1 else ''}, "
                             f"shape (B, {self.image_channels}, H, W), got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> list:
        """The activation maps after each of the 8 convolution blocks, (B, c_k, H_k, W_k) each."""
        self._check(x)
        if self.blur is not None:                                # judge the detail layer x - G_sigma * x
            x = x - self.blur.forward(x, None) + 0.5
        maps = []
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor, return_features: bool = False):
        maps = self.features(x)
        logits = self.head(maps[-1])[:, 0]
        return (logits, maps) if return_features else logits


def feature_matching_loss(fake_maps: list, real_maps: list) -> torch.Tensor:
    """Feature matching (Salimans et al. 2016; as a content loss: pix2pixHD, Wang et al. 2018): the mean over D's
    layers k of MSE(D_k(G(y)), D_k(x)), the real features detached. A content loss on features the GAN trains
    itself: like VGG54, it compares what D has learnt to tell apart (edges, texture statistics) instead of pixels,
    and D keeps it up to date as G improves. Lists of (B, c_k, H_k, W_k) maps -> scalar."""
    if len(fake_maps) != len(real_maps):
        raise ValueError(f"fake_maps and real_maps must have the same length, got {len(fake_maps)} and "
                         f"{len(real_maps)}")
    return sum(F.mse_loss(f, r.detach()) for f, r in zip(fake_maps, real_maps)) / len(fake_maps)


def random_phase(images: torch.Tensor, period: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The same random crop of every image in the batch, shifted by (dy, dx) in [0, period) and ``period - 1``
    pixels smaller each way: D then sees G's grid at a random phase at every step, so nothing D does can push G
    towards one phase of its sub-pixel grid (the period-``period`` lattice). (B, C, H, W) -> (B, C, H - p + 1,
    W - p + 1)."""
    period = check_positive_int(period, "period")
    dy, dx = (int(v) for v in torch.randint(period, (2,), generator=generator))
    h, w = images.shape[-2] - period + 1, images.shape[-1] - period + 1
    return images[..., dy:dy + h, dx:dx + w]


#: torchvision's ``vgg19().features`` layout: numbers = conv output channels, "M" = 2x2 max-pooling.
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")


def _vgg19_layers() -> tuple[dict, list]:
    """``({"vgg22": 8, "vgg54": 35, ...}, [0, 2, 5, ...])``: the index in ``features`` of the ReLU after the j-th
    convolution before the i-th max-pooling (the SRGAN paper's phi_ij), and the indices of the convolutions."""
    index, block, conv, layers, convs = 0, 1, 0, {}, []
    for item in VGG19_CONFIG:
        if item == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv += 1
            convs.append(index)
            layers[f"vgg{block}{conv}"] = index + 1   # conv at `index`, its ReLU at `index + 1`
            index += 2
    return layers, convs


VGG19_LAYERS, _VGG19_CONVS = _vgg19_layers()
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"   # torchvision's ImageNet weights, 548 MB
VGG19_SHA256_PREFIX = "dcbb9e9d"                                        # torchvision's convention: in the name
#: every key of torchvision's ``vgg19().state_dict()``: 16 convolutions in ``features`` + 3 dense layers
VGG19_KEYS = tuple(f"{part}.{i}.{kind}" for part, indices in (("features", _VGG19_CONVS), ("classifier", (0, 3, 6)))
                   for i in indices for kind in ("weight", "bias"))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19's convolutional part up to ``layer`` (e.g. 'vgg54' = conv5_4 after ReLU), in plain PyTorch, with the
    parameter names of torchvision's ``vgg19().features`` so its ImageNet state dict loads unchanged.

    (B, 1 or 3, H, W) in [0, 1] -> (B, K, H / 2^(i-1), W / 2^(i-1)) features. One-channel (Y) input is repeated to
    three channels; inputs are normalised with ImageNet's mean/std as the ImageNet weights expect. Frozen
    (no parameter gradients; gradients still flow to the input, which is what a perceptual loss needs).
    Built with random weights (Kaiming normal, as torchvision initialises VGG); load real ones with
    :func:`load_vgg19`. ``weights`` says which ones it holds."""

    def __init__(self, layer: str = "vgg54", seed: int = 0):
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"layer must be one of {sorted(VGG19_LAYERS)} (vgg<i><j> = j-th conv before the i-th "
                             f"pooling, after ReLU), got {layer!r}")
        self.layer = layer
        last = VGG19_LAYERS[layer]
        modules, channels = [], 3
        for item in VGG19_CONFIG:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*modules[: last + 1])
        self.out_channels = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        generator = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                with torch.no_grad():
                    m.weight.normal_(0, math.sqrt(2 / fan_out), generator=generator)
                    m.bias.zero_()
        self.weights = f"random (Kaiming normal, seed {seed}); NOT ImageNet-trained"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)   # always in eval mode: it is a fixed measuring instrument

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"x must have shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features((x - self.mean) / self.std)


def load_vgg19_state(model: VGG19Features, state_dict: dict, source: str = "state_dict") -> VGG19Features:
    """Load a torchvision-style VGG19 ``state_dict`` into ``model`` (its ``features.*`` entries up to the model's
    layer; deeper layers and the ``classifier.*`` head are not needed). Refuses, naming them, keys that are
    missing, keys that are not VGG19's, and tensors of the wrong shape (:func:`course_utils.pretrained.check_state_dict`)."""
    model.load_state_dict(check_state_dict(model.state_dict(), state_dict, source, known_keys=VGG19_KEYS,
                                           what="VGG19 state dict"))
    return model


def load_vgg19(layer: str = "vgg54", weights: str = "imagenet", *, download: bool = False, path=None,
               url: str | None = None, sha256_prefix: str | None = VGG19_SHA256_PREFIX, seed: int = 0
               ) -> VGG19Features:
    """VGG19 features up to ``layer`` with ``weights``:

    * ``'random'``: the offline substitute, Kaiming-normal random filters (seeded). Random convolutional features
      still respond to edges and texture statistics, but they are not the ImageNet features of the paper.
    * ``'imagenet'``: torchvision's ImageNet weights. Read from ``path`` if given (any torchvision-style VGG19
      state dict; keys and shapes are checked), else from the cache (:func:`course_utils.pretrained.cache_path`,
      shared with torchvision). If the cache is empty they are downloaded from ``url`` (default :data:`VGG19_URL`)
      **only when** ``download=True`` (548 MB, needs internet: Colab/GPU); the file's sha256 must start with
      ``sha256_prefix``.
    """
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    model = VGG19Features(layer, seed=seed)
    if weights == "random":
        return model
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"path: no VGG19 weights file at {file}")
    else:
        file = fetch(url or VGG19_URL, sha256_prefix=sha256_prefix, what="VGG19", download=download, size="548 MB",
                     offline_hint="use weights='random' (the offline substitute)", cache_as=VGG19_URL)
    state = torch.load(file, map_location="cpu", weights_only=True)
    load_vgg19_state(model, state, source=str(file))
    model.weights = f"ImageNet (torchvision vgg19, {file.name})"
    return model


PIXEL_LOSSES = ("mse", "lowpass")


class ContentLoss(nn.Module):
    """SRGAN's content loss l_content(G(y), x), (B, C, H, W) images in [0, 1] -> scalar:

    * ``'mse'``: pixel MSE (eq. 4) on the paper's [-1, 1] range, i.e. 4 x the MSE of the [0, 1] images - what
      SRResNet minimises; its optimum is the average of all plausible high-res images, hence smooth results.
    * ``'lowpass'``: the pixel MSE of G_sigma * output against G_sigma * target (Gaussian low-pass, ``sigma`` px):
      the content loss of frequency-separation SR GANs (Fritsche et al. 2019). The pixel MSE pays for texture at
      the wrong phase as much as for missing texture, so the adversarial term can only add a little of it; with
      the low-pass loss the fine detail is left to D (with ``Discriminator(highpass=sigma)``).
    * ``'vgg22'``, ``'vgg54'``, ...: MSE between VGG19 feature maps phi_ij (eq. 5), the features multiplied by
      ``feature_scale`` = 1/12.75 (the paper's rescaling to a magnitude comparable with the MSE loss).
      ``vgg`` is a :class:`VGG19Features` for that layer (default: :func:`load_vgg19` with random weights).
    """

    def __init__(self, kind: str = "vgg54", vgg: VGG19Features | None = None, feature_scale: float = 1 / 12.75,
                 sigma: float = 1.5):
        super().__init__()
        if kind not in PIXEL_LOSSES and kind not in VGG19_LAYERS:
            raise ValueError(f"kind must be one of {PIXEL_LOSSES} or a VGG19 layer {sorted(VGG19_LAYERS)}, got {kind!r}")
        if vgg is not None and kind not in PIXEL_LOSSES and vgg.layer != kind:
            raise ValueError(f"vgg computes layer {vgg.layer!r} but kind is {kind!r}")
        self.kind = kind
        self.feature_scale = check_number(feature_scale, "feature_scale", minimum=0, strict_min=True)
        self.blur = ops.GaussianBlur(sigma) if kind == "lowpass" else None
        self.vgg = None if kind in PIXEL_LOSSES else (vgg if vgg is not None else load_vgg19(kind, "random"))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"output and target must have the same shape, got {tuple(output.shape)} and "
                             f"{tuple(target.shape)}")
        if self.blur is not None:                                 # only what a low-pass keeps is compared
            output, target = self.blur.forward(output, None), self.blur.forward(target, None)
        if self.vgg is None:
            return F.mse_loss(2 * output, 2 * target)             # images mapped to [-1, 1] as in the paper
        with torch.no_grad():
            wanted = self.vgg(target) * self.feature_scale
        return F.mse_loss(self.vgg(output) * self.feature_scale, wanted)


@torch.no_grad()
def matching_feature_scale(vgg: VGG19Features, output: torch.Tensor, target: torch.Tensor,
                           value_range: float = 2.0) -> float:
    """The factor s that makes the VGG loss equal the pixel MSE on a batch of (output, target) pairs in [0, 1]:

        mean((s phi(output) - s phi(target))^2) = mean((r output - r target)^2),   r = value_range

    The paper computed its MSE on images in [-1, 1] (r = 2) and rescaled ImageNet-VGG features by 1/12.75 "to
    obtain VGG losses of a scale comparable to the MSE loss". Random-weight features have another magnitude, so
    1/12.75 would make their content loss ~1000 times smaller than the adversarial loss; the offline substitute
    uses this factor instead (measured on bicubic outputs vs ground truth), which keeps the paper's balance
    between content and adversarial loss."""
    value_range = check_number(value_range, "value_range", minimum=0, strict_min=True)
    pixel = F.mse_loss(output, target) * value_range ** 2
    feature = F.mse_loss(vgg(output), vgg(target))
    if feature <= 0:
        raise ValueError("output and target have identical VGG features; cannot match scales")
    return float(torch.sqrt(pixel / feature))


def make_content_loss(kind: str = "vgg54", vgg_weights: str = "random", *, sampler: PatchSampler | None = None,
                      download: bool = False, patches: int = 64, seed: int = 0, sigma: float = 1.5) -> ContentLoss:
    """The content loss SRGAN training uses: pixel MSE (``kind='mse'``), its low-pass form (``'lowpass'``, Gaussian
    ``sigma``) or VGG features of layer ``kind`` with
    ``vgg_weights`` (:func:`load_vgg19`). ImageNet features are scaled by the paper's 1/12.75; random ones by
    :func:`matching_feature_scale` measured on ``patches`` bicubic-vs-truth pairs drawn from ``sampler``."""
    if kind in PIXEL_LOSSES:
        return ContentLoss(kind, sigma=sigma)
    vgg = load_vgg19(kind, vgg_weights, download=download)
    feature_scale = 1 / 12.75
    if vgg_weights == "random":
        if sampler is None:
            raise ValueError("sampler is needed to rescale the random-weight VGG features (matching_feature_scale)")
        low, high = sampler.sample(patches, torch.Generator().manual_seed(seed))
        feature_scale = matching_feature_scale(vgg, ops.Upsample(sampler.scale)(low), high)
    return ContentLoss(kind, vgg, feature_scale)


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss l_adv = sum -log D(G(y)) (eq. 6, the non-saturating form), as binary cross-entropy
    of D's logits for the generated images against the label "real" (averaged over the batch)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss (eq. 2): -log D(x) - log(1 - D(G(y))), binary cross-entropy with labels real = 1, fake = 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def perceptual_loss(output, target, content: ContentLoss, fake_logits=None, adversarial_weight: float = 1e-3):
    """l_SR = l_content + adversarial_weight * l_adv (eq. 3; 1e-3 in the paper). ``fake_logits`` = D(output);
    None gives the content loss alone. -> (total, content, adversarial) scalars."""
    l_content = content(output, target)
    l_adv = adversarial_loss(fake_logits) if fake_logits is not None else torch.zeros((), device=output.device)
    return l_content + adversarial_weight * l_adv, l_content, l_adv


# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# training: one GAN step, the loop, and the recipes of python -m course_utils.train srresnet|srgan

def gan_step(generator: nn.Module, discriminator: Discriminator, content: ContentLoss,
             optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer, low: torch.Tensor,
             high: torch.Tensor, *, adversarial_weight: float = 1e-3, feature_weight: float = 0.0,
             phase: int = 0, generator_rng: torch.Generator | None = None, bf16: bool = False) -> dict:
    """One SRGAN step (Ledig et al. 2017, eq. 1-3) on a batch of (low, high) patches:

        D step:  minimise  -log D(x) - log(1 - D(G(y)))          (:func:`discriminator_loss`; G(y) detached)
        G step:  minimise  l_content(G(y), x) + w * -log D(G(y))  (:func:`perceptual_loss`, w = adversarial_weight)
                           [+ feature_weight * feature_matching(D(G(y)), D(x))]

    D judges the same generated batch again after its own update. D always sees real and generated patches in
    ONE batch (``cat([x, G(y)])``): its BatchNorm layers then normalise both with the same statistics. Judged in
    separate batches, each batch is normalised on its own, which hides the very difference D must find (measured:
    D(x) and D(G(y)) both stayed at 0.50 for 200 steps even at lr 1e-3). Options beyond the paper:
    ``feature_weight`` > 0 adds :func:`feature_matching_loss` on D's layers to G's loss; ``phase`` = p > 1 shows
    D a :func:`random_phase` crop (the same for real and generated patches, drawn from ``generator_rng``).
    ``bf16`` runs the networks under bfloat16 autocast. Returns detached scalars ``{"loss", "content",
    "adversarial", "features", "discriminator", "d_real", "d_fake"}`` (d_real / d_fake = mean D(x) / D(G(y)))."""
    autocast = lambda: torch.autocast(low.device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    crop = (lambda x: random_phase(x, phase, generator_rng)) if phase > 1 else (lambda x: x)  # noqa: E731
    with autocast():
        fake = generator(low)
    fake = fake.float()
    b = high.shape[0]
    pair = crop(torch.cat([high, fake]))                                     # (2B, C, H', W'): one phase for both
    # discriminator step: real patches -> 1, generated -> 0 (one batch of 2B: shared BatchNorm statistics)
    optimizer_d.zero_grad(set_to_none=True)
    with autocast():
        logits = discriminator(pair.detach()).float()                         # (2B,)
    real_logits, fake_logits = logits[:b], logits[b:]
    d_loss = discriminator_loss(real_logits, fake_logits)
    d_loss.backward()
    optimizer_d.step()
    # generator step: content + adversarial (+ feature matching)
    optimizer_g.zero_grad(set_to_none=True)
    with autocast():
        judged, maps = discriminator(pair, return_features=True)              # D(G(y)), judged beside real patches
        total, l_content, l_adv = perceptual_loss(fake, high, content, judged.float()[b:], adversarial_weight)
        l_features = (feature_matching_loss([m[b:] for m in maps], [m[:b] for m in maps]) if feature_weight
                      else torch.zeros((), device=low.device))
    total = (total + feature_weight * l_features).float()
    total.backward()
    optimizer_g.step()
    values = {"loss": total, "content": l_content, "adversarial": l_adv, "features": l_features,
              "discriminator": d_loss, "d_real": torch.sigmoid(real_logits).mean(),
              "d_fake": torch.sigmoid(fake_logits).mean()}
    return {k: v.detach().float() for k, v in values.items()}


GAN_KEYS = ("loss", "content", "adversarial", "features", "discriminator", "d_real", "d_fake")


def train_gan_steps(generator: nn.Module, discriminator: Discriminator, content: ContentLoss, sampler: PatchSampler,
                    optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer, steps: int, *,
                    batch: int = 16, adversarial_weight: float = 1e-3, generator_rng: torch.Generator,
                    history: dict | None = None, start: int = 0, log_every: int = 10, progress: bool = True,
                    callback=None, bf16: bool = False, lr_at=None, feature_weight: float = 0.0,
                    phase: int = 0) -> dict:
    """Run ``steps`` :func:`gan_step` s on ``sampler``'s patches (drawn with ``generator_rng``; ``feature_weight``
    and ``phase`` as there). Returns the history ``{"step", "loss", "content", "adversarial", "features",
    "discriminator", "d_real", "d_fake", "seconds"}`` (means over each ``log_every`` steps), extending ``history``
    when resuming. ``callback(step, history)`` is called after each log
    (live plots in widgets); ``lr_at(step)`` sets both optimisers' learning rate before each step."""
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps", minimum=0)
    batch = check_positive_int(batch, "batch")
    adversarial_weight = check_number(adversarial_weight, "adversarial_weight", minimum=0)
    history = history if history is not None else {"step": [], **{k: [] for k in GAN_KEYS}, "seconds": []}
    for k in GAN_KEYS:
        history.setdefault(k, [0.0] * len(history["step"]))                 # a history from before a key existed
    dev = next(generator.parameters()).device
    generator.train()
    discriminator.train()
    running, count, t0 = dict.fromkeys(GAN_KEYS, 0.0), 0, time.perf_counter()
    elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
    bar = tqdm(range(start, start + steps), desc="train SRGAN", leave=False, mininterval=1, disable=not progress)
    for step in bar:
        low, high = sampler.sample(batch, generator_rng)
        if lr_at is not None:
            for group in (*optimizer_g.param_groups, *optimizer_d.param_groups):
                group["lr"] = lr_at(step)
        values = gan_step(generator, discriminator, content, optimizer_g, optimizer_d, low.to(dev), high.to(dev),
                          adversarial_weight=adversarial_weight, feature_weight=feature_weight, phase=phase,
                          generator_rng=generator_rng, bf16=bf16)
        for k, v in values.items():
            running[k] += float(v)
        count += 1
        if count == log_every or step == start + steps - 1:
            history["step"].append(step + 1)
            for k in GAN_KEYS:
                history[k].append(running[k] / count)
            history["seconds"].append(elapsed0 + time.perf_counter() - t0)
            bar.set_postfix(content=f"{history['content'][-1]:.4f}", d_fake=f"{history['d_fake'][-1]:.2f}")
            running, count = dict.fromkeys(GAN_KEYS, 0.0), 0
            if callback is not None:
                callback(step + 1, history)
    return history


RECIPES = {
    # SRResNet: the paper's 16 blocks and 96 px high-res patches, MSE, 291 images; for the CPU budget 32 channels
    # instead of 64 and a bicubic skip (starts at bicubic; see SRResNet); ICNR-initialised sub-pixel convolutions
    # (they start free of the period-4 checkerboard, metrics.grid_amplitude)
    "srresnet": dict(COMMON, patch_hr=96, lr=3e-4, steps=15000,
                     model=dict(n_blocks=16, channels=32, bicubic_skip=True, icnr=True)),
    # SRGAN: starts from the shipped SRResNet (init); Adam 1e-4 (/10 at 80 %), adversarial weight 1e-3 as in the
    # paper; smaller patches/batch and a 32-channel discriminator for the CPU budget. The shipped model is the paper's
    # SRGAN-MSE variant (its table 1: pixel MSE on [-1, 1] + adversarial loss): offline, VGG19 has random weights,
    # and that content loss fell below bicubic with a visible period-4 grid (27.4 dB vs bicubic 28.2 after 1,000
    # steps; model card). The paper's SRGAN-VGG54 with the ImageNet VGG19:
    # --set content='"vgg54"' vgg='"imagenet"' --download
    # sigma: the Gaussian (px) of content="lowpass" (frequency separation; with discriminator highpass=sigma the
    # detail above it is judged by D alone), e.g. --set content=lowpass sigma=1.5 adversarial_weight=5e-3
    # discriminator='{"channels":32,"blurpool":true,"highpass":1.5}'
    "srgan": dict(COMMON, patch_hr=64, batch=8, lr=1e-4, content="mse", vgg="random", adversarial_weight=1e-3,
                  feature_weight=0.0, phase=0, sigma=1.5, discriminator=dict(channels=32), init="srresnet",
                  steps=3000),
}


def _load_init(init, scale: int) -> dict:
    """The generator SRGAN starts from: ``'srresnet'`` = the registered SRResNet checkpoint for ``scale`` (checked
    against its sha256), or a path to a checkpoint file written by ``python -m course_utils.train``."""
    from . import checkpoints

    if init == "srresnet":
        model = checkpoints.load_checkpoint("srresnet", scale)
        digest = checkpoints.read_registry()[checkpoints.key("srresnet", scale)]["sha256"]
        return {"config": model.config, "state_dict": model.state_dict(),
                "source": f"srresnet_x{scale} (registered, sha256 {digest[:12]}...)"}
    path = Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"init: no checkpoint file at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("name") not in ("srresnet", "srgan") or checkpoint.get("scale") != scale:
        raise ValueError(f"init: {path} is a {checkpoint.get('name')} x{checkpoint.get('scale')} checkpoint, "
                         f"not an SRResNet/SRGAN generator at x{scale}")
    return {"config": checkpoint["config"], "state_dict": checkpoint["state_dict"], "source": str(path)}


class GANTrainer(Trainer):
    """SRGAN training: G starts from a trained SRResNet, a fresh discriminator, Adam for both, :func:`train_gan_steps`."""

    def __init__(self, name, scale, recipe, load_images, generator, seed=0):
        if recipe["content"] in PIXEL_LOSSES and recipe["vgg"] != "random":
            raise ValueError(f"vgg={recipe['vgg']!r} has no effect with content={recipe['content']!r} (a pixel loss): also set a VGG "
                             f"layer, e.g. --set content=vgg54 vgg={recipe['vgg']}")
        init = _load_init(recipe["init"], scale)
        self.config = init["config"]
        self.model = build_model(name, scale, **self.config)
        self.model.load_state_dict(init["state_dict"])
        patch = max(round(recipe["patch_hr"] / scale), self.model.receptive_field)
        self.sampler = PatchSampler(load_images(patch * scale), scale, patch)
        self.discriminator = Discriminator(self.model.image_channels, **recipe["discriminator"])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe["lr"])
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=recipe["lr"])
        self.content = make_content_loss(recipe["content"], recipe["vgg"], sampler=self.sampler,
                                         download=recipe.get("download", False), seed=seed + 1,
                                         sigma=recipe["sigma"])
        if self.content.vgg is not None:
            print(f"content loss {recipe['content']} with VGG19 weights: {self.content.vgg.weights}; features "
                  f"scaled by {self.content.feature_scale:.4g}", flush=True)
        self.recipe, self.generator = recipe, generator
        self.info = {"init": init["source"], "feature_scale": self.content.feature_scale, "patch_lr": patch,
                     "patch_hr": patch * scale}

    def to(self, device):
        for module in (self.model, self.discriminator, self.content):
            module.to(device)
        return self

    def run(self, steps, *, start, history, progress):
        r = self.recipe
        return train_gan_steps(self.model, self.discriminator, self.content, self.sampler, self.optimizer,
                               self.optimizer_d, steps, batch=r["batch"], adversarial_weight=r["adversarial_weight"],
                               generator_rng=self.generator, history=history, start=start, progress=progress,
                               bf16=r.get("bf16", False), lr_at=lambda s: learning_rate(r, s),
                               feature_weight=r.get("feature_weight", 0.0), phase=r.get("phase", 0))

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "discriminator": self.discriminator.state_dict(), "optimizer_d": self.optimizer_d.state_dict()}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])


def trainer(name: str, scale: int, recipe: dict, load_images, generator: torch.Generator, seed: int = 0) -> Trainer:
    """What ``train`` runs: SRResNet with the pixel loss (:class:`course_utils.sr.SupervisedTrainer`), or SRGAN
    from a trained SRResNet (:class:`GANTrainer`)."""
    if name == "srgan":
        return GANTrainer(name, scale, recipe, load_images, generator, seed)
    from .srcnn import trainer as supervised
    return supervised(name, scale, recipe, load_images, generator)
