#!/usr/bin/env bash
# Replays the notebooks' Colab setup cell in a Colab-like environment (issue 27, item 2) and checks what it did:
#   1. a fresh venv in a temp dir: torch==2.13.0, then the pins of tools/colab_pins.txt (ipywidgets 7, notebook 6, ...);
#   2. notebook 00's setup cell (cell 1), run as on Colab (a stand-in google.colab module) with COURSE_SOURCE set to
#      a copy of this checkout's files (tracked and untracked, not ignored) instead of the git URL; first with a
#      source that does not exist: it must stop with pip's error;
#   3. `pip freeze` before and after: the install may only add packages, never change one;
#   4. every course_utils.widgets module imports and builds its panel(s) under ipywidgets 7 (the headless widget tests);
#   5. notebooks 00 and 07 execute in the ci profile (nbval, the installed course_utils, not the checkout).
# Usage: bash tools/colab_check.sh   (3 minutes on 2 cores with pip's cache warm; KEEP=1 keeps the temp dir).
# Exit 0 = all passed. Not in the default pytest run (it takes longer than the 2 minutes allowed there).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/colab-check.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
start=$(date +%s)
failed=()
step() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }
check() { local name=$1; shift; if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; failed+=("$name"); fi; }
pip() {   # quiet, less this machine's warnings about its missing local package indexes
    python -m pip "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory"; return "${PIPESTATUS[0]}"; }

step "Colab-like venv in $TMP"
python3 -m venv "$TMP/venv" && source "$TMP/venv/bin/activate" || exit 1
pip install -q torch==2.13.0 && pip install -q -r "$ROOT/tools/colab_pins.txt" || exit 1
python -m pip freeze > "$TMP/before.txt"
grep -E '^(torch|ipywidgets|notebook|jupyter.server|ipykernel)==' "$TMP/before.txt"

step "setup cell of notebook 00, replayed as on Colab"
mkdir "$TMP/src"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$TMP/src")
cat > "$TMP/replay.py" <<'EOF'
"""Run notebook 00's setup cell as Colab would: google.colab importable, widget-manager calls recorded."""
import json, sys, types
calls = []
colab = types.ModuleType("google.colab")
colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
sys.modules.update({"google": types.ModuleType("google"), "google.colab": colab})
cell = "".join(json.load(open(sys.argv[1]))["cells"][1]["source"])
assert cell.startswith("# Colab setup"), "cell 1 is not the setup cell"
try:
    exec(cell, {})
except RuntimeError as error:
    print(f"setup cell stopped: {str(error)[:300]}...")
    sys.exit(3)
import ipywidgets
print(f"custom widget manager calls: {calls} (ipywidgets {ipywidgets.__version__})")
assert calls == ([] if ipywidgets.__version__.startswith("7.") else ["enabled"])
EOF
cd "$TMP"   # not the checkout: course_utils must come from the venv
COURSE_SOURCE="$TMP/no-such-source" python replay.py "$ROOT/notebooks/00_inverse_problems.ipynb"
check "a failed install stops with pip's error" test $? -eq 3
check "setup cell installs from the checkout" env COURSE_SOURCE="$TMP/src" python replay.py \
    "$ROOT/notebooks/00_inverse_problems.ipynb"
python -m pip freeze > "$TMP/after.txt"
echo "added by the setup cell: $(comm -13 <(sort "$TMP/before.txt") <(sort "$TMP/after.txt") | tr '\n' ' ')"
unchanged() {   # every line of the first freeze is still in the latest one
    local changed; changed=$(comm -23 <(sort "$TMP/before.txt") <(python -m pip freeze | sort))
    [ -z "$changed" ] || echo "changed or removed: $changed"; [ -z "$changed" ]; }
check "no installed package changed (pip freeze)" unchanged

step "test tools (pytest, nbval), every installed version pinned"
grep '==' "$TMP/after.txt" > "$TMP/pins.txt"
pip install -q -c "$TMP/pins.txt" pytest nbval || exit 1
check "no installed package changed by the test tools" unchanged

step "every widgets module imports and builds its panels under ipywidgets 7"
cat > "$TMP/widgets_modules.py" <<'EOF'
"""Import every course_utils.widgets module; each *_panel it defines must be built by one of the test files given."""
import importlib, inspect, pkgutil, sys
import ipywidgets, course_utils.widgets as w
assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
assert "site-packages" in w.__file__, f"course_utils imported from {w.__file__}, not the venv"
tests = "".join(open(path).read() for path in sys.argv[1:])
for info in pkgutil.iter_modules(w.__path__):
    module = importlib.import_module(f"course_utils.widgets.{info.name}")
    panels = [n for n, f in inspect.getmembers(module, inspect.isfunction)
              if n.endswith("_panel") and f.__module__ == module.__name__]
    untested = [n for n in panels if f"{n}(" not in tests]
    print(f"course_utils.widgets.{info.name}: {panels}")
    assert not untested, f"no headless test builds {untested}"
EOF
export COURSE_PROFILE=ci MPLBACKEND=Agg PYTHONWARNINGS=ignore::DeprecationWarning PYDEVD_DISABLE_FILE_VALIDATION=1
WIDGET_TESTS=("$ROOT"/tests/test_widgets*.py "$ROOT/tests/test_sr3.py" "$ROOT/tests/test_pulse.py")
check "widgets modules import, every panel has a headless test" python widgets_modules.py "${WIDGET_TESTS[@]}"
cd "$ROOT"
check "panels build and update headless (ipywidgets 7)" pytest -q tests/test_widgets*.py \
    tests/test_sr3.py::test_sr3_demo_and_panel_headless tests/test_pulse.py::test_pulse_demo_and_panel_headless

step "notebooks 00 and 07, ci profile (nbval)"
check "notebooks 00 and 07 execute" pytest -q notebooks/00_inverse_problems.ipynb notebooks/07_pulse.ipynb

step "done"
if [ ${#failed[@]} -gt 0 ]; then printf 'FAILED: %s\n' "${failed[@]}"; exit 1; fi
echo "Colab-like check passed"
