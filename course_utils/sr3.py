"""Notebook 06: SR3, super-resolution by iterative refinement (Saharia et al. 2021).

SR3 learns p(x | y), the distribution of high-res images x given a low-res y, with a conditional denoising
diffusion model: a fixed forward process adds Gaussian noise to the high-res target step by step, a UNet
conditioned on the bicubic-upsampled low-res image learns to predict that noise, and sampling runs the learned
reverse chain from pure noise (the equations: :mod:`course_utils.sr3_diffusion`).

SR3 is three files, each read top to bottom: ``sr3_diffusion.py`` (parts 1, 2 and 4 below: schedules, the
forward and the reverse process, with the equations), ``sr3_unet.py`` (part 3: the network) and this file (parts 5
and 6: the models, training and evaluation). Every name is importable from here, ``course_utils.sr3``
(``sr3.Schedule``, ``sr3.UNet``, ``sr3.p_sample``, ...), the public path:

1. :class:`Schedule` - gamma_t for the paper's linear betas 1e-6 -> 1e-2 (T = 2000) or a cosine schedule, and
   respacing to any number of steps.
2. The forward process: :func:`q_step` (one step), :func:`q_sample` (closed form), :func:`sample_noise_level` (the
   training draw of sqrt(gamma)).
3. :class:`UNet` - the conditional denoiser f(x, y_t, sqrt(gamma)) -> eps (residual blocks with GroupNorm + SiLU,
   a sinusoidal embedding of the noise level, self-attention at the lowest resolution).
4. The reverse process: :func:`predict_y0`, :func:`posterior_mean`, :func:`posterior_variance`, :func:`p_sample`
   (one ancestral step) and :func:`ddim_step` (deterministic, for comparison).
5. :class:`SR3` (an :class:`course_utils.sr.SRModel`: ``upscale(low, *, steps, sampler, generator)``) and the
   regression baseline :class:`SR3Regression` (the same UNet, one pass, L2).
6. Training: :func:`diffusion_loss`, :class:`EMA`, ``RECIPES`` and :func:`trainer` (``python -m
   course_utils.train sr3|sr3-regression``); evaluation: :func:`evaluate_samples`.

Images are (B, 3, H, W) RGB in [0, 1] at every public boundary; inside, the diffusion works on [-1, 1].
What is diffused (``target``): ``'image'`` (the paper: y_0 = the high-res image, 2 x - 1) or ``'residual'``
(SRDiff: y_0 = (high-res - bicubic) / r in [-1, 1] units, r = :data:`RESIDUAL_SCALE`; the bicubic image is
added back after sampling).
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn as nn

from . import operators as ops
from ._checks import check_image, check_number, check_positive_int
from .pretrained import check_state_dict
from .sr import (LOSSES, PatchSampler, SRModel, Trainer, build_model, consistency, learning_rate, make_low_res,
                 register_model)
from .sr3_diffusion import (Schedule, _randn, ddim_step, p_sample, posterior_mean, posterior_variance, predict_y0,
                            q_sample, q_step, sample_noise_level, sampling_noise)
from .sr3_unet import ResBlock, SelfAttention, UNet, noise_level_embedding  # noqa: F401 (sr3.ResBlock, ...)

__all__ = ["Schedule", "q_step", "q_sample", "sample_noise_level", "noise_level_embedding", "UNet",
           "predict_y0", "posterior_mean", "posterior_variance", "sampling_noise", "p_sample", "ddim_step", "SR3",
           "SR3Regression", "RESIDUAL_SCALE", "RESIDUAL_BOUND", "diffusion_loss", "EMA", "SR3_UNET", "RECIPES",
           "model_config", "SR3Trainer", "trainer",
           "evaluate_samples"]


# ----------------------------------------------------------------------------------------------------------------
# 5. the models

#: r of the residual target y_0 = (x - bicubic) / r, on [-1, 1] images: SRDiff's factor 2 (r = 0.5). Measured on
#: the course's train split (x4, 64 px RGB patches): the residual has std 0.093 on [-1, 1] (0.5 % of values beyond
#: +-0.5), so y_0 has std ~0.19 against the image target's ~0.53 - smaller than the unit-variance noise, i.e. the
#: residual is drowned earlier in the chain. Sampling clips y0_hat to [-1, 1] in the target's units for both targets
#: (for the residual: |high-res - bicubic| <= r, SRDiff's clamp, true of 99.5 % of the measured residuals). Clipping
#: instead so that the *image* stays in [-1, 1] (per pixel, one-sided where bicubic is near black or white) biases
#: y0_hat: after 300 training steps, 25-step samples of a 128 px astronaut crop scored 24.0 dB, consistency 7e-4
#: with the symmetric clamp, 23.4 dB, 2.5e-3 with both bounds and 17.6 dB, 2.7e-2 with the image bound alone.
RESIDUAL_SCALE = 0.5
#: the largest |high-res - bicubic| the sampler allows, on [-1, 1] images (99.5 % of the measured residuals)
RESIDUAL_BOUND = 0.5
TARGETS = ("image", "residual")
SAMPLERS = ("ancestral", "ddim")
#: the fixed noise-level input of the regression baseline (its y_t channels are zero)
REGRESSION_SQRT_GAMMA = 1.0


class _SR3Base(SRModel):
    """What SR3 and its regression baseline share: RGB, the bicubic conditioning x_up on [-1, 1], the target
    (image or residual), and a ``load_state_dict`` that names mismatching keys."""

    channels = 3

    def __init__(self, unet: UNet, scale: int, target: str, residual_scale: float):
        super().__init__()
        if not isinstance(unet, UNet):
            raise TypeError(f"unet must be a course_utils.sr3.UNet, got {type(unet).__name__}")
        if unet.image_channels != 3:
            raise ValueError(f"unet must work on 3 (RGB) channels, got image_channels={unet.image_channels}")
        self.unet = unet
        self.scale = check_positive_int(scale, "scale", minimum=2)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        self.residual_scale = check_number(residual_scale, "residual_scale", minimum=0, strict_min=True)
        self.bicubic = ops.Upsample(self.scale)
        self.downsample = ops.Downsample(self.scale)                           # A: what the input is of the output
        # the smallest low-res side whose high-res size the UNet can halve levels-1 times
        self.receptive_field = max(1, math.ceil(unet.multiple / self.scale))

    @property
    def clip_bound(self) -> float:
        """The bound b of the sampler's clamp of y0_hat to [-b, b], in the target's units: 1 for the image (its
        range), max(1, RESIDUAL_BOUND / r) for the residual (|high-res - bicubic| <= RESIDUAL_BOUND on [-1, 1])."""
        return 1.0 if self.target == "image" else max(1.0, RESIDUAL_BOUND / self.residual_scale)

    def x_up(self, low: torch.Tensor) -> torch.Tensor:
        """The conditioning image: bicubic(low) on [-1, 1]. (B, 3, h, w) in [0, 1] -> (B, 3, s h, s w). Always in
        ``low``'s precision, also under bf16 autocast (the bicubic is a matrix product, which autocast would round
        to bf16: training and sampling would see different conditioning, and the residual target its rounding)."""
        with torch.autocast(low.device.type, enabled=False):
            return 2 * self.bicubic.forward(low, None) - 1

    def to_target(self, high: torch.Tensor, x_up: torch.Tensor) -> torch.Tensor:
        """y_0 for a high-res image in [0, 1]: 2 x - 1 (``'image'``) or (2 x - 1 - x_up) / r (``'residual'``)."""
        x = 2 * high - 1
        return x if self.target == "image" else (x - x_up) / self.residual_scale

    def from_target(self, y0: torch.Tensor, x_up: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_target`: the high-res image in [0, 1] (not clamped)."""
        x = y0 if self.target == "image" else x_up + self.residual_scale * y0
        return (x + 1) / 2

    def _check_low(self, low: torch.Tensor) -> None:
        self._check_shape(low, "low")
        self.unet.check_size(self.scale * low.shape[-2], self.scale * low.shape[-1], name=f"low upscaled x{self.scale}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's, but a state dict that does not fit (a checkpoint of another configuration) raises a
        ValueError naming the missing, unknown and wrongly shaped keys."""
        if strict:
            try:
                what = f"state dict of this {type(self).__name__} (config {self.config})"
            except ValueError:
                what = f"state dict of this {type(self).__name__}"
            state_dict = check_state_dict(self.state_dict(), state_dict, "state_dict", what=what)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class SR3(_SR3Base):
    """SR3 as a super-resolution method: ``upscale(low, *, steps=None, sampler=None, generator=None)`` runs the
    reverse chain from pure noise with the UNet conditioned on bicubic(low) and returns one sample per input.

    ``unet`` (:class:`UNet`), ``schedule`` (the training :class:`Schedule`; sampling respaces it to ``steps``),
    ``target`` ('image' | 'residual'), ``residual_scale`` (r), default ``steps`` and ``sampler`` ('ancestral' =
    :func:`p_sample`, 'ddim' = :func:`ddim_step`), ``variance`` of the ancestral steps (:func:`posterior_variance`),
    ``clip`` (clip y0_hat to [-b, b] in the target's units at every step, b = :attr:`clip_bound`),
    ``zero_mean_noise`` (default: True for the residual target, False for the image): draw y_T and every fresh
    noise of the chain with zero mean per image and channel (see :func:`sampling_noise`); ``project`` (default
    False, the paper's sampler): replace y0_hat at every step by the nearest prediction that explains the input
    exactly (:meth:`consistent`; DDNM's range-space correction, Wang et al. 2023 - not in SR3).
    ``model(low, y_t, sqrt_gamma)`` is the eps prediction.
    All randomness of sampling comes from ``generator``.
    """

    stochastic = True

    def __init__(self, unet: UNet, schedule: Schedule, *, scale: int = 4, target: str = "image",
                 residual_scale: float = RESIDUAL_SCALE, steps: int = 100, sampler: str = "ancestral",
                 variance: str = "posterior", clip: bool = True, zero_mean_noise: bool | None = None,
                 project: bool = False):
        super().__init__(unet, scale, target, residual_scale)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a course_utils.sr3.Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.steps = self._check_steps(steps)
        self.sampler = self._check_sampler(sampler)
        posterior_variance(0.5, 1.0, variance)                                  # validates `variance`
        self.variance, self.clip, self.project = variance, bool(clip), bool(project)
        self.zero_mean_noise = (target == "residual") if zero_mean_noise is None else bool(zero_mean_noise)
        if self.zero_mean_noise and target != "residual":
            raise ValueError("zero_mean_noise=True needs target='residual' (only the residual's mean is known: ~0)")
        self._options: dict = {}

    def _check_steps(self, steps) -> int:
        steps = check_positive_int(steps, "steps")
        if steps > self.schedule.T:
            raise ValueError(f"steps must be <= T = {self.schedule.T} (the training schedule), got {steps}")
        return steps

    @staticmethod
    def _check_sampler(sampler) -> str:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        return sampler

    def forward(self, low: torch.Tensor, y_t: torch.Tensor, sqrt_gamma: torch.Tensor) -> torch.Tensor:
        """eps prediction: low (B, 3, h, w) in [0, 1], y_t (B, 3, s h, s w), sqrt_gamma (B,) -> (B, 3, s h, s w)."""
        self._check_low(low)
        return self.unet(self.x_up(low), y_t, sqrt_gamma)

    def consistent(self, y0: torch.Tensor, x_up: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """The prediction y0 (target units) moved to the nearest one whose image downsamples exactly to ``low``:
        x = from_target(y0) -> :meth:`course_utils.operators.Downsample.project` (x, low) -> back to the target.
        Only what the low-res image sees changes; the invented detail (the null space of downsampling) stays."""
        x = self.from_target(y0, x_up)                                          # (B, 3, s h, s w) in ~[0, 1]
        return self.to_target(self.downsample.project(x, low), x_up)

    @torch.no_grad()
    def sample(self, low: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
               generator: torch.Generator | None = None, return_trajectory: int | bool = 0,
               progress: bool = False, project: bool | None = None):
        """Run the reverse chain on ``steps`` steps of the respaced schedule. ``low``: (B, 3, h, w) RGB in [0, 1]
        on the model's device -> (B, 3, s h, s w) in [0, 1] (not clamped; ``upscale`` clamps). ``project``:
        None = ``self.project``.

        ``return_trajectory`` = n > 0 (or True = every step) also returns the chain at n evenly spaced steps:
        ``(images, {"step": [k, ...], "sqrt_gamma": [...], "y_t": [...], "y0": [...]})`` with y_t (shown as
        (y_t + 1) / 2, clamped) and the current prediction y0_hat as (B, 3, s h, s w) images on the CPU in [0, 1]."""
        check_image(low, "low", ndim=4, channels=3)
        self._check_low(low)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return self._sample(low, self._check_steps(self.steps if steps is None else steps),
                            self._check_sampler(self.sampler if sampler is None else sampler), generator,
                            return_trajectory, progress, self.project if project is None else bool(project))

    def _sample(self, low, steps, sampler, generator, return_trajectory=0, progress=False, project=False):
        from tqdm.auto import tqdm

        schedule = self.schedule.respace(steps)
        x_up = self.x_up(low)                                                   # (B, 3, s h, s w) in [-1, 1]
        y = sampling_noise(x_up.shape, generator, x_up.device, x_up.dtype, self.zero_mean_noise)   # y_T ~ N(0, I)
        keep = set()
        if return_trajectory:
            n = steps if return_trajectory is True else min(int(return_trajectory), steps)
            keep = {round(steps - i * (steps - 1) / max(n - 1, 1)) for i in range(n)} if n > 1 else {1}
        trajectory = {"step": [], "sqrt_gamma": [], "y_t": [], "y0": []}
        bound = self.clip_bound
        clip = (-bound, bound) if self.clip else False
        correct = (lambda y0: self.consistent(y0, x_up, low)) if project else None     # noqa: E731
        for k in tqdm(range(steps, 0, -1), desc=f"SR3 {sampler}", leave=False, disable=not progress):
            gamma, gamma_prev = float(schedule.gamma[k - 1]), float(schedule.gamma_prev[k - 1])
            sqrt_gamma = torch.full((y.shape[0],), math.sqrt(gamma), device=y.device, dtype=y.dtype)
            eps = self.unet(x_up, y, sqrt_gamma)
            if k in keep:
                y0 = predict_y0(y, eps, math.sqrt(gamma)).clamp(-bound, bound)
                trajectory["step"].append(k)
                trajectory["sqrt_gamma"].append(math.sqrt(gamma))
                trajectory["y_t"].append(((y + 1) / 2).clamp(0, 1).cpu())
                trajectory["y0"].append(self.from_target(y0, x_up).clamp(0, 1).cpu())
            if sampler == "ancestral":
                noise = (sampling_noise(y.shape, generator, y.device, y.dtype, self.zero_mean_noise)
                         if gamma_prev < 1 else None)
                y = p_sample(eps, y, gamma, gamma_prev, noise, clip=clip, variance=self.variance, correct=correct)
            else:
                y = ddim_step(eps, y, gamma, gamma_prev, clip=clip, correct=correct)
        out = self.from_target(y, x_up)
        return (out, trajectory) if return_trajectory else out

    def upscale(self, low: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
                generator: torch.Generator | None = None, project: bool | None = None) -> torch.Tensor:
        """:meth:`course_utils.sr.SRModel.upscale` (validation, grey/RGB, device and dtype, eval mode, [0, 1]) with
        SR3's options: ``steps`` (default ``self.steps``), ``sampler`` (default ``self.sampler``) and ``project``
        (default ``self.project``)."""
        self._options = {"steps": self._check_steps(self.steps if steps is None else steps),
                         "sampler": self._check_sampler(self.sampler if sampler is None else sampler),
                         "project": self.project if project is None else bool(project)}
        try:
            return super().upscale(low, generator=generator)
        finally:
            self._options = {}

    def _upscale(self, low, generator):
        self._check_low(low)
        options = self._options or {"steps": self.steps, "sampler": self.sampler, "project": self.project}
        return self._sample(low, options["steps"], options["sampler"], generator, project=options["project"])

    @property
    def config(self) -> dict:
        """The builder arguments that rebuild this model (stored in checkpoints)."""
        if self.schedule.config is None:
            raise ValueError("this SR3 model has a custom schedule (no Schedule.linear/cosine configuration), so "
                             "it cannot be rebuilt from a configuration; build it with Schedule.linear or .cosine")
        return dict(unet=dict(self.unet.config), schedule=dict(self.schedule.config), target=self.target,
                    residual_scale=self.residual_scale, steps=self.steps, sampler=self.sampler,
                    variance=self.variance, clip=self.clip, zero_mean_noise=self.zero_mean_noise, project=self.project)


class SR3Regression(_SR3Base):
    """The paper's regression baseline: the same UNet and the same conditioning input, trained with L2 to output
    the high-res image in one pass (its y_t channels are zero and its noise level fixed at
    :data:`REGRESSION_SQRT_GAMMA`). ``target='image'`` (the paper's: the UNet outputs the image on [-1, 1]) or
    ``'residual'`` (bicubic + r x output). ``model(low)``: (B, 3, h, w) in [0, 1] -> (B, 3, s h, s w) on [0, 1]
    (not clamped). Deterministic: it outputs the conditional *mean*, which maximises PSNR and blurs detail."""

    def __init__(self, unet: UNet, *, scale: int = 4, target: str = "image", residual_scale: float = RESIDUAL_SCALE):
        super().__init__(unet, scale, target, residual_scale)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        self._check_low(low)
        x_up = self.x_up(low)                                                   # (B, 3, s h, s w)
        level = torch.full((low.shape[0],), REGRESSION_SQRT_GAMMA, device=low.device, dtype=low.dtype)
        return self.from_target(self.unet(x_up, torch.zeros_like(x_up), level), x_up)

    @property
    def config(self) -> dict:
        return dict(unet=dict(self.unet.config), target=self.target, residual_scale=self.residual_scale)


def _build_sr3(scale: int = 4, *, unet: dict | None = None, schedule: dict | None = None, **options) -> SR3:
    """Builder of ``"sr3"``: ``unet`` = :class:`UNet` arguments, ``schedule`` = :meth:`Schedule.from_config`
    arguments, ``options`` = :class:`SR3`'s (target, residual_scale, steps, sampler, variance, clip)."""
    allowed = {"target", "residual_scale", "steps", "sampler", "variance", "clip", "zero_mean_noise", "project"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown sr3 configuration key(s) {unknown}; valid: {sorted(allowed | {'unet', 'schedule'})}")
    return SR3(_build_unet(unet), Schedule.from_config(schedule), scale=scale, **options)


def _build_unet(config: dict | None) -> UNet:
    config = dict(config or {})
    for key in ("multipliers", "attention"):                                    # JSON and checkpoints give lists
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    try:
        return UNet(**config)
    except TypeError as error:
        raise ValueError(f"unet configuration {config} does not fit course_utils.sr3.UNet: {error}") from None


def _build_regression(scale: int = 4, *, unet: dict | None = None, **options) -> SR3Regression:
    """Builder of ``"sr3-regression"``: ``unet`` = :class:`UNet` arguments, ``target``, ``residual_scale``."""
    unknown = sorted(set(options) - {"target", "residual_scale"})
    if unknown:
        raise ValueError(f"unknown sr3-regression configuration key(s) {unknown}; valid: "
                         f"['residual_scale', 'target', 'unet']")
    return SR3Regression(_build_unet(unet), scale=scale, **options)


_TINY_UNET = dict(channels=4, multipliers=[1, 2], blocks=1, norm_groups=4)
register_model("sr3", _build_sr3, tiny=dict(unet=_TINY_UNET, schedule=dict(T=20), steps=3))
register_model("sr3-regression", _build_regression, tiny=dict(unet=_TINY_UNET))
register_model("sr3-faces", _build_sr3, tiny=dict(unet=_TINY_UNET, schedule=dict(T=20), steps=3))
register_model("sr3-regression-faces", _build_regression, tiny=dict(unet=_TINY_UNET))


# ----------------------------------------------------------------------------------------------------------------
# 6. training

def diffusion_loss(model: SR3, low: torch.Tensor, high: torch.Tensor, *, generator: torch.Generator | None = None,
                   loss: str = "l1") -> torch.Tensor:
    """SR3's objective (Algorithm 1) on a batch of aligned patches, low (B, 3, h, w), high (B, 3, s h, s w) in [0, 1]:
    y_0 = the target (:meth:`SR3.to_target`), sqrt(gamma) per example from :func:`sample_noise_level`,
    eps ~ N(0, I), y_t = :func:`q_sample` (y_0, sqrt(gamma), eps); loss = ||f(x, y_t, sqrt(gamma)) - eps|| (L1 as
    in the paper, or L2). All randomness from ``generator``. Returns the scalar loss (with grad)."""
    if not isinstance(model, SR3):
        raise TypeError(f"model must be a course_utils.sr3.SR3, got {type(model).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    model._check_low(low)                                                       # cheap shape checks only: per step
    s = model.scale
    if high.dim() != 4 or high.shape != (*low.shape[:2], s * low.shape[-2], s * low.shape[-1]):
        raise ValueError(f"high must have shape (B, 3, {s} h, {s} w) = "
                         f"{(*low.shape[:2], s * low.shape[-2], s * low.shape[-1])} for low of shape "
                         f"{tuple(low.shape)}, got {tuple(high.shape)}")
    x_up = model.x_up(low)                                                      # (B, 3, s h, s w) in [-1, 1]
    y0 = model.to_target(high, x_up)
    sqrt_gamma, _ = sample_noise_level(model.schedule, low.shape[0], generator)
    sqrt_gamma = sqrt_gamma.to(low.device)
    eps = _randn(y0.shape, generator, y0.device, y0.dtype)
    y_t = q_sample(y0, sqrt_gamma, eps)
    return LOSSES[loss](model.unet(x_up, y_t, sqrt_gamma).float(), eps)


class EMA:
    """Exponential moving average of a model's weights (the paper evaluates the EMA, decay 0.9999):

        theta_ema <- d theta_ema + (1 - d) theta,   d = min(decay, (1 + n) / (10 + n))   after the n-th update

    The warm-up of d (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) lets a short run's average
    forget the random initialisation. ``ema.model`` is a frozen copy of the model (buffers copied as they are)."""

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        self.decay = check_number(decay, "decay", minimum=0, maximum=1)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Move the average towards ``model``'s current weights; returns the decay used."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current.detach(), 1 - d)
        for average, current in zip(self.model.buffers(), model.buffers()):
            average.copy_(current)
        return d

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates, self.decay = int(state["updates"]), float(state["decay"])


# Recipes for python -m course_utils.train sr3|sr3-regression --scale 4 (CPU-sized).
# x4 on 16 -> 64 RGB patches rather than 8 -> 32: an 8 px low-res patch holds too little context (with the
# bicubic's 2-pixel support, a quarter of it is border) and a 32 px target leaves the 3-level UNet an 8x8 bottom;
# 16 -> 64 gives the middle self-attention a 16x16 map and costs 4x more per example, which the batch of 8 pays for.
# UNet: 32 channels, multipliers (1, 2, 2), 1 block per level, self-attention in the middle (1/4 size) only:
# 1,064,515 parameters; high-res sides must be multiples of 4, so every x4 image fits.
# Measured at 1 thread (OMP_NUM_THREADS=1) on a 2-core Xeon with AVX512-BF16, torch 2.13 CPU, while other jobs
# kept both cores busy (load 4-6, so an idle machine is faster), batch 8 of 16 -> 64 patches: one training step
# 370-490 ms with bf16 autocast, 590-830 ms in float32 (the regression step costs the same); one sampling step
# (batch 1, float32) 45 ms on a 64x64 output, 155 ms on 128x128, 650-870 ms on 256x256 (25 steps on 256x256
# ~ 20 s, 1000 steps ~ 12 min). 8000 steps ~ 1 h per model with bf16.
SR3_UNET = dict(channels=32, multipliers=[1, 2, 2], blocks=1, attention=[], dropout=0.0)
_COMMON = dict(patch_hr=64, batch=8, lr=2e-4, warmup=200, lr_decay_at=(), lr_decay=1.0, ema_decay=0.999,
               target="residual", residual_scale=RESIDUAL_SCALE, model=SR3_UNET, bf16=True, log_every=10,
               faces=None)   # faces: a mix name ("balanced", ...) trains on the face world (faces.FaceSampler)
RECIPES = {
    # the paper: Adam 1e-4, batch 256, 1M steps, L1, EMA 0.9999, linear 1e-6 -> 1e-2 over T = 2000; here a CPU
    # budget of 8000 steps (lr 2e-4 with a 200-step warm-up, EMA 0.999 with warm-up, see EMA).
    # target 'residual' (SRDiff) by default, 'image' (the paper) with --target image. Smoke runs of 300 steps of
    # this recipe (train split, 1 thread) reached the same L1 loss (0.80 -> 0.14 residual, 0.13 image), but 25-step
    # samples of two 128 px test crops (astronaut, coffee; bicubic 25.0 / 28.7 dB) scored 24.0 / 26.7 dB with
    # consistency 7e-4 for the residual form and 16.8 / 21.4 dB with consistency 3.3e-2 for the image form (which
    # must first learn to reproduce the colours and low frequencies that the residual form gets from bicubic).
    "sr3": dict(_COMMON, steps=8000, loss="l1", schedule="linear", T=2000, beta_start=1e-6, beta_end=1e-2,
                sample_steps=100, sampler="ancestral"),
    # the regression baseline: the same UNet, patches and budget, one pass, L2 (MSE). The paper's regression
    # outputs the image directly (--target image); by default it uses the same residual parametrisation as the
    # sr3 recipe, so that SR3 vs regression differs only in the objective (after 300 steps the residual form was
    # at 25.9 / 30.6 dB on the crops above, the image form at 22.2 / 23.8, below bicubic).
    "sr3-regression": dict(_COMMON, steps=8000, loss="l2"),
}
# The face world of notebooks 07-08 (issue 25): the same models and objectives trained on fresh rendered faces
# (faces.FaceSampler, 32 px, x4 or x8) instead of natural-image patches; 20,000 steps of 16 faces ~ 76 min on one
# thread. Separate names, so that their checkpoints sit beside the natural-image ones.
FACES = dict(faces="balanced", patch_hr=32, batch=16, steps=20000)
RECIPES["sr3-faces"] = dict(RECIPES["sr3"], **FACES)
RECIPES["sr3-regression-faces"] = dict(RECIPES["sr3-regression"], **FACES)
#: the recipes whose model is :class:`SR3` (the others are :class:`SR3Regression`)
DIFFUSION = ("sr3", "sr3-faces")


def model_config(name: str, recipe: dict) -> dict:
    """The builder arguments of ``name`` (a key of ``RECIPES``) for a recipe (what the checkpoint stores)."""
    config = dict(unet=dict(recipe["model"]), target=recipe["target"], residual_scale=recipe["residual_scale"])
    if name in DIFFUSION:
        schedule = {"kind": recipe["schedule"], "T": recipe["T"]}
        if recipe["schedule"] == "linear":
            schedule.update(start=recipe["beta_start"], end=recipe["beta_end"])
        config.update(schedule=schedule, steps=recipe["sample_steps"], sampler=recipe["sampler"])
    return config


class SR3Trainer(Trainer):
    """Training of :class:`SR3` (:func:`diffusion_loss`) or :class:`SR3Regression` (L1/L2 on the output): Adam with
    the recipe's lr (linear warm-up over ``warmup`` steps, then :func:`course_utils.sr.learning_rate`'s step
    schedule), optional bf16 autocast, an :class:`EMA` of the weights updated after every step.

    ``model`` is the EMA copy: what ``train`` saves, evaluates and ships. ``online`` is the network the optimiser
    updates; it, the optimiser, the EMA counter, the data/noise generator and the CPU RNG (dropout) are in
    :meth:`state_dict`, so a resumed run continues exactly."""

    def __init__(self, name: str, scale: int, recipe: dict, load_images, generator: torch.Generator):
        self.name, self.recipe, self.generator = name, recipe, generator
        self.config = model_config(name, recipe)
        self.online = build_model(name, scale, **self.config)
        self.ema = EMA(self.online, recipe["ema_decay"])
        self.model = self.ema.model
        multiple = self.online.unet.multiple
        patch_hr = max(recipe["patch_hr"], multiple * self.online.receptive_field)
        patch = -(-patch_hr // scale)                                           # low-res side
        while (patch * scale) % multiple:
            patch += 1
        if recipe.get("faces"):                                                 # the face world of 07-08
            from .faces import FaceSampler

            self.sampler = FaceSampler(recipe["faces"], scale, size=patch * scale)
            self.data_source = f"faces.FaceSampler({recipe['faces']!r}, {scale}, size={patch * scale}): fresh faces"
        else:
            self.sampler = PatchSampler(load_images(patch * scale), scale, patch, channels=3)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=recipe["lr"])
        self.info = {"patch_lr": patch, "patch_hr": patch * scale, "parameters": self.online.n_parameters}

    def to(self, device):
        self.online.to(device)
        self.model.to(device)
        return self

    def lr_at(self, step: int) -> float:
        """Learning rate at (0-based) ``step``: linear warm-up, then the recipe's step schedule."""
        warmup = self.recipe.get("warmup", 0) or 0
        return learning_rate(self.recipe, step) * min(1.0, (step + 1) / warmup if warmup else 1.0)

    def step(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """One optimisation step + EMA update on a batch; returns the detached loss."""
        r = self.recipe
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(low.device.type, dtype=torch.bfloat16, enabled=bool(r.get("bf16"))):
            if isinstance(self.online, SR3):
                value = diffusion_loss(self.online, low, high, generator=self.generator, loss=r["loss"])
            else:
                value = LOSSES[r["loss"]](self.online(low).float(), high)
        value.backward()
        self.optimizer.step()
        self.ema.update(self.online)
        return value.detach()

    def run(self, steps, *, start=0, history=None, progress=True):
        from tqdm.auto import tqdm

        steps = check_positive_int(steps, "steps", minimum=0)
        history = history if history is not None else {"step": [], "loss": [], "lr": [], "seconds": []}
        history.setdefault("lr", [])
        dev = next(self.online.parameters()).device
        self.online.train()
        log_every = self.recipe.get("log_every", 10)
        running, count, t0 = 0.0, 0, time.perf_counter()
        elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
        bar = tqdm(range(start, start + steps), desc=f"train {self.name}", leave=False, mininterval=1,
                   disable=not progress)
        for step in bar:
            low, high = self.sampler.sample(self.recipe["batch"], self.generator)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step)
            running += float(self.step(low.to(dev), high.to(dev)))
            count += 1
            if count == log_every or step == start + steps - 1:
                history["step"].append(step + 1)
                history["loss"].append(running / count)
                history["lr"].append(self.optimizer.param_groups[0]["lr"])
                history["seconds"].append(elapsed0 + time.perf_counter() - t0)
                bar.set_postfix(loss=f"{running / count:.4f}")
                running, count = 0.0, 0
        return history

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "online": self.online.state_dict(), "ema_updates": self.ema.updates,
                "rng": torch.get_rng_state()}

    def load_state_dict(self, state):
        self.online.load_state_dict(state["online"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.ema.updates = int(state["ema_updates"])
        torch.set_rng_state(state["rng"])


def trainer(name: str, scale: int, recipe: dict, load_images, generator: torch.Generator,
            seed: int = 0) -> SR3Trainer:
    """What ``python -m course_utils.train sr3|sr3-regression`` runs (:class:`SR3Trainer`). The global torch RNG
    (seeded by the caller) initialises the weights; ``generator`` draws the patches and the diffusion noise."""
    for key in ("target", "loss"):
        allowed = TARGETS if key == "target" else tuple(LOSSES)
        if recipe[key] not in allowed:
            raise ValueError(f"recipe {key} must be one of {allowed}, got {recipe[key]!r}")
    return SR3Trainer(name, scale, recipe, load_images, generator)


# ----------------------------------------------------------------------------------------------------------------
# evaluation: several samples per image

def evaluate_samples(model: SRModel, image: torch.Tensor, *, steps: int | None = None, samples: int = 4,
                     generator: torch.Generator | None = None, sampler: str | None = "ancestral",
                     project: bool | None = None) -> dict:
    """Evaluate a stochastic SR model on one high-res ``image`` (C, H, W) with the SR protocol (modcrop, bicubic
    low-res, Y channel, border = scale) from ``samples`` samples (``steps``/``sampler`` go to :meth:`SR3.upscale`,
    None = the model's default; other models are called with ``generator`` only). What ``python -m
    course_utils.evaluate sr --samples K --steps N`` reports per image (``project``: :meth:`SR3.upscale`'s, None =
    the model's default). Returns:

    * ``psnr``, ``ssim``: of the mean of the samples (an estimate of the conditional mean, as a regression gives);
    * ``psnr_single``, ``ssim_single``: mean over single samples (what one SR3 output scores);
    * ``consistency``: mean over single samples of MSE(downsample(sample), low) on [0, 1] (the paper's measure);
      ``consistency_of_mean``: the same for the mean image;
    * ``spread``: the per-pixel standard deviation across samples, averaged over pixels and channels ([0, 1]
      units; 0 = the samples agree everywhere); ``hf``: mean over samples of the high-frequency ratio to the truth
      (:func:`course_utils.metrics.sr_high_frequency_ratio`; 1 = as much detail as the truth), ``hf_of_mean``;
      ``lattice`` / ``lattice_truth``: :func:`course_utils.metrics.sr_lattice_share` of the samples (mean) / truth;
    * ``seconds``: mean seconds per sample, ``samples``, ``steps``, ``sampler``, ``project``.
    """
    from .metrics import sr_high_frequency_ratio, sr_lattice_share, sr_psnr, sr_ssim

    if not isinstance(model, SRModel):
        raise TypeError(f"model must be a course_utils.sr.SRModel, got {type(model).__name__}")
    check_image(image, "image", ndim=3, channels=(1, 3))
    samples = check_positive_int(samples, "samples")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if isinstance(model, SR3):
        steps = model._check_steps(model.steps if steps is None else steps)
        options = {"steps": steps, "sampler": model._check_sampler(model.sampler if sampler is None else sampler),
                   "project": model.project if project is None else bool(project)}
    else:
        options = {}
    if model.channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    s = model.scale
    high, low = make_low_res(image, s)
    outputs, seconds = [], []
    for _ in range(samples):
        start = time.perf_counter()
        outputs.append(model.upscale(low, generator=generator, **options))
        seconds.append(time.perf_counter() - start)
    stack = torch.stack(outputs)                                                # (K, C, H, W)
    mean = stack.mean(0)
    single = [(sr_psnr(o, high, s), sr_ssim(o, high, s), consistency(o, low, s), sr_high_frequency_ratio(o, high, s),
               sr_lattice_share(o, s)) for o in outputs]
    avg = lambda i: sum(row[i] for row in single) / len(single)                 # noqa: E731
    return {"psnr": sr_psnr(mean, high, s), "ssim": sr_ssim(mean, high, s),
            "psnr_single": avg(0), "ssim_single": avg(1), "consistency": avg(2),
            "consistency_of_mean": consistency(mean, low, s),
            "spread": float(stack.double().std(0, unbiased=False).mean()) if samples > 1 else 0.0,
            "hf": avg(3), "hf_of_mean": sr_high_frequency_ratio(mean, high, s),
            "lattice": avg(4), "lattice_truth": sr_lattice_share(high, s),
            "seconds": sum(seconds) / len(seconds), "samples": samples,
            "steps": options.get("steps"), "sampler": options.get("sampler"),
            "project": options.get("project")}
