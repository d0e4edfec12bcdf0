"""Self-checks for notebook 08 (the face world's posterior: calibration of super-resolvers)."""
from __future__ import annotations

import torch

from . import run_check

_P = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)


def check_tv_distance(fn) -> bool | None:
    """``fn(f, p)``: two (n, V) tensors of probabilities -> (n,) total-variation distances 1/2 sum_c |f_c - p_c|."""
    def check():
        f = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.0, 0, 0, 1]], dtype=torch.float64)
        got = torch.as_tensor(fn(f.clone(), _P.clone()), dtype=torch.float64)
        want = 0.5 * (f - _P).abs().sum(1)
        if got.shape != want.shape:
            return False, f"expected one distance per row, shape {tuple(want.shape)}, got {tuple(got.shape)}"
        if torch.allclose(got, 2 * want):
            return False, "you forgot the 1/2: TV is half the L1 distance (so that it lies in [0, 1])"
        if not torch.allclose(got, want, atol=1e-9):
            return False, f"for f = {f[0].tolist()}, p = {_P[0].tolist()} expected {want[0]:.3f}, got {got[0]:.3f}"
        return True, "TV lies in [0, 1]: 0 for the same distribution, 1 for disjoint ones"
    return run_check("total-variation distance", check)


def check_floor_by_simulation(fn) -> bool | None:
    """``fn(p, K, trials, generator)``: the mean over ``trials`` of TV(f, p), f the frequencies of K draws from the
    distribution p (V,) -> a float (the calibration floor of a perfect sampler, estimated by simulation)."""
    from ..posterior import calibration_floor

    def check():
        for p, k in [(_P[0], 4), (_P[1], 8), (_P[2], 3)]:
            got = float(fn(p.clone(), k, 4000, torch.Generator().manual_seed(0)))
            exact = float(calibration_floor(p[None], k)[0])
            if abs(got - exact) > 0.02:
                return False, f"for p = {p.tolist()} and K = {k} the exact expectation is {exact:.3f}, got {got:.3f}"
        return True, ("even K perfect draws are on average this far from p: the floor that posterior.evaluate "
                      "subtracts (calibration_floor computes it exactly)")
    return run_check("calibration floor by simulation", check)


def check_deterministic_prediction(fn) -> bool | None:
    """``fn(p, K)``: the calibration error (TV minus the floor of K draws) of a method that answers the posterior's
    most likely value K times, for a posterior p (V,) -> a float."""
    from ..posterior import calibration_floor

    def check():
        for p, k in [(_P[0], 8), (_P[1], 4), (_P[2], 8)]:
            got = float(fn(p.clone(), k))
            want = float(1 - p.max() - calibration_floor(p[None], k)[0])
            if abs(got - (1 - float(p.max()))) < 1e-9 and abs(got - want) > 1e-6:
                return False, "that is its TV; the calibration error subtracts the floor of K draws from p"
            if abs(got - want) > 1e-6:
                return False, f"for p = {p.tolist()}, K = {k}: expected {want:.4f}, got {got:.4f}"
        return True, ("a deterministic answer pays 1 - max p, less the floor: zero only when the input fixes the "
                      "attribute (p one-hot), as at x4")
    return run_check("a deterministic method's calibration error", check)
