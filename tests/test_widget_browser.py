"""Headless-browser check of the segment builder: notebooks/02_segment_builder.ipynb served by
Voila on loopback, opened in Debian's Chromium through Playwright (no browser is downloaded).

A 1,500-person sample workspace is built with ``workbench demo``; the page must show the
exact size of ``high_value_loyalty``, and lowering the spend threshold in the event row must
change the displayed size to the exact count of the edited rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, VOILA, free_port, wait_for_http

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_segment_builder.ipynb"
AS_OF = "2026-12-01T00:00:00+00:00"
NEW_THRESHOLD = 1  # "spent 300 or more in store" becomes "spent anything in store"


def _size(text: str) -> int:
    m = re.search(r"([\d,]+) profiles? \(exact\)", text)
    assert m, f"no exact size in {text!r}"
    return int(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def sample_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,500-person sample brand, ingested, stitched, profiled and segmented."""
    tmp = tmp_path_factory.mktemp("browser")
    ws = tmp / "ws"
    cmd = [
        str(Path(sys.executable).parent / "workbench"),
        "demo",
        "--persons",
        "1500",
        "--sample-dir",
        str(tmp / "sample"),
        "-w",
        str(ws),
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return ws


def test_segment_builder_renders_in_voila_and_a_changed_value_changes_the_size(
    sample_workspace: Path, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if not VOILA.exists():
        pytest.skip("voila is not installed in this environment")
    sync_api = pytest.importorskip("playwright.sync_api")
    from workbench import Workspace
    from workbench.segments.model import Aggregate

    # the sizes the page must show, computed here
    with Workspace.open(sample_workspace) as ws:
        original = ws.segments.get("high_value_loyalty")
        before = ws.segments.count(original, AS_OF)
        rule = original.rule
        ev = rule.items[1]  # type: ignore[union-attr]
        assert ev.aggregate == Aggregate("sum", "total", "gte", 300)
        edited = dataclasses.replace(
            original,
            rule=dataclasses.replace(
                rule,  # type: ignore[arg-type]
                items=(
                    rule.items[0],  # type: ignore[union-attr]
                    dataclasses.replace(
                        ev, aggregate=Aggregate("sum", "total", "gte", NEW_THRESHOLD)
                    ),
                ),
            ),
        )
        after = ws.segments.count(edited, AS_OF)
    assert before > 0 and after != before, (before, after)

    port = free_port()
    log = tmp_path / "voila.log"
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(sample_workspace)}
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(VOILA),
                str(NOTEBOOK.relative_to(ROOT)),
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    shot = tmp_path / "segment_builder.png"
    try:
        wait_for_http(url, proc, log, timeout=90)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(url, timeout=180_000)
                size = page.locator(".wb-size")
                size.wait_for(state="visible", timeout=180_000)
                page.wait_for_function(
                    "() => (document.querySelector('.wb-size')?.innerText || '').includes('exact')",
                    timeout=60_000,
                )
                shown = size.inner_text()
                assert _size(shown) == before
                assert "high_value_loyalty" in page.locator(".wb-yaml").inner_text()
                assert "batch" in page.locator(".wb-method").inner_text()
                # lower the spend threshold of the event row
                value = page.locator(".wb-agg-value input")
                assert value.input_value() in ("300", "300.0")
                value.fill(str(NEW_THRESHOLD))
                value.press("Enter")
                page.wait_for_function(
                    "(old) => { const t = document.querySelector('.wb-size')?.innerText || '';"
                    " return t !== old && t.includes('exact'); }",
                    arg=shown,
                    timeout=60_000,
                )
                assert _size(size.inner_text()) == after
                # then the sparkline of the edited rule (the sample is everyone: exact)
                page.wait_for_function(
                    "(n) => { const s = document.querySelector('.wb-spark');"
                    " return s && !s.classList.contains('wb-stale') && s.innerText.endsWith(n); }",
                    arg=f"→ {after:,}",
                    timeout=60_000,
                )
                assert f"value: {NEW_THRESHOLD}" in page.locator(".wb-yaml").inner_text()
                body = page.locator("body").inner_text()
                assert "Traceback" not in body
                assert "Error" not in body
                assert page.locator(".wb-problems").inner_text().strip() == ""
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = os.environ.get("WORKBENCH_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
