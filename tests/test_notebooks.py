"""Static checks of the committed notebooks (nbval executes them separately: see pyproject's addopts; the Colab
badge and setup cell: test_colab_setup.py)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_from_one_clean_run(path):
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"re-run {path.name} top to bottom (refresh_notebooks)"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "committed without figures"
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr" and "Warning" in "".join(o.get("text", ""))], \
        "warnings in the committed outputs"


def test_no_hard_coded_cuda_or_torchvision():
    for path in list((ROOT / "course_utils").rglob("*.py")) + NOTEBOOKS:
        text = path.read_text()
        assert not re.search(r"[\w)\]]\.cuda\(\)", text), f"{path}: use runtime.device(), not .cuda()"
        assert not re.search(r"^\s*(import|from) torchvision", text, re.M), f"{path}: torchvision has no CPU build"
