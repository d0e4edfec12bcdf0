"""Notebook 04's panel: bicubic vs a learned super-resolver, with a zoom window."""
from __future__ import annotations

import ipywidgets as widgets

from .. import sr
from ..plotting import show_images, zoom_box
from . import make_panel

def cached_model(name: str, scale: int) -> sr.SRModel:
    """``sr.load_model(name, scale)`` (bicubic is built, learned methods come from the shipped checkpoints),
    cached so that moving a slider does not reload a file."""
    if (name, scale) not in _CACHE:
        _CACHE[(name, scale)] = sr.load_model(name, scale)
    return _CACHE[(name, scale)]


_CACHE: dict = {}


def sr_compare(image, model: str = "srcnn", scale: int = 3, top: float = 0.4, left: float = 0.4,
               zoom: int = 48, *, models: dict | None = None) -> dict:
    """Super-resolve ``image`` (C, H, W) from its bicubic-downsampled version with ``model`` (bicubic, srcnn,
    espcn, vdsr; a shipped checkpoint, or ``models[model]`` if given) at ``scale``. ``top``/``left`` (0..1) place a
    ``zoom`` x ``zoom`` window. Returns ``{"images": {title: tensor}, "low", "psnr", "ssim", "box"}`` with the
    papers' protocol metrics (Y channel, border = scale). A model with no shipped checkpoint at ``scale`` is
    left out and ``"note"`` says so (the panel offers every scale some model has)."""
    from ..checkpoints import available
    from ..metrics import sr_psnr, sr_ssim

    note = ""
    if model != "bicubic" and model not in (models or {}) and scale not in available(model):
        note = f"no shipped {model} checkpoint at x{scale} (shipped: {available(model)}): bicubic only"
        model = "bicubic"
    net = (models or {}).get(model) or cached_model(model, scale)
    if net.scale != scale:
        raise ValueError(f"model {model!r} works at scale {net.scale}, not scale={scale}")
    high, low = sr.make_low_res(image, scale)
    results = {"bicubic": cached_model("bicubic", scale).upscale(low)}
    if model != "bicubic":
        results[model] = net.upscale(low)
    box = zoom_box(high, top, left, zoom)
    return {"images": {"high-res (truth)": high, **results}, "low": low, "box": box, "note": note, "scale": scale,
            "psnr": {k: sr_psnr(v, high, scale) for k, v in results.items()},
            "ssim": {k: sr_ssim(v, high, scale) for k, v in results.items()}}


def render_sr(result: dict):
    titles = [k if k not in result["psnr"] else f"{k}\nPSNR {result['psnr'][k]:.2f} dB, SSIM {result['ssim'][k]:.3f}"
              for k in result["images"]]
    note = f" - {result['note']}" if result.get("note") else ""
    return show_images(list(result["images"].values()), titles, zoom=result["box"],
                       suptitle=f"x{result.get('scale', '')} super-resolution (Y channel PSNR/SSIM, border = scale){note}")


def sr_panel(images: dict, models=("bicubic", "srcnn", "espcn", "vdsr"), scales=None):
    """Dropdowns for model, scale and image, sliders for the zoom window -> :func:`sr_compare` + figure.
    ``images``: ``{name: (C, H, W) tensor}``; ``scales``: default = every scale some model has a shipped
    checkpoint for (a model without one at the chosen scale is shown as a note, with bicubic)."""
    from ..checkpoints import available

    if not images:
        raise ValueError("images must contain at least one image")
    if scales is None:
        shipped = available()
        scales = sorted(set().union(*(set(shipped.get(m, [])) for m in models if m != "bicubic"))) or [3]
    controls = {
        "name": widgets.Dropdown(options=list(images), description="image"),
        "model": widgets.Dropdown(options=list(models), value=list(models)[-1], description="model"),
        "scale": widgets.Dropdown(options=list(scales), value=3 if 3 in scales else scales[0], description="scale"),
        "top": widgets.FloatSlider(value=0.4, min=0, max=1, step=0.05, description="zoom top"),
        "left": widgets.FloatSlider(value=0.4, min=0, max=1, step=0.05, description="zoom left"),
        "zoom": widgets.IntSlider(value=48, min=16, max=160, step=8, description="zoom size"),
    }
    return make_panel(lambda name, **v: sr_compare(images[name], **v), render_sr, controls,
                      title="Bicubic vs a learned super-resolver")
