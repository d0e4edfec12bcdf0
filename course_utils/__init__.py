"""course_utils: the code behind the course "From Deep Image Prior to SR3 and PULSE".

Modules (one per topic): ``runtime`` (profiles, device, seeding), ``images`` (loading, colour, crops, the offline
image sets), ``operators`` (degradations y = A(x) + n), ``metrics`` (PSNR/SSIM), ``plotting``, ``widgets``,
``exercises`` (self-checks).
"""
from .images import center_crop, image_set, load_image, modcrop, rgb_to_y, to_array, to_tensor
from .metrics import psnr, sr_psnr, sr_ssim, ssim
from .runtime import device, profile, seed_everything, settings

__version__ = "0.1.0"

#: Where the course lives, set here only: the notebooks' Colab badges and setup cells are written from it by
#: ``python tools/set_setup_cell.py notebooks/*.ipynb`` (``--repo owner/name`` points everything at a fork).
REPOSITORY_URL = "https://github.com/open-course/dip-to-sr3-pulse"

__all__ = ["REPOSITORY_URL", "__version__", "center_crop", "device", "image_set", "load_image", "modcrop",
           "profile", "psnr", "rgb_to_y", "seed_everything", "settings", "sr_psnr", "sr_ssim", "ssim",
           "to_array", "to_tensor"]
