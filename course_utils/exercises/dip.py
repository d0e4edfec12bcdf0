"""Self-checks for notebooks 01 and 02 (Deep Image Prior).

Each ``check_*`` takes the student's function, compares it with the reference on a few inputs and prints a
verdict through :func:`course_utils.exercises.run_check`.
"""
from __future__ import annotations

import math

import torch

from . import run_check


def check_ema_update(fn) -> bool | None:
    """``fn(average, output, decay)`` -> decay * average + (1 - decay) * output (a new tensor or in place)."""
    def check():
        g = torch.Generator().manual_seed(0)
        for decay in (0.99, 0.9, 0.0):
            average, output = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
            want = decay * average + (1 - decay) * output
            got = fn(average.clone(), output.clone(), decay)
            if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                return False, f"expected a tensor of shape {tuple(want.shape)}, got {type(got).__name__}"
            if not torch.allclose(got, want, atol=1e-6):
                return False, f"decay={decay}: the average should move (1 - decay) of the way toward the output"
        return True, "the average keeps 99% of its past and takes 1% of each new output"

    return run_check("EMA of the outputs", check)


def check_iterations_to_reach(fn) -> bool | None:
    """``fn(losses, threshold)`` -> first 1-based step with loss < threshold, ``math.inf`` if never."""
    def check():
        cases = [([0.5, 0.2, 0.05, 0.01], 0.1, 3), ([0.5, 0.2], 0.1, math.inf), ([0.01, 0.5], 0.1, 1),
                 ([0.3, 0.1, 0.09], 0.1, 3)]
        for losses, threshold, want in cases:
            got = fn(list(losses), threshold)
            if got != want:
                return False, f"losses={losses}, threshold={threshold}: expected {want}, got {got}"
        return True, "first step strictly below the threshold, counted from 1; inf when never reached"

    return run_check("iterations to reach an MSE", check)


def check_masked_loss(fn) -> bool | None:
    """``fn(output, y, mask)`` -> mean over all pixels of (mask * output - y)^2 (the inpainting loss)."""
    def check():
        g = torch.Generator().manual_seed(1)
        output = torch.rand(1, 3, 8, 8, generator=g)
        mask = (torch.rand(1, 1, 8, 8, generator=g) > 0.5).float()
        y = torch.rand(1, 3, 8, 8, generator=g) * mask
        want = ((output * mask - y) ** 2).mean()
        got = fn(output, y, mask)
        got = torch.as_tensor(got, dtype=torch.float32)
        if got.numel() != 1:
            return False, f"expected a scalar loss, got shape {tuple(got.shape)}"
        if not torch.allclose(got, want, atol=1e-6):
            unmasked = ((output - y) ** 2).mean()
            if torch.allclose(got, unmasked, atol=1e-6):
                return False, "the missing pixels must not count: apply the mask to the output first"
            return False, f"expected {float(want):.6f}, got {float(got):.6f}"
        # the missing pixels must have no influence
        changed = output.clone()
        changed[mask.expand_as(output) == 0] = 0.123
        if not torch.allclose(torch.as_tensor(fn(changed, y, mask), dtype=torch.float32), want, atol=1e-6):
            return False, "the loss changed when only missing pixels changed"
        return True, "only observed pixels are compared: the network invents the rest"

    return run_check("inpainting loss", check)


def check_sr_loss(fn, scale: int = 4) -> bool | None:
    """``fn(output, y, scale)`` -> mean (Downsample(scale)(output) - y)^2 (the super-resolution loss)."""
    def check():
        from ..operators import Downsample

        g = torch.Generator().manual_seed(2)
        output = torch.rand(1, 3, 16, 16, generator=g)
        y = torch.rand(1, 3, 16 // scale, 16 // scale, generator=g)
        want = ((Downsample(scale)(output) - y) ** 2).mean()
        got = torch.as_tensor(fn(output, y, scale), dtype=torch.float32)
        if got.numel() != 1:
            return False, f"expected a scalar loss, got shape {tuple(got.shape)}"
        if not torch.allclose(got, want, atol=1e-5):
            return False, (f"expected {float(want):.6f}, got {float(got):.6f}: downsample the network's output "
                           f"with course_utils.operators.Downsample({scale}) and compare it with y")
        return True, "the network works at high resolution; only its downsampled version must match y"

    return run_check("super-resolution loss", check)


STRUCTURE_ANSWERS = ("natural faster", "about the same", "scrambled faster")


def check_structure_prediction(predicted, image: torch.Tensor | None = None, iters: int = 300,
                               seed: int = 0) -> bool | None:
    """Exercise 4 (predict, then measure): the Fig. 2 race between the natural image and its scrambled pixels, run
    with the structure-free :class:`course_utils.dip.PixelNet` (1x1 convolutions) instead of the skip net.

    ``predicted``, written down before running: one of :data:`STRUCTURE_ANSWERS`, i.e. the MSE of the scrambled
    fit over the natural one's (mean over the last third of the iterations) is above 2, between 1/2 and 2, or below
    1/2 (the skip net of width 16: 7 to 11 after 300 iterations). Fits both targets (``image``, default astronaut
    64 px; a few seconds on one CPU thread): the verdict is against the measurement, not a stored answer."""
    def check():
        if predicted in (None, Ellipsis):
            raise NotImplementedError                                # the template, untouched
        if predicted not in STRUCTURE_ANSWERS:
            return False, f"predicted must be one of {STRUCTURE_ANSWERS}, got {predicted!r}"
        from ..dip import PixelNet, fit, fitting_targets
        from ..images import image_set

        clean = image if image is not None else image_set("test", size=64)["astronaut"]
        targets = fitting_targets(clean, seed=seed + 1000)
        final = {}
        for name in ("natural", "scrambled"):
            torch.manual_seed(seed)                                  # the same initial weights for both targets
            net = PixelNet(32, clean.shape[0], channels=32)          # notebook 02's negative control
            run = fit(net, targets[name], iters=iters, lr=0.01, reg_noise_std=0, backtrack=None, every=iters,
                      seed=seed, progress=False)
            last = run.history["loss"][-(iters // 3 or 1):]         # the last third: Adam's loss jitters
            final[name] = sum(last) / len(last)
        ratio = final["scrambled"] / final["natural"]
        truth = STRUCTURE_ANSWERS[0] if ratio > 2 else STRUCTURE_ANSWERS[2] if ratio < 0.5 else STRUCTURE_ANSWERS[1]
        report = (f"1x1 network, {iters} iterations, MSE over the last third: natural {final['natural']:.2e}, "
                  f"scrambled {final['scrambled']:.2e} (ratio {ratio:.2f}; the skip net: 7 to 11)")
        if predicted == truth:
            return True, (report + ". Each output pixel sees only its own random code z(p), so permuting the "
                          "targets changes nothing the network can tell apart: the preference for natural images is "
                          "the convolutions' spatial structure")
        return False, report + f": it is '{truth}', not '{predicted}'. Why?"

    return run_check("structure is the prior", check)
