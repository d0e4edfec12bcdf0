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
