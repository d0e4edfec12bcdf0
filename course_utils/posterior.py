"""The face world's posterior: what a low-res input says about a face's attributes, and how super-resolvers are
judged against it (issue 25, items 2 and 4; the capstone notebook 08).

Every face of :mod:`course_utils.faces` is drawn from known attribute distributions, so for a low-res input y we
can say which attributes y fixes and what it leaves open, and then ask whether a super-resolver's K answers to y
have the attribute frequencies of that posterior.

* **The observation.** y = round(255 * DS(x)) / 255: the antialiased bicubic downscaling
  (``operators.Downsample``, which clamps to [0, 1]) of a ``WORLD_SIZE`` (32) px face, stored in 8 bits
  (:func:`observe`). The course's other code keeps low-res images as floats; the 8-bit step 1/255 is what makes
  "the input cannot carry this" a statement that can be true.
* **Can the input carry an attribute?** :func:`carry_report` renders the same face (same geometry, colours, all
  other attributes) with every value of the attribute and measures the largest change of the low-res image, in
  quantisation steps. Below one step for every face: the attribute is *not carried* and its posterior is the
  prior (:func:`prior`, :func:`prior_if_uncarried`). At 32 px this holds for eye colour at x16 and x32 only:
  at x8 (4 x 4) eye colour still moves the image by 3-5 steps, glasses by 7-26, hair and tone by 50-90.
* **A partly carried attribute** gets a classifier trained on world draws (:class:`PosteriorClassifier`: a small
  MLP on the low-res pixels, fresh rendered faces, seeded, temperature-scaled), its calibration measured on
  fresh draws (:func:`expected_calibration_error`, :func:`reliability`). One the classifier never got wrong on
  the held-out draws is *fully carried*: its posterior is one-hot. :func:`posterior` puts it together.
* **Judging a method** (:func:`evaluate`, ``python -m course_utils.evaluate posterior``): K outputs per input,
  read by :func:`course_utils.faces.read_attributes`; per attribute the frequencies f over its values plus an
  *unreadable* bin (posterior 0: an unreadable output counts as a wrong one), and

      calibration_error = mean_i TV(f_i, p_i) - mean_i E[TV(f^K, p_i)],   TV(f, p) = 1/2 sum_c |f_c - p_c|,

  where f^K are the frequencies of K draws from p_i itself (:func:`calibration_floor`, exact), so a sampler that
  draws from the posterior scores about 0 whatever K is, and a deterministic method pays for putting all K
  answers on one value.

Methods are registered in :data:`METHODS` (:func:`register_method`): one entry adds a contender.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import faces
from . import operators as ops
from ._checks import check_image, check_positive_int
from .metrics import t_interval

#: the face world's image side (the course's generators are 32 px)
WORLD_SIZE = 32
#: one step of an 8-bit image in [0, 1]
STEP = 1 / 255
#: the attributes the posterior covers: name -> the names of its values (the readers' indices)
ATTRIBUTE_VALUES = {"eye": tuple(faces.EYE_COLOURS), "glasses": ("no", "yes"), "hair": tuple(faces.HAIR_COLOURS),
                    "group": ("light", "dark")}
#: the readers' key of each attribute's readable flag
READABLE_KEY = {"eye": "eye_readable", "glasses": "glasses_readable", "hair": "hair_readable",
                "group": "tone_readable"}
#: the probability of glasses in :func:`course_utils.faces.sample_attributes`
P_GLASSES = 0.3
#: classifier training faces come from torch.Generator(TRAIN_SEED_OFFSET + seed): another stream than evaluation
#: (``pulse.EVAL_SEED_OFFSET``) and than the generators' training (0, 1, ...)
TRAIN_SEED_OFFSET = 2_000_029
#: its held-out faces (temperature, measured calibration) and :func:`carry_report`'s faces: two more streams
CALIBRATION_SEED_OFFSET = 3_000_017
CARRY_SEED_OFFSET = 4_000_037


# ----------------------------------------------------------------------------------------------------------------
# the observation and the prior

def check_scale(scale, name: str = "scale") -> int:
    """A downscaling factor of the world: an integer >= 2 that divides :data:`WORLD_SIZE` (2, 4, 8, 16, 32)."""
    scale = check_positive_int(scale, name, minimum=2)
    if WORLD_SIZE % scale:
        divisors = [s for s in range(2, WORLD_SIZE + 1) if WORLD_SIZE % s == 0]
        raise ValueError(f"{name} must divide the world's size {WORLD_SIZE} (one of {divisors}), got {scale}")
    return scale


def observe(images: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-res input of faces: y = round(255 DS(x)) / 255, DS = ``operators.Downsample(scale)`` (antialiased
    bicubic, clamped). (n, 3, 32, 32) in [0, 1] -> (n, 3, 32/scale, 32/scale) on the 8-bit grid."""
    scale = check_scale(scale)
    check_image(images, "images", ndim=4, channels=3)
    if tuple(images.shape[-2:]) != (WORLD_SIZE, WORLD_SIZE):
        raise ValueError(f"images must be faces of the world ({WORLD_SIZE}x{WORLD_SIZE}), got "
                         f"{tuple(images.shape[-2:])}")
    return torch.round(ops.Downsample(scale)(images.float()) * 255) / 255


def prior(attribute: str, mix="balanced") -> torch.Tensor:
    """The world's distribution of ``attribute`` (:data:`ATTRIBUTE_VALUES`) for ``mix``: eye and hair colour
    uniform, glasses with probability 0.3, the dark group with probability ``faces.mix_fraction(mix)``.
    -> (V,) float64 summing to 1."""
    if attribute not in ATTRIBUTE_VALUES:
        raise ValueError(f"attribute must be one of {list(ATTRIBUTE_VALUES)}, got {attribute!r}")
    v = len(ATTRIBUTE_VALUES[attribute])
    if attribute == "glasses":
        return torch.tensor([1 - P_GLASSES, P_GLASSES], dtype=torch.float64)
    if attribute == "group":
        p_dark = faces.mix_fraction(mix)
        return torch.tensor([1 - p_dark, p_dark], dtype=torch.float64)
    return torch.full((v,), 1 / v, dtype=torch.float64)


def labels(attributes: dict) -> dict:
    """The attribute values of rendered faces as indices: {name: (n,) int64}."""
    return {"eye": attributes["eye"].long(), "glasses": attributes["glasses"].long(),
            "hair": attributes["hair"].long(), "group": attributes["group"].long()}


def _with_value(attributes: dict, attribute: str, value: int) -> dict:
    """The same faces with ``attribute`` set to ``value`` for all. The group keeps each face's place in its
    tone range: t -> t + 0.6 (light to dark) or t - 0.6 (dark to light)."""
    a = dict(attributes)
    n = a["tone"].shape[0]
    if attribute == "group":
        shift = (value - a["group"].float()) * (faces.GROUPS["dark"][0] - faces.GROUPS["light"][0])
        a["tone"], a["group"] = a["tone"] + shift, torch.full((n,), value, dtype=torch.long)
    elif attribute == "glasses":
        a["glasses"] = torch.full((n,), bool(value))
    else:
        a[attribute] = torch.full((n,), value, dtype=torch.long)
    return a


def carry_report(scale: int, n: int = 512, *, seed: int = 0, mix="balanced") -> dict:
    """Can a low-res input at ``scale`` carry each attribute? For ``n`` random faces, render each face with every
    value of the attribute (everything else the same), downscale (float, before quantisation) and take the
    largest change of any low-res pixel between any two values, in quantisation steps (1/255).

    -> {attribute: {"max_change", "median_change", "min_change" (steps, over the faces), "identical_fraction"
    (faces whose 8-bit inputs are the same for every value), "carried" (max_change >= 1: some face's input moves
    by a full step)}}. Not carried: no face's input changes by a step, so the input cannot tell the values apart
    and the posterior is the prior (the renderer's own skin jitter of +-0.015 alone moves inputs by several
    steps, so a sub-step difference drowns)."""
    scale = check_scale(scale)
    n = check_positive_int(n, "n")
    attributes = faces.sample_attributes(n, mix, torch.Generator().manual_seed(CARRY_SEED_OFFSET + seed))
    down = ops.Downsample(scale)
    report = {}
    for attribute, values in ATTRIBUTE_VALUES.items():
        lows = torch.stack([down(faces.draw_faces(_with_value(attributes, attribute, v), WORLD_SIZE))
                            for v in range(len(values))])                      # (V, n, 3, h, w)
        change = (lows[:, None] - lows[None]).abs().flatten(3).amax(-1).amax(0).amax(0) / STEP  # (n,) steps
        q = torch.round(lows * 255)
        identical = (q == q[:1]).flatten(2).all(-1).all(0)                     # (n,)
        report[attribute] = {"max_change": float(change.max()), "median_change": float(change.median()),
                             "min_change": float(change.min()), "identical_fraction": float(identical.float().mean()),
                             "carried": bool(change.max() >= 1.0)}
    return report


_CARRIED: dict = {}


def carried(scale: int) -> dict:
    """{attribute: carried?} at ``scale`` from :func:`carry_report` over 1024 faces (cached)."""
    scale = check_scale(scale)
    if scale not in _CARRIED:
        _CARRIED[scale] = {k: r["carried"] for k, r in carry_report(scale, 1024).items()}
    return dict(_CARRIED[scale])


def prior_if_uncarried(attribute: str, scale: int, mix="balanced") -> torch.Tensor:
    """The posterior of an attribute the input cannot carry: the prior (:func:`prior`). Refuses (ValueError) an
    attribute that the input at ``scale`` does carry: its posterior is not the prior."""
    p = prior(attribute, mix)
    if carried(scale)[attribute]:
        report = carry_report(scale, 256)[attribute]
        raise ValueError(f"attribute {attribute!r} is carried at scale {scale}: rendering one face with each of its "
                         f"values changes the low-res image by up to {report['max_change']:.1f} quantisation steps "
                         f"(>= 1), so its posterior is not the prior; use posterior()")
    return p


# ----------------------------------------------------------------------------------------------------------------
# calibration of a classifier: expected calibration error and the reliability diagram

def reliability(probs: torch.Tensor, targets: torch.Tensor, bins: int = 10) -> dict:
    """Reliability-diagram data of top-label confidence: the predicted class's probability c = max_v p_v split
    into ``bins`` equal bins of [0, 1]; per bin the mean confidence, the accuracy (share whose predicted class is
    the target) and the count. ``probs`` (N, V) rows summing to 1, ``targets`` (N,) indices.
    -> {"edges" (bins + 1), "confidence", "accuracy", "count" (bins each; empty bins: NaN), "ece"} (lists)."""
    bins = check_positive_int(bins, "bins")
    probs, targets = torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(targets).long()
    if probs.dim() != 2 or targets.shape != probs.shape[:1]:
        raise ValueError(f"probs must be (N, V) and targets (N,), got {tuple(probs.shape)} and "
                         f"{tuple(targets.shape)}")
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).double()
    index = torch.clamp((confidence * bins).long(), max=bins - 1)               # bin k holds [k/bins, (k+1)/bins)
    count = torch.bincount(index, minlength=bins).double()
    mean_conf = torch.bincount(index, confidence, minlength=bins) / count
    accuracy = torch.bincount(index, correct, minlength=bins) / count
    gap = torch.nan_to_num((mean_conf - accuracy).abs()) * count / count.sum()
    return {"edges": torch.linspace(0, 1, bins + 1).tolist(), "confidence": mean_conf.tolist(),
            "accuracy": accuracy.tolist(), "count": count.long().tolist(), "ece": float(gap.sum())}


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = 10) -> float:
    """ECE = sum_k (n_k / N) |mean confidence_k - accuracy_k| over the ``bins`` confidence bins of
    :func:`reliability` (Guo et al. 2017; 0 = calibrated)."""
    return reliability(probs, targets, bins)["ece"]


# ----------------------------------------------------------------------------------------------------------------
# the classifier for the attributes an input partly carries

class _MLP(nn.Module):
    """Low-res pixels (n, 3, h, w) in [0, 1] -> {attribute: logits (n, V)}: standardised pixels, two hidden
    layers of ``hidden`` ReLU units, one linear head per attribute."""

    def __init__(self, pixels: int, attributes: list, hidden: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.zeros(pixels))
        self.register_buffer("std", torch.ones(pixels))
        self.body = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({a: nn.Linear(hidden, len(ATTRIBUTE_VALUES[a])) for a in attributes})

    def forward(self, low: torch.Tensor) -> dict:
        h = self.body((low.flatten(1) - self.mean) / self.std)
        return {a: head(h) for a, head in self.heads.items()}


def world_draws(n: int, scale: int, mix="balanced", generator: torch.Generator | None = None,
                chunk: int = 256) -> tuple[torch.Tensor, dict, torch.Tensor, dict]:
    """``n`` fresh faces of ``mix`` rendered in chunks -> (low (n, 3, h, w) from :func:`observe`, :func:`labels`,
    the faces (n, 3, 32, 32), their attributes)."""
    highs, attrs = [], []
    for start in range(0, n, chunk):
        x, a = faces.render_faces(min(chunk, n - start), mix, WORLD_SIZE, generator)
        highs.append(x)
        attrs.append(a)
    attributes = {k: torch.cat([a[k] for a in attrs]) for k in attrs[0]}
    high = torch.cat(highs)
    return observe(high, scale), labels(attributes), high, attributes


#: the classifier's budget by runtime profile: training faces, Adam steps, held-out faces for the temperature
#: and for the measured calibration (cpu: about 30 s on one thread)
CLASSIFIER_SETTINGS = {"ci": dict(pool=16_384, steps=1500, held_out=4096),
                       "cpu": dict(pool=98_304, steps=6000, held_out=16_384),
                       "gpu": dict(pool=98_304, steps=6000, held_out=16_384)}


@dataclass
class PosteriorClassifier:
    """The world's posterior at one (scale, mix, seed): for each attribute, how it is handled (``kind``:
    'prior' = not carried, 'classifier' = partly carried, 'one-hot' = fully carried: the classifier made no
    error on the held-out draws), the trained MLP, its per-head temperature, and ``info`` (held-out accuracy,
    ECE, NLL and the prior's NLL per attribute, the reliability data, settings, seconds)."""
    scale: int
    mix: object
    seed: int
    kind: dict
    model: _MLP | None
    temperature: dict
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, low: torch.Tensor) -> dict:
        """low (n, 3, h, w) on the 8-bit grid -> {attribute: (n, V) float64 probabilities}."""
        n = low.shape[0]
        logits = self.model(low.float()) if self.model is not None else {}
        out = {}
        for attribute, kind in self.kind.items():
            if kind == "prior":
                out[attribute] = prior(attribute, self.mix).expand(n, -1).clone()
                continue
            p = F.softmax(logits[attribute].double() / self.temperature[attribute], dim=1)
            if kind == "one-hot":
                p = F.one_hot(p.argmax(1), p.shape[1]).double()
            out[attribute] = p
        return out


def _fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T in exp(linspace(log 0.25, log 4, 81)) minimising the NLL of softmax(logits / T) (temperature scaling,
    Guo et al. 2017)."""
    grid = torch.exp(torch.linspace(math.log(0.25), math.log(4), 81))
    nll = torch.stack([F.cross_entropy(logits / t, targets) for t in grid])
    return float(grid[nll.argmin()])


def train_classifier(scale: int, mix="balanced", seed: int = 0, *, pool: int | None = None, steps: int | None = None,
                     held_out: int | None = None, batch: int = 256, lr: float = 2e-3, hidden: int = 256,
                     progress: bool = False) -> PosteriorClassifier:
    """Train the posterior classifier for the carried attributes at ``scale`` (:func:`carried`) on ``pool``
    fresh faces of ``mix`` (torch.Generator(TRAIN_SEED_OFFSET + seed)): Adam (lr ``lr``, cosine decay) on the
    sum of the heads' cross-entropies, ``steps`` batches of ``batch``; then one temperature per head fitted on
    ``held_out`` fresh faces and the calibration measured on another ``held_out`` (accuracy, ECE with 10 bins,
    NLL vs the prior's). Defaults by profile (:data:`CLASSIFIER_SETTINGS`)."""
    from .runtime import settings

    scale = check_scale(scale)
    faces.mix_fraction(mix)
    cfg = settings(**CLASSIFIER_SETTINGS)   # a copy of the profile's dict (smoke mode: steps cut)
    cfg.update({k: v for k, v in dict(pool=pool, steps=steps, held_out=held_out).items() if v is not None})
    cfg.update(batch=batch, lr=lr, hidden=hidden)
    start = time.perf_counter()
    kind = {a: ("classifier" if c else "prior") for a, c in carried(scale).items()}
    used = [a for a, k in kind.items() if k != "prior"]
    if not used:
        return PosteriorClassifier(scale, mix, seed, kind, None, {}, {"settings": cfg})
    g = torch.Generator().manual_seed(TRAIN_SEED_OFFSET + seed)
    low, y, _, _ = world_draws(cfg["pool"], scale, mix, g)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _MLP(low[0].numel(), used, hidden)
    model.mean.copy_(low.flatten(1).mean(0))
    model.std.copy_(low.flatten(1).std(0).clamp_min(1e-3))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg["steps"])
    order = torch.randperm(cfg["pool"], generator=g)
    for step in range(cfg["steps"]):
        at = (step * batch) % cfg["pool"]
        if at + batch > cfg["pool"]:
            order, at = torch.randperm(cfg["pool"], generator=g), 0
        idx = order[at: at + batch]
        logits = model(low[idx])
        loss = sum(F.cross_entropy(logits[a], y[a][idx]) for a in used)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress and step % 1000 == 0:
            print(f"posterior classifier x{scale}: step {step} loss {float(loss.detach()):.4f}", flush=True)
    return calibrate(model.eval(), scale, mix, seed, held_out=cfg["held_out"],
                     info={"settings": cfg, "seconds_training": time.perf_counter() - start})


@torch.no_grad()
def calibrate(model: _MLP, scale: int, mix="balanced", seed: int = 0, *, held_out: int = 16_384,
              info: dict | None = None) -> PosteriorClassifier:
    """Finish a trained MLP: one temperature per head fitted on ``held_out`` fresh faces, then on another
    ``held_out`` (both from torch.Generator(CALIBRATION_SEED_OFFSET + seed), never the training pool) the
    held-out accuracy, ECE, NLL (and the prior's), the reliability data; a head with no error there is
    one-hot (fully carried). -> :class:`PosteriorClassifier`."""
    start = time.perf_counter()
    scale = check_scale(scale)
    kind = {a: ("classifier" if a in model.heads else "prior") for a in ATTRIBUTE_VALUES}
    used = list(model.heads)
    g = torch.Generator().manual_seed(CALIBRATION_SEED_OFFSET + seed)
    low_val, y_val, _, _ = world_draws(held_out, scale, mix, g)
    logits_val = model(low_val)
    temperature = {a: _fit_temperature(logits_val[a], y_val[a]) for a in used}
    low_test, y_test, _, _ = world_draws(held_out, scale, mix, g)
    logits_test = model(low_test)
    info = dict(info or {}, held_out=held_out, attributes={})
    for a in used:
        p = F.softmax(logits_test[a].double() / temperature[a], dim=1)
        accuracy = float((p.argmax(1) == y_test[a]).double().mean())
        if accuracy == 1.0:
            kind[a] = "one-hot"
        info["attributes"][a] = {
            "accuracy": accuracy, "ece": expected_calibration_error(p, y_test[a]),
            "nll": float(F.nll_loss(p.clamp_min(1e-12).log(), y_test[a])),
            "prior_nll": float(-prior(a, mix).log()[y_test[a]].mean()),
            "temperature": temperature[a], "reliability": reliability(p, y_test[a])}
    info["seconds_calibration"] = time.perf_counter() - start
    info["parameters"] = sum(p.numel() for p in model.parameters())
    return PosteriorClassifier(scale, mix, seed, kind, model, temperature, info)


#: the recipe of the shipped classifiers (x4 and x8, balanced world, seed 0): the eye colour at x8 keeps gaining
#: from training long after a minute (held-out NLL 0.76 after 6000 steps of 256, lower with more), so these
#: are trained once for longer and shipped (:data:`SHIPPED`)
SHIP_RECIPE = dict(pool=196_608, steps=16_000, held_out=16_384, batch=512, hidden=512)
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: (scale, mix, seed) -> (file in WEIGHTS_DIR, sha256) of the shipped classifiers
SHIPPED: dict = {(8, "balanced", 0): ("posterior_x8.pt",
                                    "d765c5e118016e83d4d6d3a2dca1a882b50782131a2f3b8fd5795882d619e3cf")}


def save_classifier(model: PosteriorClassifier, path) -> str:
    """Write a trained classifier (state, kinds, temperatures, info) to ``path``; -> its sha256."""
    import hashlib

    torch.save({"scale": model.scale, "mix": model.mix, "seed": model.seed, "kind": model.kind,
                "temperature": model.temperature, "info": model.info,
                "hidden": model.model.body[0].out_features, "state": model.model.state_dict()}, path)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_classifier(path, sha256: str | None = None) -> PosteriorClassifier:
    """Read a classifier written by :func:`save_classifier`, checking its sha256 when given."""
    import hashlib

    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path} has sha256 {hashlib.sha256(data).hexdigest()}, expected {sha256}: the file is "
                         f"corrupted or replaced; rebuild it with posterior.save_classifier(posterior."
                         f"train_classifier(scale, **posterior.SHIP_RECIPE), path)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    used = [a for a, k in saved["kind"].items() if k != "prior"]
    pixels = saved["state"]["mean"].numel()
    model = _MLP(pixels, used, saved["hidden"])
    model.load_state_dict(saved["state"])
    info = dict(saved["info"], file=Path(path).name)
    return PosteriorClassifier(saved["scale"], saved["mix"], saved["seed"], saved["kind"], model.eval(),
                               saved["temperature"], info)


_CLASSIFIERS: dict = {}


def classifier(scale: int, mix="balanced", seed: int = 0) -> PosteriorClassifier:
    """The posterior classifier for (scale, mix, seed): the shipped one where there is one (:data:`SHIPPED`,
    sha256-checked), else :func:`train_classifier` with the profile's budget (ci: seconds, cpu: about a minute),
    trained once per process and cached in memory."""
    from .runtime import profile, smoke

    scale = check_scale(scale)
    shipped = SHIPPED.get((scale, mix, seed))
    key = (scale, mix, seed, "shipped" if shipped else profile() + ("-smoke" if smoke() else ""))
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = (load_classifier(WEIGHTS_DIR / shipped[0], shipped[1]) if shipped
                             else train_classifier(scale, mix, seed))
    return _CLASSIFIERS[key]


def _check_low(low, scale: int) -> torch.Tensor:
    check_image(low, "low", ndim=(3, 4), channels=3)
    side = WORLD_SIZE // scale
    if tuple(low.shape[-2:]) != (side, side):
        raise ValueError(f"low must be a {side}x{side} input of the world at scale {scale} ({WORLD_SIZE} px faces "
                         f"downscaled by {scale}), got {low.shape[-2]}x{low.shape[-1]}")
    return low[None] if low.dim() == 3 else low


def posterior(low: torch.Tensor, scale: int, mix="balanced", *, seed: int = 0) -> dict:
    """The world's posterior of each attribute given a low-res input. ``low`` (n, 3, h, w) or (3, h, w) in [0, 1]
    with h = 32 / ``scale`` (rounded to the 8-bit grid first, as :func:`observe` makes it); ``mix`` the world's
    composition. -> {attribute: (n, V) float64 probability vectors over :data:`ATTRIBUTE_VALUES`} ((V,) for one
    image): the prior for an attribute the input cannot carry, the calibrated classifier's probabilities for one
    it partly carries, one-hot for one it fully carries (:class:`PosteriorClassifier`)."""
    scale = check_scale(scale)
    batch = _check_low(low, scale)
    out = classifier(scale, mix, seed)(torch.round(batch.float() * 255) / 255)
    return {a: p[0] for a, p in out.items()} if low.dim() == 3 else out


# ----------------------------------------------------------------------------------------------------------------
# the calibration of K samples against the posterior

def frequencies(values: torch.Tensor, readable: torch.Tensor, n_values: int) -> torch.Tensor:
    """Attribute frequencies over K outputs per input: ``values`` (n, K) indices, ``readable`` (n, K) bool ->
    (n, n_values + 1) float64; the last bin counts the unreadable outputs."""
    values = torch.where(readable.bool(), values.long(), torch.full_like(values.long(), n_values))
    counts = F.one_hot(values, n_values + 1).sum(1).double()
    return counts / values.shape[1]


def tv_distance(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """TV(f, p) = 1/2 sum_c |f_c - p_c| over the last dimension; a posterior p with one bin fewer than f gets
    probability 0 for the unreadable bin."""
    if p.shape[-1] == f.shape[-1] - 1:
        p = F.pad(p, (0, 1))
    return 0.5 * (f - p).abs().sum(-1)


def calibration_floor(p: torch.Tensor, samples: int) -> torch.Tensor:
    """E[TV(f^K, p)] for f^K the frequencies of K = ``samples`` independent draws from p (n, V): exactly, since
    the expectation of a sum is the sum of the marginal expectations and K f_c ~ Binomial(K, p_c):

        E TV = 1/2 sum_c sum_{k=0..K} C(K, k) p_c^k (1 - p_c)^(K - k) |k / K - p_c|.    -> (n,)"""
    samples = check_positive_int(samples, "samples")
    p = torch.as_tensor(p, dtype=torch.float64)
    k = torch.arange(samples + 1, dtype=torch.float64)
    log_choose = torch.lgamma(torch.tensor(samples + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(samples - k + 1)
    pc = p[..., None]                                                           # (n, V, 1)
    log_pmf = log_choose + k * torch.log(pc.clamp_min(1e-300)) + (samples - k) * torch.log((1 - pc).clamp_min(1e-300))
    pmf = torch.where(pc <= 0, (k == 0).double(), torch.where(pc >= 1, (k == samples).double(), torch.exp(log_pmf)))
    return 0.5 * (pmf * (k / samples - pc).abs()).sum((-1, -2))


def calibration(values: torch.Tensor, readable: torch.Tensor, post: torch.Tensor) -> dict:
    """The calibration of K outputs per input for one attribute: ``values``, ``readable`` (n, K), the posterior
    ``post`` (n, V). -> {"tv" (n,), "floor" (n,), "error": mean tv - mean floor, "floor_mean": mean floor}."""
    f = frequencies(values, readable, post.shape[1])
    tv, floor = tv_distance(f, post), calibration_floor(post, values.shape[1])
    return {"tv": tv, "floor": floor, "error": float(tv.mean() - floor.mean()), "floor_mean": float(floor.mean())}


def read_values(images: torch.Tensor) -> tuple[dict, dict, dict]:
    """Read outputs (N, 3, 32, 32) -> ({attribute: (N,) index}, {attribute: (N,) readable}, the readers' dict)."""
    read = faces.read_attributes(images)
    values = {"eye": read["eye"], "glasses": read["glasses"].long(), "hair": read["hair"], "group": read["group"]}
    return values, {a: read[READABLE_KEY[a]] for a in ATTRIBUTE_VALUES}, read


# ----------------------------------------------------------------------------------------------------------------
# the methods: K outputs for each low-res input

#: name -> (sampler, description). ``sampler(low, scale, samples, generator, world, **options)`` gets the inputs
#: (n, 3, h, w) and returns (n, K, 3, 32, 32) in [0, 1]; ``world`` (the inputs' true attributes) is for
#: reference samplers only ('oracle'); a super-resolver must ignore it
METHODS: dict = {}


def register_method(name: str, sampler, description: str) -> None:
    """Add a contender: ``METHODS[name] = (sampler, description)`` (see :data:`METHODS`). E.g. a trained SR model
    of the course: ``register_method('sr3-world', sr_model_sampler('sr3-world'), '...')``."""
    METHODS[name] = (sampler, description)


def _bicubic(low, scale, samples, generator, world, **options):
    out = ops.Upsample(scale)(low).clamp(0, 1)                                  # deterministic: one answer
    return out[:, None].expand(-1, samples, -1, -1, -1)


def pulse_sampler(generator_name: str):
    """K PULSE answers per input: K searches from independent random starts (:func:`course_utils.pulse.search_many`
    on the inputs repeated K times), with ``evaluate``'s defaults (eps 2e-3, 100 steps, up to 3 restarts)."""
    def sample(low, scale, samples, generator, world, steps=100, restarts=3, eps=2e-3, progress=False, **options):
        from . import pulse

        G = pulse.load_generator(generator_name)
        lows = low.repeat_interleave(samples, dim=0)                            # input i's K copies together
        results = pulse.search_many(G, lows, eps=eps, steps=steps, restarts=restarts, generator=generator,
                                    progress=progress, **options)
        images = torch.stack([r.image.detach().cpu() for r in results]).clamp(0, 1)
        return images.view(low.shape[0], samples, *images.shape[1:])
    return sample


def sr_model_sampler(model_name: str):
    """A sampler from any model of the course's SR registry (``sr.load_model(model_name, scale)``): K calls of
    ``upscale`` with the same ``generator`` and ``options`` (e.g. SR3's ``steps``, ``project``; a deterministic
    model gives K equal answers)."""
    def sample(low, scale, samples, generator, world, **options):
        from .sr import load_model

        model = load_model(model_name, scale)
        with torch.no_grad():
            out = torch.stack([model.upscale(low, generator=generator, **options) for _ in range(samples)], dim=1)
        return out.clamp(0, 1)
    return sample


def _oracle(low, scale, samples, generator, world, mix="balanced", seed=0, **options):
    """A reference, not a super-resolver: the *true* face re-rendered K times with its attributes drawn from the
    posterior (the group's tone moved t -> t +- 0.6 when the drawn group differs). It scores calibration_error
    ~ 0 up to the readers' errors: the check that the whole pipeline can tell a calibrated sampler."""
    post = posterior(low, scale, mix, seed=seed)
    n = low.shape[0]
    outputs = []
    for k in range(samples):
        a = {key: v.clone() for key, v in world.items()}
        for attribute, p in post.items():
            drawn = torch.multinomial(p, 1, generator=generator)[:, 0]
            if attribute == "group":
                a["tone"] = a["tone"] + (drawn - a["group"]).float() * 0.6
                a["group"] = drawn
            elif attribute == "glasses":
                a["glasses"] = drawn.bool()
            else:
                a[attribute] = drawn
        outputs.append(faces.draw_faces(a, WORLD_SIZE))
    return torch.stack(outputs, dim=1).view(n, samples, 3, WORLD_SIZE, WORLD_SIZE)


register_method("bicubic", _bicubic, "bicubic upsampling of the input (deterministic: K equal answers)")
register_method("pulse-balanced", pulse_sampler("pulse-balanced"),
                "PULSE with the generator trained on the balanced mix: K searches from random starts")
register_method("pulse-skewed", pulse_sampler("pulse-skewed"),
                "PULSE with the generator trained on the skewed (90 % light) mix: K searches from random starts")
register_method("regression", sr_model_sampler("sr3-regression-faces"),
                "the SR3 UNet trained on the world with L2, one pass (deterministic: K equal answers)")
register_method("sr3", sr_model_sampler("sr3-faces"),
                "SR3 trained on the world: K reverse-diffusion samples (options: steps, project)")
register_method("oracle", _oracle, "reference: the true face with its attributes drawn from the posterior "
                                   "(uses the truth; shows what a calibrated sampler scores)")


# ----------------------------------------------------------------------------------------------------------------
# the evaluation

def evaluate(method: str, scale: int, n: int = 30, samples: int = 8, *, seed: int = 0, mix="balanced",
             posterior_seed: int = 0, options: dict | None = None, return_images: bool = False) -> dict:
    """Judge ``method`` (a name in :data:`METHODS`) on ``n`` world faces of ``mix`` at ``scale`` with K =
    ``samples`` outputs per input. Faces from torch.Generator(pulse.EVAL_SEED_OFFSET + seed), the method's
    randomness from torch.Generator(seed), the posterior from :func:`classifier` (scale, mix, posterior_seed).

    -> a JSON-ready dict: per input (``inputs``) and mean (``mean``): ``psnr`` (dB, RGB, mean over the K outputs
    against the truth; an exact answer counts 100 dB), ``consistency`` (MSE(DS(output), low), mean over K),
    ``validity`` (share of the K outputs whose every attribute is readable), ``diversity`` (per-pixel standard
    deviation across the K outputs, mean over pixels; 0 for one answer), per attribute ``tv_<attribute>`` and
    ``floor_<attribute>``;
    ``calibration_error`` and ``calibration_floor`` ({attribute: value, "mean": over attributes}; see the module
    docstring); ``tone_shift`` on the dark-group inputs: mean over them of (skin tone of the output - of the
    truth, averaged over K) with its 95 % t interval; ``seconds_per_image`` (the method's time per output);
    ``posterior``: how each attribute is handled and the classifier's held-out accuracy / ECE / NLL."""
    from . import pulse
    from .sr import consistency

    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    scale = check_scale(scale)
    n = check_positive_int(n, "n")
    samples = check_positive_int(samples, "samples")
    seed = check_positive_int(seed, "seed", minimum=0)
    faces.mix_fraction(mix)
    data_rng = torch.Generator().manual_seed(pulse.EVAL_SEED_OFFSET + seed)
    low, truth_labels, truth, world = world_draws(n, scale, mix, data_rng)
    model = classifier(scale, mix, posterior_seed)
    post = posterior(low, scale, mix, seed=posterior_seed)
    sampler = METHODS[method][0]
    extra = dict(mix=mix, seed=posterior_seed) if method == "oracle" else {}
    start = time.perf_counter()
    outputs = sampler(low, scale, samples, torch.Generator().manual_seed(seed), world, **extra, **(options or {}))
    seconds = time.perf_counter() - start
    if tuple(outputs.shape) != (n, samples, 3, WORLD_SIZE, WORLD_SIZE):
        raise ValueError(f"method {method!r} returned outputs of shape {tuple(outputs.shape)}, expected "
                         f"{(n, samples, 3, WORLD_SIZE, WORLD_SIZE)}")
    flat = outputs.reshape(n * samples, 3, WORLD_SIZE, WORLD_SIZE).float()
    values, readable, read = read_values(flat)
    cal = {a: calibration(values[a].view(n, samples), readable[a].view(n, samples), post[a]) for a in post}
    valid = read["valid"].view(n, samples).double()
    tone_in = faces.skin_tone(truth)
    tone_out = read["tone"].view(n, samples).double().mean(1)
    rows = []
    for i in range(n):
        o = outputs[i].float()
        mse = (o.double() - truth[i].double()).pow(2).mean((1, 2, 3)).clamp_min(1e-10)     # (K,)
        row = {"index": i, "psnr": float((-10 * mse.log10()).mean()), "consistency": consistency(o, low[i].expand(
               samples, -1, -1, -1), scale), "validity": float(valid[i].mean()),
               "diversity": float(o.double().std(0, unbiased=False).mean()) if samples > 1 else 0.0,
               "group": int(truth_labels["group"][i]), "tone_input": round(float(tone_in[i]), 4),
               "tone_output": round(float(tone_out[i]), 4)}
        for a in post:
            row[f"tv_{a}"] = float(cal[a]["tv"][i])
            row[f"floor_{a}"] = float(cal[a]["floor"][i])
            row[f"posterior_{a}"] = [round(float(x), 4) for x in post[a][i]]
        rows.append(row)
    averaged = ["psnr", "consistency", "validity", "diversity"] + [f"{p}_{a}" for a in post for p in ("tv", "floor")]
    dark = [r["tone_output"] - r["tone_input"] for r in rows if r["group"] == 1]
    shift, ci_low, ci_high = t_interval(dark)
    report = {
        "task": "posterior", "method": method, "description": METHODS[method][1], "scale": scale,
        "low_size": WORLD_SIZE // scale, "n": n, "samples": samples, "seed": seed, "mix": mix,
        "options": options or {},
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in averaged},
        "calibration_error": {**{a: c["error"] for a, c in cal.items()},
                              "mean": float(np.mean([c["error"] for c in cal.values()]))},
        "calibration_floor": {**{a: c["floor_mean"] for a, c in cal.items()},
                              "mean": float(np.mean([c["floor_mean"] for c in cal.values()]))},
        "validity": float(valid.mean()),
        "readable": {a: float(readable[a].double().mean()) for a in post},
        "tone_shift": {"group": "dark", "n": len(dark), "mean": shift if dark else None,
                       "ci95": [ci_low, ci_high]},
        "seconds_per_image": seconds / (n * samples),
        "posterior": {"kind": model.kind, "classifier": {a: {k: v for k, v in s.items() if k != "reliability"}
                                                         for a, s in model.info.get("attributes", {}).items()},
                      "settings": model.info.get("settings"), "seed": posterior_seed},
        "inputs": rows,
    }
    if return_images:
        report["images"] = {"truth": truth, "low": low, "outputs": outputs}
    return report


def summary(report: dict) -> str:
    """A few lines of an :func:`evaluate` report for the terminal."""
    m, ce, floor, shift = report["mean"], report["calibration_error"], report["calibration_floor"], report["tone_shift"]
    ci = shift["ci95"]
    lines = [f"posterior / {report['method']}: {report['n']} inputs ({report['low_size']}x{report['low_size']}, "
             f"x{report['scale']}, {report['mix']}), K = {report['samples']} outputs each",
             f"psnr {m['psnr']:.2f} dB; consistency {m['consistency']:.2e}; validity {report['validity']:.3f}; "
             f"diversity {m['diversity']:.4f}; {report['seconds_per_image']:.3f} s per output",
             "calibration_error " + ", ".join(f"{a} {v:+.3f}" for a, v in ce.items())
             + "  (floor " + ", ".join(f"{a} {v:.3f}" for a, v in floor.items()) + ")",
             "posterior: " + ", ".join(f"{a} {k}" for a, k in report["posterior"]["kind"].items())]
    if shift["mean"] is not None:
        ci_text = f"95% CI {ci[0]:+.3f} .. {ci[1]:+.3f}" if ci[0] is not None else "no CI (one input)"
        lines.append(f"tone shift on the dark group ({shift['n']} inputs): {shift['mean']:+.3f} ({ci_text})")
    else:
        lines.append("tone shift on the dark group: no dark input")
    return "\n".join(lines)
