"""Supervised single-image super-resolution: SRCNN, ESPCN, VDSR, SRResNet and SRGAN.

All of them learn a map from a low-resolution luminance image y (the Y channel of BT.601 YCbCr, 1 channel) to its
high-resolution version x from training pairs (x, y = D_s(x)) made with the course's MATLAB-style antialiased
bicubic :class:`course_utils.operators.Downsample`. Notebook 04 (pixel losses):

    theta* = argmin_theta  E || f_theta(y) - x ||   (L1 or L2)

Every model here has the same interface ``model(y) -> x_hat``: (B, 1, h, w) low-res Y in [0, 1] ->
(B, 1, s*h, s*w). What differs is *where* the network works:

* :class:`SRCNN` (Dong et al. 2014) upsamples first (bicubic), then three convolutions 9-5-5 "patch extraction,
  non-linear mapping, reconstruction" in high-res space.
* :class:`ESPCN` (Shi et al. 2016) stays in low-res space (s^2 times fewer pixels) and ends with a sub-pixel
  convolution: a conv with s^2 output channels rearranged by ``pixel_shuffle`` into an s-times larger image.
* :class:`VDSR` (Kim et al. 2016) upsamples first and is deep (20 layers of 3x3x64); it predicts only the residual
  x - bicubic(y) and trains with gradient clipping.

Notebook 05 (Ledig et al. 2017, "SRGAN"): a deep residual generator :class:`SRResNet` trained first with MSE, then
as the generator of a GAN with the *perceptual loss* (eq. 3)

    l_SR = l_content + 1e-3 * l_adv,   l_content = MSE(phi_54(G(y)), phi_54(x)),   l_adv = -log D(G(y))

where phi_54 are the VGG19 features of the 4th convolution (after ReLU) before the 5th max-pooling
(:class:`VGG19Features`, :class:`ContentLoss`, :func:`adversarial_loss`) and D is :class:`Discriminator`.

Colour images: super-resolve Y and take Cb, Cr from bicubic (the papers' way for SRCNN/VDSR; SRGAN worked in RGB,
see notebook 05 for why the course keeps Y): :func:`super_resolve`.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import operators as ops
from ._checks import check_image, check_number, check_positive_int
from .images import rgb_to_ycbcr, ycbcr_to_rgb


class _YModel(nn.Module):
    """Shared input check: one channel (Y), at least ``receptive_field`` low-res pixels per side."""

    scale: int
    receptive_field: int  # in low-res pixels: the smallest input the model accepts
    image_channels: int = 1  # 1 = Y of YCbCr; SRResNet can also work on RGB (3)

    def _check_input(self, y: torch.Tensor) -> None:
        check_image(y, "y", ndim=4, unit_range=False)
        if self.image_channels == 3 and y.shape[1] != 3:
            raise ValueError(f"y must have 3 channels (RGB) for this {type(self).__name__} (image_channels=3), "
                             f"got {y.shape[1]} (shape {tuple(y.shape)})")
        if self.image_channels == 1 and y.shape[1] != 1:
            raise ValueError(f"y must have 1 channel (the Y of YCbCr) for {type(self).__name__}, got "
                             f"{y.shape[1]} (shape {tuple(y.shape)}); convert with course_utils.images.rgb_to_y "
                             f"or use course_utils.sr.super_resolve for RGB images")
        h, w = y.shape[-2:]
        if min(h, w) < self.receptive_field:
            raise ValueError(f"y of size {h}x{w} is smaller than the receptive field of {type(self).__name__} "
                             f"at scale {self.scale} ({self.receptive_field} low-res pixels per side)")

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SRCNN(_YModel):
    """SRCNN 9-5-5 (Dong et al. 2014, eq. 1-3) on the bicubic-upsampled Y channel:

        F1 = ReLU(W1 * bicubic(y) + b1)   64 filters 9x9   (patch extraction)
        F2 = ReLU(W2 * F1 + b2)           32 filters 5x5   (non-linear mapping; the paper's 1x1 in the base model)
        x  = W3 * F2 + b3                 1 filter 5x5     (reconstruction)

    Zero padding keeps the size (the paper used valid convolutions and a smaller target).
    (B, 1, h, w) -> (B, 1, s*h, s*w).
    """

    def __init__(self, scale: int = 3, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 5, f3: int = 5):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.upsample = ops.Upsample(self.scale)
        self.conv1 = nn.Conv2d(1, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, 1, f3, padding=f3 // 2)
        self.receptive_field = math.ceil((f1 + f2 + f3 - 2) / self.scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y)
        x = self.upsample(y)                         # upsample first: the network sees s^2 times more pixels
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)


class ESPCN(_YModel):
    """ESPCN (Shi et al. 2016): features in low-res space, then a sub-pixel convolution (eq. 4):

        F1 = tanh(W1 * y + b1)            64 filters 5x5
        F2 = tanh(W2 * F1 + b2)           32 filters 3x3
        x  = PS(W3 * F2 + b3)             s^2 filters 3x3, PS = pixel_shuffle: (B, s^2, h, w) -> (B, 1, s h, s w)

    Every convolution runs on h x w pixels, not s h x s w: s^2 times cheaper than SRCNN's upsample-first design.
    """

    def __init__(self, scale: int = 3, n1: int = 64, n2: int = 32):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.conv1 = nn.Conv2d(1, n1, 5, padding=2)
        self.conv2 = nn.Conv2d(n1, n2, 3, padding=1)
        self.conv3 = nn.Conv2d(n2, self.scale ** 2, 3, padding=1)
        self.receptive_field = 5 + 3 + 3 - 2

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y)
        f = torch.tanh(self.conv1(y))
        f = torch.tanh(self.conv2(f))
        return F.pixel_shuffle(self.conv3(f), self.scale)   # sub-pixel convolution


class VDSR(_YModel):
    """VDSR (Kim et al. 2016): ``depth`` 3x3 convolutions (64 channels, ReLU between) predict the residual r,

        x = bicubic(y) + r,   r = W_d * ReLU(... ReLU(W_1 * bicubic(y)))

    so the network only learns the missing high frequencies (residual learning), which makes a 20-layer plain
    network trainable with a high learning rate plus gradient clipping (:func:`clip_gradients`).
    """

    def __init__(self, scale: int = 3, depth: int = 20, channels: int = 64, residual: bool = True):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        depth = check_positive_int(depth, "depth", minimum=2)
        self.residual = bool(residual)  # False: the plain network of the paper's residual-vs-plain comparison
        self.upsample = ops.Upsample(self.scale)
        layers = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(channels, 1, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        for m in self.body:                               # He initialisation, as in the paper ...
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.body[-1].weight)              # ... except the last layer: start exactly at bicubic
        self.receptive_field = math.ceil((2 * depth + 1) / self.scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y)
        x = self.upsample(y)
        return x + self.body(x) if self.residual else self.body(x)   # residual learning


class Bicubic(_YModel):
    """The baseline as a "model": bicubic upsampling (MATLAB-style Keys a=-0.5). No parameters."""

    def __init__(self, scale: int = 3):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.upsample = ops.Upsample(self.scale)
        self.receptive_field = 1

    def forward(self, y):
        self._check_input(y)
        return self.upsample(y)


class ResidualBlock(nn.Module):
    """SRResNet's block (Ledig et al. 2017, fig. 4): conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class SRResNet(_YModel):
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
                 bicubic_skip: bool = False):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        n_blocks = check_positive_int(n_blocks, "n_blocks", minimum=0)
        channels = check_positive_int(channels, "channels")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (Y) or 3 (RGB), got {image_channels!r}")
        self.image_channels = image_channels
        self.config = dict(n_blocks=n_blocks, channels=channels, image_channels=image_channels,
                           bicubic_skip=bool(bicubic_skip))
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
        self.receptive_field = 9

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y)
        f0 = self.head(y)
        f = f0 + self.body_end(self.blocks(f0))                   # long skip connection
        x = self.tail(self.upsample(f))
        return x + self.bicubic(y) if self.bicubic is not None else x


#: name -> class. "srgan" is an SRResNet too: the SRGAN generator differs only in the loss it was trained with.
MODELS = {"bicubic": Bicubic, "srcnn": SRCNN, "espcn": ESPCN, "vdsr": VDSR, "srresnet": SRResNet, "srgan": SRResNet}


def build_model(name: str, scale: int, **kwargs) -> nn.Module:
    """``build_model('vdsr', 3)`` -> an untrained model. Names: bicubic, srcnn, espcn, vdsr, srresnet (``kwargs``
    go to the class, e.g. ``n_blocks=8``)."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](scale, **kwargs)


def multiply_adds(model: nn.Module, low_size: int = 32) -> float:
    """Multiply-adds of ``model``'s convolutions per *high-res output pixel* (measured with forward hooks on a
    ``low_size`` x ``low_size`` input): the cost that upsample-first (SRCNN, VDSR) and sub-pixel (ESPCN) differ in."""
    total = []

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total.append(output.numel() * k)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            out = model(torch.full((1, 1, low_size, low_size), 0.5))
    finally:
        for handle in handles:
            handle.remove()
    return sum(total) / out[0, 0].numel()


def clip_gradients(model: nn.Module, theta: float, lr: float) -> None:
    """VDSR's adjustable gradient clipping: clip every gradient entry to [-theta / lr, theta / lr], so the
    effective step lr * g stays below theta whatever the learning rate (Kim et al. 2016, sec. 3.3)."""
    theta = check_number(theta, "theta", minimum=0, strict_min=True)
    lr = check_number(lr, "lr", minimum=0, strict_min=True)
    torch.nn.utils.clip_grad_value_(model.parameters(), theta / lr)


# ----------------------------------------------------------------------------------------------------------------
# SRGAN: discriminator, VGG19 features, perceptual loss (Ledig et al. 2017, sec. 2.2-2.4)

class Discriminator(nn.Module):
    """SRGAN's discriminator D (Ledig et al. 2017, fig. 4): 8 convolutions 3x3, channels c, c, 2c, 2c, 4c, 4c, 8c,
    8c (c = 64 in the paper), stride 2 on every second one, BatchNorm on all but the first, LeakyReLU(0.2); then
    dense 1024 - LeakyReLU - dense 1. An adaptive average pool to 6x6 in front of the dense head keeps the paper's
    head for 96 px inputs (where it is the identity) and accepts other patch sizes.
    (B, C, H, W) high-res images in [0, 1] -> (B,) logits (D(x) = sigmoid(logit) = probability "real")."""

    def __init__(self, image_channels: int = 1, channels: int = 64):
        super().__init__()
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (Y) or 3 (RGB), got {image_channels!r}")
        c = check_positive_int(channels, "channels")
        widths = [c, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c]
        layers, previous = [], image_channels
        for i, width in enumerate(widths):
            layers.append(nn.Conv2d(previous, width, 3, stride=1 + i % 2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(8 * c * 36, 1024),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))
        self.image_channels = image_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "x", ndim=4, channels=self.image_channels, unit_range=False)
        return self.head(self.features(x))[:, 0]


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
        check_image(x, "x", ndim=4, channels=(1, 3), unit_range=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features((x - self.mean) / self.std)


def load_vgg19_state(model: VGG19Features, state_dict: dict, source: str = "state_dict") -> VGG19Features:
    """Load a torchvision-style VGG19 ``state_dict`` into ``model`` (its ``features.*`` entries up to the model's
    layer; deeper layers and the ``classifier.*`` head are not needed). Refuses, naming them, keys that are
    missing, keys that are not VGG19's, and tensors of the wrong shape."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"{source} must be a dict of tensors (a VGG19 state dict), got {type(state_dict).__name__}")
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state_dict]
    unknown = [k for k in state_dict if k not in VGG19_KEYS]
    shapes = [f"{k}: {tuple(state_dict[k].shape)} instead of {tuple(v.shape)}" for k, v in wanted.items()
              if k in state_dict and (not isinstance(state_dict[k], torch.Tensor) or state_dict[k].shape != v.shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unknown:
        problems.append(f"keys that are not torchvision vgg19's {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    if shapes:
        problems.append(f"wrong shapes {shapes}")
    if problems:
        raise ValueError(f"{source} is not a VGG19 state dict: " + "; ".join(problems))
    model.load_state_dict({k: state_dict[k] for k in wanted})
    return model


def vgg19_cache_path() -> Path:
    """Where the ImageNet VGG19 file is cached: torch's hub folder, shared with torchvision
    (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``, usually under ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_URL).name


def load_vgg19(layer: str = "vgg54", weights: str = "imagenet", *, download: bool = False, path=None,
               url: str | None = None, sha256_prefix: str | None = VGG19_SHA256_PREFIX, seed: int = 0
               ) -> VGG19Features:
    """VGG19 features up to ``layer`` with ``weights``:

    * ``'random'``: the offline substitute, Kaiming-normal random filters (seeded). Random convolutional features
      still respond to edges and texture statistics, but they are not the ImageNet features of the paper.
    * ``'imagenet'``: torchvision's ImageNet weights. Read from ``path`` if given (any torchvision-style VGG19
      state dict; keys and shapes are checked), else from the cache (:func:`vgg19_cache_path`). If the cache is
      empty they are downloaded from ``url`` (default :data:`VGG19_URL`) **only when** ``download=True`` (548 MB, needs internet: Colab/GPU);
      the downloaded/cached file must have a sha256 starting with ``sha256_prefix``.
    """
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    url = url or VGG19_URL
    model = VGG19Features(layer, seed=seed)
    if weights == "random":
        return model
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"path: no VGG19 weights file at {file}")
        sha256_prefix = None   # the user's own copy: keys and shapes are checked instead
    else:
        file = vgg19_cache_path()
        if not file.is_file():
            if not download:
                raise FileNotFoundError(
                    f"ImageNet VGG19 weights are not cached at {file}. Pass download=True to fetch them "
                    f"(548 MB from {url}; needs internet, e.g. on Colab), path=... for your own copy, or "
                    f"weights='random' for the offline substitute")
            file.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(url, str(file), hash_prefix=None, progress=True)
            except Exception as error:   # URLError, HTTPError, timeouts, DNS failures ...
                reason = getattr(error, "reason", None) or error
                raise ConnectionError(f"could not download the VGG19 weights from {url}: {reason}. Are you "
                                      f"offline? Use weights='random' (the offline substitute) or download the "
                                      f"file elsewhere and pass path=...") from None
    if sha256_prefix is not None:
        from .checkpoints import sha256
        digest = sha256(file)
        if not digest.startswith(sha256_prefix):
            raise ValueError(f"{file} has sha256 {digest[:12]}..., expected {sha256_prefix}...: the file is "
                             f"corrupted or not torchvision's VGG19; delete it and download again")
    state = torch.load(file, map_location="cpu", weights_only=True)
    load_vgg19_state(model, state, source=str(file))
    model.weights = f"ImageNet (torchvision vgg19, {file.name})"
    return model


class ContentLoss(nn.Module):
    """SRGAN's content loss l_content(G(y), x), (B, C, H, W) images in [0, 1] -> scalar:

    * ``'mse'``: pixel MSE (eq. 4) - what SRResNet minimises; its optimum is the average of all plausible
      high-res images, hence smooth results.
    * ``'vgg22'``, ``'vgg54'``, ...: MSE between VGG19 feature maps phi_ij (eq. 5), the features multiplied by
      ``feature_scale`` = 1/12.75 (the paper's rescaling to a magnitude comparable with the MSE loss).
      ``vgg`` is a :class:`VGG19Features` for that layer (default: :func:`load_vgg19` with random weights).
    """

    def __init__(self, kind: str = "vgg54", vgg: VGG19Features | None = None, feature_scale: float = 1 / 12.75):
        super().__init__()
        if kind != "mse" and kind not in VGG19_LAYERS:
            raise ValueError(f"kind must be 'mse' or a VGG19 layer {sorted(VGG19_LAYERS)}, got {kind!r}")
        if vgg is not None and kind != "mse" and vgg.layer != kind:
            raise ValueError(f"vgg computes layer {vgg.layer!r} but kind is {kind!r}")
        self.kind = kind
        self.feature_scale = check_number(feature_scale, "feature_scale", minimum=0, strict_min=True)
        self.vgg = None if kind == "mse" else (vgg if vgg is not None else load_vgg19(kind, "random"))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"output and target must have the same shape, got {tuple(output.shape)} and "
                             f"{tuple(target.shape)}")
        if self.vgg is None:
            return F.mse_loss(output, target)
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


def make_content_loss(kind: str = "vgg54", vgg_weights: str = "random", *, sampler: "PatchSampler | None" = None,
                      download: bool = False, patches: int = 64, seed: int = 0) -> ContentLoss:
    """The content loss SRGAN training uses: pixel MSE (``kind='mse'``) or VGG features of layer ``kind`` with
    ``vgg_weights`` (:func:`load_vgg19`). ImageNet features are scaled by the paper's 1/12.75; random ones by
    :func:`matching_feature_scale` measured on ``patches`` bicubic-vs-truth pairs drawn from ``sampler``."""
    if kind == "mse":
        return ContentLoss("mse")
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
# using a model on an image

@torch.no_grad()
def super_resolve(model: nn.Module, low: torch.Tensor) -> torch.Tensor:
    """Super-resolve a low-res image with one of this module's models. (C, h, w) or (B, C, h, w) in [0, 1] ->
    (C, s h, s w) / (B, C, s h, s w). Y models: one channel -> the model's output; three channels (RGB) -> the
    model on Y, Cb and Cr by bicubic, back to RGB (the papers' way of showing colour results). RGB models
    (``image_channels=3``) see the RGB image directly (a grey image is repeated to RGB and averaged back).
    Clipped to [0, 1]."""
    check_image(low, "low", channels=(1, 3))
    if not isinstance(model, _YModel):
        raise TypeError(f"model must be one of course_utils.sr's models {sorted(MODELS)}, got {type(model).__name__}")
    single = low.dim() == 3
    low = low[None] if single else low
    model.eval()
    dev = next(iter(model.parameters()), low).device
    if model.image_channels == 3:                                # an RGB model (SRResNet image_channels=3)
        out = model(low.expand(-1, 3, -1, -1).to(dev)).clamp(0, 1).cpu()
        out = out.mean(1, keepdim=True) if low.shape[1] == 1 else out
    elif low.shape[1] == 1:
        out = model(low.to(dev)).clamp(0, 1).cpu()
    else:
        ycbcr = rgb_to_ycbcr(low)
        y = model(ycbcr[:, :1].to(dev)).clamp(0, 1).cpu()
        cbcr = ops.Upsample(model.scale)(ycbcr[:, 1:].clamp(0, 1))
        out = ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------------------------
# training data: aligned (low-res, high-res) Y crops

class PatchSampler:
    """Random aligned training patches from a list of high-res images.

    Each image is modcropped, turned into Y (BT.601) and downsampled ONCE as a whole with
    ``operators.Downsample(scale)`` (so patches carry no border artefacts of their own); a batch is then
    ``batch`` random aligned crops (low-res ``patch`` x ``patch``, high-res ``scale*patch``), each with a random
    horizontal flip and a random 90-degree rotation. Images are picked with probability proportional to area.
    All randomness comes from ``generator``.
    """

    def __init__(self, images, scale: int, patch: int):
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.patch = check_positive_int(patch, "patch")
        from .images import modcrop, rgb_to_y

        self.pairs = []
        for i, image in enumerate(images):
            check_image(image, f"images[{i}]", ndim=3, channels=(1, 3))
            hr = rgb_to_y(modcrop(image, self.scale))
            if min(hr.shape[-2:]) < self.scale * self.patch:
                raise ValueError(f"images[{i}] of size {tuple(hr.shape[-2:])} is smaller than one high-res patch "
                                 f"({self.scale * self.patch} pixels)")
            self.pairs.append((ops.Downsample(self.scale)(hr), hr))
        if not self.pairs:
            raise ValueError("images must contain at least one image")
        areas = torch.tensor([float(lr.shape[-1] * lr.shape[-2]) for lr, _ in self.pairs])
        self.weights = areas / areas.sum()

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (low (batch, 1, p, p), high (batch, 1, s p, s p))."""
        p, s = self.patch, self.scale
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=generator).tolist()
        lows, highs = [], []
        for k in picks:
            lr, hr = self.pairs[k]
            top = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=generator))
            left = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=generator))
            flip, rot = (int(v) for v in torch.randint(0, 4, (2,), generator=generator))
            low = lr[:, top: top + p, left: left + p]
            high = hr[:, s * top: s * (top + p), s * left: s * (left + p)]
            if flip % 2:
                low, high = low.flip(-1), high.flip(-1)
            low, high = low.rot90(rot, (-2, -1)), high.rot90(rot, (-2, -1))
            lows.append(low)
            highs.append(high)
        return torch.stack(lows), torch.stack(highs)


def train_steps(model: nn.Module, sampler: PatchSampler, optimizer: torch.optim.Optimizer, steps: int, *,
                batch: int = 16, loss: str = "l1", generator: torch.Generator, clip_theta: float | None = None,
                history: dict | None = None, start: int = 0, log_every: int = 10, progress: bool = True,
                bf16: bool = False, lr_at=None) -> dict:
    """Run ``steps`` optimisation steps of ``model`` on ``sampler``'s patches; returns the history
    ``{"step": [...], "loss": [...], "seconds": [...]}`` (mean loss over each ``log_every`` steps), extending
    ``history`` when resuming (``start`` = steps already done). ``clip_theta`` turns on :func:`clip_gradients`.
    ``bf16=True`` runs the forward pass under bfloat16 autocast (the loss and the weights stay float32);
    ``lr_at(step)`` (0-based global step) sets the learning rate before each step (a schedule)."""
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps", minimum=0)
    batch = check_positive_int(batch, "batch")
    if loss not in ("l1", "l2"):
        raise ValueError(f"loss must be 'l1' or 'l2', got {loss!r}")
    criterion = F.l1_loss if loss == "l1" else F.mse_loss
    history = history if history is not None else {"step": [], "loss": [], "seconds": []}
    dev = next(model.parameters()).device
    model.train()
    running, count, t0 = 0.0, 0, time.perf_counter()
    elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
    bar = tqdm(range(start, start + steps), desc=f"train {type(model).__name__}", leave=False, mininterval=1,
               disable=not progress)
    for step in bar:
        low, high = sampler.sample(batch, generator)
        low, high = low.to(dev), high.to(dev)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(low)
        value = criterion(output.float(), high)
        value.backward()
        if clip_theta is not None:
            clip_gradients(model, clip_theta, optimizer.param_groups[0]["lr"])
        optimizer.step()
        running += float(value.detach())
        count += 1
        if count == log_every or step == start + steps - 1:
            history["step"].append(step + 1)
            history["loss"].append(running / count)
            history["seconds"].append(elapsed0 + time.perf_counter() - t0)
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
    return history


def train_gan_steps(generator: nn.Module, discriminator: Discriminator, content: ContentLoss, sampler: PatchSampler,
                    optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer, steps: int, *,
                    batch: int = 16, adversarial_weight: float = 1e-3, generator_rng: torch.Generator,
                    history: dict | None = None, start: int = 0, log_every: int = 10, progress: bool = True,
                    callback=None, bf16: bool = False, lr_at=None) -> dict:
    """SRGAN training (Ledig et al. 2017, eq. 1-3), alternating per batch of (low, high) patches:

        D step:  minimise  -log D(x) - log(1 - D(G(y)))          (:func:`discriminator_loss`)
        G step:  minimise  l_content(G(y), x) + w * -log D(G(y))  (:func:`perceptual_loss`, w = adversarial_weight)

    Returns the history ``{"step", "loss", "content", "adversarial", "discriminator", "d_real", "d_fake",
    "seconds"}`` (means over each ``log_every`` steps; d_real / d_fake = mean D(x) / D(G(y)) in [0, 1]), extending
    ``history`` when resuming. ``callback(step, history)`` is called after each log (live plots in widgets).
    ``bf16`` and ``lr_at`` as in :func:`train_steps` (``lr_at`` sets both optimisers' learning rate)."""
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps", minimum=0)
    batch = check_positive_int(batch, "batch")
    adversarial_weight = check_number(adversarial_weight, "adversarial_weight", minimum=0)
    keys = ("loss", "content", "adversarial", "discriminator", "d_real", "d_fake")
    history = history if history is not None else {"step": [], **{k: [] for k in keys}, "seconds": []}
    dev = next(generator.parameters()).device
    generator.train()
    discriminator.train()
    running, count, t0 = dict.fromkeys(keys, 0.0), 0, time.perf_counter()
    elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
    bar = tqdm(range(start, start + steps), desc="train SRGAN", leave=False, mininterval=1, disable=not progress)
    for step in bar:
        low, high = sampler.sample(batch, generator_rng)
        low, high = low.to(dev), high.to(dev)
        if lr_at is not None:
            for group in (*optimizer_g.param_groups, *optimizer_d.param_groups):
                group["lr"] = lr_at(step)
        autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
        with autocast():
            fake = generator(low)
        fake = fake.float()
        # discriminator step: real patches -> 1, generated -> 0 (G is not updated: detach)
        optimizer_d.zero_grad(set_to_none=True)
        with autocast():
            real_logits, fake_logits = discriminator(high).float(), discriminator(fake.detach()).float()
        d_loss = discriminator_loss(real_logits, fake_logits)
        d_loss.backward()
        optimizer_d.step()
        # generator step: content + adversarial (D judges the same generated batch, after its update)
        optimizer_g.zero_grad(set_to_none=True)
        with autocast():
            judged = discriminator(fake).float()
            total, l_content, l_adv = perceptual_loss(fake, high, content, judged, adversarial_weight)
        total = total.float()
        total.backward()
        optimizer_g.step()
        values = {"loss": total, "content": l_content, "adversarial": l_adv, "discriminator": d_loss,
                  "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}
        for k, v in values.items():
            running[k] += float(v.detach())
        count += 1
        if count == log_every or step == start + steps - 1:
            history["step"].append(step + 1)
            for k in keys:
                history[k].append(running[k] / count)
            history["seconds"].append(elapsed0 + time.perf_counter() - t0)
            bar.set_postfix(content=f"{history['content'][-1]:.4f}", d_fake=f"{history['d_fake'][-1]:.2f}")
            running, count = dict.fromkeys(keys, 0.0), 0
            if callback is not None:
                callback(step + 1, history)
    return history

# ----------------------------------------------------------------------------------------------------------------
# the papers' evaluation protocol

def make_low_res(image: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(high, low)``: ``image`` modcropped to a multiple of ``scale`` and its low-res version made with the
    antialiased MATLAB-style bicubic ``operators.Downsample(scale)`` (the papers' test pairs)."""
    from .images import modcrop

    scale = check_positive_int(scale, "scale", minimum=2)
    high = modcrop(check_image(image, "image", channels=(1, 3)), scale)
    return high, ops.Downsample(scale)(high)


def evaluate_image(model: nn.Module, image: torch.Tensor) -> dict:
    """Evaluate ``model`` on one high-res ``image`` (1 or 3 channels, (C, H, W)) with the SR papers' protocol:
    modcrop to the scale, low-res by antialiased bicubic, Y channel (BT.601 studio range), border of ``scale``
    pixels cropped. -> ``{"psnr", "ssim", "hf", "ms"}``: hf = :func:`course_utils.metrics.high_frequency_ratio`
    of the Y output vs the Y ground truth (1 = as much detail above the low-res Nyquist as the truth), ms =
    milliseconds of the model's forward pass. RGB models (``image_channels=3``) see the RGB low-res image and are
    scored on the Y of their output."""
    from .images import rgb_to_y
    from .metrics import sr_high_frequency_ratio, sr_psnr, sr_ssim

    if not isinstance(model, _YModel):
        raise TypeError(f"model must be one of course_utils.sr's models {sorted(MODELS)}, got {type(model).__name__}")
    check_image(image, "image", ndim=3, channels=(1, 3))
    rgb = model.image_channels == 3
    if rgb and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    high, low = make_low_res(image if rgb else rgb_to_y(image), model.scale)
    model.eval()
    dev = next(iter(model.parameters()), image).device
    with torch.no_grad():
        start = time.perf_counter()
        out = model(low[None].to(dev)).clamp(0, 1).cpu()[0]
        ms = 1000 * (time.perf_counter() - start)
    return {"psnr": sr_psnr(out, high, model.scale), "ssim": sr_ssim(out, high, model.scale),
            "hf": sr_high_frequency_ratio(out, high, model.scale), "ms": ms}
