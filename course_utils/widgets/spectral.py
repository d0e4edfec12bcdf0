"""Notebook 03's panel: plain vs controlled DIP."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .. import operators as ops
from .. import spectral
from ..plotting import show_images
from . import make_panel

def spectral_demo(image, task: str = "denoise", lipschitz: float = spectral.PAPER_LIPSCHITZ, sigma: float = 0.5,
                  lr: float = spectral.PAPER_LR, iters: int = 2000, channels: int = 16, every: int = 25,
                  seed: int = 0, progress: bool = False) -> dict:
    """Fit the plain and the controlled decoder of the paper (Lipschitz bound ``lipschitz`` on every 3x3 convolution,
    Gaussian upsampling of widths (0.1, 0.1, 0.1, ``sigma``, ``sigma``) input pixels, coarse to fine; the paper:
    lambda 1.4, sigma 0.5, lr 0.001) to a degraded ``image``: 'denoise' (sigma 25) or 'inpaint' (50% pixels dropped).
    Returns ``{"runs": {name: FitResult}, "observation", "clean"}``."""
    if task not in ("denoise", "inpaint"):
        raise ValueError(f"task must be 'denoise' or 'inpaint', got {task!r}")
    generator = torch.Generator().manual_seed(seed)
    operator = None
    if task == "denoise":
        y = ops.GaussianNoise(25)(image, generator)
    else:
        operator = ops.Inpaint(ops.bernoulli_mask(image.shape[-2:], 0.5, generator))
        y = operator(image)
    chosen = spectral.variants(lipschitz, (0.1, 0.1, 0.1, sigma, sigma))
    runs = {name: spectral.fit_with_spectra(y, clean=image, operator=operator, options=chosen[name],
                                            channels=channels, iters=iters, lr=lr, every=every, seed=seed,
                                            progress=progress)
            for name in ("plain DIP", "both (Shi et al.)")}
    return {"runs": runs, "observation": y, "clean": image}


def render_spectral(result: dict):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, run in result["runs"].items():
        ax.plot(run.history["iter"], run.history["psnr"], label=name)
    ax.set(title="PSNR against the clean image", xlabel="iteration", ylabel="PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    show_images({"observation": result["observation"],
                 **{name: run.output for name, run in result["runs"].items()}, "clean (reference)": result["clean"]},
                suptitle="Final outputs")
    return fig


def spectral_panel(image, iters: int = 4000, channels: int = 32, seed: int = 0):
    """lambda, the fine upsamplers' sigma, learning rate, iterations and task -> plain vs controlled decoder PSNR
    curves (Run button: fits are slow). Defaults: the paper's settings; at 64 px, 32 channels and 4000 iterations
    (notebook 03's cpu profile) the plain decoder decays and the controlled one does not."""
    controls = {
        "lipschitz": widgets.FloatLogSlider(value=spectral.PAPER_LIPSCHITZ, base=10, min=-0.3, max=1, step=0.05,
                                            description="lambda"),
        "sigma": widgets.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.1, description="sigma (fine scales)"),
        "lr": widgets.FloatLogSlider(value=spectral.PAPER_LR, base=10, min=-4, max=-1, step=0.25,
                                     description="learning rate"),
        "iters": widgets.IntSlider(value=iters, min=50, max=10000, step=50, description="iterations"),
        "task": widgets.Dropdown(options=["denoise", "inpaint"], value="denoise", description="task"),
    }
    return make_panel(lambda **v: spectral_demo(image, channels=channels, seed=seed, progress=True, **v),
                      render_spectral, controls, run_button=True,
                      title="Spectral-bias controls: plain vs controlled decoder")
