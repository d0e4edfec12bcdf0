"""The Colab setup cell and badges (tools/set_setup_cell.py): every notebook carries exactly what the tool writes for
course_utils.REPOSITORY_URL, and the cell installs without changing installed packages (pip faked here; the real
replay in a Colab-like venv is tools/colab_check.sh)."""
import copy
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import course_utils

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("set_setup_cell", ROOT / "tools" / "set_setup_cell.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_the_tool_reads_the_one_repository_url():
    assert tool.repository_url() == course_utils.REPOSITORY_URL
    assert tool.badge_link("https://github.com/me/fork", "00_x.ipynb") == \
        "https://colab.research.google.com/github/me/fork/blob/main/notebooks/00_x.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_and_setup_cell_are_what_the_tool_writes(path):
    notebook = json.loads(path.read_text())
    expected = tool.updated(copy.deepcopy(notebook), path.name, course_utils.REPOSITORY_URL)
    assert notebook["cells"][0] == expected["cells"][0], "badge: run python tools/set_setup_cell.py " + str(path)
    assert notebook["cells"][1] == expected["cells"][1], "setup cell: run python tools/set_setup_cell.py " + str(path)


def test_repo_option_points_badges_setup_cells_and_the_package_at_a_fork(tmp_path, monkeypatch, capsys):
    init = tmp_path / "__init__.py"
    init.write_text((ROOT / "course_utils" / "__init__.py").read_text())
    notebook = tmp_path / NOTEBOOKS[0].name
    notebook.write_text(NOTEBOOKS[0].read_text())
    monkeypatch.setattr(tool, "INIT", init)
    assert tool.main(["--repo", "me/my-fork", str(notebook)]) == 0
    assert "updated (https://github.com/me/my-fork)" in capsys.readouterr().out
    assert tool.repository_url(init) == "https://github.com/me/my-fork"
    before, after = json.loads(NOTEBOOKS[0].read_text())["cells"], json.loads(notebook.read_text())["cells"]
    assert f"github/me/my-fork/blob/main/notebooks/{notebook.name})" in "".join(after[0]["source"])
    assert 'REPO_URL = "https://github.com/me/my-fork"' in "".join(after[1]["source"])
    assert after[1]["id"] == before[1]["id"] and after[1]["outputs"] == [] and after[2:] == before[2:]
    assert not tool.apply(notebook, "https://github.com/me/my-fork")        # a second run changes nothing
    with pytest.raises(SystemExit):
        tool.main(["--repo", "not a repo", str(notebook)])


def _run_cell(monkeypatch, *, colab=True, widgets="7.7.1", install_rc=0):
    """Execute the setup cell with pip faked: returns (pip calls, constraints written, widget-manager calls)."""
    calls, pins, enabled = [], [], []
    listing = {"before": "numpy==1.26.4\nipywidgets==7.7.1\ncourse_utils==0.0.9\ndistro-info==1.1build1\n"}
    listing["after"] = listing["before"] + "bm3d==4.0.3\ncourse-utils==0.1.0\n"

    def fake_run(args, **kwargs):
        calls.append(args[3:])
        if args[3] == "install":
            pins.append(Path(args[args.index("--constraint") + 1]).read_text())
            return subprocess.CompletedProcess(args, install_rc, "", "ERROR: No matching distribution found")
        return subprocess.CompletedProcess(args, 0, listing["after" if pins else "before"], "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: widgets)
    if colab:
        output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
        monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(output=output))
    monkeypatch.delenv("COURSE_SOURCE", raising=False)
    exec(tool.setup_cell(course_utils.REPOSITORY_URL), {})
    return calls, pins, enabled


def test_setup_cell_does_nothing_outside_colab(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert _run_cell(monkeypatch, colab=False) == ([], [], [])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("widgets, manager", [("7.7.1", False), ("8.1.5", True)])
def test_setup_cell_pins_what_is_installed_and_says_what_it_did(monkeypatch, capsys, widgets, manager):
    calls, pins, enabled = _run_cell(monkeypatch, widgets=widgets)
    assert [c[0] for c in calls] == ["list", "install", "list"]
    assert calls[1][-1] == f"git+{course_utils.REPOSITORY_URL}"
    assert pins == ["numpy==1.26.4\nipywidgets==7.7.1\n"]   # every installed package but the course (legacy versions
    assert enabled == ([True] if manager else [])          # cannot be pins)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("Colab setup: installed course_utils from git+https://github.com/")
    assert "added bm3d, changed nothing" in out[0] and f"ipywidgets {widgets}" in out[0]
    assert ("custom widget manager enabled" in out[0]) == manager


def test_a_failed_install_stops_with_pips_error(monkeypatch, capsys):
    with pytest.raises(RuntimeError, match="pip install failed:(.|\n)*No matching distribution found"):
        _run_cell(monkeypatch, install_rc=1)
    assert capsys.readouterr().out == ""
