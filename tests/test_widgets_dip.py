"""Notebooks 01-02's panels, headless."""
import ipywidgets as w
import pytest
import torch

from course_utils import dip
from course_utils.images import load_skimage
from course_utils.widgets import dip as panels


@pytest.fixture
def img64():
    return load_skimage("chelsea", size=64)


def test_dip_fit_demo_is_pure(img64):
    a = panels.dip_fit_demo(img64, width=8, iters=6, every=3)
    b = panels.dip_fit_demo(img64, width=8, iters=6, every=3)
    assert torch.equal(a["fit"].average, b["fit"].average)
    assert a["fit"].history["iter"] == [3, 6] and a["noisy"].shape == img64.shape
    titles = [ax.get_title() for ax in panels.render_dip_fit(a).axes]   # the clean reference beside the outputs
    assert titles[3] == "clean (reference)" and titles[2].startswith("averaged output")
    c = panels.dip_fit_demo(img64, width=8, iters=6, every=3, upsample="nearest")
    assert not torch.equal(a["fit"].average, c["fit"].average)


def test_dip_fit_panel_runs_headless(img64):
    panel = panels.dip_fit_panel(img64, iters=50)
    controls = {c.description: c for c in panel.children if hasattr(c, "value") and c.description}
    controls["width"].value = 8
    assert panel.result is None  # nothing runs before the button
    [c for c in panel.children if isinstance(c, w.Button)][0].click()
    assert len(panel.result["fit"].history["loss"]) == 50


@pytest.mark.parametrize("task, shape", [("denoise", (3, 64, 64)), ("sr", (3, 64, 64)), ("inpaint", (3, 64, 64))])
def test_dip_restore_demo_tasks(img64, task, shape):
    out = panels.dip_restore_demo(img64, task=task, iters=4, width=8, every=2)
    assert out["fit"].average.shape == shape
    assert set(out["psnr"]) >= {"DIP raw", "DIP averaged"}


def test_dip_restore_panel_live_curve(img64):
    panel = panels.dip_restore_panel(img64, iters=4, width=8)
    controls = {c.description: c for c in panel.children if hasattr(c, "value") and c.description}
    controls["task"].value = "sr"
    controls["iterations"].value = 50
    panel.update()
    assert panel.result["problem"]["y"].shape == (3, 16, 16)
    assert len(panel.result["fit"].history["psnr"]) == 2  # every 25 steps


def test_degrade_bad_input(img64):
    with pytest.raises(ValueError, match="task"):
        dip.degrade(img64, "deblur")
    with pytest.raises(ValueError, match="sigma"):
        dip.degrade(img64, "denoise", 150)
    with pytest.raises(ValueError, match="mask"):
        dip.degrade(img64, "inpaint", "circles")
    holes = dip.degrade(img64, "inpaint", "blocks", seed=3)["operator"].mask
    assert 0.5 < float(holes.mean()) < 0.95 and torch.equal(holes, dip.degrade(img64, "inpaint", "blocks", seed=3)["operator"].mask)
    with pytest.raises(ValueError, match="scale"):
        dip.degrade(img64, "sr", 1)


def test_bench_dip_reports_seconds_per_iteration():
    from course_utils import bench

    r = bench.bench_dip(size=64, iters=2, width=4, warmup=1)
    assert r["fit_s_per_iter"] > 0 and r["size"] == 64 and r["channels_last"]
