"""The panel pattern (make_panel) shared by every notebook's widgets."""
from course_utils import widgets


def test_make_panel_with_run_button():
    import ipywidgets as w

    calls = []
    panel = widgets.make_panel(lambda n: n * 2, calls.append, {"n": w.IntSlider(value=3)}, run_button=True)
    panel.children[0].value = 5  # no recomputation until Run
    assert panel.result is None
    button = [c for c in panel.children if isinstance(c, w.Button)][0]
    button.click()
    assert panel.result == 10 and calls == [10]


def test_every_panel_shows_its_labels_in_full():
    # ipywidgets' default label width cuts long descriptions ("reg-noise std", "sigma (fine scales)")
    import ipywidgets as w

    from course_utils.images import load_skimage
    from course_utils.widgets import dip, spectral

    panel = widgets.make_panel(lambda n: n, print, {"n": w.IntSlider(value=3, description="a long description")})
    assert panel.children[0].style.description_width == "initial"
    image = load_skimage("coffee", size=64)
    for built in (dip.dip_fit_panel(image), dip.dip_restore_panel(image), spectral.spectral_panel(image)):
        labelled = [c for c in built.children if getattr(c, "description", "") and not isinstance(c, w.Button)]
        assert labelled and all(c.style.description_width == "initial" for c in labelled)
