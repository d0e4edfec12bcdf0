import json

import nbformat
import pytest

from course_utils import check_claims, runtime
from course_utils.check_claims import claim


def test_claim_margins_and_failure(monkeypatch, tmp_path, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("COURSE_CLAIMS_LOG", str(log))
    assert claim("bigger", 3.0, ">", 1.0, unit="dB") == pytest.approx(2.0)
    assert claim("smaller", 0.25, "<", 1.0) == pytest.approx(0.75)
    assert "claim holds: bigger: 3 dB > 1 dB (margin +2 dB)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"claim failed: too small: 0.5 > 1 \(margin -0.5\)"):
        claim("too small", 0.5, ">", 1.0)
    with pytest.raises(AssertionError, match="claim failed"):
        claim("nan never holds", float("nan"), "<", 1.0)
    with pytest.raises(AssertionError):
        claim("strict", 1.0, ">", 1.0)
    assert claim("not strict", 1.0, ">=", 1.0) == 0
    assert repr(claim("words", 3.0, ">", 1.0, unit="dB")) == "the claim holds with a margin of +2 dB"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["holds"] for r in records] == [True, True, False, False, False, True, True]
    assert records[2] == {"claim": "too small", "measured": 0.5, "op": ">", "threshold": 1.0, "margin": -0.5,
                          "unit": "", "holds": False}
    with pytest.raises(ValueError, match="op must be one of"):
        claim("x", 1, "=>", 0)


def test_seed_reads_course_seed(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert runtime.seed() == 0
    monkeypatch.setenv("COURSE_SEED", "3")
    assert runtime.seed() == 3
    assert "seed=3" in runtime.describe()
    monkeypatch.setenv("COURSE_SEED", "-1")
    with pytest.raises(ValueError, match="COURSE_SEED must be a non-negative integer, got '-1'"):
        runtime.seed()


def test_summarize_finds_the_worst_setting():
    def run(seed, threads, margin):
        return {"notebook": "nb", "seed": seed, "threads": threads, "seconds": 1.0, "error": None,
                "claims": [{"claim": "c", "measured": 1 + margin, "op": ">", "threshold": 1.0, "margin": margin,
                            "unit": "dB", "holds": margin > 0}]}
    rows = check_claims.summarize([run(0, 1, 0.5), run(1, 1, 0.2), run(0, 2, -0.1), run(1, 2, 0.3)])
    assert len(rows) == 1
    row = rows[0]
    assert row["min_margin"] == pytest.approx(-0.1) and row["worst"] == "seed 0, 2 thr"
    assert row["failed"] == 1 and row["runs"] == 4


def test_command_runs_a_notebook_per_seed(tmp_path, capsys):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from course_utils import runtime\n"
        "from course_utils.check_claims import claim\n"
        "import torch\n"
        "claim('seed is what the command set', runtime.seed(), '<', 2)\n"
        "claim('threads are what the command set', torch.get_num_threads(), '<', 2)")])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    assert check_claims.main([str(path), "--seeds", "0", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed is what the command set" in out and "2 notebook runs" in out
    # seed 2 breaks the first claim: the command reports it and fails
    assert check_claims.main([str(path), "--seeds", "2", "--threads", "1"]) == 1
    out = capsys.readouterr().out
    assert "1/1" in out and "ERROR tiny (seed 2, 1 threads): AssertionError: claim failed" in out
