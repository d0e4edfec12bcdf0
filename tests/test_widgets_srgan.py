"""Notebook 05's panel, headless."""
import math

import pytest

from course_utils import images, srgan
from course_utils.widgets import srgan as panels


def test_srgan_demo_and_panel_headless(rgb):

    tiny = [images.load_skimage("camera", size=64)]
    start = srgan.SRResNet(4, n_blocks=1, channels=8)
    result = panels.srgan_demo(rgb, "vgg22", 1e-2, 2, generator=start, train_images=tiny, batch=2, patch=9,
                                zoom=16, top=0, left=1)
    assert list(result["images"]) == ["high-res (truth)", "bicubic", "start (SRResNet)", "after 2 GAN steps"]
    assert result["images"]["after 2 GAN steps"].shape == (3, 48, 48) and result["box"] == (0, 32, 16, 16)
    assert result["history"]["step"] == [2] and "random" in result["vgg"]
    assert all(math.isfinite(v) for v in result["psnr"].values()) and result["hf"]["bicubic"] < 1
    assert not any(p.grad is not None for p in start.parameters())            # the start model is not touched
    panel = panels.srgan_panel(rgb, iters=1, generator=start, train_images=tiny, batch=1, patch=9, zoom=16)
    controls = {c.description: c for c in panel.children if hasattr(c, "value")}
    controls["content"].value = "mse"
    controls["iterations"].value = 0
    result = panel.update()
    assert result["vgg"] == "none (pixel MSE)" and result["history"] == {}
    with pytest.raises(ValueError, match="adversarial_weight"):
        panels.srgan_demo(rgb, "mse", -1, 1, generator=start, train_images=tiny)
