"""Notebook 04: supervised super-resolution I - bicubic, SRCNN, ESPCN, VDSR.

All of them learn a map from a low-resolution luminance image y (the Y channel of BT.601 YCbCr, 1 channel) to its
high-resolution version x from training pairs (x, y = D_s(x)) made with the course's MATLAB-style antialiased
bicubic :class:`course_utils.operators.Downsample`:

    theta* = argmin_theta  E || f_theta(y) - x ||^2      (the papers' MSE)

``model(y)``: (B, 1, h, w) low-res Y in [0, 1] -> (B, 1, s h, s w); ``model.upscale(rgb)`` adds the bicubic colour
(:class:`course_utils.sr.YModel`). What differs is *where* the network works:

* :class:`SRCNN` (Dong et al. 2014) upsamples first (bicubic), then three convolutions 9-5-5 "patch extraction,
  non-linear mapping, reconstruction" in high-res space.
* :class:`ESPCN` (Shi et al. 2016) stays in low-res space (s^2 times fewer pixels) and ends with a sub-pixel
  convolution: a conv with s^2 output channels rearranged by ``pixel_shuffle`` into an s-times larger image.
* :class:`VDSR` (Kim et al. 2016) upsamples first and is deep (20 layers of 3x3x64); it predicts only the residual
  x - bicubic(y) and trains with gradient clipping (:func:`clip_gradients`).

``RECIPES`` and :func:`trainer` are what ``python -m course_utils.train {srcnn,espcn,vdsr}`` runs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import operators as ops
from ._checks import check_positive_int
from .sr import PatchSampler, SupervisedTrainer, YModel, build_model, clip_gradients, register_model

__all__ = ["Bicubic", "SRCNN", "ESPCN", "VDSR", "clip_gradients", "multiply_adds", "RECIPES", "trainer"]


class Bicubic(YModel):
    """The baseline as a method: bicubic upsampling (MATLAB-style Keys a=-0.5). No parameters."""

    def __init__(self, scale: int = 3):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.upsample = ops.Upsample(self.scale)
        self.receptive_field = 1

    def forward(self, y):
        self._check_shape(y)
        return self.upsample.forward(y, None)


class SRCNN(YModel):
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
        self._check_shape(y)
        x = self.upsample.forward(y, None)           # (B, 1, s h, s w): the network sees s^2 times more pixels
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)


class ESPCN(YModel):
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
        self._check_shape(y)
        f = torch.tanh(self.conv1(y))                 # (B, n1, h, w): low-res space
        f = torch.tanh(self.conv2(f))
        return F.pixel_shuffle(self.conv3(f), self.scale)   # (B, s^2, h, w) -> (B, 1, s h, s w)


class VDSR(YModel):
    """VDSR (Kim et al. 2016): ``depth`` 3x3 convolutions (64 channels, ReLU between) predict the residual r,

        x = bicubic(y) + r,   r = W_d * ReLU(... ReLU(W_1 * bicubic(y)))

    so the network only learns the missing high frequencies (residual learning), which makes a 20-layer plain
    network trainable with a high learning rate plus gradient clipping (:func:`clip_gradients`).

    ``residual=False`` is the plain network of the paper's residual-vs-plain comparison (x = the network's output).
    Every layer is He-initialised as in the paper; ``zero_last=True`` (the default for the residual network, used
    by the shipped checkpoint) zeroes the last layer so the residual network starts exactly at bicubic. For a fair
    comparison build both with the same ``zero_last``.
    """

    def __init__(self, scale: int = 3, depth: int = 20, channels: int = 64, residual: bool = True,
                 zero_last: bool | None = None):
        super().__init__()
        self.scale = check_positive_int(scale, "scale", minimum=2)
        depth = check_positive_int(depth, "depth", minimum=2)
        self.residual = bool(residual)
        self.upsample = ops.Upsample(self.scale)
        layers = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(channels, 1, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        for m in self.body:                               # He initialisation, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if self.residual if zero_last is None else zero_last:
            nn.init.zeros_(self.body[-1].weight)          # start exactly at bicubic (residual) / at 0 (plain)
        self.receptive_field = math.ceil((2 * depth + 1) / self.scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self._check_shape(y)
        x = self.upsample.forward(y, None)                # (B, 1, s h, s w)
        return x + self.body(x) if self.residual else self.body(x)   # residual learning


register_model("bicubic", Bicubic, trained=False)
register_model("srcnn", SRCNN, tiny=dict(n1=8, n2=4))
register_model("espcn", ESPCN, tiny=dict(n1=8, n2=4))
register_model("vdsr", VDSR, tiny=dict(depth=3, channels=8))


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


# ----------------------------------------------------------------------------------------------------------------
# training recipes (python -m course_utils.train srcnn|espcn|vdsr --scale S --images DIR)

#: patch_hr = high-res patch side (the low-res side is patch_hr / scale); loss 'l2' = MSE, the papers' loss;
#: lr_decay_at: fractions of the run after which the learning rate is multiplied by lr_decay (a step schedule);
#: bf16: bfloat16 autocast for the forward pass (about 2x faster on CPUs with AVX512-BF16 or AMX).
COMMON = dict(batch=16, loss="l2", clip_theta=None, lr_decay_at=(0.8,), lr_decay=0.1, bf16=True)
RECIPES = {
    # SRCNN and ESPCN: the 91 images of Yang et al. (T91), as in both papers
    "srcnn": dict(COMMON, patch_hr=33, lr=1e-3, steps=100000),
    "espcn": dict(COMMON, patch_hr=48, lr=1e-3, steps=100000),
    # VDSR: the 291 images (T91 + BSD200), 41 px patches; Adam instead of SGD 0.1 (see the model card)
    "vdsr": dict(COMMON, patch_hr=41, lr=3e-4, clip_theta=0.01, steps=10000),   # the shipped vdsr_x3: 10,000
}


def trainer(name: str, scale: int, recipe: dict, load_images, generator: torch.Generator,
            seed: int = 0) -> SupervisedTrainer:
    """What ``train`` runs for ``name``: the model (``recipe['model']`` = builder arguments), patches of side
    ``patch_hr`` from ``load_images(min_side)``, Adam on the recipe's loss. The global torch RNG (seeded by the
    caller) initialises the weights; ``generator`` draws the patches."""
    config = dict(recipe.get("model", {}))
    model = build_model(name, scale, **config)
    patch = max(round(recipe["patch_hr"] / scale), model.receptive_field)   # low-res patch side
    sampler = PatchSampler(load_images(patch * scale), scale, patch)
    result = SupervisedTrainer(model, config, sampler, recipe, generator)
    result.info = {"patch_lr": patch, "patch_hr": patch * scale}
    return result
