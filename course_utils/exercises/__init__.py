"""Self-checks for the notebooks' exercises, one module per notebook topic.

A checker takes the student's function (or answer), compares it with a reference on a few inputs, prints a
short verdict and returns True/False. A function that still raises ``NotImplementedError`` (the exercise
template) prints "not attempted yet" and returns None, so an untouched notebook still runs top to bottom.

Grading mode (``COURSE_GRADING=1``, set by the autograder's hidden test lines, see docs/instructors.md): the same
checks raise ``AssertionError`` on a wrong, crashing or missing answer, so nbgrader scores that test cell 0.
"""
from __future__ import annotations

import os

GRADING_ENV = "COURSE_GRADING"


def grading() -> bool:
    """True in grading mode: ``COURSE_GRADING`` is set to anything but "" or "0"."""
    return os.environ.get(GRADING_ENV, "") not in ("", "0")


def answer(value):
    """A value answer given as a number or as a zero-argument function returning it (a template function raises
    ``NotImplementedError``, which the checks report as "not attempted")."""
    return value() if callable(value) else value


def run_check(name: str, check) -> bool | None:
    """Run ``check()`` (which returns ``(ok, message)``) and print the verdict for exercise ``name``."""
    try:
        ok, message = check()
    except NotImplementedError:
        if grading():
            raise AssertionError(f"[{name}] not attempted") from None
        print(f"[{name}] not attempted yet: replace `raise NotImplementedError` (or `...`) with your answer.")
        return None
    except Exception as error:  # the student's code crashed: show why, do not crash the notebook
        if grading():
            raise AssertionError(f"[{name}] your code raised {type(error).__name__}: {error}") from error
        print(f"[{name}] your code raised {type(error).__name__}: {error}")
        return False
    if grading() and not ok:
        raise AssertionError(f"[{name}] not yet: {message}")
    print(f"[{name}] {'correct' if ok else 'not yet'}: {message}")
    return bool(ok)
