"""Notebook 06's panel: SR3 samples for one low-res input (steps, sampler, seed, image)."""
from __future__ import annotations

import time

import ipywidgets as widgets

from .. import operators as ops, sr
from ..plotting import show_images
from . import make_panel
from .srcnn import cached_model


def sr3_demo(image, steps: int = 25, sampler: str = "ancestral", seed: int = 0, model=None, crop: int | None = 64,
             samples: int = 2) -> dict:
    """Super-resolve ``image`` (C, H, W) in [0, 1] with SR3 (``model``, default the shipped ``sr3`` x4
    checkpoint), ``samples`` times with ``steps`` sampling steps of ``sampler`` ('ancestral' or 'ddim'), all noise
    from ``torch.Generator().manual_seed(seed)``. ``crop`` centre-crops the high-res image to crop x crop first
    (None = the whole image; sampling costs grow with the area).

    -> ``{"low", "bicubic", "samples": [(3, H, W)], "mean", "spread" (1, H, W) = per-pixel std across samples,
    "truth", "psnr": {name: dB}, "consistency": {name: MSE}, "seconds" (per sample), "steps", "sampler", "seed",
    "scale"}`` with PSNR on Y, border = scale; consistency = MSE(downsample(output), low) on [0, 1]."""
    import torch

    from .._checks import check_image, check_positive_int
    from ..images import center_crop
    from ..metrics import sr_psnr

    check_image(image, "image", ndim=3, channels=(1, 3))
    samples = check_positive_int(samples, "samples")
    seed = check_positive_int(seed, "seed", minimum=0)
    net = model if model is not None else cached_model("sr3", 4)
    if not isinstance(net, sr.SRModel):
        raise TypeError(f"model must be a course_utils.sr.SRModel (an SR3), got {type(net).__name__}")
    s = net.scale
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    if crop is not None:
        crop = check_positive_int(crop, "crop", minimum=2 * s)
        image = center_crop(image, min(crop, *image.shape[-2:]))
    high, low = sr.make_low_res(image, s)
    generator = torch.Generator().manual_seed(seed)
    outputs, start = [], time.perf_counter()
    for _ in range(samples):
        outputs.append(net.upscale(low, steps=steps, sampler=sampler, generator=generator))
    seconds = (time.perf_counter() - start) / samples
    stack = torch.stack(outputs)
    mean = stack.mean(0)
    bicubic = ops.Upsample(s)(low)
    named = {"bicubic": bicubic, **{f"sample {i + 1}": o for i, o in enumerate(outputs)}}
    if samples > 1:
        named["mean of samples"] = mean
    return {"low": low, "bicubic": bicubic, "samples": outputs, "mean": mean, "truth": high,
            "spread": stack.std(0, unbiased=False).mean(0, keepdim=True),
            "psnr": {k: sr_psnr(v, high, s) for k, v in named.items()},
            "consistency": {k: sr.consistency(v, low, s) for k, v in named.items()},
            "seconds": seconds, "steps": steps, "sampler": sampler, "seed": seed, "scale": s}


def render_sr3(result: dict):
    """Low-res, bicubic, the samples, their mean and spread, the truth, with PSNR and consistency in the titles."""
    images = {"low-res input": result["low"]}
    for name, value in [("bicubic", result["bicubic"])] + [(f"sample {i + 1}", o) for i, o in
                                                            enumerate(result["samples"])]:
        images[f"{name}\nPSNR {result['psnr'][name]:.2f} dB, cons. {result['consistency'][name]:.1e}"] = value
    if len(result["samples"]) > 1:
        name = "mean of samples"
        images[f"{name}\nPSNR {result['psnr'][name]:.2f} dB"] = result["mean"]
        spread = result["spread"]
        images[f"spread across samples\n(std x 5, mean {float(spread.mean()):.3f})"] = (5 * spread).clamp(0, 1)
    images["high-res (truth)"] = result["truth"]
    return show_images(images, ncols=min(len(images), 4), size=2.6,
                       suptitle=f"SR3 x{result['scale']}: {result['steps']} {result['sampler']} steps, seed "
                                f"{result['seed']}, {result['seconds']:.1f} s per sample")


def sr3_panel(images: dict, model=None, crop: int | None = 64, samples: int = 2):
    """Dropdowns for image, steps and sampler, a seed box and a Run button -> :func:`sr3_demo` + figure.
    ``images``: ``{name: (C, H, W)}``; ``model``: an SR3 (default: the shipped checkpoint)."""
    if not images:
        raise ValueError("images must contain at least one image")
    net = model if model is not None else cached_model("sr3", 4)
    steps = [n for n in (1, 2, 5, 10, 25, 50, 100, 250, 1000) if n <= net.schedule.T]
    controls = {
        "name": widgets.Dropdown(options=list(images), description="image"),
        "steps": widgets.Dropdown(options=steps, value=25 if 25 in steps else steps[-1], description="steps"),
        "sampler": widgets.Dropdown(options=["ancestral", "ddim"], value="ancestral", description="sampler"),
        "seed": widgets.BoundedIntText(value=0, min=0, max=10 ** 6, description="seed"),
    }

    def compute(name, **values):
        return sr3_demo(images[name], model=net, crop=crop, samples=samples, **values)

    return make_panel(compute, render_sr3, controls, run_button=True,
                      title="SR3: sampling steps x sampler x seed")
