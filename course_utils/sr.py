"""What every super-resolution method of the course shares.

* :class:`SRModel` - the one interface: ``model.upscale(low_rgb, *, generator=None) -> high_rgb`` on [0, 1] RGB
  (or grey) tensors. Bicubic, SRCNN, ESPCN, VDSR (``srcnn.py``), DIP (``dip.py``, fitted to each image), SRResNet
  and SRGAN (``srgan.py``), SR3 (``sr3.py``) and PULSE (``pulse.py``) all implement it, so evaluation, widgets and
  comparisons treat them alike.
  :class:`YModel` is the base of the networks that, like the papers, super-resolve only the luminance Y (BT.601)
  and take the colour (Cb, Cr) from bicubic.
* :data:`MODELS`, :func:`register_model`, :func:`build_model` - the registry the paper modules fill.
* :func:`make_low_res`, :func:`evaluate_image` - the papers' test protocol: modcrop, MATLAB-style antialiased
  bicubic low-res, PSNR/SSIM on Y with a border of ``scale`` pixels cropped.
* :class:`PatchSampler`, :func:`supervised_step`, :func:`train_steps`, :class:`Trainer` - aligned training patches,
  one step of supervised training, the loop, and what ``python -m course_utils.train`` needs from a paper module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoints
from . import operators as ops
from ._checks import check_image, check_number, check_positive_int
from .images import rgb_to_ycbcr, ycbcr_to_rgb


# ----------------------------------------------------------------------------------------------------------------
# the interface

class SRModel(nn.Module):
    """Base class of every super-resolution method.

    ``upscale(low, *, generator=None)``: (C, h, w) or (B, C, h, w) in [0, 1], C = 3 (RGB) or 1 (grey) ->
    (C, s h, s w) / (B, C, s h, s w) in [0, 1], on ``low``'s device and dtype. It validates its input fully
    (rank, dtype, range, NaN); ``forward`` only checks shapes (no device sync inside a training or sampling loop).
    Deterministic methods ignore ``generator``; stochastic ones (SR3, PULSE) draw all their randomness from it.

    Subclasses set ``scale``, ``channels`` (what ``forward`` works on: 1 = Y, 3 = RGB), ``receptive_field`` (the
    smallest low-res side ``forward`` accepts) and implement :meth:`_upscale` on a (B, channels, h, w) batch on the
    model's device (default: ``forward``).
    """

    scale: int
    channels: int = 1
    receptive_field: int = 1
    stochastic: bool = False

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def _check_shape(self, y: torch.Tensor, name: str = "y") -> None:
        """Cheap checks for ``forward``: rank, channels, size (no values read, so no device sync)."""
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, h, w), got "
                             f"{'shape ' + str(tuple(y.shape)) if isinstance(y, torch.Tensor) else type(y).__name__}")
        if y.shape[1] != self.channels:
            what = "1 channel (the Y of YCbCr)" if self.channels == 1 else f"{self.channels} channels (RGB)"
            raise ValueError(f"{name} must have {what} for {type(self).__name__}, got {y.shape[1]} "
                             f"(shape {tuple(y.shape)}); model.upscale(low) takes RGB or grey images")
        if min(y.shape[-2:]) < self.receptive_field:
            raise ValueError(f"{name} of size {y.shape[-2]}x{y.shape[-1]} is smaller than the receptive field of "
                             f"{type(self).__name__} at scale {self.scale} ({self.receptive_field} low-res pixels "
                             f"per side)")

    def _upscale(self, low: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self(low)

    @torch.no_grad()
    def upscale(self, low: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Super-resolve ``low`` (see the class docstring). Clipped to [0, 1]."""
        check_image(low, "low", channels=(1, 3))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        single = low.dim() == 3
        batch = low[None] if single else low
        dev, dtype = self._device(), next(iter(self.parameters()), torch.empty(0)).dtype
        was_training = self.training
        self.eval()
        try:
            x = batch.to(dev, dtype)
            if self.channels == 3:                    # an RGB method; a grey image goes through as R = G = B
                out = self._upscale(x.expand(-1, 3, -1, -1), generator).clamp(0, 1)
                out = out.mean(1, keepdim=True) if x.shape[1] == 1 else out
            elif x.shape[1] == 1:                     # a Y method on a grey image
                out = self._upscale(x, generator).clamp(0, 1)
            else:                                     # a Y method on RGB: Y by the network, Cb/Cr by bicubic
                ycbcr = rgb_to_ycbcr(x)
                y = self._upscale(ycbcr[:, :1], generator).clamp(0, 1)
                cbcr = ops.Upsample(self.scale)(ycbcr[:, 1:].clamp(0, 1))
                out = ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
        finally:
            self.train(was_training)
        out = out.to(low.device, low.dtype)
        return out[0] if single else out


class YModel(SRModel):
    """An SR network on the luminance Y (1 channel) like SRCNN, ESPCN, VDSR: ``forward`` maps (B, 1, h, w) ->
    (B, 1, s h, s w); :meth:`SRModel.upscale` adds the bicubic Cb/Cr for colour images, as the papers show them."""

    channels = 1


def super_resolve(model: SRModel, low: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``model.upscale(low, generator=generator)`` with a check that ``model`` is an :class:`SRModel`."""
    if not isinstance(model, SRModel):
        raise TypeError(f"model must be a course_utils.sr.SRModel (one of {sorted(MODELS)}), "
                        f"got {type(model).__name__}")
    return model.upscale(low, generator=generator)


# ----------------------------------------------------------------------------------------------------------------
# the registry

@dataclass
class ModelSpec:
    """A registered SR method: ``builder(scale, **config)`` makes it; ``tiny`` is a small configuration for tests
    and quick demos; ``scales`` the scales it supports (None = any integer >= 2); ``trained`` whether it has weights
    (shipped checkpoints, :func:`course_utils.checkpoints.load_checkpoint`)."""

    name: str
    builder: object
    tiny: dict = field(default_factory=dict)
    scales: tuple | None = None
    trained: bool = True


#: name -> :class:`ModelSpec`, filled by the paper modules when they are imported (``import course_utils.srcnn``).
MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, builder, *, tiny: dict | None = None, scales=None, trained: bool = True) -> None:
    """Register an SR method under ``name`` (a trained one also as a checkpoint builder, so that its shipped weights
    can be loaded by :func:`course_utils.checkpoints.load_checkpoint`)."""
    MODELS[name] = ModelSpec(name, builder, dict(tiny or {}), tuple(scales) if scales else None, trained)
    if trained:
        checkpoints.register_builder(name, builder)


def import_paper_modules() -> None:
    """Import every paper module so that :data:`MODELS` lists all methods (for the command-line tools)."""
    import importlib

    for module in checkpoints.PAPER_MODULES:
        importlib.import_module(module)


def build_model(name: str, scale: int, **config) -> SRModel:
    """``build_model('vdsr', 3)`` -> an untrained model (``config`` goes to the builder, e.g. ``n_blocks=8``)."""
    if name not in MODELS:
        import_paper_modules()
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    spec = MODELS[name]
    scale = check_positive_int(scale, "scale", minimum=2)
    if spec.scales is not None and scale not in spec.scales:
        raise ValueError(f"{name} supports scale in {list(spec.scales)}, got scale={scale}")
    return spec.builder(scale, **config)


def load_model(name: str, scale: int) -> SRModel:
    """A ready-to-use method: the shipped checkpoint for trained methods, the method itself otherwise (bicubic)."""
    if name not in MODELS:
        import_paper_modules()
    if name in MODELS and not MODELS[name].trained:
        return build_model(name, scale)
    return checkpoints.load_checkpoint(name, scale)


# ----------------------------------------------------------------------------------------------------------------
# the papers' evaluation protocol

def make_low_res(image: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(high, low)``: ``image`` modcropped to a multiple of ``scale`` and its low-res version made with the
    antialiased MATLAB-style bicubic ``operators.Downsample(scale)`` (the papers' test pairs)."""
    from .images import modcrop

    scale = check_positive_int(scale, "scale", minimum=2)
    high = modcrop(check_image(image, "image", channels=(1, 3)), scale)
    return high, ops.Downsample(scale)(high)


def consistency(output: torch.Tensor, low: torch.Tensor, scale: int) -> float:
    """SR3's consistency measure: the MSE between the downsampled output and the low-res input, both (C, h, w) or
    batched in [0, 1] (0 = the output explains the input exactly)."""
    check_image(output, "output", channels=(1, 3))
    check_image(low, "low", channels=(1, 3))
    down = ops.Downsample(scale)(output)
    if down.shape != low.shape:
        raise ValueError(f"output of shape {tuple(output.shape)} downsampled by {scale} is {tuple(down.shape)}, "
                         f"not low's {tuple(low.shape)}")
    return float(F.mse_loss(down.double(), low.double()))


def evaluate_image(model: SRModel, image: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
    """Evaluate ``model`` on one high-res ``image`` (1 or 3 channels, (C, H, W)) with the SR papers' protocol:
    modcrop to the scale, low-res by antialiased bicubic, Y channel (BT.601 studio range), border of ``scale``
    pixels cropped. Y methods see the Y channel only, RGB methods the RGB image (scored on the Y of their output).
    -> ``{"psnr", "ssim", "hf", "detail", "grid", "lattice", "lattice_truth", "consistency", "ms"}``: hf =
    :func:`course_utils.metrics.high_frequency_ratio` of the output vs the truth (1 = as much detail above the
    low-res Nyquist as the truth; noise scores high too), detail = :func:`course_utils.metrics.local_detail_error`
    (dB, 0 = the truth's amount of detail in every place; noise scores badly), grid =
    :func:`course_utils.metrics.grid_amplitude` of period ``scale`` (grey levels; ~0.6 shows faintly on flat
    backgrounds), lattice / lattice_truth = :func:`course_utils.metrics.lattice_share` of period ``scale`` of the
    output / the truth (the share of the fine detail locked to the upsampler's grid), consistency = MSE of the
    downsampled output against the input, ms = milliseconds of ``upscale``."""
    from .images import rgb_to_y
    from .metrics import (sr_grid_amplitude, sr_high_frequency_ratio, sr_lattice_share, sr_local_detail_error,
                          sr_psnr, sr_ssim)

    if not isinstance(model, SRModel):
        raise TypeError(f"model must be a course_utils.sr.SRModel (one of {sorted(MODELS)}), "
                        f"got {type(model).__name__}")
    check_image(image, "image", ndim=3, channels=(1, 3))
    if model.channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    high, low = make_low_res(image if model.channels == 3 else rgb_to_y(image), model.scale)
    start = time.perf_counter()
    out = model.upscale(low, generator=generator)
    ms = 1000 * (time.perf_counter() - start)
    return {"psnr": sr_psnr(out, high, model.scale), "ssim": sr_ssim(out, high, model.scale),
            "hf": sr_high_frequency_ratio(out, high, model.scale),
            "detail": sr_local_detail_error(out, high, model.scale),
            "grid": sr_grid_amplitude(out, high, model.scale),
            "lattice": sr_lattice_share(out, model.scale), "lattice_truth": sr_lattice_share(high, model.scale),
            "consistency": consistency(out, low, model.scale), "ms": ms}


# ----------------------------------------------------------------------------------------------------------------
# training data: aligned (low-res, high-res) crops

class PatchSampler:
    """Random aligned training patches from a list of high-res images.

    Each image is modcropped, turned into Y (BT.601; ``channels=1``) or kept RGB (``channels=3``, grey images
    repeated), and downsampled ONCE as a whole with ``operators.Downsample(scale)`` (so patches carry no border
    artefacts of their own); a batch is then ``batch`` random aligned crops (low-res ``patch`` x ``patch``,
    high-res ``scale*patch``), each with a random horizontal flip and a random 90-degree rotation. Images are
    picked with probability proportional to area. All randomness comes from ``generator``.
    """

    def __init__(self, images, scale: int, patch: int, channels: int = 1):
        self.scale = check_positive_int(scale, "scale", minimum=2)
        self.patch = check_positive_int(patch, "patch")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (Y) or 3 (RGB), got {channels!r}")
        self.channels = channels
        from .images import modcrop, rgb_to_y

        self.pairs = []
        for i, image in enumerate(images):
            check_image(image, f"images[{i}]", ndim=3, channels=(1, 3))
            hr = modcrop(image, self.scale)
            hr = rgb_to_y(hr) if channels == 1 else hr.expand(3, -1, -1).contiguous()
            if min(hr.shape[-2:]) < self.scale * self.patch:
                raise ValueError(f"images[{i}] of size {tuple(hr.shape[-2:])} is smaller than one high-res patch "
                                 f"({self.scale * self.patch} pixels)")
            self.pairs.append((ops.Downsample(self.scale)(hr), hr))
        if not self.pairs:
            raise ValueError("images must contain at least one image")
        areas = torch.tensor([float(lr.shape[-1] * lr.shape[-2]) for lr, _ in self.pairs])
        self.weights = areas / areas.sum()

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (low (batch, C, p, p), high (batch, C, s p, s p))."""
        p, s = self.patch, self.scale
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=generator).tolist()
        lows, highs = [], []
        for k in picks:
            lr, hr = self.pairs[k]
            top = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=generator))
            left = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=generator))
            flip, rot = (int(v) for v in torch.randint(0, 4, (2,), generator=generator))
            low = lr[:, top: top + p, left: left + p]
            high = hr[:, s * top: s * (top + p), s * left: s * (left + p)]
            if flip % 2:
                low, high = low.flip(-1), high.flip(-1)
            low, high = low.rot90(rot, (-2, -1)), high.rot90(rot, (-2, -1))
            lows.append(low)
            highs.append(high)
        return torch.stack(lows), torch.stack(highs)


# ----------------------------------------------------------------------------------------------------------------
# supervised training: one step, the loop, and the trainer the CLI drives

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


def clip_gradients(model: nn.Module, theta: float, lr: float) -> None:
    """VDSR's adjustable gradient clipping: clip every gradient entry to [-theta / lr, theta / lr], so the
    effective step lr * g stays below theta whatever the learning rate (Kim et al. 2016, sec. 3.3)."""
    theta = check_number(theta, "theta", minimum=0, strict_min=True)
    lr = check_number(lr, "lr", minimum=0, strict_min=True)
    torch.nn.utils.clip_grad_value_(model.parameters(), theta / lr)


def supervised_step(model: nn.Module, optimizer: torch.optim.Optimizer, low: torch.Tensor, high: torch.Tensor, *,
                    loss: str = "l2", clip_theta: float | None = None, bf16: bool = False) -> torch.Tensor:
    """One step of supervised SR training: ``l = loss(f_theta(low), high)`` (L2 = the papers' MSE, or L1),
    back-propagate, optionally clip the gradients (VDSR's ``clip_theta``, :func:`clip_gradients`),
    one optimiser step. ``bf16`` runs the forward pass under bfloat16 autocast. Returns the (detached) loss."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(low.device.type, dtype=torch.bfloat16, enabled=bf16):
        output = model(low)
    value = LOSSES[loss](output.float(), high)
    value.backward()
    if clip_theta is not None:
        clip_gradients(model, clip_theta, optimizer.param_groups[0]["lr"])
    optimizer.step()
    return value.detach()


def train_steps(model: nn.Module, sampler: PatchSampler, optimizer: torch.optim.Optimizer, steps: int, *,
                batch: int = 16, loss: str = "l1", generator: torch.Generator, clip_theta: float | None = None,
                history: dict | None = None, start: int = 0, log_every: int = 10, progress: bool = True,
                bf16: bool = False, lr_at=None) -> dict:
    """Run ``steps`` :func:`supervised_step` s of ``model`` on ``sampler``'s patches; returns the history
    ``{"step": [...], "loss": [...], "seconds": [...]}`` (mean loss over each ``log_every`` steps), extending
    ``history`` when resuming (``start`` = steps already done). ``lr_at(step)`` (0-based global step) sets the
    learning rate before each step (a schedule)."""
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps", minimum=0)
    batch = check_positive_int(batch, "batch")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if clip_theta is not None:
        check_number(clip_theta, "clip_theta", minimum=0, strict_min=True)
    history = history if history is not None else {"step": [], "loss": [], "seconds": []}
    dev = next(model.parameters()).device
    model.train()
    running, count, t0 = 0.0, 0, time.perf_counter()
    elapsed0 = history["seconds"][-1] if history["seconds"] else 0.0
    bar = tqdm(range(start, start + steps), desc=f"train {type(model).__name__}", leave=False, mininterval=1,
               disable=not progress)
    for step in bar:
        low, high = sampler.sample(batch, generator)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        value = supervised_step(model, optimizer, low.to(dev), high.to(dev), loss=loss, clip_theta=clip_theta,
                                bf16=bf16)
        running += float(value)
        count += 1
        if count == log_every or step == start + steps - 1:
            history["step"].append(step + 1)
            history["loss"].append(running / count)
            history["seconds"].append(elapsed0 + time.perf_counter() - t0)
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
    return history


def learning_rate(recipe: dict, step: int) -> float:
    """A recipe's learning rate at (0-based) ``step``: lr x lr_decay^(number of ``lr_decay_at`` fractions of
    ``steps`` passed) - the papers' step schedules."""
    passed = sum(step >= round(f * recipe["steps"]) for f in recipe.get("lr_decay_at") or ())
    return recipe["lr"] * recipe.get("lr_decay", 1.0) ** passed


class Trainer:
    """What ``python -m course_utils.train`` needs from a paper module, which builds one with its
    ``trainer(name, scale, recipe, load_images, generator, seed)``:

    * ``model``: what is trained and saved; ``config``: the builder's arguments that rebuild it;
    * ``run(steps, start=, history=, progress=)``: train ``steps`` more steps, returning the history dict;
    * ``state_dict()`` / ``load_state_dict()``: everything else a resumed run needs (optimisers, a
      discriminator, an EMA, the data generator's state);
    * ``info``: recipe entries measured while building (e.g. a feature scale), recorded in the checkpoint.
    """

    model: nn.Module
    config: dict
    info: dict

    def to(self, device):
        """Move what is trained to ``device`` (before the first step)."""
        self.model.to(device)
        return self

    def run(self, steps: int, *, start: int, history: dict | None, progress: bool) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class SupervisedTrainer(Trainer):
    """Adam + :func:`train_steps` on :class:`PatchSampler` patches with a recipe's ``batch``, ``lr`` (and schedule),
    ``loss``, ``clip_theta``, ``bf16``; ``generator`` draws the patches."""

    def __init__(self, model: nn.Module, config: dict, sampler: PatchSampler, recipe: dict,
                 generator: torch.Generator):
        self.model, self.config, self.sampler, self.recipe, self.generator = model, config, sampler, recipe, generator
        self.optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        self.info = {}

    def run(self, steps, *, start, history, progress):
        r = self.recipe
        return train_steps(self.model, self.sampler, self.optimizer, steps, batch=r["batch"], loss=r["loss"],
                           generator=self.generator, clip_theta=r.get("clip_theta"), history=history, start=start,
                           progress=progress, bf16=r.get("bf16", False), lr_at=lambda s: learning_rate(r, s))

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
