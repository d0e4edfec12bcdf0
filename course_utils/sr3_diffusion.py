"""The diffusion process of SR3 (notebook 06): noise schedules, the forward process and one step of the reverse
process, on tensors and numbers (the network that predicts eps is :mod:`course_utils.sr3_unet`, the models that
run the chain are in :mod:`course_utils.sr3`).

SR3 learns p(x | y), the distribution of high-res images x given a low-res y, with a conditional denoising
diffusion model. In the paper's symbols (y_0 = the clean target, y_t = its noisy version, gamma_t = prod alpha_i):

    forward (fixed):   q(y_t | y_{t-1}) = N(sqrt(alpha_t) y_{t-1}, (1 - alpha_t) I)                 (sec. 2.1)
                       q(y_t | y_0)     = N(sqrt(gamma_t) y_0, (1 - gamma_t) I)                      (sec. 2.1)
    training:          E || f(x, sqrt(gamma) y_0 + sqrt(1 - gamma) eps, gamma) - eps ||_1, eps ~ N(0, I)  (Alg. 1)
    reverse (learned): y_{t-1} = 1/sqrt(alpha_t) (y_t - (1 - alpha_t)/sqrt(1 - gamma_t) f(x, y_t, gamma_t))
                                 + sigma_t z                                                    (Alg. 2)

where x is the bicubic-upsampled low-res image, concatenated with y_t as the UNet's input. The UNet is conditioned
on the *continuous* noise level sqrt(gamma), drawn per training example uniformly between sqrt(gamma_{t-1}) and
sqrt(gamma_t), so at inference any schedule and any number of steps can be used (:meth:`Schedule.respace`).

The file reads top to bottom (part 3, the UNet, is :mod:`course_utils.sr3_unet`):

1. :class:`Schedule` - gamma_t for the paper's linear betas 1e-6 -> 1e-2 (T = 2000) or a cosine schedule, and
   respacing to any number of steps.
2. The forward process: :func:`q_step` (one step), :func:`q_sample` (closed form), :func:`sample_noise_level` (the
   training draw of sqrt(gamma)).
4. The reverse process: :func:`predict_y0`, :func:`posterior_mean`, :func:`posterior_variance`, :func:`p_sample`
   (one ancestral step) and :func:`ddim_step` (deterministic, for comparison).

The diffusion works on [-1, 1]. Import everything from :mod:`course_utils.sr3` (``sr3.Schedule``,
``sr3.p_sample``, ...), the public path; this module does not import that one.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_number, check_positive_int


# ----------------------------------------------------------------------------------------------------------------
# 1. noise schedules

class Schedule:
    """A noise schedule: ``gamma`` = (gamma_1, ..., gamma_T), gamma_t = prod_{i <= t} alpha_i, strictly decreasing
    in (0, 1) (gamma_0 = 1 is the clean image). Derived, all (T,) float64 on the CPU:

    * ``gamma_prev`` = gamma_{t-1} (gamma_0 = 1), ``alpha`` = gamma_t / gamma_{t-1}, ``beta`` = 1 - alpha_t;
    * ``sqrt_gamma``, ``sqrt_gamma_prev`` (what the UNet is conditioned on), ``snr`` = gamma / (1 - gamma);
    * ``timesteps``: for a respaced schedule, the indices t (1-based) of the training schedule it was taken from.

    Index 0 of every tensor is step t = 1. Build one with :meth:`linear` (the paper's), :meth:`cosine` or
    :meth:`from_config`; :meth:`respace` picks any number of steps out of it.
    """

    def __init__(self, gamma, timesteps=None, config: dict | None = None):
        gamma = torch.as_tensor(gamma, dtype=torch.float64).detach().cpu()
        if gamma.dim() != 1 or gamma.numel() < 1:
            raise ValueError(f"gamma must be a non-empty 1-D sequence (gamma_1, ..., gamma_T), got shape "
                             f"{tuple(gamma.shape)}")
        if not torch.isfinite(gamma).all() or (gamma <= 0).any() or (gamma >= 1).any():
            bad = int(torch.nonzero(~torch.isfinite(gamma) | (gamma <= 0) | (gamma >= 1))[0])
            raise ValueError(f"gamma must lie in (0, 1) (gamma_t = prod alpha_i, the signal fraction at step t), "
                             f"got gamma[{bad}] = {float(gamma[bad])!r}")
        if gamma.numel() > 1 and not (gamma[1:] < gamma[:-1]).all():
            bad = int(torch.nonzero(gamma[1:] >= gamma[:-1])[0]) + 1
            raise ValueError(f"gamma must be strictly decreasing (more noise at every step), got "
                             f"gamma[{bad}] = {float(gamma[bad]):.6g} >= gamma[{bad - 1}] = "
                             f"{float(gamma[bad - 1]):.6g}")
        self.gamma = gamma
        self.gamma_prev = torch.cat([torch.ones(1, dtype=torch.float64), gamma[:-1]])
        self.alpha = gamma / self.gamma_prev
        self.beta = 1 - self.alpha
        self.sqrt_gamma = gamma.sqrt()
        self.sqrt_gamma_prev = self.gamma_prev.sqrt()
        self.snr = gamma / (1 - gamma)
        self.timesteps = (torch.arange(1, len(gamma) + 1) if timesteps is None
                          else torch.as_tensor(timesteps, dtype=torch.long))
        #: the :meth:`from_config` arguments that rebuild it (None for a custom or respaced schedule)
        self.config = dict(config) if config is not None else None

    @property
    def T(self) -> int:
        return len(self.gamma)

    def __len__(self) -> int:
        return len(self.gamma)

    def __repr__(self) -> str:
        return (f"Schedule(T={self.T}, gamma_1={float(self.gamma[0]):.6g}, gamma_T={float(self.gamma[-1]):.3g}, "
                f"steps from the training schedule: {self.timesteps[:3].tolist()}...)")

    @classmethod
    def linear(cls, T: int = 2000, start: float = 1e-6, end: float = 1e-2) -> "Schedule":
        """The paper's training schedule: beta_t = 1 - alpha_t linear from ``start`` to ``end`` over ``T`` steps
        (1e-6 -> 1e-2, T = 2000: gamma_T ~ 5e-5, almost pure noise)."""
        T = check_positive_int(T, "T")
        start = check_number(start, "start", minimum=0, maximum=1, strict_min=True)
        end = check_number(end, "end", minimum=start, maximum=1)
        if end >= 1:
            raise ValueError(f"end must be < 1 (beta_T = 1 would erase the image in one step), got {end:g}")
        beta = torch.linspace(start, end, T, dtype=torch.float64)
        return cls(torch.cumprod(1 - beta, 0), config=dict(kind="linear", T=T, start=start, end=end))

    @classmethod
    def cosine(cls, T: int = 2000, s: float = 0.008) -> "Schedule":
        """Nichol & Dhariwal's cosine schedule: gamma_t = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), with
        beta_t clipped to 0.999 (so gamma_T > 0). Destroys the image more slowly than the linear one at the start."""
        T = check_positive_int(T, "T")
        s = check_number(s, "s", minimum=0)
        t = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        beta = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        return cls(torch.cumprod(1 - beta, 0), config=dict(kind="cosine", T=T, s=s))

    @classmethod
    def from_config(cls, config: dict | None = None) -> "Schedule":
        """``{"kind": "linear", "T": 2000, "start": 1e-6, "end": 1e-2}`` or ``{"kind": "cosine", "T": ..., "s": ...}``
        (what a checkpoint stores) -> the schedule. Missing entries take the defaults above."""
        config = dict(config or {})
        kind = config.pop("kind", "linear")
        makers = {"linear": cls.linear, "cosine": cls.cosine}
        if kind not in makers:
            raise ValueError(f"schedule kind must be one of {sorted(makers)}, got {kind!r}")
        allowed = {"linear": {"T", "start", "end"}, "cosine": {"T", "s"}}[kind]
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"unknown {kind} schedule option(s) {unknown}; valid: {sorted(allowed)}")
        return makers[kind](**config)

    def respace(self, steps: int) -> "Schedule":
        """A ``steps``-step schedule made of this one's gammas at t_k = round(k T / steps), k = 1..steps (evenly
        spaced, always ending at gamma_T: sampling starts from the same noise level). Because the UNet is
        conditioned on sqrt(gamma) itself, not on t, the trained model needs no change: alpha_k = gamma_k /
        gamma_{k-1} is recomputed for the chosen gammas. ``steps = T`` returns the full schedule."""
        steps = check_positive_int(steps, "steps")
        if steps > self.T:
            raise ValueError(f"steps must be <= T = {self.T} (the length of the schedule it is taken from), "
                             f"got {steps}")
        t = torch.round(torch.arange(1, steps + 1, dtype=torch.float64) * self.T / steps).long()   # 1-based
        return Schedule(self.gamma[t - 1], timesteps=self.timesteps[t - 1])


# ----------------------------------------------------------------------------------------------------------------
# 2. the forward process

def _per_example(value, like: torch.Tensor) -> torch.Tensor:
    """A scalar, (B,) or (B, 1, 1, 1) noise level -> a tensor broadcastable against ``like`` (B, C, H, W)."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.dim() == 1:
        if value.shape[0] not in (1, like.shape[0]):
            raise ValueError(f"a per-example noise level must have {like.shape[0]} entries (the batch), got "
                             f"{value.shape[0]}")
        value = value.view(-1, *([1] * (like.dim() - 1)))
    return value


def q_step(y_prev: torch.Tensor, alpha, noise: torch.Tensor) -> torch.Tensor:
    """One forward step q(y_t | y_{t-1}): y_t = sqrt(alpha_t) y_{t-1} + sqrt(1 - alpha_t) eps. ``alpha``: a number or
    (B,) tensor in (0, 1]; ``y_prev``, ``noise``: (B, C, H, W)."""
    alpha = _per_example(alpha, y_prev)
    return alpha.sqrt() * y_prev + (1 - alpha).sqrt() * noise


def q_sample(y0: torch.Tensor, sqrt_gamma, noise: torch.Tensor) -> torch.Tensor:
    """The closed form of t forward steps, q(y_t | y_0): y_t = sqrt(gamma) y_0 + sqrt(1 - gamma) eps.

    ``y0``, ``noise``: (B, C, H, W) (y0 in [-1, 1]); ``sqrt_gamma``: a number, (B,) or (B, 1, 1, 1) tensor in
    [0, 1] -- note it is sqrt(gamma), the signal *amplitude*, that the model is conditioned on."""
    if not isinstance(y0, torch.Tensor) or not isinstance(noise, torch.Tensor):
        raise TypeError(f"y0 and noise must be tensors, got {type(y0).__name__} and {type(noise).__name__}")
    if y0.shape != noise.shape:
        raise ValueError(f"y0 and noise must have the same shape, got {tuple(y0.shape)} and {tuple(noise.shape)}")
    sqrt_gamma = _per_example(sqrt_gamma, y0)
    return sqrt_gamma * y0 + (1 - sqrt_gamma ** 2).clamp(min=0).sqrt() * noise


def sample_noise_level(schedule: Schedule, batch: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training draw of the noise level (SR3 sec. 2.4): t ~ U{1, ..., T}, then sqrt(gamma) ~ U(sqrt(gamma_t),
    sqrt(gamma_{t-1})) - a continuous level, so the model learns every level in between, not T fixed ones.
    -> ``(sqrt_gamma, t)``: (batch,) float32 and (batch,) int64 (1-based), on the CPU."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a course_utils.sr3.Schedule, got {type(schedule).__name__}")
    batch = check_positive_int(batch, "batch")
    t = torch.randint(1, schedule.T + 1, (batch,), generator=generator)
    low, high = schedule.sqrt_gamma[t - 1], schedule.sqrt_gamma_prev[t - 1]      # sqrt(gamma_t) < sqrt(gamma_t-1)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return (low + (high - low) * u).float(), t


def _randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn from ``generator`` (on the generator's device), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


# ----------------------------------------------------------------------------------------------------------------
# 4. the reverse process: one step from y_t to y_{t-1}, given the network's eps prediction
#    (3, the network that predicts eps, is sr3_unet.py)

def predict_y0(y_t: torch.Tensor, eps: torch.Tensor, sqrt_gamma) -> torch.Tensor:
    """Invert the closed form q(y_t | y_0) with the predicted noise:
    y0_hat = (y_t - sqrt(1 - gamma) eps) / sqrt(gamma)."""
    sqrt_gamma = _per_example(sqrt_gamma, y_t)
    return (y_t - (1 - sqrt_gamma ** 2).clamp(min=0).sqrt() * eps) / sqrt_gamma


def posterior_mean(y0: torch.Tensor, y_t: torch.Tensor, gamma: float, gamma_prev: float) -> torch.Tensor:
    """Mean of q(y_{t-1} | y_t, y_0), the Gaussian that one reverse step samples (DDPM eq. 7), with alpha_t =
    gamma_t / gamma_{t-1} (so it holds for any respaced schedule):

        mu = sqrt(gamma_{t-1}) (1 - alpha_t) / (1 - gamma_t) y_0  +  sqrt(alpha_t) (1 - gamma_{t-1}) / (1 - gamma_t) y_t

    With y_0 = :func:`predict_y0` (unclipped) this equals the mean of SR3's update (Algorithm 2)
    1/sqrt(alpha_t) (y_t - (1 - alpha_t)/sqrt(1 - gamma_t) eps)."""
    alpha = gamma / gamma_prev
    return (math.sqrt(gamma_prev) * (1 - alpha) / (1 - gamma) * y0
            + math.sqrt(alpha) * (1 - gamma_prev) / (1 - gamma) * y_t)


def posterior_variance(gamma: float, gamma_prev: float, variance: str = "posterior") -> float:
    """sigma_t^2 of a reverse step: ``'posterior'`` = beta~_t = (1 - gamma_{t-1}) / (1 - gamma_t) (1 - alpha_t),
    the variance of q(y_{t-1} | y_t, y_0) (DDPM; 0 at the last step); ``'beta'`` = 1 - alpha_t, SR3's Algorithm 2
    (DDPM's other choice; adds much more noise when few steps are used)."""
    alpha = gamma / gamma_prev
    if variance == "posterior":
        return (1 - gamma_prev) / (1 - gamma) * (1 - alpha)
    if variance == "beta":
        return 1 - alpha
    raise ValueError(f"variance must be 'posterior' or 'beta', got {variance!r}")


def sampling_noise(shape, generator: torch.Generator | None, device, dtype=torch.float32,
                   zero_mean: bool = False) -> torch.Tensor:
    """The chain's Gaussian noise (B, C, H, W); ``zero_mean=True`` removes its mean per image and channel.

    Why (measured on the course's checkpoints): the network never learns to predict the *mean* of eps (per image
    it is ~N(0, 1/(H W)), 0.009 for 64 x 64: invisible in the loss), and y0_hat = (y_t - sqrt(1-gamma) eps_hat)
    / sqrt(gamma) multiplies that error by 1/sqrt(gamma_T) ~ 150 at the first step: the sample's colour drifts
    (consistency 1e-2, PSNR 5 dB below bicubic). The residual target has mean ~0 by construction (the bicubic
    keeps the low-res mean), so the chain need not sample its mean at all: with zero-mean noise the same
    checkpoint's samples are consistent (about 5e-4) and as sharp."""
    noise = _randn(shape, generator, device, dtype)
    return noise - noise.mean(dim=(-2, -1), keepdim=True) if zero_mean else noise


def _clip(y0: torch.Tensor, clip) -> torch.Tensor:
    """``clip``: False (none), True ([-1, 1]) or a (low, high) pair of tensors/numbers (per-pixel bounds)."""
    if clip is True:
        return y0.clamp(-1, 1)
    if clip is False or clip is None:
        return y0
    return torch.clamp(y0, *clip)


def p_sample(eps: torch.Tensor, y_t: torch.Tensor, gamma: float, gamma_prev: float, noise: torch.Tensor | None,
             *, clip=True, variance: str = "posterior", correct=None) -> torch.Tensor:
    """One ancestral reverse step y_t -> y_{t-1} ~ N(mu, sigma^2 I), given the network's ``eps`` prediction:

        y0_hat = (y_t - sqrt(1 - gamma_t) eps) / sqrt(gamma_t)     clipped (``clip``), then ``correct``-ed
        y_{t-1} = posterior_mean(y0_hat, y_t) + sigma_t z,         sigma_t^2 = posterior_variance(...)

    ``gamma``, ``gamma_prev``: gamma_t and gamma_{t-1} of the schedule being sampled (gamma_prev = 1 at the last
    step, where no noise is added); ``noise`` z: (B, C, H, W) standard normal (ignored at the last step);
    ``clip``: True = clip y0_hat to [-1, 1] (the image's range, DDPM's ``clip_denoised``), False = no clipping, or
    per-pixel (low, high) bounds; ``correct``: None, or a function y0_hat -> y0_hat applied after clipping (e.g.
    the projection onto the images consistent with the input, :meth:`course_utils.sr3.SR3.consistent`)."""
    y0 = _clip(predict_y0(y_t, eps, math.sqrt(gamma)), clip)
    if correct is not None:
        y0 = correct(y0)
    mean = posterior_mean(y0, y_t, gamma, gamma_prev)
    if gamma_prev >= 1 or noise is None:
        return mean
    return mean + math.sqrt(posterior_variance(gamma, gamma_prev, variance)) * noise


def ddim_step(eps: torch.Tensor, y_t: torch.Tensor, gamma: float, gamma_prev: float, *, clip=True,
              correct=None) -> torch.Tensor:
    """One deterministic DDIM step (Song et al. 2021, eta = 0): move y0_hat to the noise level of t-1 along the
    *same* predicted noise, y_{t-1} = sqrt(gamma_{t-1}) y0_hat + sqrt(1 - gamma_{t-1}) eps_hat (eps_hat recomputed
    from the clipped, ``correct``-ed y0_hat; ``clip`` and ``correct`` as in :func:`p_sample`). The same trained
    model, no fresh noise: one low-res input -> one output per start."""
    y0 = predict_y0(y_t, eps, math.sqrt(gamma))
    if (clip is not False and clip is not None) or correct is not None:
        y0 = _clip(y0, clip)
        if correct is not None:
            y0 = correct(y0)
        eps = (y_t - math.sqrt(gamma) * y0) / math.sqrt(1 - gamma)
    return math.sqrt(gamma_prev) * y0 + math.sqrt(1 - gamma_prev) * eps
