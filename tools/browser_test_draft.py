"""DRAFT, not a test yet (issue 27 item 5): JupyterLab in headless Chromium via Playwright for Python.

Known bug: the run-all completion check (execution counts in the notebook model) reports "done" 2 s after
run-all, even after clearing the outputs, so the widget step then runs against an unexecuted notebook (02 failed in
CI; 00 passed for the wrong reason). Fix the completion check (wait for the kernel to go busy, or for the last
cell's new count), then move this back to tests/test_browser.py and restore the .ci/run chromium + [browser]
install of commit 94b1236 (reverted).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright for Python "
                                     "(pip install -e '.[browser]') and Debian's chromium")
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
if CHROMIUM is None:
    pytest.skip("browser tests need a Chromium executable (apt-get install chromium, or set $CHROMIUM)",
                allow_module_level=True)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RUN_ALL_TIMEOUT_S = 600           # one notebook, ci profile, run all (nbval takes ~1-2 min for each of these)

# JavaScript against JupyterLab's own application object (--LabApp.expose_app_in_browser): the notebook's model,
# not the page's DOM, tells whether every cell ran (JupyterLab 4 may leave off-screen cells out of the DOM).
_JS_READY = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.content && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.status === 'idle'); }"""
_JS_STATE = """() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.model.cells;
  const out = {kernel: w.sessionContext.session.kernel.status, code: 0, ran: 0, errors: []};
  for (let i = 0; i < cells.length; i++) { const c = cells.get(i); if (c.type !== 'code') continue;
    out.code += 1; if (c.executionCount !== null && c.executionCount !== undefined) out.ran += 1;
    const outputs = c.outputs.toJSON();
    for (const o of outputs) if (o.output_type === 'error') out.errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`); }
  return out; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of notebooks/ (JupyterLab autosaves: the committed outputs stay untouched)."""
    root = tmp_path_factory.mktemp("lab")
    for name in ("00_inverse_problems.ipynb", "02_dip_restoration.ipynb"):
        shutil.copy(NOTEBOOKS / name, root / name)
    port, token = _free_port(), "course-browser-test"
    env = {**os.environ, "COURSE_PROFILE": "ci", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTER_CONFIG_DIR": str(root / ".config"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser, url, token
        browser.close()
    server.terminate()
    server.wait(timeout=30)


def _run_all(browser, url, token, name):
    """Open ``name`` in JupyterLab, run all cells, wait until every code cell has run; returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/tree/{name}?token={token}")
    page.wait_for_function(_JS_READY, timeout=120_000)
    # the copy opens with its committed execution counts: clear them, so "every code cell has a count" means it ran here
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    state = page.evaluate(_JS_STATE)
    assert state["ran"] == 0, f"{name}: clearing the outputs left {state['ran']} execution counts"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    while True:
        time.sleep(2)
        state = page.evaluate(_JS_STATE)
        assert not state["errors"], f"{name}: error output in the browser: {state['errors']}"
        if state["ran"] == state["code"] and state["kernel"] == "idle":
            print(f"{name}: run all in the browser: {state['code']} code cells, "
                  f"{RUN_ALL_TIMEOUT_S - deadline + time.monotonic():.0f} s")
            return page
        assert time.monotonic() < deadline, f"{name}: run all did not finish in {RUN_ALL_TIMEOUT_S} s: {state}"


def _panel(page):
    """The notebook's widget panel (the one VBox with an Output area) and a fingerprint of what its output shows."""
    panel = page.locator(".widget-vbox:has(.widget-output)").first
    panel.scroll_into_view_if_needed(timeout=60_000)
    output = panel.locator(".widget-output").first

    def shown() -> str:   # the figure(s) the panel drew: their image data
        images = output.locator("img")
        return "".join(images.nth(i).get_attribute("src") or "" for i in range(images.count()))
    return panel, shown


def _wait_for_change(page, shown, before, what, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = shown()
        if now and now != before:
            return now
        time.sleep(1)
    raise AssertionError(f"the panel's output did not change after {what} ({timeout_s} s)")


def test_00_slider_redraws_the_degradations(lab):
    browser, url, token = lab
    page = _run_all(browser, url, token, "00_inverse_problems.ipynb")
    panel, shown = _panel(page)
    before = _wait_for_change(page, shown, "", "run all")            # the default run is drawn
    handle = panel.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle").first
    handle.focus()
    handle.press("ArrowRight")                                         # sigma 25 -> 30, a key press as a user does
    _wait_for_change(page, shown, before, "moving the sigma slider")
    page.close()


# 06 (sampler dropdown + Run) is written but not run in CI yet: beside a training run on this 2-core machine its run
# all reached 15 of 23 cells in 20 minutes; to be timed on an idle machine first (issue 27)
@pytest.mark.parametrize("name, choose", [("02_dip_restoration.ipynb", ("task", "sr"))])
def test_run_button_panels_redraw_after_a_new_choice(lab, name, choose):
    browser, url, token = lab
    page = _run_all(browser, url, token, name)
    panel, shown = _panel(page)
    before = shown()
    label, value = choose
    panel.locator(f".widget-dropdown:has(label:text-is('{label}')) select").select_option(label=value)
    panel.locator("button:has-text('Run')").click()
    _wait_for_change(page, shown, before, f"choosing {label}={value} and pressing Run")
    page.close()
