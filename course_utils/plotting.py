"""Figures: image grids with titles and zoomed crops, history curves, and a live figure for widgets."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .images import crop_box, to_array


def _show(ax, image, title=None):
    array = to_array(image) if isinstance(image, torch.Tensor) else image
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])


def show_images(images, titles=None, *, ncols: int | None = None, zoom=None, suptitle: str | None = None,
                size: float = 3.0):
    """Show (C, H, W) tensors side by side. ``images``: a list or a ``{title: image}`` dict.

    ``zoom = (top, left, height, width)`` adds a second row with that crop of every image (nearest-neighbour
    enlarged) and a red box marking it on the first row. Returns the figure.
    """
    if isinstance(images, dict):
        titles, images = list(images.keys()), list(images.values())
    images = list(images)
    if not images:
        raise ValueError("images must contain at least one image")
    titles = list(titles) if titles is not None else [None] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols) * (2 if zoom else 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, title) in enumerate(zip(images, titles)):
        row, col = divmod(i, ncols)
        row *= 2 if zoom else 1
        ax = axes[row, col]
        ax.axis("on")
        _show(ax, image, title)
        if zoom:
            # the box is given in the first image's pixels; scale it for images of another size (e.g. low-res)
            sy = image.shape[-2] / images[0].shape[-2]
            sx = image.shape[-1] / images[0].shape[-1]
            top, left, height, width = zoom
            box = (round(top * sy), round(left * sx), max(1, round(height * sy)), max(1, round(width * sx)))
            ax.add_patch(plt.Rectangle((box[1] - 0.5, box[0] - 0.5), box[3], box[2], fill=False, color="red", lw=1.2))
            axes[row + 1, col].axis("on")
            _show(axes[row + 1, col], crop_box(image, box), "zoom" if title is None else f"{title} (zoom)")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def zoom_box(image, top: float, left: float, zoom: int) -> tuple:
    """A ``zoom`` x ``zoom`` window (clamped to 8 .. the image) placed at fractions ``top``/``left`` (0..1) of the
    free space of ``image`` (C, H, W) -> (top, left, height, width) for ``show_images(zoom=...)``."""
    from ._checks import check_number

    top, left = check_number(top, "top", minimum=0, maximum=1), check_number(left, "left", minimum=0, maximum=1)
    h, w = image.shape[-2:]
    zoom = max(8, min(int(zoom), h, w))
    return round(top * (h - zoom)), round(left * (w - zoom)), zoom, zoom


def detail_box(image, zoom: int) -> tuple:
    """The ``zoom`` x ``zoom`` window of ``image`` (C, H, W) with the most fine detail (the largest energy of
    image - blur(image), sigma 1), so a zoom shows texture and edges, never a flat or black patch.
    -> (top, left, height, width) for ``show_images(zoom=...)``."""
    import torch.nn.functional as F

    from ._checks import check_image
    from .operators import GaussianBlur

    check_image(image, "image", ndim=3)
    h, w = image.shape[-2:]
    zoom = max(8, min(int(zoom), h, w))
    gray = image.float().mean(0, keepdim=True)
    energy = ((gray - GaussianBlur(1.0)(gray)) ** 2)[None]                     # (1, 1, H, W)
    window = F.avg_pool2d(energy, zoom, stride=1)[0, 0]                         # (H - zoom + 1, W - zoom + 1)
    top, left = divmod(int(window.argmax()), window.shape[1])
    return top, left, zoom, zoom


def plot_history(history: dict, keys, *, x_key: str = "iter", logx: bool = False, logy: bool = False,
                 title: str = "", ylabel: str = "", xlabel: str = "iteration", ax=None, labels=None):
    """Plot ``history[key]`` against ``history[x_key]`` for each key (histories are dicts of lists, as returned by
    the course's training loops). Returns the axes."""
    if isinstance(keys, str):
        keys = [keys]
    missing = [k for k in list(keys) + [x_key] if k not in history]
    if missing:
        raise KeyError(f"history has no entries {missing}; it has {sorted(history)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for i, key in enumerate(keys):
        ax.plot(history[x_key], history[key], label=labels[i] if labels else key)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    if len(keys) > 1 or labels:
        ax.legend()
    return ax


def plot_reliability(data: dict, *, ax=None, title: str = "", label: str | None = None):
    """Reliability diagram from :func:`course_utils.posterior.reliability` data: accuracy against mean confidence
    per bin (a calibrated classifier lies on the diagonal), each bin's point sized by its share of the samples,
    the ECE in the legend. Returns the axes."""
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    confidence, accuracy = np.asarray(data["confidence"], float), np.asarray(data["accuracy"], float)
    share = np.asarray(data["count"], float) / max(sum(data["count"]), 1)
    keep = np.isfinite(confidence) & np.isfinite(accuracy)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    ax.plot(confidence[keep], accuracy[keep], "-", lw=1)
    ax.scatter(confidence[keep], accuracy[keep], s=20 + 300 * share[keep],
               label=f"{label + ': ' if label else ''}ECE {data['ece']:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class)", ylabel="accuracy", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax
