#!/usr/bin/env python3
"""Write the Colab setup cell and the "Open In Colab" badge into notebooks (a maintainer tool, not in the package).

    python tools/set_setup_cell.py notebooks/*.ipynb                    # the repository in course_utils/__init__.py
    python tools/set_setup_cell.py --repo me/my-fork notebooks/*.ipynb  # a fork: sets REPOSITORY_URL there too

The repository URL lives in one place, ``REPOSITORY_URL`` in ``course_utils/__init__.py``. In each notebook only two
cells change: in cell 0 (markdown) the badge's link, in cell 1 (code, "# Colab setup") the source, which becomes
:func:`setup_cell` (its id, metadata and execution count are kept, its outputs emptied). The notebook is written as
nbformat writes it. ``tests/test_colab_setup.py`` fails when a notebook differs from what this tool writes.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "course_utils" / "__init__.py"
URL_LINE = re.compile(r'^REPOSITORY_URL = "(https://github\.com/[\w.-]+/[\w.-]+)"$', re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/notebooks/[\w.-]+\.ipynb")

# The cell students run first. __REPO_URL__ is replaced by the repository URL; COURSE_SOURCE (a pip requirement or
# path) lets tools/colab_check.sh replay the install from a local checkout.
SETUP_CELL = '''\
# Colab setup: on Colab, installs course_utils without changing any package the runtime already has (each one is
# pinned to its installed version); on your own machine it does nothing. Written by tools/set_setup_cell.py.
REPO_URL = "__REPO_URL__"
import sys
if "google.colab" in sys.modules:
    import importlib, os, re, subprocess, tempfile
    from importlib.metadata import version

    def pip(*args):  # a failed install stops here, with pip's own error
        run = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"pip {args[0]} failed:\\n{run.stdout[-2000:]}\\n{run.stderr[-4000:]}")
        return run.stdout

    def installed():  # {name: version} as pip sees them, PEP 440 versions only (pip rejects others as pins)
        pairs = (line.split("==", 1) for line in pip("list", "--format=freeze").split())
        return {n.lower().replace("_", "-"): v for n, v in pairs
                if re.fullmatch(r"\\d+(\\.\\d+)*((a|b|rc)\\d+)?(\\.post\\d+)?(\\.dev\\d+)?(\\+[\\w.]+)?", v)}

    before = installed()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write("".join(f"{n}=={v}\\n" for n, v in before.items() if n != "course-utils"))
    source = os.environ.get("COURSE_SOURCE", f"git+{REPO_URL}")
    pip("install", "--constraint", pins.name, source)
    importlib.invalidate_caches()
    added = sorted(set(installed()) - set(before) - {"course-utils"})
    widgets_version = version("ipywidgets")
    manager = int(widgets_version.split(".")[0]) >= 8
    if manager:  # Colab renders ipywidgets 8 only through its custom widget manager
        from google.colab import output
        output.enable_custom_widget_manager()
    import torch
    print(f"Colab setup: installed course_utils from {source}, added {', '.join(added) or 'nothing'}, "
          f"changed nothing; ipywidgets {widgets_version}{', custom widget manager enabled' if manager else ''}; "
          + ("GPU: gpu profile." if torch.cuda.is_available() else
             "no GPU, cpu profile (for the gpu one: Runtime > Change runtime type > T4 GPU, then run all)."))
'''


def repository_url(init: Path = INIT) -> str:
    """The course's repository URL: ``REPOSITORY_URL`` in ``course_utils/__init__.py``."""
    return URL_LINE.search(init.read_text()).group(1)


def set_repository_url(url: str, init: Path = INIT) -> None:
    """Rewrite ``REPOSITORY_URL`` in ``course_utils/__init__.py`` (for a fork)."""
    text = init.read_text()
    init.write_text(URL_LINE.sub(f'REPOSITORY_URL = "{url}"', text, count=1))


def setup_cell(url: str) -> str:
    """The source of every notebook's first code cell, installing from ``url``."""
    return SETUP_CELL.replace("__REPO_URL__", url).rstrip("\n")


def badge_link(url: str, name: str) -> str:
    """The Colab link for notebook file ``name`` on the repository's main branch."""
    return f"https://colab.research.google.com/github/{url.split('github.com/', 1)[1]}/blob/main/notebooks/{name}"


def updated(notebook: dict, name: str, url: str) -> dict:
    """``notebook`` (nbformat JSON, changed in place and returned) with cell 0's badge and cell 1 set for ``url``."""
    badge, setup = notebook["cells"][:2]
    text = "".join(badge["source"])
    if badge["cell_type"] != "markdown" or not BADGE.search(text):
        raise ValueError(f"{name}: cell 0 has no Open In Colab badge")
    if setup["cell_type"] != "code" or not "".join(setup["source"]).startswith("# Colab setup"):
        raise ValueError(f"{name}: cell 1 is not the '# Colab setup' code cell")
    badge["source"] = BADGE.sub(badge_link(url, name), text).splitlines(keepends=True)
    setup["source"] = setup_cell(url).splitlines(keepends=True)
    setup["outputs"] = []
    return notebook


def dumps(notebook: dict) -> str:
    """JSON text as nbformat writes it."""
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def apply(path: Path, url: str) -> bool:
    """Set the badge and setup cell of the notebook at ``path``; returns whether the file changed."""
    before = path.read_text()
    after = dumps(updated(json.loads(before), path.name, url))
    if after != before:
        path.write_text(after)
    return after != before


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--repo", metavar="OWNER/NAME",
                        help="point everything at github.com/OWNER/NAME (also rewrites REPOSITORY_URL)")
    args = parser.parse_args(argv)
    if args.repo:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo):
            parser.error("--repo must look like owner/name")
        set_repository_url(f"https://github.com/{args.repo}", INIT)
    url = repository_url(INIT)
    for path in args.notebooks:
        print(f"{path}: {'updated' if apply(path, url) else 'already up to date'} ({url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
