"""Where the course runs: the runtime profile, the torch device, seeding and per-profile settings.

Three profiles decide how big every experiment is:

* ``ci``  - seconds per experiment; used by continuous integration (``CI`` set) so the whole course runs in minutes.
* ``cpu`` - a laptop CPU: minutes per notebook, big enough to show each paper's effect. Committed outputs use it.
* ``gpu`` - a CUDA runtime (e.g. Colab): paper-scale image sizes and iteration counts.

``COURSE_PROFILE=ci|cpu|gpu`` overrides the automatic choice.

``COURSE_SMOKE=1`` is a smoke mode for checking code paths, not results: :func:`settings` returns the active
profile's dict with every loop length cut to a few iterations (:func:`smoke_settings`; sizes, widths and batch sizes
stay as they are) and claims are reported as ``skipped (smoke)`` instead of asserted. ``COURSE_PROFILE=gpu
COURSE_SMOKE=1`` runs the gpu profile's code paths on a CPU in minutes (``tests/test_gpu_smoke.py``).

``COURSE_SEED`` (default 0) is the one seed of a notebook run: :func:`seed` reads it and every notebook derives all
its randomness from it (initial weights, noise draws, masks, patch sampling), so ``COURSE_SEED=3 pytest notebooks/``
runs the same course on other random draws.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

PROFILES = ("ci", "cpu", "gpu")


def profile() -> str:
    """Return the active profile: ``COURSE_PROFILE`` if set, else ``ci`` when ``CI`` is set, else ``gpu`` when
    CUDA is available, else ``cpu``."""
    chosen = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if chosen:
        if chosen not in PROFILES:
            raise ValueError(f"COURSE_PROFILE must be one of {PROFILES}, got {chosen!r}")
        return chosen
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "ci"
    return "gpu" if torch.cuda.is_available() else "cpu"


def device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU. Use it instead of hard-coding a CUDA device."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed() -> int:
    """The notebook run's seed: ``COURSE_SEED`` from the environment (a non-negative integer), default 0."""
    text = os.environ.get("COURSE_SEED", "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"COURSE_SEED must be a non-negative integer, got {text!r}")
    return int(text)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a fresh ``torch.Generator`` seeded the same way,
    for the explicit noise and mask draws the course uses."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def smoke() -> bool:
    """True when ``COURSE_SMOKE`` is set to a true value (1, true, yes): loops are cut, claims are not asserted."""
    return os.environ.get("COURSE_SMOKE", "").strip().lower() not in ("", "0", "false", "no")


#: how many iterations (or samples, inputs, images ...) a loop keeps in smoke mode
SMOKE_LENGTH = 2
#: settings keys that set a loop's length, besides every key that is or ends in ``iters`` / ``steps``;
#: in smoke mode each is cut to at most SMOKE_LENGTH (a tuple of lengths: each entry, duplicates dropped)
SMOKE_LOOP_KEYS = ("samples", "answers", "n_success", "n_bias", "n_images", "step_list", "n_inputs",
                   "n_inputs_x8")
#: loops whose code needs more than SMOKE_LENGTH: notebook 06 plots a 5-step moving mean of its live training,
#: notebook 07's fool rate needs 4 (truth, answer) pairs and its bias study a confidence interval, as
#: notebook 08's tone shifts do
SMOKE_FLOORS = {"live_steps": 5, "n_success": 4, "n_bias": 4, "n_inputs": 4, "n_inputs_x8": 4}
#: settings keys that set how often a loop logs: 1 in smoke mode, so a cut loop still records its history
SMOKE_LOG_KEYS = ("every",)
#: settings keys that are not loop lengths and stay at the profile's value in smoke mode: image and crop sizes,
#: widths and depths, batch sizes, restarts run as one batch, patch pairs judged in one batch, data-set sizes
SMOKE_KEPT_KEYS = ("size", "train_size", "crop", "width", "sr_width", "channels", "res_depth", "live_batch",
                   "gan_batch", "restarts", "fool_pairs", "pool", "held_out")


def is_loop_key(key: str) -> bool:
    """Whether a settings key sets a loop's length (cut in smoke mode)."""
    return key in ("iters", "steps") or key.endswith(("_iters", "_steps")) or key in SMOKE_LOOP_KEYS


def smoke_settings(cfg: dict) -> dict:
    """``cfg`` with every loop length cut to :data:`SMOKE_LENGTH` (or its :data:`SMOKE_FLOORS` entry) and every
    logging interval set to 1; all other keys unchanged. What :func:`settings` returns in smoke mode."""
    out = dict(cfg)
    for key, value in cfg.items():
        cap = max(SMOKE_LENGTH, SMOKE_FLOORS.get(key, 0))
        if key in SMOKE_LOG_KEYS:
            out[key] = 1
        elif is_loop_key(key) and isinstance(value, (tuple, list)):
            out[key] = type(value)(dict.fromkeys(min(v, cap) for v in value))
        elif is_loop_key(key) and isinstance(value, int) and not isinstance(value, bool):
            out[key] = min(value, cap)
    return out


def settings(ci: dict | None = None, cpu: dict | None = None, gpu: dict | None = None, *,
             profile_name: str | None = None) -> dict:
    """Return a copy of the dict for the active profile.

    ``gpu`` falls back to ``cpu`` when not given (a GPU can always run the CPU-sized experiment). In smoke mode
    (``COURSE_SMOKE=1``) the loop lengths are cut: :func:`smoke_settings`.
    Example: ``cfg = settings(ci=dict(size=64, iters=100), cpu=dict(size=192, iters=1500), gpu=dict(size=512, iters=3000))``.
    """
    options = {"ci": ci, "cpu": cpu, "gpu": gpu if gpu is not None else cpu}
    for name, value in options.items():
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict of settings, got {type(value).__name__}")
    name = profile_name or profile()
    if name not in PROFILES:
        raise ValueError(f"profile_name must be one of {PROFILES}, got {name!r}")
    if options[name] is None:
        raise ValueError(f"settings(...) has no dict for the active profile {name!r}; pass {name}=dict(...)")
    return smoke_settings(options[name]) if smoke() else dict(options[name])


def describe() -> str:
    """One line for the top of a notebook: profile, seed, device, torch version, threads."""
    mode = "  smoke (loops cut, claims not asserted)" if smoke() else ""
    return (f"profile={profile()}{mode}  seed={seed()}  device={device()}  torch={torch.__version__}  "
            f"threads={torch.get_num_threads()}")
