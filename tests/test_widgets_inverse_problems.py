"""Notebook 00's panel, headless."""
from course_utils.widgets import inverse_problems as panels


def test_degrade_demo_is_pure_and_consistent(rgb):
    a = panels.degrade_demo(rgb, sigma=25, scale=2, drop=0.5, seed=0)
    b = panels.degrade_demo(rgb, sigma=25, scale=2, drop=0.5, seed=0)
    assert list(a["images"]) == ["clean", "noise sigma=25", "bicubic x2 down+up", "50% pixels dropped"]
    for key in a["psnr"]:
        assert a["psnr"][key] == b["psnr"][key]
    # more noise, lower PSNR; more dropped pixels, lower PSNR
    noisier = panels.degrade_demo(rgb, sigma=50, scale=2, drop=0.8, seed=0)
    assert noisier["psnr"]["noise sigma=50"] < a["psnr"]["noise sigma=25"] - 4
    assert noisier["psnr"]["80% pixels dropped"] < a["psnr"]["50% pixels dropped"]
    assert all(v.shape == (3, 48, 48) for v in a["images"].values())


def test_panel_callback_runs_headless(rgb):
    panel = panels.degradation_panel(rgb)
    sliders = {c.description: c for c in panel.children if hasattr(c, "value")}
    sliders["sigma (0-255)"].value = 50  # moving a slider calls the callback
    assert "noise sigma=50" in panel.result["psnr"]
    sliders["scale"].value = 4
    assert panel.result["images"]["bicubic x4 down+up"].shape == (3, 48, 48)
    first = panel.result["psnr"]["bicubic x4 down+up"]
    sliders["scale"].value = 8
    assert panel.result["psnr"]["bicubic x8 down+up"] < first
