"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018): the network is the prior.

A randomly initialised convolutional network f_theta maps a fixed noise code z to an image. Restoration is
fitting its weights to one degraded observation y through the forward model A,

    theta* = argmin_theta || A(f_theta(z)) - y ||^2 ,        x* = f_theta*(z)          (paper, eq. 2)

with no training data at all. The architecture fits natural images fast and noise slowly, so stopping early
(or averaging the outputs along the way) gives a clean image.

* :class:`SkipNet`  - the paper's ``skip`` encoder-decoder (5 scales x 128 channels, 4 skip channels).
* :func:`make_input` - the code z: 32 channels of U(0, 0.1) noise, image-sized.
* :func:`fit`       - the fitting loop with the paper's recipe: Adam, noise on z at every step (``reg_noise_std``),
  an exponential moving average of the outputs, backtracking when the loss jumps.
* :func:`classical_denoise` - the classical baselines of the comparison table: BM3D, non-local means, TV.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import operators as ops
from ._checks import check_image, check_number, check_positive_int
from .metrics import psnr
from .runtime import device as default_device


# --------------------------------------------------------------------------------------------------------------
# the network

def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
         layer=nn.Conv2d) -> nn.Sequential:
    """Reflection padding + convolution (the paper pads by reflection so borders carry no zero artefacts).
    ``layer`` builds the convolution (``nn.Conv2d``; notebook 03 passes a Lipschitz-bounded one)."""
    pad = (kernel_size - 1) // 2
    return nn.Sequential(*([nn.ReflectionPad2d(pad)] if pad else []),
                         layer(in_channels, out_channels, kernel_size, stride=stride))


def bn_act(channels: int, norm_layer=nn.BatchNorm2d) -> list:
    return [norm_layer(channels), nn.LeakyReLU(0.2, inplace=True)]


UPSAMPLES = ("bilinear", "nearest")


def upsample2x(mode) -> nn.Module:
    """x2 upsampling: 'bilinear' or 'nearest', or a callable that returns the module (e.g. notebook 03's
    :class:`course_utils.spectral.GaussianUpsample`)."""
    if callable(mode):
        return mode()
    if mode not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {UPSAMPLES} or a callable returning a module, got {mode!r}")
    return nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


def _per_scale(value, depth: int, name: str) -> list[int]:
    values = [value] * depth if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or len(values) != depth:
        raise ValueError(f"{name} must be an int or a list of {depth} ints (one per scale), got {value!r}")
    return [check_positive_int(v, name, minimum=0) for v in values]


class DIPNet(nn.Module):
    """What every Deep Image Prior network shares (:class:`SkipNet` here, notebook 03's ``DecoderNet``): ``depth``
    x2 scales, so image sizes go in multiples of 2^depth; ``make_input(size, generator)`` makes its code z and
    ``check_input(z)`` validates one; ``out_channels`` colour channels in (0, 1)."""

    depth: int
    out_channels: int

    @property
    def multiple(self) -> int:
        """H and W of the image must be multiples of this (2^depth)."""
        return 2 ** self.depth

    @property
    def min_size(self) -> int:
        """The smallest H, W the network accepts: the deepest scale needs 2 pixels for its reflection padding."""
        return 2 ** (self.depth + 1)

    def make_input(self, size, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def check_input(self, z: torch.Tensor) -> None:
        raise NotImplementedError


class SkipNet(DIPNet):
    """The DIP paper's ``skip`` network: a U-Net-like encoder-decoder with thin 1x1 skip connections.

    At each of ``depth`` scales i (input h_i, 2^-i of the image size):

        skip_i = LReLU(BN(conv1x1(h_i)))                                        (``skip`` channels, 4)
        h_{i+1} = LReLU(BN(conv3x3(LReLU(BN(conv3x3_stride2(h_i))))))           (``channels``, 128)
        and on the way back up, with u_{depth} = h_{depth}:
        u_i = LReLU(BN(conv1x1(LReLU(BN(conv3x3(BN([skip_i, up2(u_{i+1})])))))))
        f(z) = sigmoid(conv1x1(u_0))

    z: (B, in_channels, H, W) with H and W divisible by 2^depth and at least 2^(depth+1) -> (B, out_channels, H, W)
    in (0, 1). ``channels``/``skip`` are ints or per-scale lists; ``skip=0`` removes the skip connections
    (the paper's "hourglass"). ``upsample``: 'bilinear' (paper's denoising/SR), 'nearest' (inpainting) or a
    callable returning a x2 upsampling module. ``conv_layer`` and ``norm_layer`` build every convolution and
    normalisation (``nn.Conv2d``, ``nn.BatchNorm2d``); notebook 03 swaps in Shi et al.'s controlled layers
    (:func:`course_utils.spectral.skip_net`).
    """

    def __init__(self, in_channels: int = 32, out_channels: int = 3, channels=128, skip=4, depth: int = 5,
                 upsample="bilinear", *, conv_layer=nn.Conv2d, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.depth = check_positive_int(depth, "depth")
        upsample2x(upsample)   # validates the choice
        self.upsample = upsample
        down_ch = _per_scale(channels, depth, "channels")
        if min(down_ch) < 1:
            raise ValueError(f"channels must be >= 1 at every scale, got {channels!r}")
        skip_ch = _per_scale(skip, depth, "skip")
        cv = lambda cin, cout, k, stride=1: conv(cin, cout, k, stride, layer=conv_layer)  # noqa: E731
        self.down, self.skips, self.up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        previous = in_channels
        for i in range(depth):
            self.skips.append(nn.Sequential(*cv(previous, skip_ch[i], 1), *bn_act(skip_ch[i], norm_layer))
                              if skip_ch[i] else nn.Identity())
            self.down.append(nn.Sequential(cv(previous, down_ch[i], 3, stride=2), *bn_act(down_ch[i], norm_layer),
                                           cv(down_ch[i], down_ch[i], 3), *bn_act(down_ch[i], norm_layer)))
            previous = down_ch[i]
        self.skip_channels = skip_ch
        for i in range(depth):
            # the deepest scale receives h_depth itself; the others receive the decoder's output u_{i+1}
            merged = skip_ch[i] + (down_ch[i + 1] if i + 1 < depth else down_ch[i])
            self.up.append(nn.Sequential(norm_layer(merged), cv(merged, down_ch[i], 3),
                                         *bn_act(down_ch[i], norm_layer),
                                         cv(down_ch[i], down_ch[i], 1), *bn_act(down_ch[i], norm_layer)))
        self.ups = nn.ModuleList(upsample2x(upsample) for _ in range(depth))
        self.out = cv(down_ch[0], out_channels, 1)

    def check_input(self, z: torch.Tensor) -> None:
        check_image(z, "z", ndim=4, channels=self.in_channels, unit_range=False)
        h, w = z.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"z of size {h}x{w} must have height and width divisible by 2^depth = {self.multiple};"
                             f" use make_input(), which pads to the next multiple (fit() crops the output back)")
        if min(h, w) < self.min_size:
            raise ValueError(f"z of size {h}x{w} is too small for a network of depth {self.depth}: it needs at least "
                             f"{self.min_size}x{self.min_size}; use a smaller depth or a larger image")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips, h = [], z
        for skip, down in zip(self.skips, self.down):
            skips.append(skip(h))
            h = down(h)                                  # (B, C_i, H / 2^(i+1), W / 2^(i+1))
        for i in reversed(range(self.depth)):
            h = self.ups[i](h)                           # x2: back to H / 2^i
            if self.skip_channels[i]:
                h = torch.cat([skips[i], h], dim=1)
            h = self.up[i](h)
        return torch.sigmoid(self.out(h))                # (B, out_channels, H, W) in (0, 1)

    def make_input(self, size, generator: torch.Generator | None = None) -> torch.Tensor:
        """The code z for an image of ``size``: image-sized U(0, 0.1) noise, padded to a multiple of 2^depth."""
        return make_input(size, self.in_channels, multiple=self.multiple, generator=generator)


def skip_net(out_channels: int = 3, *, channels=128, skip=4, depth: int = 5, in_channels: int = 32,
             upsample: str = "bilinear") -> SkipNet:
    """The paper's skip network (defaults: 5 scales, 128 channels, 4 skip channels, 32 input channels)."""
    return SkipNet(in_channels, out_channels, channels, skip, depth, upsample)


class PixelNet(DIPNet):
    """The negative control of the course's DIP experiments: a network with the same ingredients as :class:`SkipNet`
    (convolutions, BatchNorm, LeakyReLU, a sigmoid) but only 1x1 convolutions, so every output pixel depends on its
    own code z(p) alone. It has no notion of neighbourhood: whatever preference for natural images it shows cannot
    come from spatial structure.

    z: (B, in_channels, H, W) (the same U(0, 0.1) code as SkipNet) -> (B, out_channels, H, W) in (0, 1);
    ``layers`` hidden 1x1 layers of ``channels`` channels."""

    def __init__(self, in_channels: int = 32, out_channels: int = 3, channels: int = 128, layers: int = 4):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        channels, layers = check_positive_int(channels, "channels"), check_positive_int(layers, "layers")
        self.depth = 0
        body, previous = [], in_channels
        for _ in range(layers):
            body += [nn.Conv2d(previous, channels, 1), *bn_act(channels)]
            previous = channels
        self.body = nn.Sequential(*body, nn.Conv2d(previous, out_channels, 1))

    @property
    def min_size(self) -> int:
        return 1

    def check_input(self, z: torch.Tensor) -> None:
        check_image(z, "z", ndim=4, channels=self.in_channels, unit_range=False)

    def make_input(self, size, generator: torch.Generator | None = None) -> torch.Tensor:
        return make_input(size, self.in_channels, generator=generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(z))               # (B, out_channels, H, W): pixel by pixel


def padded_size(size, multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``multiple`` (the network's 2^depth)."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple


def make_input(size, channels: int = 32, *, multiple: int = 1, scale: float = 0.1,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The code z: (1, channels, H', W') uniform noise in [0, ``scale``] (paper: 32 channels, U(0, 0.1)).

    (H', W') is ``size`` rounded up to a multiple of ``multiple``; pass ``net.multiple`` so that any image size
    works (the extra rows/columns are cropped off the output by :func:`fit`)."""
    channels = check_positive_int(channels, "channels")
    multiple = check_positive_int(multiple, "multiple")
    scale = check_number(scale, "scale", minimum=0, strict_min=True)
    h, w = padded_size(size, multiple)
    return torch.rand(1, channels, h, w, generator=generator) * scale


# --------------------------------------------------------------------------------------------------------------
# the fitting loop

@dataclass
class FitResult:
    """What :func:`fit` returns. Images are (C, H, W) in [0, 1] on the CPU.

    ``output``: f(z) after the last step; ``average``: the exponential moving average of the outputs;
    ``best``: the raw output at the checkpoint with the highest PSNR against ``clean`` (None without ``clean``;
    an *oracle*: it peeks at the ground truth). ``history``: ``step``/``loss`` for every step, and
    ``iter``/``psnr``/``psnr_avg``/``loss_check`` every ``every`` steps; ``backtracks`` lists the steps where the
    weights were restored."""

    output: torch.Tensor
    average: torch.Tensor
    history: dict
    best: torch.Tensor | None = None
    best_iter: int | None = None
    best_psnr: float | None = None
    final_psnr: float | None = None
    final_psnr_avg: float | None = None
    seconds: float = 0.0
    backtracks: list = field(default_factory=list)
    stop_iter: int | None = None


def _check_operator(operator, x_shape, y: torch.Tensor):
    if operator is None:
        return ops.Identity()
    if not isinstance(operator, ops.Operator):
        raise TypeError(f"operator must be a course_utils.operators.Operator (Identity, Downsample, Inpaint, "
                        f"Compose ...), got {type(operator).__name__}")
    if not operator.linear:
        raise ValueError(f"operator must be a deterministic forward model A, got {operator!r}; "
                         f"noise belongs in the observation y, not in A")
    probe = operator(torch.zeros(x_shape))
    if tuple(probe.shape) != tuple(y.shape):
        raise ValueError(f"operator {operator!r} maps an image of shape {tuple(x_shape)} to {tuple(probe.shape)}, "
                         f"but the observation y has shape {tuple(y.shape)}; pass out_size= the size of the "
                         f"image to recover (e.g. y's size times the scale for super-resolution)")
    return operator


def fit(net: DIPNet, y: torch.Tensor, operator: ops.Operator | None = None, *, iters: int,
        lr: float = 0.01, reg_noise_std: float = 1 / 30, ema: float = 0.99, out_size=None,
        clean: torch.Tensor | None = None, every: int = 50, backtrack: float | None = 10 ** 0.5, seed: int = 0,
        z: torch.Tensor | None = None, channels_last: bool = True, bf16: bool = False, progress: bool = True,
        callback=None, monitors: dict | None = None, stop=None,
        stop_on: str = "ratio") -> FitResult:
    """Fit ``net`` so that A(f(z)) matches the observation ``y`` (paper eq. 2), with the paper's recipe.

    y: (C, h, w) or (1, C, h, w) in [0, 1]. ``operator`` A (default identity = denoising) maps an image of
    ``out_size`` (default y's size) to y's shape. Each step: z' = z + reg_noise_std * N(0, I) (0 = off);
    loss = mean (A(f(z')) - y)^2; one Adam step; average <- ema * average + (1 - ema) * f(z').
    Every ``every`` steps (only then does the loop wait for the device): record the loss and, with ``clean``,
    the PSNR of the raw and averaged outputs; if the loss grew more than ``backtrack`` times over the last
    check (the paper's "falling back" when PSNR(y) drops by 5 dB, a factor 10^0.5), restore the last good
    weights and optimiser state. ``callback(step, result_so_far_dict)`` is called at each check (live plots).
    ``bf16=True`` runs the network under bfloat16 autocast (opt-in: about 1.7x faster on CPUs with AVX512-BF16;
    the loss, the average and everything returned stay float32).

    ``monitors``: ``{name: fn}``; at each check ``fn(output)`` (output (C, H, W) in [0, 1]) is appended to
    ``history[name]`` (e.g. the FBC of notebook 03). ``stop``: an object whose ``update(step, value)`` returns True
    to stop (e.g. :class:`course_utils.spectral.PlateauStop`), fed with the monitor ``stop_on``; when it fires the
    fit ends there and ``result.stop_iter`` records the step.
    """
    if not isinstance(net, DIPNet):
        raise TypeError(f"net must be a course_utils.dip.DIPNet (SkipNet, spectral.DecoderNet), got "
                        f"{type(net).__name__}")
    monitors = dict(monitors or {})
    for name, fn in monitors.items():
        if not callable(fn):
            raise TypeError(f"monitors[{name!r}] must be a function of the output image, got {type(fn).__name__}")
    if stop is not None:
        if not callable(getattr(stop, "update", None)):
            raise TypeError(f"stop must have an update(step, value) -> bool method (e.g. "
                            f"course_utils.spectral.PlateauStop), got {type(stop).__name__}")
        if stop_on not in monitors:
            raise ValueError(f"stop_on={stop_on!r} must name one of the monitors {sorted(monitors)}")
    check_image(y, "y", ndim=(3, 4))
    if y.dim() == 4 and y.shape[0] != 1:
        raise ValueError(f"y must hold one image (batch size 1), got shape {tuple(y.shape)}")
    y = y if y.dim() == 4 else y[None]
    iters = check_positive_int(iters, "iters")
    every = check_positive_int(every, "every")
    lr = check_number(lr, "lr", minimum=0, strict_min=True)
    reg_noise_std = check_number(reg_noise_std, "reg_noise_std", minimum=0)
    ema = check_number(ema, "ema", minimum=0, maximum=1)
    if backtrack is not None:
        backtrack = check_number(backtrack, "backtrack", minimum=1, strict_min=True)
    if y.shape[1] != net.out_channels:
        raise ValueError(f"y has {y.shape[1]} channels but net produces {net.out_channels}; "
                         f"build the net with out_channels={y.shape[1]}")
    h, w = (y.shape[-2:] if out_size is None else
            ((out_size, out_size) if isinstance(out_size, int) else tuple(out_size)))
    h, w = check_positive_int(h, "out_size"), check_positive_int(w, "out_size")
    if min(h, w) < net.min_size:
        raise ValueError(f"the image to recover ({h}x{w}) is too small for a network of depth {net.depth}: it "
                         f"needs at least {net.min_size}x{net.min_size} pixels; use a smaller depth")
    operator = _check_operator(operator, (1, net.out_channels, h, w), y)
    if clean is not None:
        check_image(clean, "clean", ndim=(3, 4))
        clean = clean if clean.dim() == 4 else clean[None]
        if tuple(clean.shape) != (1, net.out_channels, h, w):
            raise ValueError(f"clean must have shape {(net.out_channels, h, w)} (the image to recover), "
                             f"got {tuple(clean.shape[-3:])}")
    generator = torch.Generator().manual_seed(seed)
    if z is None:
        z = net.make_input((h, w), generator=generator)
    net.check_input(z)
    if isinstance(net, SkipNet) and (z.shape[-2] < h or z.shape[-1] < w):
        raise ValueError(f"z of size {tuple(z.shape[-2:])} is smaller than the image to recover {(h, w)}")

    dev = default_device()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(dev, memory_format=fmt).train()
    z = z.to(dev).contiguous(memory_format=fmt)
    y = y.to(dev)
    noise = torch.empty_like(z)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    if isinstance(operator, ops.Inpaint):  # move the mask once, not at every step
        operator = ops.Inpaint(operator.mask.to(dev))
    losses = torch.zeros(iters, device=dev)
    average = torch.zeros(1, net.out_channels, h, w, device=dev)
    history = {"step": list(range(1, iters + 1)), "loss": [], "iter": [], "loss_check": [], "psnr": [],
               "psnr_avg": []}
    history.update({name: [] for name in monitors})
    result = FitResult(output=None, average=None, history=history)
    good_state = (copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict()))
    good_loss = math.inf

    from tqdm.auto import tqdm

    bar = tqdm(range(1, iters + 1), desc="DIP fit", leave=False, mininterval=1, disable=not progress)
    start = time.perf_counter()
    for step in bar:
        z_in = torch.add(z, noise.normal_(generator=noise_gen), alpha=reg_noise_std) if reg_noise_std else z
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(z_in)[..., :h, :w]
        out = out.float()
        loss = F.mse_loss(operator.forward(out, None), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step - 1] = loss.detach()
        with torch.no_grad():
            if step == 1:
                average.copy_(out)
            else:
                average.lerp_(out, 1 - ema)
        if step % every == 0 or step == iters:
            current = float(losses[step - 1])  # the only host sync, every `every` steps
            if backtrack is not None and (not math.isfinite(current) or current > backtrack * good_loss):
                net.load_state_dict(good_state[0])
                optimizer.load_state_dict(good_state[1])
                result.backtracks.append(step)
                continue
            good_loss = current
            good_state = (copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict()))
            history["iter"].append(step)
            history["loss_check"].append(current)
            raw = out.detach().clamp(0, 1).cpu() if clean is not None or monitors else None  # one copy per check
            if clean is not None:
                p_raw, p_avg = psnr(raw, clean), psnr(average.clamp(0, 1).cpu(), clean)
                history["psnr"].append(p_raw)
                history["psnr_avg"].append(p_avg)
                if result.best_psnr is None or p_raw > result.best_psnr:
                    result.best_psnr, result.best_iter, result.best = p_raw, step, raw[0]
                bar.set_postfix(loss=f"{current:.2e}", psnr=f"{p_raw:.2f}", avg=f"{p_avg:.2f}", refresh=False)
            else:
                bar.set_postfix(loss=f"{current:.2e}", refresh=False)
            if monitors:
                for name, fn in monitors.items():
                    history[name].append(fn(raw[0]))
                if stop is not None and stop.update(step, history[stop_on][-1]):
                    result.stop_iter = step
            if callback is not None:
                callback(step, history)
            if result.stop_iter is not None:
                break
    bar.close()
    result.seconds = time.perf_counter() - start
    history["loss"] = losses[:step].cpu().tolist()  # fewer than iters when the automatic stop fired
    history["step"] = history["step"][:step]
    with torch.no_grad():
        result.output = out.detach().clamp(0, 1).cpu()[0]
        result.average = average.clamp(0, 1).cpu()[0]
    if clean is not None:
        result.final_psnr = psnr(result.output, clean[0])
        result.final_psnr_avg = psnr(result.average, clean[0])
    return result


# --------------------------------------------------------------------------------------------------------------
# classical denoisers for the comparison table

CLASSICAL = ("bm3d", "nlm", "tv")


def classical_denoise(noisy: torch.Tensor, sigma: float, method: str = "bm3d") -> torch.Tensor:
    """Denoise a (C, H, W) image with a classical method, noise ``sigma`` on the 0-255 scale.

    'bm3d': the ``bm3d`` package (CBM3D for colour). 'nlm': ``skimage.restoration.denoise_nl_means`` with the
    noise level estimated from the image (``estimate_sigma``), h = 0.8 sigma, fast mode. 'tv': Chambolle's total
    variation, weight = sigma/255 (a fixed, documented choice)."""
    check_image(noisy, "noisy", ndim=3, channels=(1, 3))
    sigma = check_number(sigma, "sigma", minimum=0, strict_min=True, maximum=255)
    if method not in CLASSICAL:
        raise ValueError(f"method must be one of {CLASSICAL}, got {method!r}")
    import numpy as np

    array = noisy.detach().double().cpu().numpy().transpose(1, 2, 0)
    s = sigma / 255.0
    if method == "bm3d":
        import bm3d

        out = bm3d.bm3d_rgb(array, s) if array.shape[2] == 3 else bm3d.bm3d(array[..., 0], s)[..., None]
    elif method == "nlm":
        from skimage.restoration import denoise_nl_means, estimate_sigma

        est = float(np.mean(estimate_sigma(array, channel_axis=-1)))
        out = denoise_nl_means(array, h=0.8 * est, sigma=est, fast_mode=True, patch_size=5, patch_distance=6,
                               channel_axis=-1)
    else:
        from skimage.restoration import denoise_tv_chambolle

        out = denoise_tv_chambolle(array, weight=s, channel_axis=-1)
    out = np.clip(np.asarray(out, dtype=np.float32).reshape(array.shape), 0, 1)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def classical_inpaint(observed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the missing pixels of ``observed`` (C, H, W) where ``mask`` is 0 (mask: (H, W), (1, H, W) or
    (1, 1, H, W), 1 = observed) by biharmonic interpolation (``skimage.restoration.inpaint_biharmonic``): the
    smoothest surface through the observed pixels, the classical baseline for inpainting."""
    import numpy as np
    from skimage.restoration import inpaint_biharmonic

    check_image(observed, "observed", ndim=3, channels=(1, 3))
    check_image(mask, "mask", ndim=(2, 3, 4))
    if tuple(mask.shape[-2:]) != tuple(observed.shape[-2:]) or mask.numel() != observed.shape[-1] * observed.shape[-2]:
        raise ValueError(f"mask must be one (H, W) plane of the image's size {tuple(observed.shape[-2:])}, "
                         f"got shape {tuple(mask.shape)}")
    missing = mask.detach().cpu().reshape(observed.shape[-2:]).numpy() < 0.5
    array = observed.detach().double().cpu().numpy().transpose(1, 2, 0)
    out = inpaint_biharmonic(array, missing, channel_axis=-1)
    out = np.clip(np.asarray(out, dtype=np.float32), 0, 1).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(out))


# --------------------------------------------------------------------------------------------------------------
# experiments of the notebooks

def fitting_targets(image: torch.Tensor, sigma: float = 25.0, seed: int = 1234) -> dict:
    """The four targets of the paper's Fig. 2 for a (C, H, W) image: the image, the image + Gaussian noise
    (``sigma`` on 0-255), its pixels randomly permuted (same colours, no structure), and U(0, 1) white noise.

    The targets use their own generator (``seed``): never draw them from the generator that makes the code z,
    or the "noise" target can literally be a copy of some channel of z and fits at once."""
    check_image(image, "image", ndim=3)
    generator = torch.Generator().manual_seed(seed)
    c, h, w = image.shape
    perm = torch.randperm(h * w, generator=generator)
    return {"natural": image,
            "noisy": ops.GaussianNoise(sigma)(image, generator),
            "scrambled": image.reshape(c, -1)[:, perm].reshape(c, h, w),
            "noise": torch.rand(image.shape, generator=generator)}


def iterations_to_reach(losses, threshold: float) -> float:
    """First step (1-based) at which ``losses`` (one per step) drops below ``threshold``; ``inf`` if never."""
    threshold = check_number(threshold, "threshold", minimum=0, strict_min=True)
    for step, value in enumerate(losses, start=1):
        if value < threshold:
            return step
    return math.inf


TASKS = ("denoise", "sr", "inpaint")
MASKS = ("text", "bernoulli", "blocks")


def degrade(image: torch.Tensor, task: str, level=None, seed: int = 0) -> dict:
    """Make one restoration problem from a clean (C, H, W) image -> ``{"clean", "y", "operator", "out_size",
    "baseline"}``.

    * 'denoise': y = x + n, ``level`` = sigma on 0-255 (default 25, must be in (0, 100]); A = identity;
      baseline = the noisy image itself.
    * 'sr': y = Downsample(scale)(x), ``level`` = scale (default 4); the clean image is cropped to a multiple of
      the scale; baseline = bicubic upsampling of y.
    * 'inpaint': y = m * x, ``level`` = 'text' (the paper's text mask), 'bernoulli' (50% of pixels dropped) or
      'blocks' (4 square holes of a quarter of the side); baseline = y (missing pixels black).
    """
    check_image(image, "image", ndim=3)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    generator = torch.Generator().manual_seed(seed)
    if task == "denoise":
        sigma = check_number(25.0 if level is None else level, "sigma", minimum=0, strict_min=True, maximum=100)
        y = ops.GaussianNoise(sigma)(image, generator)
        return {"clean": image, "y": y, "operator": ops.Identity(), "out_size": tuple(image.shape[-2:]),
                "baseline": y, "label": f"noisy (sigma={sigma:g})"}
    if task == "sr":
        scale = check_positive_int(4 if level is None else level, "scale", minimum=2)
        from .images import modcrop

        image = modcrop(image, scale)
        operator = ops.Downsample(scale)
        y = operator(image)
        return {"clean": image, "y": y, "operator": operator, "out_size": tuple(image.shape[-2:]),
                "baseline": ops.Upsample(scale)(y), "label": f"bicubic x{scale}"}
    kind = "text" if level is None else level
    if kind not in MASKS:
        raise ValueError(f"mask must be one of {MASKS} for inpainting, got {kind!r}")
    size = tuple(image.shape[-2:])
    if kind == "text":
        mask = ops.text_mask(size)
    elif kind == "bernoulli":
        mask = ops.bernoulli_mask(size, 0.5, generator)
    else:
        mask = ops.block_mask(size, n_blocks=4, block_size=min(size) // 4, generator=generator)
    operator = ops.Inpaint(mask)
    y = operator(image)
    return {"clean": image, "y": y, "operator": operator, "out_size": size, "baseline": y,
            "label": f"masked ({kind})"}


# --------------------------------------------------------------------------------------------------------------
# DIP as a super-resolution method (the paper's Set5/Set14 experiment through the course's SRModel interface)

from .sr import SRModel, register_model  # noqa: E402  (sr does not import dip: no cycle)

#: DIP-SR's network width and iterations by profile (notebook 02's ``sr_width``/``sr_iters``; paper: 128, 2000)
SR_SETTINGS = dict(ci=dict(width=32, iters=400), cpu=dict(width=64, iters=2000), gpu=dict(width=128, iters=2000))


class DIPSR(SRModel):
    """Deep Image Prior as a super-resolver (paper Sec. 4, x4 and x8 on Set5/Set14): for every low-res image a
    fresh :func:`skip_net` is fitted so that ``Downsample(scale)(f(z))`` matches it (eq. 2 with A = the course's
    antialiased bicubic downsampling) and the averaged output is returned. No training data: each call fits from
    scratch, so it is slow (paper settings, 128 channels and 2000 iterations: minutes on a GPU, ~45 min for a
    256 px output on one CPU thread).

    ``width``/``iters`` default to the profile's (:data:`SR_SETTINGS`: ci 32/400, cpu 64/2000, gpu 128/2000);
    ``depth`` 5 as in the paper (the output must be at least 2^(depth+1) pixels per side). Stochastic: the initial
    weights, z and the input noise come from ``generator`` (one draw per image)."""

    channels = 3
    stochastic = True

    def __init__(self, scale: int = 4, width: int | None = None, iters: int | None = None, depth: int = 5,
                 lr: float = 0.01, reg_noise_std: float = 0.03):
        super().__init__()
        from .runtime import settings

        cfg = settings(**SR_SETTINGS)
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.width = check_positive_int(cfg["width"] if width is None else width, "width")
        self.iters = check_positive_int(cfg["iters"] if iters is None else iters, "iters")
        self.depth = check_positive_int(depth, "depth")
        self.lr = check_number(lr, "lr", minimum=0, strict_min=True)
        self.reg_noise_std = check_number(reg_noise_std, "reg_noise_std", minimum=0)
        self.receptive_field = math.ceil(2 ** (self.depth + 1) / self.scale)   # the net's smallest output side

    def _upscale(self, low: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        self._check_shape(low, "low")
        operator = ops.Downsample(self.scale)
        outputs = []
        for y in low:                                     # y: (3, h, w); one fit per image
            seed = int(torch.randint(2 ** 31 - 1, (1,), generator=generator)) if generator is not None else 0
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                torch.manual_seed(seed)                   # the initial weights
                net = skip_net(3, channels=self.width, depth=self.depth)
                result = fit(net, y, operator, iters=self.iters, lr=self.lr,
                             reg_noise_std=self.reg_noise_std, out_size=(self.scale * y.shape[-2],
                                                                         self.scale * y.shape[-1]),
                             every=max(self.iters // 10, 1), seed=seed, progress=False)
            outputs.append(result.average)               # (3, s h, s w)
        return torch.stack(outputs)                      # upscale() casts back to the input's device and dtype


register_model("dip", DIPSR, trained=False, tiny=dict(width=4, iters=3, depth=2))
