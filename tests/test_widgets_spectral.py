"""Notebook 03's panel, headless."""
import pytest

from course_utils.images import load_skimage
from course_utils.widgets import spectral as panels


def test_spectral_widget_callback_headless():
    import ipywidgets as w

    clean = load_skimage("coffee", size=64)
    result = panels.spectral_demo(clean, task="inpaint", iters=20, channels=4, every=10)
    assert set(result["runs"]) == {"plain DIP", "both (Shi et al.)"}
    assert len(result["runs"]["plain DIP"].history["psnr"]) == 2
    import matplotlib.pyplot as plt

    plt.close("all")
    panels.render_spectral(result)   # the PSNR curves, then the outputs beside the clean reference
    titles = [ax.get_title() for num in plt.get_fignums() for ax in plt.figure(num).axes]
    assert "clean (reference)" in titles and "plain DIP" in titles
    plt.close("all")
    panel = panels.spectral_panel(clean)
    controls = {c.description: c for c in panel.children if hasattr(c, "value") and hasattr(c, "description")}
    controls["iterations"].value = 50
    assert panel.result is None  # nothing runs until the button is pressed
    with pytest.raises(ValueError, match="task must be"):
        panels.spectral_demo(clean, task="deblur")
    assert any(isinstance(c, w.Button) for c in panel.children)
