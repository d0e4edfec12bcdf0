"""Notebook 04's panel, headless."""
import pytest

from course_utils import srcnn
from course_utils.widgets import srcnn as panels


def test_sr_compare_and_panel_headless(rgb):

    models = {"espcn": srcnn.ESPCN(2)}
    result = panels.sr_compare(rgb, "espcn", 2, top=0, left=1, zoom=16, models=models)
    assert list(result["images"]) == ["high-res (truth)", "bicubic", "espcn"]
    assert result["images"]["espcn"].shape == (3, 48, 48) and result["low"].shape == (3, 24, 24)
    assert result["box"] == (0, 32, 16, 16)
    assert result["psnr"]["bicubic"] > 20
    with pytest.raises(ValueError, match="scale"):
        panels.sr_compare(rgb, "espcn", 3, models=models)
    panel = panels.sr_panel({"a": rgb, "b": rgb[:, :36, :36]}, models=("bicubic",), scales=[2, 3])
    controls = {c.description: c for c in panel.children if hasattr(c, "value")}
    controls["scale"].value = 2
    assert panel.result["images"]["bicubic"].shape == (3, 48, 48)
    controls["image"].value = "b"
    assert panel.result["images"]["bicubic"].shape == (3, 36, 36)
    controls["zoom size"].value = 24
    assert panel.result["box"][2] == 24


def test_sr_panel_offers_every_shipped_scale_and_notes_missing_ones(rgb):
    from course_utils.checkpoints import available

    shipped = available()
    panel = panels.sr_panel({"a": rgb})
    scales = [c for c in panel.children if getattr(c, "description", "") == "scale"][0].options
    assert set(scales) == set().union(*(set(shipped.get(m, [])) for m in ("srcnn", "espcn", "vdsr")))
    missing = [s for s in scales if s not in shipped.get("vdsr", [])]
    if missing:   # e.g. VDSR has no x2 checkpoint: bicubic is shown, with a note
        result = panels.sr_compare(rgb[:, :48, :48], "vdsr", missing[0])
        assert list(result["images"]) == ["high-res (truth)", "bicubic"] and "no shipped vdsr" in result["note"]
