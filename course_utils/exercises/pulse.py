"""Self-checks for notebook 07 (PULSE)."""
from __future__ import annotations

import math

import torch

from . import run_check


def check_project_to_sphere(fn) -> bool | None:
    """``fn(latents)``: latents (L, d) -> the same L directions, each rescaled to length sqrt(d) (every layer latent
    on its own sphere of radius sqrt(d), where N(0, I_d) samples concentrate)."""
    def check():
        g = torch.Generator().manual_seed(0)
        for shape in [(3, 8), (18, 512), (5, 2)]:
            x = torch.randn(shape, generator=g) * torch.rand(shape[0], 1, generator=g) * 3
            got = fn(x.clone())
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
                return False, f"for latents of shape {shape} expected the same shape back, got " \
                              f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}"
            norms = got.norm(dim=1)
            radius = math.sqrt(shape[1])
            if torch.allclose(norms, torch.ones_like(norms), atol=1e-4) and shape[1] > 1:
                return False, "your latents have length 1: the sphere PULSE searches has radius sqrt(d)"
            total = float(got.norm())
            whole = min(abs(total - radius), abs(total - math.sqrt(shape[0]) * radius)) < 1e-3
            if whole and not torch.allclose(norms, torch.full_like(norms, radius), atol=1e-3):
                return False, "you normalised the whole tensor at once: each layer latent (each row) needs its own norm"
            if not torch.allclose(norms, torch.full_like(norms, radius), rtol=1e-4):
                return False, f"row lengths should all be sqrt(d) = {radius:.4f}, got {norms[:3].tolist()} ..."
            cos = torch.nn.functional.cosine_similarity(got, x, dim=1)
            if not torch.allclose(cos, torch.ones_like(cos), atol=1e-4):
                return False, "the directions changed: projecting onto the sphere only rescales each latent"
        return True, "each layer latent keeps its direction and gets length sqrt(d)"
    return run_check("spherical projection", check)


def check_geocross(fn) -> bool | None:
    """``fn(latents)``: latents (L, d) on the sphere of radius sqrt(d) -> GEOCROSS as the authors compute it: the
    mean over all L^2 *ordered* pairs (i, j), the diagonal i = j included, of the squared geodesic (great-circle)
    distance d_ij^2 = (sqrt(d) theta_ij)^2 (theta_ij = the angle between latents i and j), divided by 8."""
    from ..pulse import geocross, project_to_sphere

    def check():
        g = torch.Generator().manual_seed(1)
        for L, d in [(2, 4), (6, 16), (18, 64)]:
            v = project_to_sphere(torch.randn(L, d, generator=g))
            got, want = float(fn(v.clone())), float(geocross(v))
            if abs(got - want) <= 1e-3 * max(1.0, want):
                continue
            unit = v / v.norm(dim=1, keepdim=True)
            theta = torch.arccos((unit @ unit.T).clamp(-1, 1))
            i, j = torch.triu_indices(L, L, 1)
            square = d * theta ** 2                                          # (L, L)
            mistakes = {
                "the mean over the pairs i < j only (the authors average over all L^2 ordered pairs, the zero "
                "diagonal included)": square[i, j].mean() / 8,
                "no division by 8": square.mean(),
                "the mean over the pairs i < j without the division by 8": square[i, j].mean(),
                "the chord (straight-line) distance ||v_i - v_j|| instead of the arc along the sphere":
                    (torch.cdist(v, v) ** 2).mean() / 8,
                "the distance, not its square": (math.sqrt(d) * theta).mean() / 8,
                "the angle theta without the radius sqrt(d)": (theta ** 2).mean() / 8,
                "a sum over the pairs instead of the mean": square.sum() / 8,
            }
            for what, value in mistakes.items():
                if abs(got - float(value)) <= 1e-3 * max(1.0, abs(float(value))):
                    return False, f"for L={L}, d={d} you computed {what} ({got:.4f}; expected {want:.4f})"
            return False, f"for L={L}, d={d} expected {want:.4f}, got {got:.4f}"
        same = project_to_sphere(torch.randn(1, 8, generator=g)).expand(4, 8).clone()
        if abs(float(fn(same))) > 1e-3:
            return False, f"identical layer latents must give 0, got {float(fn(same)):.4g}"
        return True, ("the authors' GEOCROSS: mean squared great-circle distance over all ordered pairs, / 8; 0 when "
                      "all layers agree, largest when they point apart")
    return run_check("GEOCROSS by hand", check)


def check_noise_floor(fn) -> bool | None:
    """Why eps and not zero. ``fn(sigma)``: the low-res input is y = DS(x) + n with Gaussian noise of standard
    deviation ``sigma`` (images in [0, 1]). Even the true face x gives L2 = mean((DS(x) - y)^2) > 0: what is its
    expected value?"""
    def check():
        for sigma in (0.0, 0.01, 0.03, 0.1):
            got = float(fn(sigma))
            if abs(got - sigma ** 2) > 1e-3 * sigma ** 2 + 1e-9:
                if sigma > 0 and abs(got - sigma) < 1e-6:
                    return False, f"for sigma={sigma} you returned sigma itself; L2 is a mean of squares"
                return False, f"for sigma={sigma} expected {sigma ** 2:.4g}, got {got:.4g}"
        return True, ("L2 of the truth = sigma^2: no face explains a noisy input exactly, so eps must sit above "
                      "this noise floor (saving the input in 8 bits alone adds (1/255)^2 / 12 = 1.3e-6); demanding "
                      "L2 = 0 would make the search fit the noise, or fail")
    return run_check("why eps and not zero", check)


def check_largest_sigma(value, eps: float = 2e-3) -> bool | None:
    """``value``: the largest noise standard deviation (on the 0-255 scale) at which even the true face still
    reaches L2 <= eps on average (eps = 2e-3 by default)."""
    def check():
        if value is None or value is Ellipsis:
            raise NotImplementedError                                # the template, untouched
        want = 255 * math.sqrt(eps)
        got = float(value)
        if abs(got - want) <= 0.01 * want:
            return True, (f"sigma_max = 255 sqrt(eps) = {want:.2f}: noisier inputs cannot be matched within eps "
                          f"even by the true face (compare the noise study of section 4)")
        if abs(got - math.sqrt(eps)) <= 0.01 * math.sqrt(eps):
            return False, f"{got:.4f} is on the [0, 1] scale; give it on the 0-255 scale"
        return False, f"expected {want:.2f} (on the 0-255 scale), got {got:.4g}"
    return run_check("largest noise within eps", check)
