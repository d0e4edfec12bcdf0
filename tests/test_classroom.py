"""The classroom edition: student copies are what tools/classroom.py generates from instructor/, and the
self-checks' grading mode (docs/instructors.md)."""
import json
import sys
from pathlib import Path

import pytest

from course_utils.exercises import run_check

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import classroom  # noqa: E402

SOURCES = sorted(classroom.INSTRUCTOR.glob("*.ipynb"))


def test_there_are_instructor_sources():
    assert len(SOURCES) >= 2


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_copy_is_generated_from_its_instructor_source(source):
    target = classroom.student_path(source)
    assert target.read_text() == classroom.render(source), \
        f"{target.name} is stale: python tools/classroom.py student instructor/{source.name}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_instructor_source_is_a_graded_assignment(source):
    cells = json.loads(source.read_text())["cells"]
    meta = [c["metadata"].get("nbgrader", {}) for c in cells]
    answers = [m for m in meta if m.get("solution")]
    checks = [m for m in meta if m.get("grade")]
    assert 3 <= len(checks) <= 5 and len(answers) == len(checks)
    assert all(m.get("points", 0) > 0 and m.get("locked") for m in checks)
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    for cell, m in zip(cells, meta):
        text = "".join(cell["source"])
        if m.get("solution"):
            assert text.count("### BEGIN SOLUTION") == text.count("### END SOLUTION") >= 1
        if m.get("grade"):
            assert "%env COURSE_GRADING=1" in text and "### BEGIN HIDDEN TESTS" in text
    tasks = [("".join(c["source"])) for c, m in zip(cells, meta) if m.get("grade_id", "").endswith("_task")]
    assert all("point" in t and "minutes" in t and "<details>" in t for t in tasks)
    assert sum("predict" in t.lower() for t in tasks) >= 1 and sum("key step" in t for t in tasks) >= 1


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_copy_shows_no_solution(source):
    text = classroom.student_path(source).read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "COURSE_GRADING" not in text


def test_clear_solutions_keeps_indent():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nf(1)"
    assert classroom.clear_solutions(source) == f"def f(x):\n    {classroom.CODE_STUB}\n\nf(1)"


def todo():
    raise NotImplementedError


def test_run_check_self_study_is_friendly(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_GRADING", raising=False)
    assert run_check("x", lambda: (False, "hint")) is False
    assert run_check("x", todo) is None
    assert run_check("x", lambda: 1 / 0) is False
    assert capsys.readouterr().out == (
        "[x] not yet: hint\n"
        "[x] not attempted yet: replace `raise NotImplementedError` (or `...`) with your answer.\n"
        "[x] your code raised ZeroDivisionError: division by zero\n")


@pytest.mark.parametrize("check", [lambda: (False, "hint"), todo, lambda: 1 / 0], ids=["wrong", "todo", "crash"])
def test_run_check_grading_mode_raises(check, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING", "1")
    with pytest.raises(AssertionError, match=r"^\[x\]"):
        run_check("x", check)


def test_run_check_grading_mode_passes_right_answers(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_GRADING", "1")
    assert run_check("x", lambda: (True, "fine")) is True
    assert capsys.readouterr().out == "[x] correct: fine\n"
