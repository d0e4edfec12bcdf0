"""Notebook 05's panel: a short SRGAN fine-tuning run."""
from __future__ import annotations

import ipywidgets as widgets

from .. import sr, srgan
from ..plotting import plot_history, show_images, zoom_box
from . import make_panel
from .srcnn import cached_model

def srgan_demo(image, content: str = "vgg54", adversarial_weight: float = 1e-3, iters: int = 30, *,
               generator=None, train_images=None, vgg_weights: str = "random", lr: float = 1e-4, batch: int = 4,
               patch: int = 16, top: float = 0.45, left: float = 0.45, zoom: int = 64, seed: int = 0) -> dict:
    """A short SRGAN fine-tuning run, the notebook's live experiment: start from ``generator`` (default: the
    shipped SRResNet x4), train ``iters`` steps of :func:`course_utils.srgan.train_gan_steps` with the ``content``
    loss ('mse', 'vgg22', 'vgg54', ...) plus ``adversarial_weight`` x l_adv on ``train_images`` (default: the
    course's train split) against a fresh small discriminator, then super-resolve ``image`` before and after.
    -> ``{"images": {title: (C, H, W)}, "box", "psnr", "hf", "history", "content", "vgg"}`` (Y-channel PSNR,
    border = scale; hf = high-frequency power ratio to the truth, 1 = as much detail as the truth)."""
    import copy

    import torch

    from .._checks import check_number, check_positive_int
    from ..metrics import sr_high_frequency_ratio, sr_psnr

    iters = check_positive_int(iters, "iters", minimum=0)
    adversarial_weight = check_number(adversarial_weight, "adversarial_weight", minimum=0)
    start = generator if generator is not None else cached_model("srresnet", 4)
    net = copy.deepcopy(start).cpu()
    scale = net.scale
    if train_images is None:
        from ..images import image_set
        train_images = list(image_set("train").values())
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sampler = sr.PatchSampler(train_images, scale, max(patch, net.receptive_field))
    loss = srgan.make_content_loss(content, vgg_weights, sampler=sampler, patches=16, seed=seed + 1)
    disc = srgan.Discriminator(net.image_channels, channels=16)
    history = srgan.train_gan_steps(net, disc, loss, sampler, torch.optim.Adam(net.parameters(), lr),
                                 torch.optim.Adam(disc.parameters(), lr), iters, batch=batch,
                                 adversarial_weight=adversarial_weight, generator_rng=rng, log_every=5,
                                 progress=False) if iters else {}
    high, low = sr.make_low_res(image, scale)
    outputs = {"bicubic": cached_model("bicubic", scale).upscale(low), "start (SRResNet)": start.upscale(low),
               f"after {iters} GAN steps": net.upscale(low)}
    return {"images": {"high-res (truth)": high, **outputs}, "box": zoom_box(high, top, left, zoom),
            "history": history, "content": content,
            "vgg": loss.vgg.weights if loss.vgg is not None else "none (pixel MSE)",
            "psnr": {k: sr_psnr(v, high, scale) for k, v in outputs.items()},
            "hf": {k: sr_high_frequency_ratio(v, high, scale) for k, v in outputs.items()}}


def render_srgan(result: dict):
    titles = [k if k not in result["psnr"] else f"{k}\nPSNR {result['psnr'][k]:.2f} dB, HF {result['hf'][k]:.2f}"
              for k in result["images"]]
    fig = show_images(list(result["images"].values()), titles, zoom=result["box"],
                      suptitle=f"SRGAN fine-tuning, content loss {result['content']} (VGG: {result['vgg']})")
    if result["history"]:
        plot_history(result["history"], ["d_real", "d_fake"], x_key="step",
                     title="discriminator outputs: D(x) real, D(G(y)) generated", ylabel="probability 'real'",
                     xlabel="GAN training step")
    return fig


def srgan_panel(image, iters: int = 30, **fixed):
    """Dropdown for the content-loss layer, sliders for log10(adversarial weight) and iterations, a Run button
    -> :func:`srgan_demo` + figure. ``fixed`` are passed through (e.g. ``train_images``, ``generator``)."""
    controls = {
        "content": widgets.Dropdown(options=["mse", "vgg22", "vgg54"], value="vgg54", description="content"),
        "log_weight": widgets.FloatSlider(value=-3, min=-5, max=-1, step=0.5, description="log10 w_adv"),
        "iters": widgets.IntSlider(value=iters, min=0, max=max(iters * 10, 10), step=max(iters // 3, 1),
                                   description="iterations"),
    }

    def compute(content, log_weight, iters):
        return srgan_demo(image, content, 10 ** log_weight, iters, **fixed)

    return make_panel(compute, render_srgan, controls, run_button=True,
                      title="SRGAN: content loss x adversarial weight x iterations")
