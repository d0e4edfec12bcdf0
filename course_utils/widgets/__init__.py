"""Widget panels for the notebooks, one module per paper (``widgets.inverse_problems``, ``widgets.dip``,
``widgets.spectral``, ``widgets.srcnn``, ``widgets.srgan``, ...).

The pattern: a *pure function* computes everything from the hyper-parameters (tests call it directly, no
browser needed); a *render* function draws the result; :func:`make_panel` wires sliders to both. A panel keeps
its last result in ``panel.result`` so a headless test can move a slider and check what came out.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt


def make_panel(compute, render, controls: dict, *, run_button: bool = False, title: str = ""):
    """Build a panel: ``controls`` maps keyword names of ``compute`` to ipywidgets. On every change (or on the
    run button when ``run_button=True``, for slow computations) it calls ``result = compute(**values)`` and
    ``render(result)`` inside an Output area. Returns the ``VBox`` with ``.result`` and ``.update()``."""
    for control in controls.values():   # full labels: the default width cuts "sigma (denoise)" to "sigma (d..."
        if hasattr(getattr(control, "style", None), "description_width"):
            control.style.description_width = "initial"
    output = widgets.Output()
    items = [widgets.HTML(f"<b>{title}</b>")] if title else []
    items += list(controls.values())
    button = widgets.Button(description="Run", button_style="primary") if run_button else None
    panel = widgets.VBox(items + ([button] if button else []) + [output])
    panel.result = None

    def update(*_):
        values = {name: control.value for name, control in controls.items()}
        with output:
            output.clear_output(wait=True)
            panel.result = compute(**values)
            render(panel.result)
            plt.show()
        return panel.result

    if button:
        button.on_click(update)
    else:
        for control in controls.values():
            control.observe(update, names="value")
    panel.update = update
    return panel
