"""Registry of the shipped checkpoints in ``course_utils/weights/``.

``weights/registry.json`` maps ``"<model>_x<scale>"`` to the file, its sha256, and how it was trained (the exact
``python -m course_utils.train ...`` command, steps, seconds, hardware). :func:`load_checkpoint` checks the file
against its sha256 before loading it, so a missing, truncated or altered file is refused with a message that
says how to rebuild it, instead of a model that silently gives wrong pictures.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY = WEIGHTS_DIR / "registry.json"


def filename(name: str, scale: int) -> str:
    return f"{name}_x{scale}.pt"


def sha256(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_registry(registry=None) -> dict:
    """The registry as a dict (empty when the file does not exist yet)."""
    registry = Path(registry) if registry is not None else REGISTRY
    return json.loads(registry.read_text()) if registry.is_file() else {}


def register(path, checkpoint: dict, registry=None) -> dict:
    """Add or update the entry of the checkpoint file ``path`` (a dict as saved by ``course_utils.train``)."""
    path = Path(path)
    registry = Path(registry) if registry is not None else REGISTRY
    entries = read_registry(registry)
    key = f"{checkpoint['name']}_x{checkpoint['scale']}"
    entries[key] = {"file": path.name, "sha256": sha256(path), "model": checkpoint["name"],
                    "scale": checkpoint["scale"], "command": checkpoint["command"], "steps": checkpoint["steps"],
                    "seconds": round(float(checkpoint["seconds"]), 1), "hardware": checkpoint["hardware"],
                    "recipe": checkpoint["recipe"], "date": checkpoint["date"]}
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return entries[key]


def available(name: str | None = None, registry=None) -> dict:
    """``{model name: [scales]}`` of the registered checkpoints (or the scales of one ``name``)."""
    out: dict = {}
    for entry in read_registry(registry).values():
        out.setdefault(entry["model"], []).append(entry["scale"])
    out = {k: sorted(v) for k, v in out.items()}
    return out.get(name, []) if name is not None else out


def _retrain(name, scale, entry=None) -> str:
    command = entry["command"] if entry else f"python -m course_utils.train {name} --scale {scale}"
    return f"rebuild it with:  {command}"


def load_checkpoint(name: str, scale: int, *, weights_dir=None, registry=None, map_location="cpu"):
    """The shipped ``name`` model (srcnn, espcn, vdsr) for ``scale``, in eval mode, on ``map_location``.

    Raises ValueError for an unknown name or a scale with no checkpoint, FileNotFoundError for a missing file,
    and ValueError for a file whose sha256 differs from the registry's (corrupted or replaced); each message
    gives the training command that rebuilds the file."""
    from .sr import MODELS, build_model

    trainable = sorted(set(MODELS) - {"bicubic"})
    if name not in trainable:
        raise ValueError(f"name must be one of {trainable}, got {name!r}")
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise TypeError(f"scale must be an integer, got {scale!r}")
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    registry = Path(registry) if registry is not None else weights_dir / REGISTRY.name
    entry = read_registry(registry).get(f"{name}_x{scale}")
    if entry is None:
        scales = available(name, registry)
        raise ValueError(f"no shipped {name} checkpoint for scale={scale} (shipped scales: {scales or 'none'}); "
                         f"train one with:  python -m course_utils.train {name} --scale {scale}")
    path = weights_dir / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing; {_retrain(name, scale, entry)}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"checkpoint file {path} is corrupted or was replaced (sha256 {digest[:12]}... differs "
                         f"from the registered {entry['sha256'][:12]}...); {_retrain(name, scale, entry)}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(name, scale, **checkpoint.get("config", {}))
    model.load_state_dict(checkpoint["state_dict"])
    model.checkpoint_info = {k: v for k, v in checkpoint.items() if k not in ("state_dict",)}
    return model.to(map_location).eval()
