"""Self-checks for notebook 00 (inverse problems, operators, metrics)."""
from __future__ import annotations

import math

import torch

from .. import operators as ops
from ..images import load_skimage
from ..metrics import psnr
from . import answer, run_check


def _pairs():
    clean = load_skimage("coffee", size=64)
    g = torch.Generator().manual_seed(0)
    return [(ops.GaussianNoise(s)(clean, g), clean) for s in (5, 25, 60)] + [(clean.flip(-1), clean)]


def check_psnr(my_psnr) -> bool | None:
    """Exercise 1: ``my_psnr(image, reference)`` -> PSNR in dB for images in [0, 1]."""
    def check():
        for image, reference in _pairs():
            got, want = float(my_psnr(image, reference)), psnr(image, reference)
            if not math.isclose(got, want, abs_tol=1e-3):
                return False, f"got {got:.4f} dB, expected {want:.4f} dB (hint: 10 log10(1 / MSE))"
        return True, "matches course_utils.metrics.psnr on 4 image pairs"
    return run_check("PSNR by hand", check)


def check_sigma_for_psnr(sigma, target_psnr: float = 20.0) -> bool | None:
    """Exercise 2: the noise level (0-255 scale) whose expected PSNR is ``target_psnr`` (ignore clipping); a number
    or a function returning it."""
    given = sigma

    def check():
        sigma = answer(given)
        if sigma is None or sigma is Ellipsis:
            raise NotImplementedError
        want = 255.0 * 10 ** (-target_psnr / 20.0)
        ok = abs(float(sigma) - want) < 0.5
        hint = "" if ok else "; with MSE = (sigma/255)^2, PSNR = 20 log10(255 / sigma): solve for sigma"
        return ok, f"sigma = {float(sigma):.2f}{hint}"
    return run_check("sigma for a PSNR", check)


def low_res_noise(sigma: float = 10.0, scale: int = 2) -> float:
    """The reference answer of exercise 3: the noise std (0-255 scale) left in ``Downsample(scale)`` of an image with
    Gaussian noise ``sigma`` (the antialiasing filter averages neighbouring pixels: sigma * sqrt(sum of the 2-D
    filter's squared weights), measured away from the border)."""
    r = ops.resize_matrix(64, 64 // scale).double()
    row = r[len(r) // 2]                                     # an interior row of the 1-D filter
    return float(sigma * (row ** 2).sum())                   # separable: the 2-D sum of squares is (sum row^2)^2, sqrt


def check_noise_after_downsampling(noise_then_down, predicted_sigma) -> bool | None:
    """Exercise 3: ``noise_then_down(x, generator)`` = Gaussian noise sigma = 10 (0-255) drawn from ``generator``,
    then x2 bicubic downsampling; ``predicted_sigma``: the noise std (0-255) left in the low-res image, predicted
    before measuring (the filter averages neighbouring pixels), a number or a function returning it."""
    given = predicted_sigma

    def check():
        predicted_sigma = answer(given)
        if predicted_sigma is None or predicted_sigma is Ellipsis:
            raise NotImplementedError
        x = load_skimage("astronaut", size=64)
        want = ops.Compose(ops.GaussianNoise(10), ops.Downsample(2))(x, torch.Generator().manual_seed(1))
        got = noise_then_down(x, torch.Generator().manual_seed(1))
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return False, f"expected a tensor of shape {tuple(want.shape)}, got {shape}"
        if float((got - want).abs().max()) > 1e-4:
            return False, "noise first, then Downsample(2): check the order and the parameters"
        truth = low_res_noise(10.0, 2)
        ok = abs(float(predicted_sigma) - truth) < 0.15 * truth
        return ok, (f"the low-res noise is sigma ~ {truth:.2f}: the bicubic filter averages about "
                    f"{(10 / truth) ** 2:.1f} pixels" if ok else
                    f"your prediction {float(predicted_sigma):.2f} is off: measure the std of "
                    f"noise_then_down(x) - Downsample(2)(x) on a flat region, and think about averaging n pixels")
    return run_check("noise after downsampling", check)


def invisible_fraction(image: torch.Tensor, scale: int) -> float:
    """Reference for exercise 4: the fraction of ``image``'s energy (about its mean) in the null space of
    ``Downsample(scale)``: || v - A+ A v ||^2 / || v - mean(v) ||^2 with A = R_h v R_w^T (notebook 00, section 5)."""
    h, w = image.shape[-2:]
    rh = ops.resize_matrix(h, h // scale).double()
    rw = ops.resize_matrix(w, w // scale).double()
    v = image.double()
    seen = torch.linalg.pinv(rh) @ (rh @ v @ rw.T) @ torch.linalg.pinv(rw).T
    return float(((v - seen) ** 2).sum() / ((v - v.mean()) ** 2).sum())


def check_invisible_fraction(fn) -> bool | None:
    """Exercise 4: ``fn(image, scale)`` -> the fraction of the image's energy that ``Downsample(scale)`` cannot see."""
    def check():
        image = load_skimage("chelsea", size=64)
        values = {}
        for scale in (2, 4, 8):
            got, want = float(fn(image, scale)), invisible_fraction(image, scale)
            if not math.isclose(got, want, rel_tol=0.02, abs_tol=1e-4):
                return False, (f"scale {scale}: got {got:.4f}, expected {want:.4f} (energy about the mean; "
                               f"project with the pseudo-inverses as in section 5)")
            values[scale] = want
        return True, ("invisible fraction at x2 / x4 / x8: " + " / ".join(f"{v:.1%}" for v in values.values())
                      + ": every doubling of the scale hides more of the image from the low-res observation")
    return run_check("the null space grows with the scale", check)
