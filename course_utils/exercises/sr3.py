"""Self-checks for notebook 06 (SR3): the forward process in closed form, the posterior mean of a reverse step,
and one full ancestral reverse step. Each compares the student's function with ``course_utils.sr3`` on a few
inputs and names the typical mistake when it recognises one."""
from __future__ import annotations

import math

import torch

from . import run_check


def _inputs(seed: int, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    y0 = 2 * torch.rand(shape, generator=g) - 1
    return y0, torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _pairs():
    """(gamma_t, gamma_{t-1}) pairs of the paper's schedule, full and respaced to 10 steps, the last step included."""
    from ..sr3 import Schedule

    full, short = Schedule.linear(), Schedule.linear().respace(10)
    return ([(float(full.gamma[k]), float(full.gamma_prev[k])) for k in (1, 500, 1999)]
            + [(float(short.gamma[k]), float(short.gamma_prev[k])) for k in (9, 4, 0)])


def _verdict(got, want, wrong: dict, what: str):
    """(ok, message) comparing ``got`` with ``want``; ``wrong`` maps a mistake's explanation to what it gives."""
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return False, f"{what}: expected a tensor of shape {tuple(want.shape)}, got {shape}"
    if torch.allclose(got.double(), want.double(), atol=1e-4, rtol=1e-4):
        return True, ""
    for explanation, value in wrong.items():
        if torch.allclose(got.double(), value.double(), atol=1e-4, rtol=1e-4):
            return False, f"{what}: {explanation}"
    error = float((got.double() - want.double()).abs().max())
    return False, f"{what}: differs from the reference by up to {error:.3g}"


def check_q_sample(fn) -> bool | None:
    """``fn(y0, sqrt_gamma, noise)`` -> y_t drawn from q(y_t | y_0) = N(sqrt(gamma) y_0, (1 - gamma) I), given the
    standard-normal ``noise``. y0 and noise are (B, C, H, W); sqrt_gamma is (B, 1, 1, 1) (one level per image)."""
    from ..sr3 import q_sample

    def check():
        for seed, levels in ((0, [0.9999, 0.9, 0.5, 0.05]), (1, [0.99, 0.7, 0.3, 0.01])):
            y0, noise, _ = _inputs(seed)
            sg = torch.tensor(levels).view(-1, 1, 1, 1)
            got, want = fn(y0, sg, noise), q_sample(y0, sg, noise)
            wrong = {
                "sqrt_gamma is already the square root: the signal factor is sqrt_gamma itself, not sqrt_gamma^2":
                    sg ** 2 * y0 + (1 - sg ** 2).sqrt() * noise,
                "the noise factor is the *standard deviation* sqrt(1 - gamma), not the variance 1 - gamma":
                    sg * y0 + (1 - sg ** 2) * noise,
                "gamma = sqrt_gamma^2: the noise factor is sqrt(1 - sqrt_gamma^2), not sqrt(1 - sqrt_gamma)":
                    sg * y0 + (1 - sg).sqrt() * noise,
                "the factors are sqrt(gamma) and sqrt(1 - gamma) (variances add to 1), not sqrt(gamma) and "
                "1 - sqrt(gamma)": sg * y0 + (1 - sg) * noise,
                "you used gamma and 1 - gamma (sqrt_gamma^2 and 1 - sqrt_gamma^2): those are the variances":
                    sg ** 2 * y0 + (1 - sg ** 2) * noise,
            }
            ok, message = _verdict(got, want, wrong, f"sqrt_gamma = {levels}")
            if not ok:
                return False, message
        return True, ("y_t = sqrt(gamma) y_0 + sqrt(1 - gamma) eps: one Gaussian draw replaces t steps, and the "
                      "signal and noise variances gamma + (1 - gamma) add to 1 (variance preserving)")
    return run_check("q(y_t | y_0) in closed form", check)


def check_posterior_mean(fn) -> bool | None:
    """``fn(y_t, eps, gamma_t, gamma_prev)`` -> the mean of one reverse step from the network's noise prediction
    ``eps`` (SR3's Algorithm 2, no clipping): mu = 1/sqrt(alpha_t) (y_t - (1 - alpha_t) / sqrt(1 - gamma_t) eps) with
    alpha_t = gamma_t / gamma_{t-1}. y_t, eps: (B, C, H, W); gamma_t, gamma_prev: numbers (gamma_prev = 1 at the
    last step)."""
    from ..sr3 import posterior_mean, predict_y0

    def check():
        for i, (gamma, gamma_prev) in enumerate(_pairs()):
            _, y_t, eps = _inputs(10 + i)
            got = fn(y_t, eps, gamma, gamma_prev)
            want = posterior_mean(predict_y0(y_t, eps, math.sqrt(gamma)), y_t, gamma, gamma_prev)
            a = gamma / gamma_prev
            wrong = {
                "alpha_t is gamma_t / gamma_{t-1} (one step's signal fraction), not gamma_t: on a respaced schedule "
                "they differ": (y_t - (1 - gamma) / math.sqrt(1 - gamma) * eps) / math.sqrt(gamma),
                "the noise is removed with weight (1 - alpha_t) / sqrt(1 - gamma_t), not sqrt(1 - alpha_t) / "
                "sqrt(1 - gamma_t)": (y_t - math.sqrt(1 - a) / math.sqrt(1 - gamma) * eps) / math.sqrt(a),
                "the result is divided by sqrt(alpha_t) (undo the step's shrinking)":
                    y_t - (1 - a) / math.sqrt(1 - gamma) * eps,
                "subtract the predicted noise, do not add it": (y_t + (1 - a) / math.sqrt(1 - gamma) * eps)
                / math.sqrt(a),
                "that is y0_hat, the prediction of the clean image; the mean of one step removes only part of the "
                "noise": predict_y0(y_t, eps, math.sqrt(gamma)),
            }
            ok, message = _verdict(got, want, wrong, f"gamma_t = {gamma:.6g}, gamma_prev = {gamma_prev:.6g}")
            if not ok:
                return False, message
        return True, ("the same as the posterior mean of q(y_{t-1} | y_t, y0_hat) with y0_hat = (y_t - sqrt(1 - "
                      "gamma_t) eps) / sqrt(gamma_t): on any respaced schedule, with alpha_t = gamma_t / gamma_{t-1}")
    return run_check("posterior mean of a reverse step", check)


def check_reverse_step(fn) -> bool | None:
    """``fn(y_t, eps, gamma_t, gamma_prev, z)`` -> y_{t-1} = mu + sigma_t z, one ancestral step (SR3's Algorithm 2, no
    clipping), mu as in :func:`check_posterior_mean`. sigma_t^2 = 1 - alpha_t (the paper) or the posterior
    variance (1 - gamma_{t-1}) / (1 - gamma_t) (1 - alpha_t) (DDPM; both accepted); at the last step (gamma_prev =
    1) no noise is added. z: (B, C, H, W) standard normal."""
    from ..sr3 import p_sample

    def check():
        kinds = {"beta", "posterior"}                      # the variances consistent with every step so far
        for i, (gamma, gamma_prev) in enumerate(_pairs()):
            _, y_t, eps = _inputs(20 + i)
            z = torch.randn(y_t.shape, generator=torch.Generator().manual_seed(30 + i))
            got = fn(y_t, eps, gamma, gamma_prev, z)
            wants = {v: p_sample(eps, y_t, gamma, gamma_prev, z, clip=False, variance=v)
                     for v in ("beta", "posterior")}
            matched = [v for v, want in wants.items()
                       if isinstance(got, torch.Tensor) and got.shape == want.shape
                       and torch.allclose(got.double(), want.double(), atol=1e-4, rtol=1e-4)]
            if matched:
                kinds &= set(matched)
                if not kinds:
                    return False, ("your steps match the paper's variance 1 - alpha_t at some steps and the "
                                   "posterior variance at others: use one of them throughout")
                continue
            a = gamma / gamma_prev
            mean = p_sample(eps, y_t, gamma, gamma_prev, None, clip=False)
            wrong = {
                "at the last step (gamma_prev = 1) the chain must end on the mean: add no noise there":
                    mean + math.sqrt(1 - a) * z,
                "sigma_t z needs the standard deviation sqrt(1 - alpha_t), not the variance 1 - alpha_t":
                    mean + (1 - a) * z,
                "an ancestral step adds fresh noise sigma_t z (without it, it is not sampling)": mean,
            }
            ok, message = _verdict(got, wants["beta"], wrong, f"gamma_t = {gamma:.6g}, gamma_prev = {gamma_prev:.6g}")
            if not ok:
                return False, message
        which = {"beta": "sigma^2 = 1 - alpha_t, the paper's Algorithm 2",
                 "posterior": "sigma^2 = the posterior variance, DDPM's beta~_t"}
        return True, f"matches sr3.p_sample ({' or '.join(which[k] for k in sorted(kinds))}); the last step " \
                     f"returns the mean"
    return run_check("one reverse step", check)
