"""Outside weights (ImageNet VGG19 for SRGAN's loss, StyleGAN2-FFHQ for PULSE): opt-in download, hash check, cache,
and a key/shape check of a state dict before it is loaded.

The course never downloads anything unless asked: :func:`fetch` reads the cached file, or raises a
``FileNotFoundError`` that says how to opt in (``download=True``), and turns a failed download (no network) into
one ``ConnectionError`` that names the offline alternative. Files are cached in torch's hub folder
(``$TORCH_HOME/hub/checkpoints``, usually under ``~/.cache/torch``), shared with torchvision.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def sha256(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(url: str) -> Path:
    """Where the file of ``url`` is cached: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def fetch(url: str, *, sha256_prefix: str | None, what: str, download: bool = False, offline_hint: str = "",
          size: str = "", cache_as: str | None = None) -> Path:
    """The local path of the weights at ``url``: the cached copy, else a download **only when** ``download=True``.

    The file's sha256 must start with ``sha256_prefix`` (torchvision's 8-hex convention; a full digest also
    works); a mismatch is refused (corrupted or replaced file). ``what`` names the weights in messages;
    ``offline_hint`` says what to use instead offline; ``size`` is shown before a download. ``cache_as``: the
    official URL whose file name the cache uses (so that a mirror ``url`` fills the same cache entry)."""
    file = cache_path(cache_as or url)
    if not file.is_file():
        if not download:
            raise FileNotFoundError(
                f"{what} weights are not cached at {file}. Pass download=True to fetch them ({size + ' ' if size else ''}"
                f"from {url}; needs internet, e.g. on Colab){', ' + offline_hint if offline_hint else ''}")
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(file), hash_prefix=None, progress=True)
        except Exception as error:   # URLError, HTTPError, timeouts, DNS failures ...
            reason = getattr(error, "reason", None) or error
            raise ConnectionError(f"could not download the {what} weights from {url}: {reason}. Are you offline? "
                                  f"{offline_hint + ' ' if offline_hint else ''}Or download the file elsewhere "
                                  f"and pass path=...") from None
    if sha256_prefix is not None:
        digest = sha256(file)
        if not digest.startswith(sha256_prefix):
            raise ValueError(f"{file} has sha256 {digest[:12]}..., expected {sha256_prefix[:12]}...: the file is "
                             f"corrupted or not the {what} weights; delete it and download again")
    return file


def check_state_dict(wanted: dict, given, source: str, known_keys=None, what: str = "state dict") -> dict:
    """Check that ``given`` (a state dict read from ``source``) has every key of ``wanted`` (a model's own
    ``state_dict()``) with the same shapes; keys outside ``known_keys`` (default: ``wanted``'s) are refused too.
    Raises ``ValueError`` naming the missing keys, the unknown keys and the wrong shapes; returns the entries of
    ``given`` that ``wanted`` needs, ready for ``load_state_dict``."""
    if not isinstance(given, dict):
        raise TypeError(f"{source} must be a dict of tensors (a {what}), got {type(given).__name__}")
    known = set(known_keys) if known_keys is not None else set(wanted)
    missing = [k for k in wanted if k not in given]
    unknown = [k for k in given if k not in known]
    shapes = [f"{k}: {tuple(given[k].shape) if isinstance(given[k], torch.Tensor) else type(given[k]).__name__} "
              f"instead of {tuple(v.shape)}" for k, v in wanted.items()
              if k in given and (not isinstance(given[k], torch.Tensor) or given[k].shape != v.shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unknown:
        problems.append(f"unknown keys {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    if shapes:
        problems.append(f"wrong shapes {shapes[:10]}{' ...' if len(shapes) > 10 else ''}")
    if problems:
        raise ValueError(f"{source} is not a {what}: " + "; ".join(problems))
    return {k: given[k] for k in wanted}
