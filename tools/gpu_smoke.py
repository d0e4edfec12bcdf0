"""Run notebooks in the gpu profile's smoke mode on this machine and report time and memory per notebook.

    OMP_NUM_THREADS=1 python tools/gpu_smoke.py [notebooks ...] [--json PATH] [--timeout SECONDS]

Each notebook runs top to bottom in a fresh kernel with ``COURSE_PROFILE=gpu COURSE_SMOKE=1`` (see
``course_utils.runtime``: the gpu settings as they are, every loop cut to a few iterations, claims reported as
``skipped (smoke)``), one thread, the Agg backend; nothing is written back to the notebook. Per notebook it prints
the seconds, the kernel's resident memory after the setup cell (``base``: imports, the first data) and its peak
(``VmHWM``), and the count of skipped claims. ``peak - base`` is what the notebook's experiments added on the host:
the models, activations kept for backward, optimiser states and images that a GPU run puts in GPU memory, plus host-only
work (figures, BM3D, ...); README's "Runtime profiles" turns it into the GPU estimate. tests/test_gpu_smoke.py
runs the same function.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CELL = ("import re as _re\n"
               "print('SMOKE_MEMORY', dict((k, int(v)) for k, v in _re.findall(r'(VmRSS|VmHWM):\\s+(\\d+) kB', "
               "open('/proc/self/status').read())))")


def _memory(cell) -> dict:
    """{'VmRSS': kB, 'VmHWM': kB} from the output of a MEMORY_CELL."""
    import ast

    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    line = next(line for line in text.splitlines() if line.startswith("SMOKE_MEMORY"))
    return ast.literal_eval(line.split(" ", 1)[1])


def run(path, timeout: int = 900, threads: int = 1) -> dict:
    """Execute notebook ``path`` in gpu smoke mode -> {"notebook", "seconds", "base_mb", "peak_mb",
    "skipped_claims", "asserted_claims"}; raises what the failing cell raised (``CellError``, ``TimeoutError``)."""
    import nbformat

    from course_utils.refresh_notebooks import execute

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    setup = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and "settings(" in c.source)
    notebook.cells.insert(setup + 1, nbformat.v4.new_code_cell(MEMORY_CELL))
    notebook.cells.append(nbformat.v4.new_code_cell(MEMORY_CELL))
    env = dict(os.environ, COURSE_PROFILE="gpu", COURSE_SMOKE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg")
    env.pop("COURSE_CLAIMS_LOG", None)
    start = time.perf_counter()
    execute(notebook, path.parent.resolve(), env, timeout)
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
                   if o.get("output_type") == "stream")
    base, end = _memory(notebook.cells[setup + 1]), _memory(notebook.cells[-1])
    return {"notebook": path.stem, "seconds": round(seconds, 1), "base_mb": round(base["VmRSS"] / 1024),
            "peak_mb": round(end["VmHWM"] / 1024), "skipped_claims": text.count("claim skipped (smoke)"),
            "asserted_claims": text.count("claim holds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per notebook here")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = 0
    print(f"{'notebook':<26} {'seconds':>8} {'base MB':>8} {'peak MB':>8} {'claims skipped':>15}", flush=True)
    for path in paths:
        try:
            row = run(path, args.timeout)
        except Exception as error:  # a failing cell, a timeout, a dead kernel: report and go on
            failed += 1
            row = {"notebook": Path(path).stem, "error": f"{type(error).__name__}: {error}"[:800]}
            print(f"{row['notebook']:<26} ERROR {row['error']}", flush=True)
        else:
            print(f"{row['notebook']:<26} {row['seconds']:>8.0f} {row['base_mb']:>8} {row['peak_mb']:>8} "
                  f"{row['skipped_claims']:>15}", flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
