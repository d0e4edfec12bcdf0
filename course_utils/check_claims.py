"""Claims: what a notebook asserts about its paper, with the margin by which it holds, and a command that checks
every claim on several seeds and thread counts.

In a notebook::

    from course_utils.check_claims import claim
    claim("noisy needs more iterations than natural", reach["noisy"] / reach["natural"], ">", 2.0)

prints ``claim holds: noisy needs ... : 3.64 > 2 (margin +1.64)``, raises ``AssertionError`` when it does not hold,
and, when ``COURSE_CLAIMS_LOG`` names a file, appends the measurement to it as one JSON line. A claim is only
evidence if it could fail on a wrong implementation, and only robust if it holds with margin on other random draws
and other machines: long optimisations amplify last-bit differences between CPUs, BLAS paths and thread counts.
The command checks that::

    python -m course_utils.check_claims [notebooks ...] [--seeds 0 1 2 3 4] [--threads 1 2] [--jobs N] [--json PATH]

runs each notebook top to bottom in the ci profile once per (``COURSE_SEED``, torch threads) setting and prints a
table: notebook, claim, threshold, the range of measured values, the smallest margin and the setting where it was
smallest, and how many runs failed. CI runs one seed (its time budget); this is for developers and instructors.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

_OPS = {">": lambda m, t: m > t, ">=": lambda m, t: m >= t, "<": lambda m, t: m < t, "<=": lambda m, t: m <= t}


class Margin(float):
    """A claim's margin: a float that reads as a sentence where a notebook shows it (a cell ending in ``claim(...)``
    displays ``the claim holds with a margin of +1.64 dB``, not a bare number)."""

    def __new__(cls, value: float, unit: str = ""):
        margin = super().__new__(cls, value)
        margin.unit = unit
        return margin

    def __repr__(self) -> str:
        return f"the claim holds with a margin of {float(self):+.3g}{' ' + self.unit if self.unit else ''}"


def claim(name: str, measured, op: str, threshold, *, unit: str = "") -> Margin:
    """Assert ``measured op threshold`` (op one of > >= < <=), print the margin and record it.

    The margin is how far the measurement is on the right side of the threshold (``measured - threshold`` for
    > and >=, ``threshold - measured`` for < and <=), in the claim's own unit; negative means the claim failed.
    Returns the margin (a :class:`Margin`). A NaN measurement fails. In smoke mode (``COURSE_SMOKE=1``, see
    :mod:`course_utils.runtime`) nothing is asserted or logged: it prints ``claim skipped (smoke): ...`` and
    returns a NaN margin."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    from .runtime import smoke

    if smoke():   # COURSE_SMOKE: the loops were cut, so the numbers mean nothing; the code path ran
        print(f"claim skipped (smoke): {name}: {measured} {op} {threshold}")
        return Margin(float("nan"), unit)
    measured, threshold = float(measured), float(threshold)
    margin = measured - threshold if op in (">", ">=") else threshold - measured
    holds = not math.isnan(measured) and _OPS[op](measured, threshold)
    log = os.environ.get("COURSE_CLAIMS_LOG")
    if log:
        record = {"claim": name, "measured": measured, "op": op, "threshold": threshold, "margin": margin,
                  "unit": unit, "holds": holds}
        with open(log, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    unit_text = f" {unit}" if unit else ""
    text = f"{name}: {measured:.4g}{unit_text} {op} {threshold:.4g}{unit_text} (margin {margin:+.3g}{unit_text})"
    if not holds:
        raise AssertionError(f"claim failed: {text}")
    print(f"claim holds: {text}")
    return Margin(margin, unit)


# ----------------------------------------------------------------------------------------------------------------
# the command

def run_notebook(path, seed: int, threads: int, profile: str = "ci", timeout: int = 900) -> dict:
    """Execute one notebook in a fresh kernel with ``COURSE_SEED=seed``, ``threads`` torch/OpenMP threads and the
    given profile; returns ``{"notebook", "seed", "threads", "seconds", "error", "claims": [records]}``."""
    import tempfile

    import nbformat

    from course_utils.refresh_notebooks import CellError, execute

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "claims.jsonl"
        env = dict(os.environ, COURSE_PROFILE=profile, COURSE_SEED=str(seed), COURSE_CLAIMS_LOG=str(log),
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg")
        notebook = nbformat.read(path, as_version=4)
        start, error = time.perf_counter(), None
        try:
            execute(notebook, path.parent.resolve(), env, timeout)
        except CellError as failure:
            error = f"{failure.ename}: {failure.evalue}"[:500]
        except Exception as failure:  # a dead kernel, a timeout ...
            error = f"{type(failure).__name__}: {failure}"[:500]
        claims = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {"notebook": path.stem, "seed": seed, "threads": threads, "seconds": time.perf_counter() - start,
            "error": error, "claims": claims}


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (notebook, claim): threshold, measured range, min margin and where, failures / runs."""
    rows: dict = {}
    for run in runs:
        for record in run["claims"]:
            key = (run["notebook"], record["claim"])
            row = rows.setdefault(key, {"notebook": key[0], "claim": key[1], "op": record["op"],
                                        "threshold": record["threshold"], "unit": record["unit"], "margins": [],
                                        "measured": [], "worst": None, "failed": 0})
            row["margins"].append(record["margin"])
            row["measured"].append(record["measured"])
            if row["worst"] is None or record["margin"] < min(row["margins"][:-1]):
                row["worst"] = f"seed {run['seed']}, {run['threads']} thr"
            row["failed"] += not record["holds"]
    for row in rows.values():
        row["runs"] = len(row["margins"])
        row["min_margin"] = min(row["margins"])
    return list(rows.values())


def print_table(rows: list[dict], runs: list[dict], file=None) -> None:
    file = file or sys.stdout
    header = f"{'notebook':<26} {'claim':<58} {'needs':>12} {'measured (min..max)':>22} {'min margin':>11} " \
             f"{'worst setting':>18} {'failed':>7}"
    print(header, file=file)
    print("-" * len(header), file=file)
    for r in rows:
        needs = f"{r['op']} {r['threshold']:.4g}"
        measured = f"{min(r['measured']):.4g} .. {max(r['measured']):.4g}"
        print(f"{r['notebook']:<26} {r['claim'][:58]:<58} {needs:>12} {measured:>22} {r['min_margin']:>+11.3g} "
              f"{r['worst']:>18} {r['failed']:>3}/{r['runs']:<3}", file=file)
    errors = [r for r in runs if r["error"]]
    for run in errors:
        print(f"ERROR {run['notebook']} (seed {run['seed']}, {run['threads']} threads): {run['error']}", file=file)
    total = sum(r["seconds"] for r in runs)
    print(f"{len(runs)} notebook runs, {total / 60:.1f} min of notebook time", file=file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.check_claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--profile", default="ci", choices=["ci", "cpu", "gpu"])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run side by side (mind the cores)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--json", type=Path, default=None, help="write every run's records here")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        parser.error(f"notebook(s) not found: {missing or 'none in ./notebooks'}")
    if any(s < 0 for s in args.seeds) or any(t < 1 for t in args.threads) or args.jobs < 1:
        parser.error("--seeds must be >= 0, --threads and --jobs >= 1")
    settings = [(p, s, t) for p in paths for t in args.threads for s in args.seeds]
    runs = []
    if args.jobs == 1:
        for p, s, t in settings:
            runs.append(run_notebook(p, s, t, args.profile, args.timeout))
            print(f"  {p.stem} seed {s} threads {t}: {runs[-1]['seconds']:.0f} s"
                  f"{'  ERROR ' + runs[-1]['error'] if runs[-1]['error'] else ''}", flush=True)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_notebook, p, s, t, args.profile, args.timeout) for p, s, t in settings]
            for future in futures:
                runs.append(future.result())
                r = runs[-1]
                print(f"  {r['notebook']} seed {r['seed']} threads {r['threads']}: {r['seconds']:.0f} s"
                      f"{'  ERROR ' + r['error'] if r['error'] else ''}", flush=True)
    rows = summarize(runs)
    print_table(rows, runs)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows}, indent=1))
    return 1 if any(r["error"] for r in runs) or any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
