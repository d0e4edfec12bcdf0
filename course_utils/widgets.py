"""Widget panels for the notebooks.

The pattern: a *pure function* computes everything from the hyper-parameters (tests call it directly, no
browser needed); a *render* function draws the result; :func:`make_panel` wires sliders to both. A panel keeps
its last result in ``panel.result`` so a headless test can move a slider and check what came out.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from . import operators as ops
from .metrics import psnr, ssim
from .plotting import plot_history, show_images


def make_panel(compute, render, controls: dict, *, run_button: bool = False, title: str = ""):
    """Build a panel: ``controls`` maps keyword names of ``compute`` to ipywidgets. On every change (or on the
    run button when ``run_button=True``, for slow computations) it calls ``result = compute(**values)`` and
    ``render(result)`` inside an Output area. Returns the ``VBox`` with ``.result`` and ``.update()``."""
    output = widgets.Output()
    items = [widgets.HTML(f"<b>{title}</b>")] if title else []
    items += list(controls.values())
    button = widgets.Button(description="Run", button_style="primary") if run_button else None
    panel = widgets.VBox(items + ([button] if button else []) + [output])
    panel.result = None

    def update(*_):
        values = {name: control.value for name, control in controls.items()}
        with output:
            output.clear_output(wait=True)
            panel.result = compute(**values)
            render(panel.result)
            plt.show()
        return panel.result

    if button:
        button.on_click(update)
    else:
        for control in controls.values():
            control.observe(update, names="value")
    panel.update = update
    return panel


# ------------------------------------------------------------------------------------------------------------
# notebook 00: degradations

def degrade_demo(image, sigma: float = 25.0, scale: int = 2, drop: float = 0.5, seed: int = 0) -> dict:
    """Degrade ``image`` (C, H, W) three ways: Gaussian noise (``sigma`` on 0-255), bicubic down/up by ``scale``,
    Bernoulli pixel drop (``drop``). Returns ``{"images": {title: tensor}, "psnr": {...}, "ssim": {...}}``."""
    import torch

    from .images import modcrop

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


# ------------------------------------------------------------------------------------------------------------
# notebook 01/02: deep image prior

import torch  # noqa: E402

def dip_fit_demo(image, lr: float = 0.01, width: int = 32, reg_noise: float = 1 / 30, upsample: str = "bilinear",
                 iters: int = 300, sigma: float = 25.0, every: int = 25, seed: int = 0, callback=None) -> dict:
    """Denoise ``image`` (C, H, W; H, W >= 64) with a depth-5 skip net of ``width`` channels: returns
    ``{"noisy", "clean", "fit": FitResult}`` (PSNR history of raw and averaged outputs)."""
    from . import dip

    problem = dip.degrade(image, "denoise", sigma, seed=seed)
    torch.manual_seed(seed)
    net = dip.skip_net(image.shape[0], channels=int(width), upsample=upsample)
    result = dip.fit(net, problem["y"], iters=int(iters), lr=lr, reg_noise_std=reg_noise, clean=image,
                     every=every, seed=seed, callback=callback)
    return {"noisy": problem["y"], "clean": image, "fit": result}


def render_dip_fit(out: dict):
    r = out["fit"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    tiles = [(out["noisy"], f"noisy, {psnr(out['noisy'], out['clean']):.2f} dB"),
             (r.output, f"final output, {r.final_psnr:.2f} dB"),
             (r.average, f"averaged output, {r.final_psnr_avg:.2f} dB")]
    for ax, (img, title) in zip(axes, tiles):
        ax.imshow(img.permute(1, 2, 0).squeeze().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9), ax.axis("off")
    ax = axes[3]
    ax.plot(r.history["iter"], r.history["psnr"], label="raw f(z)")
    ax.plot(r.history["iter"], r.history["psnr_avg"], label="averaged (EMA 0.99)")
    ax.axvline(r.best_iter, color="gray", ls=":", label=f"best raw: it {r.best_iter}")
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
    from . import dip

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


def dip_restore_panel(image, iters: int = 300, width: int = 32):
    """Task, sigma / scale / mask, iterations, learning rate, a Run button and a live PSNR curve."""
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
        return dip_restore_demo(image, width=width, callback=live, **values)

    return make_panel(compute, render_dip_restore, controls, run_button=True,
                      title="Deep Image Prior: one loop, three operators")


# ------------------------------------------------------------------------------------------------------------
# notebook 03: spectral bias

def spectral_demo(image, task: str = "denoise", lipschitz: float = 1.4, sigma: float = 0.5, lr: float = 0.01,
                  iters: int = 300, channels: int = 16, every: int = 25, seed: int = 0) -> dict:
    """Fit the plain and the controlled decoder (Lipschitz ``lipschitz``, Gaussian upsampling ``sigma``) to a
    degraded ``image``: 'denoise' (sigma 25) or 'inpaint' (50% pixels dropped). Returns ``{"runs": {name:
    FitResult}, "observation", "clean"}``."""
    import torch

    from . import spectral

    if task not in ("denoise", "inpaint"):
        raise ValueError(f"task must be 'denoise' or 'inpaint', got {task!r}")
    generator = torch.Generator().manual_seed(seed)
    operator = None
    if task == "denoise":
        y = ops.GaussianNoise(25)(image, generator)
    else:
        operator = ops.Inpaint(ops.bernoulli_mask(image.shape[-2:], 0.5, generator))
        y = operator(image)
    chosen = spectral.variants(lipschitz, sigma)
    runs = {name: spectral.fit_with_spectra(y, clean=image, operator=operator, options=chosen[name],
                                            channels=channels, iters=iters, lr=lr, every=every, seed=seed)
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
                 **{name: run.output for name, run in result["runs"].items()}}, suptitle="Final outputs")
    return fig


def spectral_panel(image):
    """λ, σ, learning rate, iterations and task -> plain vs controlled DIP PSNR curves (Run button: fits are slow)."""
    controls = {
        "lipschitz": widgets.FloatLogSlider(value=1.4, base=10, min=-0.3, max=1, step=0.05, description="lambda"),
        "sigma": widgets.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.1, description="upsampler sigma"),
        "lr": widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=-1, step=0.25, description="learning rate"),
        "iters": widgets.IntSlider(value=300, min=50, max=10000, step=50, description="iterations"),
        "task": widgets.Dropdown(options=["denoise", "inpaint"], value="denoise", description="task"),
    }
    return make_panel(lambda **v: spectral_demo(image, **v), render_spectral, controls, run_button=True,
                      title="Spectral-bias controls: plain vs controlled DIP")


# ------------------------------------------------------------------------------------------------------------
# notebook 04: SRCNN, ESPCN, VDSR

def _sr_model(name: str, scale: int):
    """bicubic is built; the learned models come from the shipped checkpoints (cached)."""
    from . import sr

    if name == "bicubic":
        return sr.build_model("bicubic", scale)
    key = (name, scale)
    if key not in _SR_CACHE:
        from .checkpoints import load_checkpoint
        _SR_CACHE[key] = load_checkpoint(name, scale)
    return _SR_CACHE[key]


_SR_CACHE: dict = {}


def _zoom_box(high, top: float, left: float, zoom: int) -> tuple:
    """A ``zoom`` x ``zoom`` window (clamped to 8 .. the image) placed at fractions ``top``/``left`` (0..1) of the
    free space of ``high`` (C, H, W) -> (top, left, height, width) for ``show_images(zoom=...)``."""
    from ._checks import check_number

    top, left = check_number(top, "top", minimum=0, maximum=1), check_number(left, "left", minimum=0, maximum=1)
    h, w = high.shape[-2:]
    zoom = max(8, min(int(zoom), h, w))
    return round(top * (h - zoom)), round(left * (w - zoom)), zoom, zoom


def sr_compare(image, model: str = "srcnn", scale: int = 3, top: float = 0.4, left: float = 0.4,
               zoom: int = 48, *, models: dict | None = None) -> dict:
    """Super-resolve ``image`` (C, H, W) from its bicubic-downsampled version with ``model`` (bicubic, srcnn,
    espcn, vdsr; a shipped checkpoint, or ``models[model]`` if given) at ``scale``. ``top``/``left`` (0..1) place a
    ``zoom`` x ``zoom`` window. Returns ``{"images": {title: tensor}, "low", "psnr", "ssim", "box"}`` with the
    papers' protocol metrics (Y channel, border = scale)."""
    from . import sr
    from .metrics import sr_psnr, sr_ssim

    net = (models or {}).get(model) or _sr_model(model, scale)
    if net.scale != scale:
        raise ValueError(f"model {model!r} works at scale {net.scale}, not scale={scale}")
    high, low = sr.make_low_res(image, scale)
    results = {"bicubic": sr.super_resolve(sr.build_model("bicubic", scale), low)}
    if model != "bicubic":
        results[model] = sr.super_resolve(net, low)
    box = _zoom_box(high, top, left, zoom)
    return {"images": {"high-res (truth)": high, **results}, "low": low, "box": box,
            "psnr": {k: sr_psnr(v, high, scale) for k, v in results.items()},
            "ssim": {k: sr_ssim(v, high, scale) for k, v in results.items()}}


def render_sr(result: dict):
    titles = [k if k not in result["psnr"] else f"{k}\nPSNR {result['psnr'][k]:.2f} dB, SSIM {result['ssim'][k]:.3f}"
              for k in result["images"]]
    return show_images(list(result["images"].values()), titles, zoom=result["box"],
                       suptitle="super-resolution (Y channel PSNR/SSIM, border = scale)")


def sr_panel(images: dict, models=("bicubic", "srcnn", "espcn", "vdsr"), scales=None):
    """Dropdowns for model, scale and image, sliders for the zoom window -> :func:`sr_compare` + figure.
    ``images``: ``{name: (C, H, W) tensor}``; ``scales``: default = the scales with a shipped checkpoint."""
    from .checkpoints import available

    if not images:
        raise ValueError("images must contain at least one image")
    if scales is None:
        shipped = available()
        scales = sorted(set.intersection(*(set(shipped.get(m, [])) for m in models if m != "bicubic"))) or [3]
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


# ------------------------------------------------------------------------------------------------------------
# notebook 05: SRResNet and SRGAN

def srgan_demo(image, content: str = "vgg54", adversarial_weight: float = 1e-3, iters: int = 30, *,
               generator=None, train_images=None, vgg_weights: str = "random", lr: float = 1e-4, batch: int = 4,
               patch: int = 16, top: float = 0.45, left: float = 0.45, zoom: int = 64, seed: int = 0) -> dict:
    """A short SRGAN fine-tuning run, the notebook's live experiment: start from ``generator`` (default: the
    shipped SRResNet x4), train ``iters`` steps of :func:`course_utils.sr.train_gan_steps` with the ``content``
    loss ('mse', 'vgg22', 'vgg54', ...) plus ``adversarial_weight`` x l_adv on ``train_images`` (default: the
    course's train split) against a fresh small discriminator, then super-resolve ``image`` before and after.
    -> ``{"images": {title: (C, H, W)}, "box", "psnr", "hf", "history", "content", "vgg"}`` (Y-channel PSNR,
    border = scale; hf = high-frequency power ratio to the truth, 1 = as much detail as the truth)."""
    import copy

    import torch

    from . import sr
    from ._checks import check_number, check_positive_int
    from .metrics import sr_high_frequency_ratio, sr_psnr

    iters = check_positive_int(iters, "iters", minimum=0)
    adversarial_weight = check_number(adversarial_weight, "adversarial_weight", minimum=0)
    start = generator if generator is not None else _sr_model("srresnet", 4)
    net = copy.deepcopy(start).cpu()
    scale = net.scale
    if train_images is None:
        from .images import image_set
        train_images = list(image_set("train").values())
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sampler = sr.PatchSampler(train_images, scale, max(patch, net.receptive_field))
    loss = sr.make_content_loss(content, vgg_weights, sampler=sampler, patches=16, seed=seed + 1)
    disc = sr.Discriminator(net.image_channels, channels=16)
    history = sr.train_gan_steps(net, disc, loss, sampler, torch.optim.Adam(net.parameters(), lr),
                                 torch.optim.Adam(disc.parameters(), lr), iters, batch=batch,
                                 adversarial_weight=adversarial_weight, generator_rng=rng, log_every=5,
                                 progress=False) if iters else {}
    high, low = sr.make_low_res(image, scale)
    outputs = {"bicubic": sr.super_resolve(sr.build_model("bicubic", scale), low),
               "start (SRResNet)": sr.super_resolve(start, low),
               f"after {iters} GAN steps": sr.super_resolve(net, low)}
    return {"images": {"high-res (truth)": high, **outputs}, "box": _zoom_box(high, top, left, zoom),
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
