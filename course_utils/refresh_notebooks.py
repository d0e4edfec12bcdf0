"""Re-execute notebooks top to bottom and save them with their outputs (the committed versions).

    python -m course_utils.refresh_notebooks                    # every notebook, cpu profile
    python -m course_utils.refresh_notebooks notebooks/00_*.ipynb --profile ci

Runs each notebook in a fresh kernel from its own folder, with ``COURSE_PROFILE`` set (default ``cpu``, the
profile the committed outputs use), so execution counts are in order and outputs come from one clean run. Then
:func:`clean_outputs` makes the saved file readable on GitHub and small: widget views (a panel, a notebook progress
bar) cannot render there and would show as raw ``VBox(...)`` or stale ``0%|`` text, so they are replaced by one
line that says the panel is interactive; saved widget state is dropped; large photographic PNGs are stored as
JPEG; the kernelspec is the standard one JupyterLab does not rewrite.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import time
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
PANEL_NOTE = "(interactive panel: run this notebook in Jupyter or Colab to use it; its default run is shown below)\n"


def _jpeg(png_base64: str, quality: int = 85) -> str | None:
    """A base64 JPEG of a base64 PNG, or None when it would not be smaller (line plots stay PNG)."""
    from PIL import Image

    raw = base64.b64decode(png_base64)
    image = Image.open(io.BytesIO(raw))
    if image.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGB", image.size, "white")
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        image = background
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return base64.b64encode(buffer.getvalue()).decode() if buffer.tell() < 0.6 * len(raw) else None


def clean_outputs(notebook, jpeg_above: int = 120_000) -> dict:
    """Make a notebook's saved outputs GitHub-readable and small (see the module docstring). Returns counts."""
    counts = {"widgets": 0, "jpeg": 0}
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept, had_panel = [], False
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                counts["widgets"] += 1
                text = data.get("text/plain", "")
                had_panel |= "Box(" in ("".join(text) if isinstance(text, list) else text)
                continue
            png = data.get("image/png")
            if png and len(png) > jpeg_above:
                jpeg = _jpeg(png if isinstance(png, str) else "".join(png))
                if jpeg is not None:
                    del data["image/png"]
                    data["image/jpeg"] = jpeg
                    counts["jpeg"] += 1
            kept.append(output)
        if had_panel:
            kept.append({"output_type": "stream", "name": "stdout", "text": PANEL_NOTE})
        cell["outputs"] = kept
    return counts


class CellError(RuntimeError):
    """A cell raised: ``ename``/``evalue`` as the kernel reported them, ``source`` the cell's code."""

    def __init__(self, ename: str, evalue: str, source: str):
        super().__init__(f"{ename}: {evalue}\n--- in cell ---\n{source[:400]}")
        self.ename, self.evalue, self.source = ename, evalue, source


def execute(notebook, cwd: Path, env: dict, timeout: int = 3600) -> None:
    """Run every code cell of ``notebook`` (an nbformat node, filled in place) in a fresh ``python3`` kernel.

    One blocking client sends a cell, collects its outputs until the kernel is idle, then sends the next: the
    way nbval runs notebooks. (nbclient's asynchronous executor hung here after some cells with matplotlib's
    inline backend, the kernel idle and no error; this loop does not.) Raises :class:`CellError` on the first
    failing cell and ``TimeoutError`` when a cell runs past ``timeout`` seconds.
    """
    import queue

    import nbformat
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd), startup_timeout=120)
    try:
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            msg_id = client.execute(cell.source)
            outputs, count = [], None
            while True:
                try:
                    msg = client.get_iopub_msg(timeout=timeout)
                except queue.Empty:
                    raise TimeoutError(f"a cell ran past {timeout} s:\n{cell.source[:400]}") from None
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "status" and content["execution_state"] == "idle":
                    break
                if kind == "execute_input":
                    count = content["execution_count"]
                elif kind == "clear_output":
                    outputs = []
                elif kind == "stream":
                    if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == content["name"]:
                        outputs[-1].text += content["text"]
                    else:
                        outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))
                elif kind in ("display_data", "execute_result"):
                    fields = dict(data=content["data"], metadata=content.get("metadata", {}))
                    if kind == "execute_result":
                        fields["execution_count"] = content["execution_count"]
                    outputs.append(nbformat.v4.new_output(kind, **fields))
                elif kind == "error":
                    raise CellError(content["ename"], content["evalue"], cell.source)
            cell.outputs, cell.execution_count = outputs, count
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def refresh(path: Path, profile: str = "cpu", timeout: int = 3600) -> float:
    """Execute ``path`` in ``profile`` from its own folder, clean its outputs and save it; returns seconds."""
    import nbformat

    env = dict(os.environ, COURSE_PROFILE=profile)
    env.pop("MPLBACKEND", None)                        # the committed figures are the inline backend's
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(notebook, path.parent.resolve(), env, timeout)
    clean_outputs(notebook)
    nbformat.write(nbformat.from_dict(notebook), path)  # clean_outputs may put plain dicts in; make them nodes
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to refresh (default: notebooks/*.ipynb)")
    parser.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"])
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    if not paths:
        parser.error("no notebooks given and none found in ./notebooks")
    for path in paths:
        if not path.is_file():
            parser.error(f"notebook not found: {path}")
        seconds = refresh(path, args.profile, args.timeout)
        size = path.stat().st_size / 2 ** 20
        print(f"{path}: executed in {seconds:.0f} s ({args.profile} profile), {size:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
