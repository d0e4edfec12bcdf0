"""Images: tensor <-> array, loading and saving, RGB -> Y, crops, and the offline image sets.

Convention: a tensor image is float32, shape (C, H, W) or (B, C, H, W), values in [0, 1].

The offline image sets come from scikit-image (no network). One fixed split is used everywhere in the course:

* ``TEST_IMAGES`` (our "Set5"): five colour photographs for demos and evaluation.
* ``TRAIN_IMAGES``: the other natural images, for training the super-resolution models. Never evaluate on them.
* ``HELD_OUT``: 20 photographs of the SR papers' training folders (T91 + BSD200) that no shipped model trains on
  and nothing in the course is tuned on: where generative SR is judged (``evaluate sr --held-out``).

``motorcycle_right`` (a stereo twin of ``motorcycle``) and ``cat`` (the same picture as ``chelsea``) are left out
so that nothing in the test split leaks into training.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ._checks import check_image, check_positive_int

TEST_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
TRAIN_IMAGES = ("camera", "brick", "grass", "gravel", "coins", "moon", "page", "text", "clock", "cell",
                "hubble_deep_field", "immunohistochemistry", "retina")
#: Every 10th BSD200 image by sorted file name (a rule, not a choice: 20 photographs of animals, people, buildings,
#: landscapes and textures). ``python -m course_utils.train`` skips them wherever they appear under ``--images``, so
#: every checkpoint trained on ``../shared/datasets/sr-train`` after this split was made has never seen them.
HELD_OUT = ("100075", "108073", "12074", "138078", "151087", "161062", "176035", "187039", "198023", "22013",
            "232038", "246053", "268002", "292066", "317080", "361084", "376020", "46076", "65010", "78019")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# ----------------------------------------------------------------------------------------------------------------
# tensor <-> array

def to_tensor(array) -> torch.Tensor:
    """(H, W) or (H, W, C) array (uint8 0..255, uint16, bool, or float in [0, 1]) -> (C, H, W) float32 tensor.
    An alpha channel is dropped."""
    if isinstance(array, torch.Tensor):
        raise TypeError("array must be a numpy array, got a torch.Tensor (it already is a tensor)")
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"array must have shape (H, W) or (H, W, C), got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[2] not in (1, 3):
        raise ValueError(f"array must have 1, 3 or 4 channels in its last axis, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
            raise ValueError(f"array of dtype {array.dtype} must have values in [0, 1], "
                             f"got range [{np.nanmin(array):.4g}, {np.nanmax(array):.4g}]")
    else:
        raise TypeError(f"array must be uint8, uint16, bool or float, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_array(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) tensor -> (H, W, C) float32 array, or (H, W) for one channel; clipped to [0, 1]."""
    check_image(image, "image", ndim=(3, 4), unit_range=False)
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image must be a single image (batch size 1) to convert, got shape {tuple(image.shape)}")
        image = image[0]
    array = image.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    return array[..., 0] if array.shape[2] == 1 else array


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Like :func:`to_array` but rounded to uint8 0..255 (what is saved to disk)."""
    return np.round(to_array(image) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# files

def load_image(path, *, gray: bool = False) -> torch.Tensor:
    """Read a PNG/JPEG/BMP/TIFF file -> (C, H, W) float32 tensor in [0, 1] (C = 3, or 1 for grayscale files or
    ``gray=True``)."""
    from skimage import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path does not name an image file: {path}")
    try:
        array = io.imread(path)
    except Exception as error:  # skimage raises many kinds for a broken file
        raise ValueError(f"path {path} could not be read as an image ({type(error).__name__}: {error})") from None
    image = to_tensor(array)
    return rgb_to_gray(image) if gray and image.shape[0] == 3 else image


def save_image(image: torch.Tensor, path) -> Path:
    """Write a (C, H, W) tensor in [0, 1] to ``path`` as an 8-bit image (format from the suffix)."""
    from skimage import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.imsave(path, to_uint8(image), check_contrast=False)
    return path


def is_held_out(name) -> bool:
    """Whether an image name or path (e.g. ``BSD200/100075`` or ``.../100075.png``) is one of :data:`HELD_OUT`."""
    return Path(str(name)).stem in HELD_OUT


def load_folder(directory, *, size: int | None = None, gray: bool = False, verbose: bool = True,
                recursive: bool = False):
    """Load every image file in ``directory`` (sorted by path) -> list of ``(name, tensor)``.

    A file that cannot be read is reported (a warning naming it) and skipped, so one broken file does not stop an
    evaluation table. ``size`` centre-crops every image to ``size x size`` (images smaller than that are skipped
    with a warning). ``recursive=True`` also reads the sub-folders (names are then relative paths without suffix,
    e.g. ``T91/t1``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory does not exist or is not a folder: {directory}")
    found = directory.rglob("*") if recursive else directory.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"directory {directory} contains no image files ({', '.join(IMAGE_SUFFIXES)})"
                         + ("" if recursive else " (sub-folders are not searched)"))
    images = []
    for path in files:
        try:
            image = load_image(path, gray=gray)
            if size is not None:
                image = center_crop(image, size)
        except ValueError as error:
            if verbose:
                warnings.warn(f"skipping {path.name}: {error}", stacklevel=2)
            continue
        images.append((str(path.relative_to(directory).with_suffix("")), image))
    return images


# ----------------------------------------------------------------------------------------------------------------
# the offline image sets

def _skimage_array(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def load_skimage(name: str, *, size: int | None = None, gray: bool = False) -> torch.Tensor:
    """One scikit-image sample image by name (see ``TEST_IMAGES``/``TRAIN_IMAGES``) -> (C, H, W) tensor,
    optionally centre-cropped to ``size x size``."""
    if name not in TEST_IMAGES + TRAIN_IMAGES:
        raise ValueError(f"name must be one of the course images {TEST_IMAGES + TRAIN_IMAGES}, got {name!r}")
    image = to_tensor(_skimage_array(name))
    if gray and image.shape[0] == 3:
        image = rgb_to_gray(image)
    return center_crop(image, size) if size is not None else image


def image_set(split: str = "test", *, size: int | None = None, gray: bool = False) -> dict:
    """The course's fixed split -> ``{name: (C, H, W) tensor}``. ``split``: 'test', 'train' or 'all'.
    ``size`` centre-crops each image to a square (images smaller than ``size`` keep their smaller side)."""
    names = {"test": TEST_IMAGES, "train": TRAIN_IMAGES, "all": TEST_IMAGES + TRAIN_IMAGES}
    if split not in names:
        raise ValueError(f"split must be 'test', 'train' or 'all', got {split!r}")
    out = {}
    for name in names[split]:
        image = load_skimage(name, gray=gray)
        if size is not None:
            image = center_crop(image, min(size, *image.shape[-2:]))
        out[name] = image
    return out


def faces(n: int = 100) -> torch.Tensor:
    """The first ``n`` (<= 100) faces of scikit-image's ``lfw_subset``: (n, 1, 25, 25) grayscale in [0, 1]."""
    import skimage.data

    n = check_positive_int(n, "n")
    if n > 100:
        raise ValueError(f"n must be <= 100 (lfw_subset holds 100 faces), got {n}")
    stack = skimage.data.lfw_subset()[:n].astype(np.float32)
    return torch.from_numpy(stack).clamp(0, 1)[:, None]


# ----------------------------------------------------------------------------------------------------------------
# colour and crops

# ITU-R BT.601 "studio" YCbCr as in MATLAB's rgb2ycbcr (the SR papers' colour space), for R, G, B in [0, 1]:
#   [Y, Cb, Cr] = (OFFSET + M [R, G, B]) / 255,  Y in [16, 235] / 255,  Cb, Cr in [16, 240] / 255.
YCBCR_MATRIX = ((65.481, 128.553, 24.966),
                (-37.797, -74.203, 112.0),
                (112.0, -93.786, -18.214))
YCBCR_OFFSET = (16.0, 128.0, 128.0)


def _ycbcr_constants(like: torch.Tensor):
    matrix = torch.tensor(YCBCR_MATRIX, dtype=torch.float64) / 255.0
    offset = torch.tensor(YCBCR_OFFSET, dtype=torch.float64) / 255.0
    return matrix.to(like), offset.to(like)


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """RGB -> luma Y of ITU-R BT.601 in its "studio" form used by the SR papers (MATLAB ``rgb2ycbcr``):

        Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255,   R, G, B in [0, 1]  ->  Y in [16/255, 235/255].

    (C=3, H, W) or (B, 3, H, W) -> same rank with one channel. A one-channel image is returned unchanged
    (it already is luminance).
    """
    check_image(image, "image", channels=(1, 3))
    if image.shape[-3] == 1:
        return image
    matrix, offset = _ycbcr_constants(image)
    return (image * matrix[0].view(3, 1, 1)).sum(dim=-3, keepdim=True) + offset[0]


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """RGB -> YCbCr (BT.601 studio range, MATLAB ``rgb2ycbcr``), all three channels in [0, 1] units.
    (3, H, W) or (B, 3, H, W) -> same shape; channel 0 equals :func:`rgb_to_y`."""
    check_image(image, "image", channels=3)
    matrix, offset = _ycbcr_constants(image)
    return torch.einsum("ij,...jhw->...ihw", matrix, image) + offset.view(3, 1, 1)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """YCbCr (BT.601 studio range, [0, 1] units) -> RGB clipped to [0, 1]; the inverse of :func:`rgb_to_ycbcr`.
    Used to show a super-resolved Y channel with the bicubic Cb/Cr, as the SR papers do."""
    check_image(image, "image", channels=3)
    matrix, offset = _ycbcr_constants(image)
    inverse = torch.linalg.inv(matrix.double()).to(image)
    rgb = torch.einsum("ij,...jhw->...ihw", inverse, image - offset.view(3, 1, 1))
    return rgb.clamp(0, 1)


def rgb_to_gray(image: torch.Tensor) -> torch.Tensor:
    """RGB -> full-range gray (0.299 R + 0.587 G + 0.114 B), keeps [0, 1]. One channel in, unchanged."""
    check_image(image, "image", channels=(1, 3))
    if image.shape[-3] == 1:
        return image
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(dim=-3, keepdim=True)


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so height and width are multiples of ``scale`` (the SR papers' ``modcrop``)."""
    check_image(image, "image", unit_range=False)
    scale = check_positive_int(scale, "scale")
    h, w = image.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"image of size {h}x{w} is smaller than scale={scale}")
    return image[..., : h - h % scale, : w - w % scale]


def center_crop(image: torch.Tensor, size) -> torch.Tensor:
    """Centre crop to ``size`` (int for a square, or (h, w)). Raises if the image is smaller."""
    check_image(image, "image", ndim=(2, 3, 4), unit_range=False)
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    th, tw = check_positive_int(th, "size"), check_positive_int(tw, "size")
    h, w = image.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"size {th}x{tw} is larger than the image ({h}x{w})")
    top, left = (h - th) // 2, (w - tw) // 2
    return image[..., top: top + th, left: left + tw]


def crop_box(image: torch.Tensor, box) -> torch.Tensor:
    """Crop ``box = (top, left, height, width)``: the zoom windows of the figures."""
    top, left, height, width = (int(v) for v in box)
    h, w = image.shape[-2:]
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
        raise ValueError(f"box (top, left, height, width)={tuple(box)} does not fit in an image of size {h}x{w}")
    return image[..., top: top + height, left: left + width]
