"""Notebook 07: PULSE - self-supervised photo upsampling by latent-space search (Menon et al., CVPR 2020).

PULSE does not regress from low-res to high-res. It searches the latent space of a pretrained generator G for an
image whose downscaled version matches the input y:

    find  G(w)  with  L2 = mean((DS(G(w)) - y)^2) <= eps        (eps = 2e-3, images in [0, 1])

where DS is the antialiased bicubic downscaling (``operators.Downsample``). Every output is on G's manifold: sharp
and plausible, and *invented* - it inherits whatever G learned, including the composition of its training data
(the paper's best-known lesson). The search (the authors' code, ``PULSE.py``, ``loss.py``,
``SphericalOptimizer.py``):

* one latent per style input (W+): v = (v_1, ..., v_L), v_l in R^d, initialised from N(0, I) and kept on the
  sphere of radius sqrt(d) (:func:`project_to_sphere` after every Adam step): Gaussian vectors in high dimension
  concentrate there, so that is where G's inputs live;
* mapped to w through the Gaussian fit of the mapping network (:func:`course_utils.stylegan.fit_gaussian`):
  w_l = LeakyReLU_0.2(v_l * sigma + mu);
* the noise maps of the first ``noise_layers`` layers are optimised too, each on its own sphere (radius
  sqrt(number of pixels)); the others stay fixed random draws;
* loss = 100 * max(L2, eps) + 0.05 * GEOCROSS(w) (:func:`geocross`, on the mapped w as in the authors'
  ``loss.py``: the mean over all L^2 ordered layer pairs of d theta_ij^2, divided by 8; it keeps the layer
  latents close, i.e. near a single-w image). The clamp stops rewarding L2 below eps, so once the image fits the
  search only lowers GEOCROSS;
* Adam (lr 0.4) with the ``linear1cycledrop`` schedule (:func:`lr_factor`) for *all* ``steps`` (100), returning
  the lowest-loss iterate (``stop="best"``, the default). ``stop="first"`` stops at the first iterate with
  L2 <= eps instead (the course's earlier procedure: faster, and it returns a face before GEOCROSS has acted);
  restarts from new random latents when the answer misses eps are the course's addition (the authors run one
  search per output) (:func:`search`; :func:`search_many` runs a batch of inputs together).

:class:`PULSE` wraps the search as a course ``SRModel``. The generators: two small StyleGAN2s the course trains on
its procedural faces (:mod:`course_utils.faces`; ``python -m course_utils.train pulse-balanced`` / ``pulse-skewed``,
``RECIPES``), and the real FFHQ StyleGAN2 for a GPU (:func:`load_stylegan2_ffhq`, opt-in download).
:func:`evaluate` measures success rate, speed, validity (are the answers faces of the world?
:func:`course_utils.faces.read_attributes`) and the bias shift.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoints, faces
from . import operators as ops
from ._checks import check_image, check_number, check_positive_int, check_tensor
from .metrics import t_interval
from .pretrained import fetch
from .sr import SRModel, Trainer, register_model
from .stylegan import (Discriminator, StyleGAN2Generator, StyleGenerator, copy_for_ema, fit_gaussian,
                       load_stylegan2_state, make_optimizers, train_gan_steps)

# ----------------------------------------------------------------------------------------------------------------
# the sphere, GEOCROSS, the learning-rate schedule


def project_to_sphere(x: torch.Tensor, radius: float | None = None, dim=-1) -> torch.Tensor:
    """Project onto the sphere: x / ||x|| * radius, the norm taken over ``dim`` (an int or a tuple), so every
    vector along ``dim`` (e.g. each layer latent of a (L, d) tensor) lands on its own sphere. ``radius`` defaults
    to sqrt(n), n = the number of entries along ``dim`` (where N(0, I_n) samples concentrate). The authors add
    1e-9 under the square root; so do we (x = 0 stays finite)."""
    check_tensor(x, "x")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    n = math.prod(x.shape[d] for d in dims)
    radius = math.sqrt(n) if radius is None else check_number(radius, "radius", minimum=0, strict_min=True)
    norm = (x.pow(2).sum(dim=dims, keepdim=True) + 1e-9).sqrt()
    return x / norm * radius


def geocross(latents: torch.Tensor) -> torch.Tensor:
    """GEOCROSS as the authors compute it (``loss.py``): (..., L, d) layer latents -> (...),

        GEOCROSS(x) = (1 / 8) mean_{i, j} d theta_ij^2,   theta_ij = 2 atan2(|x_i - x_j|, |x_i + x_j|),

    the mean over all L^2 *ordered* pairs (the zero diagonal included), divided by 8. For vectors of equal length
    theta_ij is the angle between x_i and x_j (in a numerically stable form) and sqrt(d) theta_ij the geodesic
    distance on the sphere of radius sqrt(d); GEOCROSS is zero when every layer uses the same latent (a single-w
    image) and grows with their spread. :func:`search` applies it, like the authors, to the *mapped* latents
    w = LeakyReLU_0.2(v sigma + mu), whose lengths differ, where theta_ij is the same formula and no longer
    exactly their angle. The plain mean over the L (L - 1) / 2 pairs i < j is 8 L / (L - 1) times this value
    (9.1x for the course's L = 8, 8.5x for StyleGAN's 18): the authors' weight 0.05 means this scale."""
    check_tensor(latents, "latents")
    if latents.dim() < 2 or latents.shape[-2] < 2:
        raise ValueError(f"latents must have shape (..., L, d) with L >= 2 layer latents, got {tuple(latents.shape)}")
    x, y = latents.unsqueeze(-2), latents.unsqueeze(-3)                      # (..., L, 1, d), (..., 1, L, d)
    chord_minus = ((x - y).pow(2).sum(-1) + 1e-9).sqrt()                      # 2 sin(theta / 2) |x| on a sphere
    chord_plus = ((x + y).pow(2).sum(-1) + 1e-9).sqrt()                       # 2 cos(theta / 2) |x|
    theta = 2 * torch.atan2(chord_minus, chord_plus)                          # (..., L, L)
    return (latents.shape[-1] * theta.pow(2)).mean((-2, -1)) / 8


SCHEDULES = ("linear1cycledrop", "linear1cycle", "fixed")


def lr_factor(step: int, steps: int, schedule: str = "linear1cycledrop") -> float:
    """The learning-rate multiplier at (0-based) ``step`` of ``steps`` (the authors' schedules):

    * ``linear1cycledrop``: 0.1 -> 1 linearly over the first 45 % of the steps, back to 0.1 at 90 %, then a drop
      from 0.1 to 0.001 over the last 10 % (the default);
    * ``linear1cycle``: 0.1 -> 1 -> 0.1 over all steps;  ``fixed``: 1."""
    if schedule == "fixed":
        return 1.0
    if schedule == "linear1cycle":
        return (9 * (1 - abs(step / steps - 0.5) * 2) + 1) / 10
    if schedule == "linear1cycledrop":
        if step < 0.9 * steps:
            return (9 * (1 - abs(step / (0.9 * steps) - 0.5) * 2) + 1) / 10
        return 0.1 + (step - 0.9 * steps) / (0.1 * steps) * (0.001 - 0.1)
    raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")


# ----------------------------------------------------------------------------------------------------------------
# the search


@dataclass
class Attempt:
    """One restart of :func:`search` for one input: ``steps`` = iterates evaluated (forward passes: ``steps`` with
    ``stop="best"``; with ``stop="first"`` a restart that reached eps at its k-th evaluation evaluated k),
    ``seconds`` (the restart's share of its batch's time), the returned iterate's ``l2``, ``loss`` and
    ``geocross``, ``success`` (its l2 <= eps), ``best_step`` (its 0-based step), ``steps_to_eps`` (the evaluation
    at which L2 first reached eps, 1-based; None if never) and ``min_l2`` (the lowest L2 of any iterate: the
    authors call a run successful when it is <= eps)."""

    restart: int
    steps: int
    seconds: float
    l2: float
    loss: float
    geocross: float
    success: bool
    best_step: int
    steps_to_eps: int | None = None
    min_l2: float = math.inf


@dataclass
class SearchResult:
    """What :func:`search` returns for one low-res input.

    ``image`` (3, H, W) in [0, 1]: the answer - the returned iterate of the first successful restart, or of the
    restart with the lowest L2 when none succeeded (``chosen``: its index in ``attempts``); ``downscaled`` =
    DS(image) (3, h, w); ``l2``, ``success``; ``latent`` (L, d) sphere latents, ``w`` (L, d) =
    LeakyReLU_0.2(latent sigma + mu), ``noise`` (the noise maps) of that iterate; ``attempts``: one
    :class:`Attempt` per restart run; ``images`` (R, 3, H, W): the returned iterate of every restart run;
    ``history``: per step ``restart``, ``step``, ``loss``, ``l2``, ``geocross``, ``lr``, ``norm`` (mean
    ||v_l|| / sqrt(d), 1 on the sphere); ``stop``: the rule that chose the iterates ("best" or "first")."""

    image: torch.Tensor
    downscaled: torch.Tensor
    l2: float
    success: bool
    latent: torch.Tensor
    w: torch.Tensor
    noise: list
    attempts: list
    images: torch.Tensor
    history: dict = field(default_factory=dict)
    eps: float = 2e-3
    chosen: int = 0
    stop: str = "best"

    @property
    def restarts_used(self) -> int:
        return len(self.attempts)

    @property
    def steps(self) -> int:
        """Steps over all restarts run."""
        return sum(a.steps for a in self.attempts)

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    @property
    def steps_to_eps(self) -> int | None:
        """Evaluations until L2 first reached eps in the chosen restart, when it succeeded (None otherwise)."""
        a = self.attempts[self.chosen]
        return a.steps_to_eps if a.success else None


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """Turn off parameter gradients of ``module`` for the duration (the search differentiates w.r.t. its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def low_res_sizes(G: StyleGAN2Generator) -> dict:
    """{low-res side: scale} that ``G`` can match: G.size / 2^k for k = 1 .. log2(size) (e.g. 16: x2, ..., 1: x32)."""
    return {G.size // 2 ** k: 2 ** k for k in range(1, int(math.log2(G.size)) + 1)}


def _check_generator(G) -> StyleGAN2Generator:
    if not isinstance(G, StyleGAN2Generator):
        raise TypeError(f"G must be a course_utils.stylegan.StyleGAN2Generator (e.g. pulse.load_generator("
                        f"'pulse-balanced')), got {type(G).__name__}")
    if not G.has_gaussian_fit:
        raise ValueError("G has no Gaussian fit of its mapping network (gaussian_std is zero): run "
                         "course_utils.stylegan.fit_gaussian(G) first")
    return G


def _scale_for(G: StyleGAN2Generator, low: torch.Tensor, name: str = "low") -> int:
    """The downscaling factor that maps G's output onto ``low``'s size, or a ValueError naming the sizes G can match."""
    h, w = low.shape[-2:]
    sizes = low_res_sizes(G)
    if h != w or h not in sizes:
        can = ", ".join(f"{s}x{s} (x{k})" for s, k in sizes.items())
        raise ValueError(f"{name} of size {h}x{w} cannot be matched by a {G.size}x{G.size} generator; it can match "
                         f"low-res sizes {can}")
    return sizes[h]


def _initial_state(G, latent, noise, generator):
    """Draw (or check and copy) one input's starting latents (L, d) and noise maps [(1, 1, r, r)], on the CPU."""
    L, d = G.n_latent, G.style_dim
    if latent is None:
        latent = torch.randn(L, d, generator=generator)
    else:
        check_tensor(latent, "latent")
        if tuple(latent.shape) != (L, d):
            raise ValueError(f"latent must have shape ({L}, {d}) (one {d}-d latent per style input of G), got "
                             f"{tuple(latent.shape)}")
    shapes = G.noise_shapes()
    if noise is None:
        noise = [torch.randn(shape, generator=generator) for shape in shapes]
    else:
        if not isinstance(noise, (list, tuple)) or len(noise) != len(shapes):
            raise ValueError(f"noise must be a list of {len(shapes)} maps of shapes {shapes}, got "
                             f"{len(noise) if isinstance(noise, (list, tuple)) else type(noise).__name__}")
        for i, (n, shape) in enumerate(zip(noise, shapes)):
            check_tensor(n, f"noise[{i}]")
            if tuple(n.shape) != shape:
                raise ValueError(f"noise[{i}] must have shape {shape}, got {tuple(n.shape)}")
    return latent.detach().float().cpu(), [n.detach().float().cpu() for n in noise]


STOPS = ("best", "first")
_HISTORY = ("restart", "step", "loss", "l2", "geocross", "lr", "norm")


def _run_restart(G, y, v, maps, o: dict, restarts: list, callback, progress: bool) -> tuple[dict, list]:
    """One restart each (numbered ``restarts``) for a batch of inputs ``y`` (B, 3, h, w) from latents ``v``
    (B, L, d) and noise maps [(B, 1, r, r)] (on G's device). The inputs are independent: the loss is a sum of per-input terms and Adam
    acts per entry, so a batch gives each input what a run of its own would. -> (per-input tensors of the
    returned iterate and bookkeeping, per-step history rows)."""
    from tqdm.auto import tqdm

    B, steps, eps = y.shape[0], o["steps"], o["eps"]
    mean, std = G.gaussian_mean, G.gaussian_std
    trained = o["noise_layers"]
    if o["project"]:
        v = project_to_sphere(v)
        maps = [project_to_sphere(n, dim=(1, 2, 3)) if i < trained else n for i, n in enumerate(maps)]
    v = v.clone().requires_grad_(True)
    maps = [n.clone().requires_grad_(i < trained) for i, n in enumerate(maps)]
    optimizer = torch.optim.Adam([v] + maps[:trained], lr=o["lr"])
    dev = y.device
    best = {"loss": torch.full((B,), math.inf, device=dev), "step": torch.zeros(B, dtype=torch.long, device=dev)}
    done = torch.zeros(B, dtype=torch.bool, device=dev)                        # stop="first": reached eps
    first_eps = torch.full((B,), -1, dtype=torch.long, device=dev)
    evaluated = torch.full((B,), steps, dtype=torch.long, device=dev)
    rows = []
    for step in tqdm(range(steps), desc=f"PULSE ({B} searches)", leave=False, disable=not progress):
        rate = o["lr"] * lr_factor(step, steps, o["schedule"])
        for group in optimizer.param_groups:
            group["lr"] = rate
        w = F.leaky_relu(v * std + mean, 0.2)                                 # (B, L, d): the Gaussian fit, mapped
        x = (G.synthesis(w, maps) + 1) / 2                                    # (B, 3, H, W), about [0, 1]
        l2 = (o["down"].forward(x, None) - y).pow(2).mean((1, 2, 3))          # (B,)
        gc = geocross(w)                                                      # (B,)
        loss = o["l2_weight"] * l2.clamp(min=eps) + o["geocross_weight"] * gc  # the authors' loss, per input
        with torch.no_grad():
            reached = l2 <= eps
            first_eps = torch.where((first_eps < 0) & reached, step, first_eps)
            if o["stop"] == "first":
                newly = reached & ~done
                take = ~done & (newly | (loss < best["loss"]))
                evaluated = torch.where(newly, step + 1, evaluated)
                done = done | newly
            else:
                take = loss < best["loss"]
            state = {"loss": loss, "l2": l2, "geocross": gc, "step": torch.full_like(best["step"], step),
                     "image": x, "latent": v, "w": w, **{f"noise{i}": n for i, n in enumerate(maps)}}
            for key, value in state.items():
                mask = take.view(-1, *([1] * (value.dim() - 1)))
                best[key] = torch.where(mask, value, best[key]) if key in best else value.detach().clone()
            norm = v.norm(dim=-1).mean(-1) / math.sqrt(G.style_dim)
            rows.append((step, rate, loss.detach(), l2.detach(), gc.detach(), norm))
        if callback is not None:
            for k, restart in enumerate(restarts):
                callback(restart, step, {"loss": loss[k].item(), "l2": l2[k].item(), "geocross": gc[k].item(),
                                         "lr": rate})
        if step == steps - 1 or (o["stop"] == "first" and bool(done.all())):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        if o["project"]:                                                      # back onto the spheres
            with torch.no_grad():
                v.copy_(project_to_sphere(v))
                for n in maps[:trained]:
                    n.copy_(project_to_sphere(n, dim=(1, 2, 3)))
    best["first_eps"], best["evaluated"] = first_eps, evaluated
    best["min_l2"] = torch.stack([r[3] for r in rows]).min(0).values
    return best, rows


def _search(G, lows: torch.Tensor, o: dict, *, latent=None, noise=None, callback=None, progress=False,
            batch: int | None = None) -> list:
    """The restarts of :func:`search` for a batch of inputs ``lows`` (B, 3, h, w), ``batch`` searches at a time.
    With ``until_success``, round r runs restart r of every input that has not succeeded yet; otherwise one round
    runs every restart of every input. The random starts are drawn from ``o['generator']`` restart by restart,
    input by input."""
    dev = G.input.input.device
    B, shapes = lows.shape[0], G.noise_shapes()
    y_all = lows.to(dev, torch.float32)
    batch = batch or max(1, 2 ** 16 // G.size ** 2)                          # 64 at 32 px, 1 at 1024 px
    per_input = [{"attempts": [], "bests": [], "history": {k: [] for k in _HISTORY}} for _ in range(B)]
    rounds = [[(r, i) for r in range(o["restarts"]) for i in range(B)]] if not o["until_success"] else \
        [[(0, i) for i in range(B)]]
    with torch.enable_grad(), _frozen(G):
        while rounds:
            jobs = rounds.pop(0)
            starts = [_initial_state(G, latent if (r, i) == (0, 0) else None, noise if (r, i) == (0, 0) else None,
                                     o["generator"]) for r, i in jobs]
            for c in range(0, len(jobs), batch):
                part, t0 = jobs[c: c + batch], time.perf_counter()
                v = torch.stack([start[0] for start in starts[c: c + batch]]).to(dev)
                maps = [torch.cat([start[1][m] for start in starts[c: c + batch]]).to(dev)
                        for m in range(len(shapes))]
                best, rows = _run_restart(G, y_all[[i for _, i in part]], v, maps, o, [r for r, _ in part], callback,
                                          progress)
                seconds = (time.perf_counter() - t0) / len(part)
                best = {k: val.detach().cpu() for k, val in best.items()}
                table = {k: torch.stack([row[j] for row in rows]).cpu().T.tolist()
                         for j, k in ((2, "loss"), (3, "l2"), (4, "geocross"), (5, "norm"))}
                for k, (r, i) in enumerate(part):
                    steps_to_eps = int(best["first_eps"][k]) + 1 if best["first_eps"][k] >= 0 else None
                    l2 = float(best["l2"][k])
                    attempt = Attempt(r, int(best["evaluated"][k]), seconds, l2, float(best["loss"][k]),
                                      float(best["geocross"][k]), l2 <= o["eps"], int(best["step"][k]), steps_to_eps,
                                      float(best["min_l2"][k]))
                    per_input[i]["attempts"].append(attempt)
                    per_input[i]["bests"].append({
                        "image": best["image"][k].clamp(0, 1), "latent": best["latent"][k], "w": best["w"][k],
                        "noise": [best[f"noise{m}"][k: k + 1] for m in range(len(shapes))]})
                    h = per_input[i]["history"]
                    for j, row in enumerate(rows[: attempt.steps]):
                        for key, value in (("restart", r), ("step", row[0]), ("lr", row[1]),
                                           *((name, table[name][k][j]) for name in table)):
                            h[key].append(value)
            r = jobs[0][0] + 1
            failed = [i for _, i in jobs if not per_input[i]["attempts"][-1].success]
            if o["until_success"] and failed and r < o["restarts"]:
                rounds.append([(r, i) for i in failed])
    results = []
    for p in per_input:
        attempts, bests = p["attempts"], p["bests"]
        chosen = next((k for k, a in enumerate(attempts) if a.success), None)
        chosen = chosen if chosen is not None else min(range(len(attempts)), key=lambda k: attempts[k].l2)
        b = bests[chosen]
        results.append(SearchResult(
            image=b["image"], downscaled=ops.Downsample(o["scale"])(b["image"]), l2=attempts[chosen].l2,
            success=attempts[chosen].success, latent=b["latent"], w=b["w"], noise=b["noise"], attempts=attempts,
            images=torch.stack([bb["image"] for bb in bests]), history=p["history"], eps=o["eps"], chosen=chosen,
            stop=o["stop"]))
    return results


def _options(G, low, *, eps, steps, lr, geocross_weight, l2_weight, restarts, until_success, stop, noise_layers,
             project, schedule, generator) -> dict:
    """Check :func:`search`'s options (each error names its argument) -> a dict for :func:`_search`."""
    options = dict(eps=check_number(eps, "eps", minimum=0, strict_min=True), steps=check_positive_int(steps, "steps"),
                   lr=check_number(lr, "lr", minimum=0, strict_min=True),
                   geocross_weight=check_number(geocross_weight, "geocross_weight", minimum=0),
                   l2_weight=check_number(l2_weight, "l2_weight", minimum=0, strict_min=True),
                   restarts=check_positive_int(restarts, "restarts"), until_success=bool(until_success),
                   noise_layers=check_positive_int(noise_layers, "noise_layers", minimum=0), project=bool(project))
    if options["noise_layers"] > G.num_layers:
        raise ValueError(f"noise_layers must be <= {G.num_layers} (G's noise maps), got {noise_layers}")
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {list(STOPS)} ('best': the authors' procedure, 'first': stop at the "
                         f"first iterate within eps), got {stop!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    scale = _scale_for(G, low)
    return dict(options, stop=stop, schedule=schedule, generator=generator, scale=scale,
                down=ops.Downsample(scale, clamp=False))                    # exactly linear: gradients everywhere


def search(G: StyleGAN2Generator, low: torch.Tensor, *, eps: float = 2e-3, steps: int = 100, lr: float = 0.4,
           geocross_weight: float = 0.05, l2_weight: float = 100.0, restarts: int = 1, until_success: bool = True,
           stop: str = "best", noise_layers: int = 5, project: bool = True, schedule: str = "linear1cycledrop",
           latent=None, noise=None, generator: torch.Generator | None = None, callback=None,
           progress: bool = False) -> SearchResult:
    """PULSE's search for one low-res image ``low`` (3, h, w) or (1, 3, h, w) in [0, 1] (see the module docstring).

    Each restart: latents v ~ N(0, I) (L, d) and noise maps drawn from ``generator`` (or the given ``latent`` /
    ``noise``, first restart only), projected onto their spheres; then ``steps`` iterates with Adam (lr ``lr`` x
    :func:`lr_factor`) on the authors' loss

        loss = l2_weight * max(L2, eps) + geocross_weight * GEOCROSS(w),   L2 = mean((DS(G(w)) - low)^2),
        w = LeakyReLU_0.2(v sigma + mu)

    with the first ``noise_layers`` noise maps optimised too and every optimised tensor projected back onto its
    sphere after each step (``project=False``: plain Adam, no sphere). GEOCROSS is :func:`geocross` on the mapped
    w. The clamp makes L2 stop counting once it is within eps: from then on the search only lowers GEOCROSS.

    ``stop`` chooses which iterate a restart returns:

    * ``"best"`` (default, the authors' procedure): run every step, return the lowest-loss iterate. (Their code's
      final ``yield`` then hands back the *last* iterate, not the best, whenever the lowest L2 reached eps - a
      quirk we do not copy; their log and their non-generator version keep the best.)
    * ``"first"``: stop at the first iterate with L2 <= eps and return it (the lowest-loss iterate if none gets
      there): faster, but it keeps the first face that fits, before GEOCROSS has pulled the layers together.

    A restart succeeds when its returned iterate has L2 <= eps; restarts run until one succeeds
    (``until_success=False``: all ``restarts`` run, e.g. for many answers to one input). ``callback(restart, step,
    values)`` is called after every evaluation with its loss, l2, geocross and lr. -> :class:`SearchResult`.
    ``G``: a generator with its Gaussian fit (:func:`course_utils.stylegan.fit_gaussian`); ``low``'s side must be
    G.size / 2^k (the error names the sizes G can match). :func:`search_many` runs many inputs in batches.
    """
    _check_generator(G)
    check_image(low, "low", ndim=(3, 4), channels=3)
    if low.dim() == 4 and low.shape[0] != 1:
        raise ValueError(f"low must be one image (3, h, w) or (1, 3, h, w), got a batch of shape {tuple(low.shape)}; "
                         f"pulse.search_many (or PULSE(G).upscale(batch)) searches for each image of a batch")
    o = _options(G, low, eps=eps, steps=steps, lr=lr, geocross_weight=geocross_weight, l2_weight=l2_weight,
                 restarts=restarts, until_success=until_success, stop=stop, noise_layers=noise_layers,
                 project=project, schedule=schedule, generator=generator)
    lows = low[None] if low.dim() == 3 else low
    return _search(G, lows, o, latent=latent, noise=noise, callback=callback, progress=progress)[0]


def search_many(G: StyleGAN2Generator, lows: torch.Tensor, *, eps: float = 2e-3, steps: int = 100, lr: float = 0.4,
                geocross_weight: float = 0.05, l2_weight: float = 100.0, restarts: int = 1,
                until_success: bool = True, stop: str = "best", noise_layers: int = 5, project: bool = True,
                schedule: str = "linear1cycledrop", generator: torch.Generator | None = None,
                batch: int | None = None, progress: bool = False) -> list:
    """:func:`search` for every image of ``lows`` (B, 3, h, w), ``batch`` inputs at a time (default: 64 for a
    32 px generator, 1 at 1024 px): one batched synthesis per step is several times faster than B searches on a
    CPU. Each input gets what its own search would (the loss is a sum of per-input terms, Adam acts per entry),
    up to floating-point rounding; the random starts are drawn input by input from ``generator``, restart by
    restart (restart r only for the inputs that have not succeeded). -> a list of B :class:`SearchResult`."""
    _check_generator(G)
    check_image(lows, "lows", ndim=4, channels=3)
    if batch is not None:
        batch = check_positive_int(batch, "batch")
    o = _options(G, lows, eps=eps, steps=steps, lr=lr, geocross_weight=geocross_weight, l2_weight=l2_weight,
                 restarts=restarts, until_success=until_success, stop=stop, noise_layers=noise_layers,
                 project=project, schedule=schedule, generator=generator)
    return _search(G, lows, o, progress=progress, batch=batch)


# ----------------------------------------------------------------------------------------------------------------
# PULSE as a course SR model


class PULSE(SRModel):
    """PULSE as an ``SRModel``: ``PULSE(G, scale).upscale(low, generator=g)`` runs :func:`search` on each image of
    the batch (RGB; a grey image goes through as R = G = B) and returns the answers (B, 3, G.size, G.size).

    ``G``: a :class:`course_utils.stylegan.StyleGAN2Generator` (its Gaussian fit is computed here if missing, from
    ``fit_samples`` draws of a generator seeded 0). Low-res inputs must be (G.size / scale)^2: ``low_size``.
    Options are attributes (change them between calls): ``eps``, ``steps``, ``restarts``, ``lr``,
    ``geocross_weight``, ``stop`` ("best": the authors' procedure; "first": stop at the first iterate within eps;
    see :func:`search`), ``noise_layers``, ``project``. The images of a batch are searched together
    (:func:`search_many`). Each call keeps its :class:`SearchResult` s in ``last_results`` (restarts, steps,
    seconds, L2 per input)."""

    channels = 3
    stochastic = True

    def __init__(self, G: StyleGAN2Generator, scale: int = 8, *, eps: float = 2e-3, steps: int = 100,
                 restarts: int = 3, lr: float = 0.4, geocross_weight: float = 0.05, stop: str = "best",
                 noise_layers: int = 5, project: bool = True, fit_samples: int = 100_000):
        super().__init__()
        if not isinstance(G, StyleGAN2Generator):
            raise TypeError(f"G must be a course_utils.stylegan.StyleGAN2Generator, got {type(G).__name__}")
        scale = check_positive_int(scale, "scale", minimum=2)
        scales = sorted(low_res_sizes(G).values())
        if scale not in scales:
            raise ValueError(f"scale must be one of {scales} for a {G.size}x{G.size} generator (low-res side = "
                             f"{G.size} / scale), got {scale}")
        self.G, self.scale = G, scale
        self.low_size = self.receptive_field = G.size // scale
        if not G.has_gaussian_fit:
            fit_gaussian(G, n=check_positive_int(fit_samples, "fit_samples", minimum=2))
        self.eps = check_number(eps, "eps", minimum=0, strict_min=True)
        self.steps = check_positive_int(steps, "steps")
        self.restarts = check_positive_int(restarts, "restarts")
        self.lr = check_number(lr, "lr", minimum=0, strict_min=True)
        self.geocross_weight = check_number(geocross_weight, "geocross_weight", minimum=0)
        if stop not in STOPS:
            raise ValueError(f"stop must be one of {list(STOPS)}, got {stop!r}")
        self.stop, self.noise_layers, self.project = stop, noise_layers, bool(project)
        self.last_results: list = []

    def _upscale(self, low: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if tuple(low.shape[-2:]) != (self.low_size, self.low_size):
            sizes = ", ".join(f"{s}x{s} (x{k})" for s, k in low_res_sizes(self.G).items())
            raise ValueError(f"low of size {low.shape[-2]}x{low.shape[-1]} cannot be matched: this PULSE (a "
                             f"{self.G.size}x{self.G.size} generator at scale {self.scale}) takes {self.low_size}x"
                             f"{self.low_size} inputs; the generator can match {sizes} with another scale")
        self.last_results = search_many(self.G, low.clamp(0, 1), eps=self.eps, steps=self.steps, lr=self.lr,
                                        geocross_weight=self.geocross_weight, restarts=self.restarts,
                                        stop=self.stop, noise_layers=self.noise_layers, project=self.project,
                                        generator=generator)
        return torch.stack([r.image for r in self.last_results]).to(low)


#: the generators PULSE can use by name: the course's two (shipped after training) and the real one (opt-in)
GENERATORS = {"pulse-balanced": "the course's StyleGAN2 trained on the balanced mix of procedural faces",
              "pulse-skewed": "the course's StyleGAN2 trained on the skewed (90 % light / 10 % dark) mix",
              "stylegan2-ffhq": "StyleGAN2 config-f trained on FFHQ at 1024 px (NVIDIA; non-commercial licence), "
                                "rosinality's PyTorch conversion, downloaded only on opt-in"}


def load_generator(generator="pulse-balanced", *, download: bool = False) -> StyleGAN2Generator:
    """A generator for PULSE: a name of :data:`GENERATORS` ('balanced' / 'skewed' also work; the shipped
    checkpoints, sha256-checked; 'stylegan2-ffhq' from the cache, or downloaded with ``download=True``), a
    ``StyleGAN2Generator`` (returned as is), or a dict of :class:`course_utils.stylegan.StyleGenerator` arguments
    (an untrained one, e.g. for tests)."""
    if isinstance(generator, StyleGAN2Generator):
        return generator
    if isinstance(generator, dict):
        return StyleGenerator(**generator)
    if not isinstance(generator, str):
        raise TypeError(f"generator must be a name {sorted(GENERATORS)}, a StyleGAN2Generator or a dict of "
                        f"StyleGenerator arguments, got {type(generator).__name__}")
    name = {"balanced": "pulse-balanced", "skewed": "pulse-skewed"}.get(generator, generator)
    if name == "stylegan2-ffhq":
        return load_stylegan2_ffhq(download=download)
    if name not in GENERATORS:
        raise ValueError(f"generator must be one of {sorted(GENERATORS)} (or 'balanced', 'skewed'), got {generator!r}")
    return checkpoints.load_checkpoint(name)


def build_pulse(scale: int = 8, generator="pulse-balanced", **options) -> PULSE:
    """The registry's builder: ``PULSE(load_generator(generator), scale, **options)``."""
    return PULSE(load_generator(generator), scale, **options)


# "pulse" has no weights of its own (its generator has): trained=False, so load_model builds it (with the shipped
# balanced generator by default); the tiny configuration uses an untrained 16 px generator.
register_model("pulse", build_pulse, trained=False,
               tiny=dict(generator=dict(size=16, style_dim=16, n_mlp=2, channel_base=128, channel_max=16),
                         steps=3, restarts=1, fit_samples=2000))
for _name in ("pulse-balanced", "pulse-skewed"):
    checkpoints.register_builder(_name, StyleGenerator)


# ----------------------------------------------------------------------------------------------------------------
# the real StyleGAN2 (FFHQ, 1024 px) for a GPU: opt-in download

#: rosinality's conversion of NVIDIA's StyleGAN2 config-f FFHQ generator (``stylegan2-ffhq-config-f.pt``, ~380 MB,
#: keys ``g_ema``, ``g``, ``d``, ``latent_avg``), as mirrored on the Hugging Face hub. rosinality distributes the
#: file through Google Drive (id 1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT), which has no stable direct URL; you can also
#: convert NVIDIA's ``stylegan2-ffhq-config-f.pkl`` yourself with rosinality's ``convert_weight.py``.
STYLEGAN2_FFHQ_URL = ("https://huggingface.co/akhaliq/jojogan-stylegan2-ffhq-config-f/resolve/main/"
                      "stylegan2-ffhq-config-f.pt")
#: No publisher states a sha256 for this file, so none is pinned: the loader checks every key and shape instead,
#: and prints the digest of what it loaded (pin it with ``sha256_prefix=`` once you trust your copy).
STYLEGAN2_FFHQ_SHA256 = None
STYLEGAN2_FFHQ_CONFIG = dict(size=1024, style_dim=512, n_mlp=8, channel_multiplier=2)


def load_stylegan2_ffhq(*, download: bool = False, path=None, url: str | None = None,
                        sha256_prefix: str | None = STYLEGAN2_FFHQ_SHA256, fit_samples: int = 100_000,
                        map_location="cpu", config: dict | None = None) -> StyleGAN2Generator:
    """NVIDIA's StyleGAN2 FFHQ generator (1024 px, d = 512, 8 mapping layers, config-f) in the course's plain-PyTorch
    :class:`course_utils.stylegan.StyleGAN2Generator`, from a rosinality-format checkpoint (its ``g_ema``).

    **Licence**: the FFHQ StyleGAN2 weights are NVIDIA's, under the Nvidia Source Code License-NC (non-commercial
    use only); the course never redistributes them. They are downloaded only when you ask (``download=True``)
    through :func:`course_utils.pretrained.fetch` (cached in torch's hub folder; offline -> one ``ConnectionError``)
    from :data:`STYLEGAN2_FFHQ_URL`, or read from your own copy (``path=``). Keys and shapes are checked
    (:func:`course_utils.stylegan.load_stylegan2_state`); ``sha256_prefix`` pins the file's hash if you have one.
    The Gaussian fit PULSE needs is then computed from ``fit_samples`` mapping-network draws (seeded).
    ``model.weights`` says what was loaded (file and sha256). ``config`` replaces :data:`STYLEGAN2_FFHQ_CONFIG`
    for another rosinality checkpoint (e.g. ``dict(size=256, channel_multiplier=2)``)."""
    from .pretrained import sha256

    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"path: no StyleGAN2 checkpoint file at {file}")
    else:
        file = fetch(url or STYLEGAN2_FFHQ_URL, sha256_prefix=sha256_prefix, what="StyleGAN2-FFHQ",
                     download=download, size="~380 MB", cache_as=STYLEGAN2_FFHQ_URL,
                     offline_hint="use the course's generators load_generator('pulse-balanced') / "
                                  "('pulse-skewed') instead")
    checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    state = checkpoint.get("g_ema", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    G = StyleGAN2Generator(**(STYLEGAN2_FFHQ_CONFIG if config is None else config))
    load_stylegan2_state(G, state, source=str(file))
    G = G.to(map_location).eval()
    fit_gaussian(G, n=fit_samples, generator=torch.Generator().manual_seed(0))
    G.weights = f"StyleGAN2-FFHQ from {file} (sha256 {sha256(file)[:16]}...)"
    return G


# ----------------------------------------------------------------------------------------------------------------
# training the course's generators: python -m course_utils.train pulse-balanced | pulse-skewed

#: recipe names -> the face mix they train on (see course_utils.faces.MIX_DESCRIPTIONS)
MIX_OF = {"pulse-balanced": "balanced", "pulse-skewed": "skewed"}
MIXES_DESCRIBED = {name: faces.MIX_DESCRIPTIONS[mix] for name, mix in MIX_OF.items()}

_GENERATOR = dict(size=32, style_dim=64, n_mlp=4, channel_base=1024, channel_max=64)
# Cost: one step (batch 32 freshly rendered faces, a D update, lazy R1 every 16 steps, a G update, the EMA) of the
# 272 k-parameter generator against the 289 k-parameter discriminator takes 406 ms of CPU time on one thread of the
# course machine (x86-64, torch 2.13; time.process_time; 760 ms of wall time while other jobs shared its 2 cores):
# 8000 steps are about 55 CPU minutes. r1_gamma = 1: with 0.01 (the CIFAR-sized value of StyleGAN2-ADA) D ran away
# from G in a 300-step smoke run on these easy-to-separate cartoon faces (D(real) 0.85 vs D(fake) 0.15), with 1 it
# stayed at 0.72 / 0.29 and G's loss came back down.
_RECIPE = dict(model=_GENERATOR, discriminator=dict(channel_base=1024, channel_max=64), batch=32, lr=0.002,
               r1_gamma=1.0, r1_every=16, mixing=0.9, ema_images=10_000, steps=8000, fit_samples=100_000,
               coverage_samples=2000, log_every=10)
RECIPES = {name: dict(_RECIPE, mix=mix) for name, mix in MIX_OF.items()}
#: trained without a scale: the registry key is the name (course_utils/weights/pulse-balanced.pt)
UNSCALED = tuple(RECIPES)


@torch.no_grad()
def coverage(G: StyleGAN2Generator, mix, n: int = 2000, seed: int = 0) -> dict:
    """How well ``G`` covers its data, measured by :func:`course_utils.faces.skin_tone`: the composition of ``n``
    samples of G vs ``n`` fresh faces of ``mix`` (histograms over 10 tone bins, dark-group fractions) and the
    total-variation distance between the two histograms (0 = same tone distribution, 1 = disjoint)."""
    n = check_positive_int(n, "n")
    samples = G.sample(n, torch.Generator().manual_seed(seed + 7))
    data, _ = faces.render_faces(n, mix, G.size, torch.Generator().manual_seed(seed + 11))
    s, d = faces.composition(samples), faces.composition(data)
    tv = 0.5 * sum(abs(a - b) for a, b in zip(s["histogram"], d["histogram"]))
    return {"samples": s, "data": d, "tone_tv_distance": round(tv, 4),
            "dark_fraction_samples": s["dark_fraction"], "dark_fraction_data": d["dark_fraction"]}


class GeneratorTrainer(Trainer):
    """StyleGAN2 training of the course's :class:`course_utils.stylegan.StyleGenerator` on freshly rendered faces of
    the recipe's ``mix`` (no files): G, a :class:`course_utils.stylegan.Discriminator`, Adam for both, the EMA
    generator ``model`` (what is saved). After every ``run`` the EMA generator gets its Gaussian fit
    (``fit_samples`` draws, PULSE's precomputed statistics, stored as buffers in its state dict); after the last
    step ``info['coverage']`` records :func:`coverage`."""

    def __init__(self, name: str, recipe: dict, generator: torch.Generator, seed: int = 0):
        self.name, self.recipe, self.generator, self.seed = name, recipe, generator, seed
        self.mix = recipe["mix"]
        faces.mix_fraction(self.mix)                                         # refuse an unknown mix early
        self.config = dict(recipe["model"])
        self.G = StyleGenerator(**self.config)
        self.D = Discriminator(self.G.size, **recipe["discriminator"])
        self.model = copy_for_ema(self.G)
        self.optimizer_g, self.optimizer_d = make_optimizers(self.G, self.D, recipe["lr"], recipe["r1_every"])
        self.info = {"mix": self.mix, "mix_description": faces.MIX_DESCRIPTIONS.get(self.mix, f"P(dark) = {self.mix}"),
                     "data": f"procedural faces (course_utils.faces.render_faces, {self.G.size} px), rendered "
                             f"fresh every step", "parameters_g": sum(p.numel() for p in self.G.parameters()),
                     "parameters_d": sum(p.numel() for p in self.D.parameters())}
        self.data_source = self.info["data"]

    def to(self, device):
        for module in (self.G, self.D, self.model):
            module.to(device)
        return self

    def _faces(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return faces.render_faces(batch, self.mix, self.G.size, generator)[0]

    def run(self, steps, *, start, history, progress):
        r = self.recipe
        history = train_gan_steps(self.G, self.D, self.model, self.optimizer_g, self.optimizer_d, self._faces, steps,
                                  batch=r["batch"], generator=self.generator, r1_gamma=r["r1_gamma"],
                                  r1_every=r["r1_every"], mixing=r["mixing"], ema_images=r["ema_images"],
                                  history=history, start=start, log_every=r["log_every"], progress=progress)
        fit_gaussian(self.model, n=r["fit_samples"], generator=torch.Generator().manual_seed(self.seed))
        if start + steps >= r["steps"]:
            self.info["coverage"] = coverage(self.model, self.mix, r["coverage_samples"], self.seed)
        return history

    def state_dict(self):
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "optimizer_g": self.optimizer_g.state_dict(),
                "optimizer_d": self.optimizer_d.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.generator.set_state(state["generator"])


def trainer(name: str, scale, recipe: dict, load_images, generator: torch.Generator, seed: int = 0) -> Trainer:
    """What ``python -m course_utils.train pulse-balanced|pulse-skewed`` runs (:class:`GeneratorTrainer`). The
    generators have no scale and need no image files (``load_images`` is not used)."""
    if scale is not None:
        raise ValueError(f"{name} is a generator and has no scale: leave out --scale")
    return GeneratorTrainer(name, recipe, generator, seed)


# ----------------------------------------------------------------------------------------------------------------
# evaluation: success rate, speed, and the bias shift

#: held-out faces for evaluation are drawn from torch.Generator(EVAL_SEED_OFFSET + seed); training draws its
#: faces from the training seed's generator (0, 1, ...), another stream, and the attributes are continuous, so
#: no evaluation face is a training face
EVAL_SEED_OFFSET = 1_000_003


def default_scale(G: StyleGAN2Generator) -> int:
    """x8 for the course's 32 px generators (4 x 4 inputs); the paper's 32 x 32 inputs for larger ones (x32 at
    1024 px)."""
    return 8 if G.size <= 64 else G.size // 32


def evaluate(generator_model="pulse-balanced", n: int = 50, *, seed: int = 0, scale: int | None = None,
             eps: float = 2e-3, steps: int = 100, restarts: int = 3, mix="balanced", group: str | None = None,
             lr: float = 0.4, geocross_weight: float = 0.05, stop: str = "best", progress: bool = False,
             return_images: bool = False) -> dict:
    """PULSE on ``n`` held-out rendered faces of ``mix`` (or of one skin-tone ``group``, 'light' or 'dark', for the
    bias study), downscaled by ``scale`` (default :func:`default_scale`) with ``operators.Downsample``, searched
    in batches (:func:`search_many`; ``stop``, ``geocross_weight``: see :func:`search`).

    -> a JSON-ready dict: ``success_rate`` (fraction of inputs whose answer has L2 <= eps, restarts counted: up
    to ``restarts`` tries each), ``seconds_per_face``; ``validity`` (fraction of answers that are faces of the
    world: every attribute readable, :func:`course_utils.faces.read_attributes`), ``readable`` (that fraction per
    attribute), ``fit_rmse_median`` (how far the answers are from the nearest rendered face: a realism proxy) and
    ``attributes_kept`` (fraction of valid answers whose eye colour, glasses and hair colour are the truth's);
    ``inputs``: per input ``tone_true`` (rendered), ``tone_input`` and ``tone_output`` (the skin tone of the
    high-res truth and of PULSE's answer), ``success``, ``l2``, ``steps_to_eps`` (evaluations until L2 first
    reached eps in the answer's restart, None if it did not succeed), ``steps`` (all restarts), ``seconds``,
    ``restarts_used``, ``geocross`` (of the answer's w; ``geocross_median`` over inputs), ``valid``, ``fit_rmse``;
    ``bias``: mean tone of inputs and outputs, the mean paired shift
    output - input with its 95 % t confidence interval, and the dark-group fractions of inputs and outputs. Faces
    come from ``torch.Generator(EVAL_SEED_OFFSET + seed)`` (never the training draws), the search's random starts
    from ``torch.Generator(seed)``. ``return_images=True`` adds tensors under ``images`` (not JSON)."""
    G = _check_generator(load_generator(generator_model))
    n = check_positive_int(n, "n")
    seed = check_positive_int(seed, "seed", minimum=0)
    scale = default_scale(G) if scale is None else check_positive_int(scale, "scale", minimum=2)
    if group is not None and group not in faces.GROUPS:
        raise ValueError(f"group must be None or one of {sorted(faces.GROUPS)}, got {group!r}")
    draw_mix = group if group is not None else mix
    data_rng, search_rng = torch.Generator().manual_seed(EVAL_SEED_OFFSET + seed), torch.Generator().manual_seed(seed)
    truth, attributes = [], faces.sample_attributes(n, draw_mix, data_rng)
    for start in range(0, n, 8):                                             # in chunks: 1024 px faces are big
        chunk = {k: v[start: start + 8] for k, v in attributes.items()}
        truth.append(faces.draw_faces(chunk, G.size))
    truth = torch.cat(truth)                                                 # (n, 3, size, size)
    low = ops.Downsample(scale)(truth)                                       # (n, 3, size/scale, size/scale)
    results = search_many(G, low, eps=eps, steps=steps, lr=lr, geocross_weight=geocross_weight, restarts=restarts,
                          stop=stop, generator=search_rng, progress=progress)
    outputs = torch.stack([r.image.cpu() for r in results])
    tone_truth, read_out = faces.skin_tone(truth), faces.read_attributes(outputs)
    rows = [{"index": i, "tone_true": round(float(attributes["tone"][i]), 4),
             "tone_input": round(float(tone_truth[i]), 4), "tone_output": round(float(read_out["tone"][i]), 4),
             "success": r.success, "l2": r.l2, "steps_to_eps": r.steps_to_eps, "steps": r.steps,
             "seconds": round(r.seconds, 3), "restarts_used": r.restarts_used,
             "geocross": round(r.attempts[r.chosen].geocross, 4), "valid": bool(read_out["valid"][i]),
             "fit_rmse": round(float(read_out["fit_rmse"][i]), 4)} for i, r in enumerate(results)]
    tone_in = torch.tensor([r["tone_input"] for r in rows])
    tone_out = torch.tensor([r["tone_output"] for r in rows])
    shift, low_ci, high_ci = t_interval(tone_out - tone_in)
    if low_ci is None:                                                       # one input: no interval
        low_ci = high_ci = float("nan")
    kept = read_out["valid"] & (read_out["eye"] == attributes["eye"]) & (read_out["hair"] == attributes["hair"]) \
        & (read_out["glasses"] == attributes["glasses"])
    result = {
        "generator": generator_model if isinstance(generator_model, str) else type(generator_model).__name__,
        "size": G.size, "scale": scale, "low_size": G.size // scale, "n": n, "seed": seed, "mix": draw_mix,
        "eps": eps, "steps": steps, "restarts": restarts, "lr": lr, "geocross_weight": geocross_weight,
        "stop": stop, "success_rate": sum(r["success"] for r in rows) / n,
        "seconds_per_face": sum(r["seconds"] for r in rows) / n,
        "validity": float(read_out["valid"].float().mean()),
        "readable": {k: float(read_out[f"{k}_readable"].float().mean()) for k in ("eye", "hair", "glasses", "tone")},
        "fit_rmse_median": float(read_out["fit_rmse"].median()),
        "geocross_median": float(torch.tensor([r["geocross"] for r in rows]).median()),
        "attributes_kept": float(kept.sum()) / max(int(read_out["valid"].sum()), 1),
        "inputs": rows,
        "bias": {"mean_tone_input": float(tone_in.mean()), "mean_tone_output": float(tone_out.mean()),
                 "mean_shift": shift, "shift_ci95": [low_ci, high_ci],
                 "dark_fraction_input": float(faces.tone_group(tone_in).float().mean()),
                 "dark_fraction_output": float(faces.tone_group(tone_out).float().mean())},
    }
    if return_images:
        result["images"] = {"truth": truth, "low": low, "output": outputs}
    return result
