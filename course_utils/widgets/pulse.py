"""Notebook 07's panel: one PULSE search, several restarts, live settings."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from . import make_panel


def pulse_demo(low, generator_model, eps: float = 2e-3, steps: int = 100, lr: float = 0.4,
               geocross_weight: float = 0.05, seed: int = 0, restarts: int = 3, *, truth=None,
               project: bool = True, stop: str = "best") -> dict:
    """Run :func:`course_utils.pulse.search` on ``low`` (3, h, w) in [0, 1] with ``generator_model`` (a generator
    or a name for :func:`course_utils.pulse.load_generator`) and ALL ``restarts`` (each a new random start drawn
    from ``torch.Generator(seed)``; ``stop``: "best", the authors' procedure, or "first"): several different
    high-res answers to one input.
    -> ``{"low", "truth" (or None), "outputs" (R, 3, H, W) the returned iterate of each restart, "downscaled"
    (R, 3, h, w), "l2" (R,) list, "success" (R,) list, "steps" (R,) list, "steps_to_eps" (R,) list (None where L2
    never reached eps), "history" (the search's per-step history), "eps", "answer" (index of the returned restart),
    "settings"}``."""
    from .. import operators as ops
    from .._checks import check_image, check_number, check_positive_int
    from ..pulse import _scale_for, load_generator, search

    check_image(low, "low", ndim=3, channels=3)
    G = load_generator(generator_model)
    seed = check_positive_int(seed, "seed", minimum=0)
    result = search(G, low, eps=eps, steps=steps, lr=lr, geocross_weight=geocross_weight, restarts=restarts,
                    until_success=False, stop=stop, project=project, generator=torch.Generator().manual_seed(seed))
    scale = _scale_for(G, low)
    return {"low": low, "truth": truth, "outputs": result.images, "downscaled": ops.Downsample(scale)(result.images),
            "l2": [a.l2 for a in result.attempts], "success": [a.success for a in result.attempts],
            "steps": [a.steps for a in result.attempts], "steps_to_eps": [a.steps_to_eps for a in result.attempts],
            "history": result.history, "eps": result.eps, "answer": result.chosen,
            "settings": dict(eps=check_number(eps, "eps"), steps=steps, lr=lr, geocross_weight=geocross_weight,
                             seed=seed, restarts=restarts, project=project, stop=stop)}


def render_pulse(result: dict):
    """Top row: the low-res input (and the truth if known), then each restart's answer; bottom row: what each answer
    looks like downscaled (what PULSE matched), with its L2; right: the loss of every restart per step."""
    outputs, downs = result["outputs"], result["downscaled"]
    extra = 1 + (result["truth"] is not None)
    cols = extra + len(outputs)
    fig = plt.figure(figsize=(2.2 * cols + 4, 4.6))
    grid = fig.add_gridspec(2, cols + 2)
    show = lambda ax, img, title: (ax.imshow(img.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy(),  # noqa: E731
                                             interpolation="nearest"), ax.set_title(title, fontsize=8),
                                   ax.axis("off"))
    show(fig.add_subplot(grid[0, 0]), result["low"], f"input {result['low'].shape[-1]}x{result['low'].shape[-2]}")
    if result["truth"] is not None:
        show(fig.add_subplot(grid[0, 1]), result["truth"], "truth (not seen)")
    for r, (out, down) in enumerate(zip(outputs, downs)):
        ok = "ok" if result["success"][r] else "not within eps"
        show(fig.add_subplot(grid[0, extra + r]), out, f"restart {r + 1}" + (" (answer)" if r == result["answer"]
                                                                            else ""))
        reached = result.get("steps_to_eps", [None] * len(outputs))[r]
        when = f"eps at step {reached}" if reached is not None else f"{result['steps'][r]} steps"
        show(fig.add_subplot(grid[1, extra + r]), down, f"DS: L2 {result['l2'][r]:.1e}\n{ok}, {when}")
    ax = fig.add_subplot(grid[:, cols:])
    history = result["history"]
    for r in sorted(set(history["restart"])):
        steps = [s for s, rr in zip(history["step"], history["restart"]) if rr == r]
        l2 = [v for v, rr in zip(history["l2"], history["restart"]) if rr == r]
        ax.plot(steps, l2, label=f"restart {r + 1}")
    ax.axhline(result["eps"], color="k", ls="--", lw=1, label="eps")
    ax.set(yscale="log", xlabel="step", ylabel="L2 of DS(G(w)) vs input", title="search")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pulse_panel(low, generators, *, truth=None, steps: int = 100, restarts: int = 3):
    """Controls for eps, steps, lr, GEOCROSS weight, the stopping rule (best iterate of all steps, the authors'; or
    the first within eps), seed, restarts and the generator (``generators``: a dict
    {label: generator or name}, e.g. {"balanced": G_b, "skewed": G_s}), and a Run button -> :func:`pulse_demo` +
    :func:`render_pulse`."""
    if not isinstance(generators, dict) or not generators:
        raise TypeError("generators must be a non-empty dict {label: generator or generator name}")
    controls = {
        "generator": widgets.Dropdown(options=list(generators), value=list(generators)[0], description="generator"),
        "log_eps": widgets.FloatSlider(value=-2.7, min=-4, max=-1, step=0.1, description="log10 eps"),
        "steps": widgets.IntSlider(value=steps, min=5, max=max(400, steps), step=5, description="steps"),
        "lr": widgets.FloatSlider(value=0.4, min=0.05, max=1.0, step=0.05, description="lr"),
        "geocross_weight": widgets.FloatSlider(value=0.05, min=0, max=1.0, step=0.01, description="GEOCROSS w"),
        "stop": widgets.Dropdown(options=["best", "first"], value="best", description="stop"),
        "seed": widgets.IntText(value=0, description="seed"),
        "restarts": widgets.IntSlider(value=restarts, min=1, max=max(6, restarts), description="restarts"),
    }

    def compute(generator, log_eps, steps, lr, geocross_weight, stop, seed, restarts):
        return pulse_demo(low, generators[generator], 10 ** log_eps, steps, lr, geocross_weight, seed, restarts,
                          truth=truth, stop=stop)

    return make_panel(compute, render_pulse, controls, run_button=True,
                      title="PULSE: search the generator's latent space for faces that downscale to the input")
