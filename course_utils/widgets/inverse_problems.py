"""Notebook 00's panel: degradations and their PSNR/SSIM."""
from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import operators as ops
from ..metrics import psnr, ssim
from ..plotting import show_images
from . import make_panel

def degrade_demo(image, sigma: float = 25.0, scale: int = 2, drop: float = 0.5, seed: int = 0) -> dict:
    """Degrade ``image`` (C, H, W) three ways: Gaussian noise (``sigma`` on 0-255), bicubic down/up by ``scale``,
    Bernoulli pixel drop (``drop``). Returns ``{"images": {title: tensor}, "psnr": {...}, "ssim": {...}}``."""
    from ..images import modcrop

    image = modcrop(image, scale)
    generator = torch.Generator().manual_seed(seed)
    noisy = ops.GaussianNoise(sigma)(image, generator)
    low = ops.Downsample(scale)(image)
    restored = ops.Upsample(scale)(low)
    mask = ops.bernoulli_mask(image.shape[-2:], drop, generator)
    masked = ops.Inpaint(mask)(image)
    degraded = {f"noise sigma={sigma:g}": noisy, f"bicubic x{scale} down+up": restored,
                f"{drop:.0%} pixels dropped": masked}
    return {"images": {"clean": image, **degraded},
            "psnr": {k: psnr(v, image) for k, v in degraded.items()},
            "ssim": {k: ssim(v, image) for k, v in degraded.items()}}


def render_degradations(result: dict):
    titles = [k if k == "clean" else f"{k}\nPSNR {result['psnr'][k]:.2f} dB, SSIM {result['ssim'][k]:.3f}"
              for k in result["images"]]
    return show_images(list(result["images"].values()), titles, suptitle="y = A(x) + n")


def degradation_panel(image, seed: int = 0):
    """Sliders for sigma, scale and mask density -> the degraded images and their PSNR/SSIM (noise and mask drawn
    from ``seed``)."""
    controls = {
        "sigma": widgets.FloatSlider(value=25, min=0, max=100, step=5, description="sigma (0-255)"),
        "scale": widgets.IntSlider(value=2, min=2, max=8, description="scale"),
        "drop": widgets.FloatSlider(value=0.5, min=0, max=0.95, step=0.05, description="drop fraction"),
    }
    panel = make_panel(lambda **v: degrade_demo(image, seed=seed, **v), render_degradations, controls,
                       title="Degradations and their PSNR")
    return panel
