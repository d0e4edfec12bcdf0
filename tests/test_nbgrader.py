"""nbgrader end to end on the piloted notebooks: in a temporary course folder, `nbgrader generate_assignment` and
`nbgrader autograde` (ci profile) of three submissions each: the worked solutions (full marks), the committed
student copy (0 points, and the autograder does not crash) and the solutions with one wrong answer (in between)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="nbgrader not installed: pip install -e '.[classroom]'")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import classroom  # noqa: E402

# one deliberately wrong answer per notebook: (answer cell's grade_id, its wrong source, the check cell that fails)
WRONG = {
    "00_inverse_problems": ("ex2_answer", "def sigma_20db():\n    return 10.0", "ex2_check"),
    "05_srgan": ("ex5_answer", "def vgg_index(i, j):\n    return 4 * i + j", "ex5_check"),
}


def nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, COURSE_PROFILE="ci", OMP_NUM_THREADS="1")
    env.pop("COURSE_GRADING", None)        # the autograded cells switch grading mode on themselves
    env["MPLBACKEND"] = "agg"             # no inline figures: nbclient hung on one with them here
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def submit(course: Path, student: str, name: str, notebook: dict) -> None:
    folder = course / "submitted" / student / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ipynb").write_text(json.dumps(notebook))


def test_generate_and_autograde(tmp_path):
    sources = [classroom.INSTRUCTOR / f"{name}.ipynb" for name in WRONG]
    names = classroom.make_course(tmp_path, sources)
    for name, source in zip(names, sources):
        nbgrader(tmp_path, "generate_assignment", name)
        released = json.loads((tmp_path / "release" / name / source.name).read_text())
        student = json.loads(classroom.student_path(source).read_text())
        assert [c["source"] for c in released["cells"]] == [c["source"] for c in student["cells"]], \
            "nbgrader's release differs from the committed student copy"
        worked = json.loads(source.read_text())
        wrong = json.loads(source.read_text())
        answer_id, wrong_source, _ = WRONG[name]
        [cell] = [c for c in wrong["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == answer_id]
        cell["source"] = wrong_source
        submit(tmp_path, "full", name, worked)
        submit(tmp_path, "none", name, student)
        submit(tmp_path, "wrong", name, wrong)
        nbgrader(tmp_path, "autograde", name)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        for name, source in zip(names, sources):
            total = sum(classroom.points(source).values())
            scores = {s: gradebook.find_submission(name, s).score for s in ("full", "none", "wrong")}
            failed = classroom.points(source)[WRONG[name][2]]
            print(f"{name}: {scores} of {total}")
            assert scores == {"full": total, "none": 0, "wrong": total - failed}, scores
            assert 0 < scores["wrong"] < total
