"""Notebooks 01-02's panels: a DIP denoising run, and one loop for three operators."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .. import dip
from ..metrics import psnr
from ..plotting import plot_history, show_images
from . import make_panel

def dip_fit_demo(image, lr: float = 0.01, width: int = 32, reg_noise: float = 1 / 30, upsample: str = "bilinear",
                 iters: int = 300, sigma: float = 25.0, every: int = 25, seed: int = 0, callback=None) -> dict:
    """Denoise ``image`` (C, H, W; H, W >= 64) with a depth-5 skip net of ``width`` channels: returns
    ``{"noisy", "clean", "fit": FitResult}`` (PSNR history of raw and averaged outputs)."""
    problem = dip.degrade(image, "denoise", sigma, seed=seed)
    torch.manual_seed(seed)
    net = dip.skip_net(image.shape[0], channels=int(width), upsample=upsample)
    result = dip.fit(net, problem["y"], iters=int(iters), lr=lr, reg_noise_std=reg_noise, clean=image,
                     every=every, seed=seed, callback=callback)
    return {"noisy": problem["y"], "clean": image, "fit": result}


def render_dip_fit(out: dict):
    r = out["fit"]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.4))
    tiles = [(out["noisy"], f"noisy, {psnr(out['noisy'], out['clean']):.2f} dB"),
             (r.output, f"final output, {r.final_psnr:.2f} dB"),
             (r.average, f"averaged output, {r.final_psnr_avg:.2f} dB"),
             (out["clean"], "clean (reference)")]
    for ax, (img, title) in zip(axes, tiles):
        ax.imshow(img.permute(1, 2, 0).squeeze().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9), ax.axis("off")
    ax = axes[4]
    ax.plot(r.history["iter"], r.history["psnr"], label="raw f(z)")
    ax.plot(r.history["iter"], r.history["psnr_avg"], label="averaged (EMA 0.99)")
    ax.axvline(r.best_iter, color="gray", ls=":", label=f"oracle best raw: it {r.best_iter}")
    ax.set(xlabel="iteration", ylabel="PSNR vs clean (dB)", title="PSNR against the clean image")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def dip_fit_panel(image, iters: int = 300, seed: int = 0):
    """Learning rate, width, reg-noise, upsampling mode, iterations -> a DIP denoising run (press Run), with the
    noise, z and initial weights drawn from ``seed``."""
    controls = {
        "lr": widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=-1, description="learning rate"),
        "width": widgets.IntSlider(value=32, min=8, max=128, step=8, description="width"),
        "reg_noise": widgets.FloatSlider(value=1 / 30, min=0, max=0.1, step=0.01, description="reg-noise std"),
        "upsample": widgets.Dropdown(options=["bilinear", "nearest"], value="bilinear", description="upsampling"),
        "iters": widgets.IntSlider(value=iters, min=50, max=5000, step=50, description="iterations"),
    }
    return make_panel(lambda **v: dip_fit_demo(image, seed=seed, **v), render_dip_fit, controls, run_button=True,
                      title="Deep Image Prior: denoising sigma=25")


def dip_restore_demo(image, task: str = "denoise", sigma: float = 25.0, scale: int = 4, mask: str = "text",
                     iters: int = 300, lr: float = 0.01, width: int = 32, every: int = 25, seed: int = 0,
                     callback=None) -> dict:
    """One DIP loop, three operators: ``task`` in 'denoise' (``sigma``), 'sr' (``scale``), 'inpaint' (``mask``:
    'text' or 'bernoulli'). Returns ``{"problem": dip.degrade(...) dict, "fit": FitResult, "psnr": {...}}``."""
    level = {"denoise": sigma, "sr": scale, "inpaint": mask}.get(task)
    problem = dip.degrade(image, task, level, seed=seed)
    torch.manual_seed(seed)
    net = dip.skip_net(image.shape[0], channels=int(width), upsample="nearest" if task == "inpaint" else "bilinear")
    result = dip.fit(net, problem["y"], problem["operator"], out_size=problem["out_size"], iters=int(iters), lr=lr,
                     reg_noise_std=0.03 if task != "denoise" else 1 / 30, clean=problem["clean"], every=every,
                     seed=seed, callback=callback)
    scores = {problem["label"]: psnr(problem["baseline"], problem["clean"]),
              "DIP raw": result.final_psnr, "DIP averaged": result.final_psnr_avg}
    return {"problem": problem, "fit": result, "psnr": scores}


def render_dip_restore(out: dict):
    p, r = out["problem"], out["fit"]
    images = {p["label"]: p["baseline"], "DIP (averaged)": r.average, "clean": p["clean"]}
    titles = [f"{k}\n{out['psnr'][k if k != 'DIP (averaged)' else 'DIP averaged']:.2f} dB" if k != "clean" else k
              for k in images]
    fig = show_images(list(images.values()), titles, size=2.8)
    _, ax = plt.subplots(figsize=(6, 3))
    plot_history(r.history, ["psnr", "psnr_avg"], labels=["raw", "averaged"], ax=ax, ylabel="PSNR (dB)",
                 title="PSNR against the clean image")
    return fig


def dip_restore_panel(image, iters: int = 300, width: int = 32, seed: int = 0):
    """Task, sigma / scale / mask, iterations, learning rate, a Run button and a live PSNR curve (noise, masks,
    z and initial weights drawn from ``seed``)."""
    from IPython.display import clear_output

    controls = {
        "task": widgets.Dropdown(options=["denoise", "sr", "inpaint"], value="denoise", description="task"),
        "sigma": widgets.FloatSlider(value=25, min=5, max=75, step=5, description="sigma (denoise)"),
        "scale": widgets.Dropdown(options=[2, 4, 8], value=4, description="scale (SR)"),
        "mask": widgets.Dropdown(options=["text", "bernoulli"], value="text", description="mask (inpaint)"),
        "iters": widgets.IntSlider(value=iters, min=50, max=5000, step=50, description="iterations"),
        "lr": widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=-1, description="learning rate"),
    }

    def live(step, history):  # called by dip.fit every `every` steps, inside the panel's output area
        if not history["psnr"]:
            return
        clear_output(wait=True)
        _, ax = plt.subplots(figsize=(6, 3))
        plot_history(history, ["psnr", "psnr_avg"], labels=["raw", "averaged"], ax=ax, ylabel="PSNR (dB)",
                     title=f"live PSNR, iteration {step}")
        plt.show()

    def compute(**values):
        return dip_restore_demo(image, width=width, callback=live, seed=seed, **values)

    return make_panel(compute, render_dip_restore, controls, run_button=True,
                      title="Deep Image Prior: one loop, three operators")
