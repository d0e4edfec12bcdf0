"""Self-checks for notebook 04 (SRCNN, ESPCN, VDSR)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import run_check


def check_pixel_shuffle(fn) -> bool | None:
    """``fn(x, r)``: (B, C r^2, H, W) -> (B, C, H r, W r), the same as ``torch.nn.functional.pixel_shuffle``."""
    def check():
        g = torch.Generator().manual_seed(0)
        for shape, r in [((1, 4, 2, 3), 2), ((2, 18, 5, 4), 3), ((1, 16, 3, 3), 4)]:
            x = torch.randn(shape, generator=g)
            out = fn(x, r)
            want = F.pixel_shuffle(x, r)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(want.shape):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                return False, f"for input {shape} and r={r} expected shape {tuple(want.shape)}, got {got}"
            if not torch.equal(out, want):
                return False, (f"shape is right for input {shape}, r={r}, but the pixels are in the wrong places: "
                               f"channel c*r*r + i*r + j must go to pixel (h*r + i, w*r + j)")
        return True, "your pixel shuffle matches torch.nn.functional.pixel_shuffle"
    return run_check("pixel shuffle", check)


def check_sr_psnr(fn) -> bool | None:
    """``fn(sr_rgb, hr_rgb, scale)``: PSNR of the Y channel (BT.601 studio range) with a border of ``scale``
    pixels cropped: the number every SR paper reports."""
    from ..metrics import sr_psnr

    def check():
        g = torch.Generator().manual_seed(1)
        for scale in (2, 3, 4):
            hr = torch.rand(3, 24, 20, generator=g)
            out = (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
            out[:, :scale] = 0  # a bad border that the protocol must ignore
            want, got = sr_psnr(out, hr, scale), float(fn(out, hr, scale))
            if abs(got - want) > 1e-3:
                return False, f"at scale={scale} expected {want:.4f} dB, got {got:.4f} dB (Y channel? border crop?)"
        return True, "matches course_utils.metrics.sr_psnr"
    return run_check("SR-protocol PSNR", check)


def check_receptive_field(fn) -> bool | None:
    """``fn(kernel_sizes)``: receptive field (pixels per side) of a stack of stride-1 convolutions."""
    def check():
        for sizes, want in [([9, 5, 5], 17), ([3] * 20, 41), ([5, 3, 3], 9), ([1], 1), ([9, 1, 5], 13)]:
            got = fn(sizes)
            if got != want:
                return False, f"for kernels {sizes} expected {want}, got {got} (each k x k layer adds k - 1)"
        return True, "SRCNN sees 17 x 17 pixels, VDSR 41 x 41, ESPCN 9 x 9 low-res pixels"
    return run_check("receptive field", check)
