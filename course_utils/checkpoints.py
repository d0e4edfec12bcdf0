"""Registry of the shipped checkpoints in ``course_utils/weights/``.

``weights/registry.json`` maps ``"<model>_x<scale>"`` to the file, its sha256, and how it was trained (the exact
``python -m course_utils.train ...`` command, steps, seconds, hardware). :func:`load_checkpoint` checks the file
against its sha256 before loading it, so a missing, truncated or altered file is refused with a message that
says how to rebuild it, instead of a model that silently gives wrong pictures.

The registry does not know the models: the paper modules register a builder per name (:func:`register_builder`,
done by ``course_utils.sr.register_model``), and :func:`load_checkpoint` imports the paper modules when it meets
a name it has no builder for yet.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

from .pretrained import sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY = WEIGHTS_DIR / "registry.json"
#: the paper modules that register builders (imported on demand, in the course's order)
PAPER_MODULES = ("course_utils.dip", "course_utils.srcnn", "course_utils.srgan", "course_utils.sr3",
                 "course_utils.pulse")
#: name -> builder(scale, **config) returning the model (filled by the paper modules)
BUILDERS: dict = {}

__all__ = ["BUILDERS", "PAPER_MODULES", "REGISTRY", "WEIGHTS_DIR", "available", "filename", "key", "load_checkpoint",
           "read_registry", "register", "register_builder", "sha256", "ship"]


def register_builder(name: str, builder) -> None:
    """``builder(scale, **config)`` rebuilds the model of a checkpoint named ``name``."""
    BUILDERS[name] = builder


def _builder(name: str):
    if name not in BUILDERS:
        for module in PAPER_MODULES:
            importlib.import_module(module)
    return BUILDERS.get(name)


def key(name: str, scale: int | None) -> str:
    """Registry key: ``'<name>_x<scale>'`` (``'<name>'`` for weights without a scale, e.g. a generator)."""
    return f"{name}_x{scale}" if scale is not None else name


def filename(name: str, scale: int | None) -> str:
    return f"{key(name, scale)}.pt"


def read_registry(registry=None) -> dict:
    """The registry as a dict (empty when the file does not exist yet)."""
    registry = Path(registry) if registry is not None else REGISTRY
    return json.loads(registry.read_text()) if registry.is_file() else {}


def register(path, checkpoint: dict, registry=None) -> dict:
    """Add or update the entry of the checkpoint file ``path`` (a dict as saved by ``course_utils.train``)."""
    path = Path(path)
    registry = Path(registry) if registry is not None else REGISTRY
    entries = read_registry(registry)
    name = key(checkpoint["name"], checkpoint.get("scale"))
    entries[name] = {"file": path.name, "sha256": sha256(path), "model": checkpoint["name"],
                    "scale": checkpoint.get("scale"), "command": checkpoint["command"], "steps": checkpoint["steps"],
                    "seconds": round(float(checkpoint["seconds"]), 1), "hardware": checkpoint["hardware"],
                    "recipe": checkpoint["recipe"], "date": checkpoint["date"]}
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return entries[name]


def available(name: str | None = None, registry=None) -> dict:
    """``{model name: [scales]}`` of the registered checkpoints (or the scales of one ``name``)."""
    out: dict = {}
    for entry in read_registry(registry).values():
        out.setdefault(entry["model"], []).append(entry["scale"])
    out = {k: sorted(v) for k, v in out.items()}
    return out.get(name, []) if name is not None else out


def _build(builder, checkpoint: dict, scale):
    """The untrained model a checkpoint's weights fit: ``builder(scale, **config)`` (no scale: ``builder(**config)``)."""
    config = checkpoint.get("config", {})
    return builder(scale, **config) if scale is not None else builder(**config)


def _retrain(name, scale, entry=None) -> str:
    command = entry["command"] if entry else f"python -m course_utils.train {name} --scale {scale}"
    return f"rebuild it with:  {command}"


def load_checkpoint(name: str, scale: int | None = None, *, weights_dir=None, registry=None, map_location="cpu"):
    """The shipped ``name`` model for ``scale`` (e.g. ``load_checkpoint('vdsr', 3)``), in eval mode, on
    ``map_location``, with ``model.checkpoint_info`` (how it was trained).

    Raises ValueError for an unknown name or a scale with no checkpoint, FileNotFoundError for a missing file,
    and ValueError for a file whose sha256 differs from the registry's (corrupted or replaced) or whose
    configuration does not fit the model; each message gives the training command that rebuilds the file."""
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int)):
        raise TypeError(f"scale must be an integer, got {scale!r}")
    builder = _builder(name)
    if builder is None:
        raise ValueError(f"name must be one of the trained models {sorted(BUILDERS)}, got {name!r}")
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    registry = Path(registry) if registry is not None else weights_dir / REGISTRY.name
    entry = read_registry(registry).get(key(name, scale))
    if entry is None:
        scales = available(name, registry)
        raise ValueError(f"no shipped {name} checkpoint for scale={scale} (shipped scales: {scales or 'none'}); "
                         f"train one with:  python -m course_utils.train {name}"
                         + (f" --scale {scale}" if scale is not None else ""))
    path = weights_dir / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing; {_retrain(name, scale, entry)}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"checkpoint file {path} is corrupted or was replaced (sha256 {digest[:12]}... differs "
                         f"from the registered {entry['sha256'][:12]}...); {_retrain(name, scale, entry)}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = _build(builder, checkpoint, scale)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(f"checkpoint file {path} does not fit the {name} model built from its configuration "
                         f"{checkpoint.get('config', {})}: {str(error).splitlines()[0]}; "
                         f"{_retrain(name, scale, entry)}") from None
    model.checkpoint_info = {k: v for k, v in checkpoint.items() if k not in ("state_dict",)}
    return model.to(map_location).eval()


def ship(path, name: str | None = None, *, weights_dir=None, registry=None) -> dict:
    """Ship a finished run's checkpoint ``path`` (written by ``course_utils.train --out``): copy it to
    ``weights/<name>_x<scale>.pt`` and register it, under ``name`` (default: the name it was trained under; a
    run trained under another name, e.g. ``sr3`` with the face-world recipe set by ``--set``, is renamed: its
    command names ``name``, the original one is kept in ``trained_as``). The file must load into ``name``'s model;
    returns the registry entry."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "command" not in checkpoint:
        raise ValueError(f"path {path} is not a finished course_utils.train checkpoint (a .resume file is not)")
    name = name or checkpoint["name"]
    builder = _builder(name)
    if builder is None:
        raise ValueError(f"name must be one of the trained models {sorted(BUILDERS)}, got {name!r}")
    scale = checkpoint.get("scale")
    model = _build(builder, checkpoint, scale)
    model.load_state_dict(checkpoint["state_dict"])                            # refuses a file of another model
    if name != checkpoint["name"]:   # the same command under the new name (its --set values are all recorded)
        command = checkpoint["command"].replace(f"train {checkpoint['name']} ", f"train {name} ", 1)
        checkpoint = {**checkpoint, "name": name, "command": command,
                      "trained_as": {"name": checkpoint["name"], "command": checkpoint["command"]}}
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    out = weights_dir / filename(name, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return register(out, checkpoint, registry if registry is not None else weights_dir / REGISTRY.name)
