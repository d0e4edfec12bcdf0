#!/usr/bin/env python3
"""Classroom edition: student copies generated from instructor sources, and an nbgrader course folder (a
maintainer tool, not in the package; docs/instructors.md is the guide).

    python tools/classroom.py student instructor/00_inverse_problems.ipynb   # writes notebooks/00_inverse_problems.ipynb
    python tools/classroom.py student --all                                  # every instructor/*.ipynb
    python tools/classroom.py check                                          # exit 1 if a student copy is stale
    python tools/classroom.py course DIR [instructor/NN.ipynb ...]           # an nbgrader course folder in DIR

The instructor source ``instructor/NN_name.ipynb`` is the one source of truth: nbgrader cell metadata, worked
solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION``, autograder lines between ``### BEGIN HIDDEN
TESTS`` / ``### END HIDDEN TESTS``, and the committed (cpu-profile) outputs of the lesson. The student copy
``notebooks/NN_name.ipynb`` is what nbgrader's ``generate_assignment`` releases, with the lesson's outputs kept:

* in solution cells each solution region becomes ``raise NotImplementedError   # your code here`` (same indent);
* hidden-test regions are removed;
* solution and autograded-test cells lose their outputs (execution counts stay, so counts run 1..n);
* every other cell (the lesson, its figures, the Colab setup cell) is copied unchanged, metadata included.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = ROOT / "instructor"
STUDENT = ROOT / "notebooks"
CODE_STUB = "raise NotImplementedError   # your code here"
TEXT_STUB = "YOUR ANSWER HERE"
REGION = r"^([ \t]*)### BEGIN {0}[^\n]*\n.*?^[ \t]*### END {0}[^\n]*(\n|$)"
SOLUTION = re.compile(REGION.format("SOLUTION"), re.M | re.S)
HIDDEN = re.compile(REGION.format("HIDDEN TESTS"), re.M | re.S)

# nbgrader_config.py of a course folder: the stubs match the student copies; the grading profile is chosen by
# COURSE_PROFILE in the environment of `nbgrader autograde` (docs/instructors.md).
NBGRADER_CONFIG = f'''\
c = get_config()
c.CourseDirectory.course_id = "dip-to-sr3-pulse"
c.ClearSolutions.code_stub = {{"python": "{CODE_STUB}"}}
c.ClearSolutions.text_stub = "{TEXT_STUB}"
c.Execute.timeout = 1800        # seconds per cell (ci profile: seconds; cpu profile: minutes)
'''


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_exercise(cell) -> bool:
    """A solution cell or an autograded test cell: its outputs are cleared in the student copy."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution") or meta.get("grade"))


def clear_solutions(source: str, cell_type: str = "code") -> str:
    """``source`` with every solution region replaced by the stub, indented like its ``### BEGIN`` line."""
    def stub(match):
        text = CODE_STUB if cell_type == "code" else TEXT_STUB
        return match.group(1) + text + match.group(2)
    return SOLUTION.sub(stub, source)


def student_copy(notebook):
    """The student version of an instructor notebook (an nbformat node; the input is not changed)."""
    student = copy.deepcopy(notebook)
    for cell in student.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            cell.source = clear_solutions(cell.source, cell.cell_type)
        if cell.cell_type == "code":
            cell.source = HIDDEN.sub("", cell.source)
            if is_exercise(cell):
                cell.outputs = []
    return student


def student_path(source: Path) -> Path:
    return STUDENT / source.name


def render(source: Path) -> str:
    """The text of the student copy generated from ``source``, as nbformat writes it."""
    import nbformat

    return nbformat.writes(student_copy(nbformat.read(source, as_version=4))) + "\n"


def write_student(source: Path) -> Path:
    target = student_path(source)
    target.write_text(render(source))
    return target


def stale(sources=None) -> list[Path]:
    """Student copies that differ from what their instructor sources generate."""
    sources = sources or sorted(INSTRUCTOR.glob("*.ipynb"))
    return [student_path(s) for s in sources
            if not student_path(s).is_file() or student_path(s).read_text() != render(s)]


def points(source: Path) -> dict:
    """{grade_id: points} of the autograded cells of an instructor notebook."""
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0))
            for c in notebook.cells if nbgrader_meta(c).get("grade")}


def make_course(folder: Path, sources=None) -> list[str]:
    """An nbgrader course folder: ``nbgrader_config.py`` and ``source/<stem>/<stem>.ipynb`` (one assignment per
    notebook, named by its stem). Returns the assignment names."""
    import shutil

    sources = sources or sorted(INSTRUCTOR.glob("*.ipynb"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    names = []
    for source in sources:
        (folder / "source" / source.stem).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / "source" / source.stem / source.name)
        names.append(source.stem)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_student = sub.add_parser("student", help="write notebooks/NN.ipynb from instructor/NN.ipynb")
    p_student.add_argument("sources", nargs="*", type=Path)
    p_student.add_argument("--all", action="store_true", help="every instructor/*.ipynb")
    sub.add_parser("check", help="exit 1 when a student copy differs from its generated version")
    p_course = sub.add_parser("course", help="make an nbgrader course folder")
    p_course.add_argument("folder", type=Path)
    p_course.add_argument("sources", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.command == "student":
        sources = sorted(INSTRUCTOR.glob("*.ipynb")) if args.all else args.sources
        if not sources:
            parser.error("give instructor notebooks or --all")
        for source in sources:
            print(f"{source} -> {write_student(source)}")
    elif args.command == "check":
        bad = stale()
        for path in bad:
            print(f"{path} differs from its instructor source: python tools/classroom.py student instructor/{path.name}")
        return 1 if bad else 0
    else:
        names = make_course(args.folder, args.sources or None)
        print(f"{args.folder}: nbgrader course with assignments {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
