import base64
import io

import nbformat
import numpy as np

from course_utils.refresh_notebooks import PANEL_NOTE, WIDGET_VIEW, clean_outputs


def _png(noise: bool) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8) if noise else np.zeros((300, 300, 3), np.uint8)
    if not noise:
        array[::10] = 255                                   # a plot-like image: few colours, compresses well
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_clean_outputs_removes_widgets_and_shrinks_photos():
    cell = nbformat.v4.new_code_cell("panel")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox(children=(...))"}),
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "y"}, "text/plain": "DIP fit:   0%|   | 0/300"}),
        nbformat.v4.new_output("display_data", data={"image/png": _png(noise=True), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"image/png": _png(noise=False), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata.update(widgets={"state": {}}, kernelspec={"name": "x", "display_name": "x"})
    counts = clean_outputs(notebook, jpeg_above=1000)
    outputs = notebook.cells[0].outputs
    assert counts["widgets"] == 2 and "widgets" not in notebook.metadata
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs)
    texts = "".join(o.get("text", "") for o in outputs)
    assert "kept" in texts and PANEL_NOTE in texts and "0%|" not in texts
    # a noisy photo-like PNG becomes a JPEG only if that is much smaller; a plot stays PNG
    kinds = [set(o.get("data", {})) & {"image/png", "image/jpeg"} for o in outputs if "data" in o]
    assert {"image/png"} in kinds
    nbformat.validate(notebook)


def test_execute_runs_cells_in_order_and_names_a_failing_cell(tmp_path):
    import os

    import pytest

    from course_utils.refresh_notebooks import CellError, execute, refresh

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# title"),
                      nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nprint('a'); print('b')"),
                      nbformat.v4.new_code_cell("plt.plot([0, 1]); plt.show()\n6 * 7")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    refresh(path, profile="ci", timeout=120)
    saved = nbformat.read(path, as_version=4)
    first, second = saved.cells[1], saved.cells[2]
    assert (first.execution_count, second.execution_count) == (1, 2)
    assert first.outputs[0].text == "a\nb\n"                              # one stream output, not two
    assert any("image/png" in out.get("data", {}) for out in second.outputs)  # the inline figure is kept
    assert second.outputs[-1].data["text/plain"] == "42"

    notebook.cells.append(nbformat.v4.new_code_cell("raise ValueError('bad cell')"))
    with pytest.raises(CellError, match="ValueError: bad cell"):
        execute(notebook, tmp_path, dict(os.environ), timeout=120)
