"""Headless-browser check of the stakeholder dashboards (dashboards/*.ipynb) served by Voila on
loopback, opened in Debian's Chromium through Playwright (no browser is downloaded).

A 2,000-person sample workspace is built once with ``workbench demo`` and Voila serves
``dashboards/`` as ``workbench dashboard`` does (one preheated kernel per dashboard). Each
dashboard must render its widgets and plotly charts (offline), show numbers equal to the API's,
suppress small counts and show no error or traceback; the segment picker of the audience
overview must redraw its charts.

Loads are timed from navigation to the widgets and charts drawn, each in a fresh browser
context (a cold browser cache) once Voila's kernel pools are ready (see
:func:`tests.browser.wait_for_voila_pool`); the medians are printed and written to
``load_times.json``. Artifacts (a full-page screenshot of each dashboard, ``load_times.json``,
and on a failure the page's HTML and Voila's log) go to ``.ci/state/artifacts/dashboards/``
(git-ignored), or to ``$WORKBENCH_SCREENSHOT_DIR`` when set.

A navigation is retried once, and the retry printed and recorded in ``load_times.json``, only
when Voila served the page without the dashboard's cell at all (no output area): a preheated
kernel whose render never delivered the last cell, an infrastructure failure. A dashboard that
raises shows an error output instead and fails at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VOILA,
    free_port,
    wait_for_http,
    wait_for_voila_pool,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
ARTIFACTS = Path(
    os.environ.get("WORKBENCH_SCREENSHOT_DIR")
    or ROOT / ".ci" / "state" / "artifacts" / "dashboards"
)
VIEWPORT = {"width": 1280, "height": 800}
DASHBOARDS = ("audience_overview", "activation_status", "data_health")
#: preheated kernels per dashboard, as ``workbench dashboard`` runs Voila
POOL_SIZE = 1
#: timed loads per dashboard (the median is the figure reported in docs/benchmarks.md)
LOADS = 3
# The bar is 5 s (medians measured on the 2-core machine: docs/benchmarks.md). The
# test guards against regressions with headroom for a loaded CI machine.
MAX_MEDIAN_LOAD_S = 10.0
#: plotly charts each page draws
CHARTS = {"audience_overview": 3, "activation_status": 1, "data_health": 3}
LOAD_TIMES: dict[str, list[float]] = {}
RETRIES: list[str] = []


@dataclass
class Voila:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboards")


@pytest.fixture(scope="module")
def artifacts() -> Iterator[Path]:
    """The artifact folder; load times are written there when the module's tests end."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for pattern in ("dashboard_*.png", "failed_*.html", "voila.log", "load_times.json"):
        for old in ARTIFACTS.glob(pattern):  # a previous run's
            old.unlink()
    yield ARTIFACTS
    medians = {k: round(statistics.median(v), 2) for k, v in LOAD_TIMES.items()}
    report = {"loads_s": LOAD_TIMES, "median_s": medians, "retries": RETRIES}
    (ARTIFACTS / "load_times.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\ndashboard loads (s): {LOAD_TIMES}; medians {medians}; retries {RETRIES}")


@pytest.fixture(scope="module")
def sample_workspace(tmp: Path) -> Path:
    """A 2,000-person sample brand: ingested, stitched, profiled, segmented, exported."""
    ws = tmp / "ws"
    cmd = [
        str(Path(sys.executable).parent / "workbench"),
        "demo",
        "--persons",
        "2000",
        "--sample-dir",
        str(tmp / "sample"),
        "-w",
        str(ws),
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return ws


@pytest.fixture(scope="module")
def voila(sample_workspace: Path, tmp: Path) -> Iterator[Voila]:
    """Voila serving dashboards/ on a free loopback port, its kernel pools ready."""
    if not VOILA.exists():
        pytest.skip("voila is not installed in this environment")
    port = free_port()
    log = tmp / "voila.log"
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(sample_workspace)}
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(VOILA),
                "dashboards",
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
                # as `workbench dashboard`: a preheated kernel per dashboard (the notebook
                # already run), so a page does not wait for a kernel start and the imports
                "--preheat_kernel=True",
                f"--pool_size={POOL_SIZE}",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    v = Voila(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_for_http(v.url + "/", proc, log, timeout=90)
        # the first pools take 10-20 s on two cores (three kernels import and run at once)
        waited = wait_for_voila_pool(v.url, proc, log, len(DASHBOARDS) * POOL_SIZE, timeout=300)
        print(f"voila: kernel pools ready after {waited:.1f}s")
        yield v
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(voila: Voila) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _infrastructural(page: Any) -> str | None:
    """Why a page that did not render failed, when Voila never delivered the dashboard's cell:
    no output area at all (the notebook's last cell always has one: the dashboard, or the
    error it raised). ``None`` for any other failure."""
    with contextlib.suppress(Exception):
        if page.locator(".jp-OutputArea-output").count() == 0:
            cells = page.locator("[cell-index]").count()
            return f"Voila served the page without the dashboard cell ({cells} cells, no output)"
    return None


def _keep_failure(page: Any, voila: Voila, name: str) -> None:
    with contextlib.suppress(Exception):
        (ARTIFACTS / f"failed_{name}.html").write_text(page.content())
    with contextlib.suppress(Exception):
        (ARTIFACTS / "voila.log").write_text(voila.log.read_text(errors="replace"))


def _open(browser: Any, voila: Voila, name: str, retry: bool = True) -> tuple[Any, float]:
    """Open a dashboard in a fresh browser context once the kernel pools are ready, and wait
    for its widgets and charts; (page, seconds from navigation to drawn)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # the previous page's kernel is replaced by a new preheated one: wait until it has run
    wait_for_voila_pool(voila.url, voila.proc, voila.log, len(DASHBOARDS) * POOL_SIZE, 240)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # offline: Voila's template asks a CDN for icon fonts; refuse at once instead of hanging
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    t0 = time.monotonic()
    try:
        page.goto(f"{voila.url}/voila/render/{name}.ipynb", timeout=60_000, wait_until="commit")
        page.locator(".wb-dash").wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "(n) => document.querySelectorAll('.wb-dash .js-plotly-plot .main-svg').length >= n",
            arg=CHARTS[name],
            timeout=60_000,
        )
    except PlaywrightTimeout:
        why = _infrastructural(page)
        _keep_failure(page, voila, name)
        context.close()
        if why and retry:
            RETRIES.append(f"{name}: {why}")
            print(f"RETRY {name}: {why}")
            return _open(browser, voila, name, retry=False)
        raise
    elapsed = time.monotonic() - t0
    assert not errors, f"{name}: JavaScript errors: {errors}"
    return page, elapsed


def _load(browser: Any, voila: Voila, name: str) -> tuple[Any, float]:
    """Open a dashboard :data:`LOADS` times; keep the last page; the median load time."""
    times = []
    page = None
    for _ in range(LOADS):
        if page is not None:
            page.context.close()
        page, t = _open(browser, voila, name)
        times.append(round(t, 2))
    LOAD_TIMES[name] = times
    median = statistics.median(times)
    print(f"{name}: loads {times} s, median {median:.2f} s")
    return page, median


def _no_errors(page: Any) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body
    assert "There was an error when executing cell" not in body
    assert "Cell execution timed out" not in body
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert page.locator(".jp-OutputArea-output .ansi-red-fg").count() == 0


def _shot(page: Any, artifacts: Path, name: str) -> None:
    shot = artifacts / f"dashboard_{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 10_000


def _kpi(page: Any, slug: str) -> str:
    return page.locator(f".wb-kpi-{slug} .wb-kpi-value").inner_text().strip()


def _row(page: Any, table: str, first_cell: str) -> list[str]:
    row = page.locator(f".{table} tr", has=page.locator(f"td:text-is('{first_cell}')")).first
    return [c.strip() for c in row.locator("td").all_inner_texts()]


def _assert_load_time(name: str, median: float) -> None:
    assert median < MAX_MEDIAN_LOAD_S, (name, LOAD_TIMES)


def test_audience_overview(
    browser: Any, voila: Voila, sample_workspace: Path, artifacts: Path
) -> None:
    from workbench import Workspace
    from workbench.viz import data

    with Workspace.open(sample_workspace) as ws:
        profiles = ws.profiles.table().count_rows()
        reach = data.profile_reach(ws)
        sizes = data.segment_sizes(ws).set_index("segment")["members"]
        min_count = ws.settings.min_count
    small = sorted(n for n, v in sizes.items() if 0 < v < min_count)
    big = sorted((n for n, v in sizes.items() if v >= min_count), key=lambda n: -sizes[n])
    assert small and len(big) >= 2, sizes
    page, median = _load(browser, voila, "audience_overview")
    try:
        assert _kpi(page, "profiles") == f"{profiles:,}"
        assert _kpi(page, "reachable-by-email") == f"{100 * reach['email'] / profiles:.1f}%"
        # the segments table: a big segment's exact size, a small one suppressed
        assert _row(page, "wb-segments", big[0])[2] == f"{int(sizes[big[0]]):,}"
        for n in small:
            assert _row(page, "wb-segments", n)[2] == f"<{min_count}"
        # the picker starts on the largest segment; pick another: title and charts follow
        title = page.locator(".wb-seg-title")
        assert big[0] in title.inner_text()
        page.locator(".wb-picker select").select_option(big[1])
        page.wait_for_function(
            "(n) => (document.querySelector('.wb-seg-title')?.innerText || '').includes(n)",
            arg=big[1],
            timeout=30_000,
        )
        for css in ("wb-fig-history", "wb-fig-comp", "wb-fig-overlap"):
            page.wait_for_function(
                "([c, n]) => { const t = document.querySelector('.' + c + ' .gtitle');"
                " return t && t.textContent.startsWith(n + ':'); }",
                arg=[css, big[1]],
                timeout=30_000,
            )
        # the redrawn size chart shows the picked segment's size (its last point)
        shown = page.evaluate(
            "() => { const gd = document.querySelector('.wb-fig-history .js-plotly-plot');"
            " const y = Array.from(gd._fullData[0].y); return y[y.length - 1]; }"
        )
        assert int(shown) == int(sizes[big[1]]), (shown, sizes[big[1]])
        _no_errors(page)
        _shot(page, artifacts, "audience_overview")
    finally:
        page.context.close()
    _assert_load_time("audience_overview", median)


def test_activation_status(
    browser: Any, voila: Voila, sample_workspace: Path, artifacts: Path
) -> None:
    import workbench.dashboards as dash
    from workbench import Workspace

    with Workspace.open(sample_workspace) as ws:
        summary = dash.activation_summary(ws).set_index("destination")
        min_count = ws.settings.min_count
    assert len(summary) >= 1
    page, median = _load(browser, voila, "activation_status")
    try:
        header = page.locator(".wb-destinations th").all_inner_texts()
        col = header.index("exported")
        for dest, row in summary.iterrows():
            shown = _row(page, "wb-destinations", str(dest))
            expected = row["exported"]
            want = f"<{min_count}" if 0 < expected < min_count else f"{int(expected):,}"
            assert shown[col] == want, (dest, shown)
            assert shown[header.index("next_delivery")] == row["next_delivery"]
        # suppression: no count in the tables is between 1 and min_count - 1
        cells = page.locator(".wb-destinations td, .wb-recent td").all_inner_texts()
        assert not any(c.strip().isdigit() and 0 < int(c) < min_count for c in cells)
        _no_errors(page)
        _shot(page, artifacts, "activation_status")
    finally:
        page.context.close()
    _assert_load_time("activation_status", median)


def test_data_health(browser: Any, voila: Voila, sample_workspace: Path, artifacts: Path) -> None:
    from workbench import Workspace

    with Workspace.open(sample_workspace) as ws:
        batches = ws.catalog.list_batches()
        runs = ws.jobs.list()
        min_count = ws.settings.min_count
    accepted = sum(b.rows_accepted for b in batches)
    small = [b for b in batches if 0 < b.rows_rejected < min_count]
    assert small, [b.rows_rejected for b in batches]
    page, median = _load(browser, voila, "data_health")
    try:
        assert _kpi(page, "rows-accepted") == f"{accepted:,}"
        assert _kpi(page, "batches") == f"{len(batches):,}"
        assert _kpi(page, "job-runs") == f"{len(runs):,}"
        header = page.locator(".wb-batches th").all_inner_texts()
        for b in small:
            shown = _row(page, "wb-batches", str(b.id))
            assert shown[header.index("rows_rejected")] == f"<{min_count}"
        # suppression in the rejection-reason and link tables too
        cells = page.locator(".wb-reasons td, .wb-links td").all_inner_texts()
        assert cells
        assert not any(c.strip().isdigit() and 0 < int(c) < min_count for c in cells)
        _no_errors(page)
        _shot(page, artifacts, "data_health")
    finally:
        page.context.close()
    _assert_load_time("data_health", median)
