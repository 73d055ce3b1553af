"""The analyst notebooks (01, 03, 04, and 02 when it is there) run top to bottom on the sample
brand (nbval, in a subprocess), each in under a minute, reading their workspace from
WORKBENCH_WORKSPACE.

The sample workspace is built once by ``workbench demo`` (2,000 persons: ingestion, identity,
profiles, the segments of segments/, the destinations of destinations/, segmentation and
exports through the job notebooks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
NOTEBOOKS = [
    "notebooks/01_getting_started.ipynb",
    "notebooks/03_profile_explorer.ipynb",
    "notebooks/04_audience_analysis.ipynb",
]
#: The segment builder's notebook (issue #7's other half) runs with them when it is there.
SEGMENT_BUILDER = "notebooks/02_segment_builder.ipynb"
LIMIT_S = 60.0


def _tail(text: str, n: int = 8000) -> str:
    return text if len(text) <= n else "…" + text[-n:]


@pytest.fixture(scope="module")
def sample_workspace(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A workspace made by ``workbench demo --persons 2000``."""
    tmp = tmp_path_factory.mktemp("nb")
    ws = tmp / "ws"
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_WORKSPACE"}
    cmd = [
        sys.executable,
        "-m",
        "workbench.cli",
        "demo",
        "--persons",
        "2000",
        "--sample-dir",
        str(tmp / "sample"),
        "-w",
        str(ws),
    ]
    r = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, f"workbench demo failed:\n{_tail(r.stdout + r.stderr)}"
    return ws


def test_notebooks_generated_from_the_script() -> None:
    """The notebooks in the repo are what notebooks/make_notebooks.py writes."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location(
        "make_notebooks", ROOT / "notebooks/make_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path in NOTEBOOKS:
        stored = nbformat.read(ROOT / path, as_version=4)
        made = mod.NOTEBOOKS[Path(path).stem]
        assert [c.source for c in stored.cells] == [c.source for c in made.cells], path
        params = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path
        assert 'os.environ.get("WORKBENCH_WORKSPACE", "../data/workspace")' in params[0].source
        assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code"), path


def test_analyst_notebooks_run_on_the_sample(sample_workspace: Path, tmp_path: Path) -> None:
    run = sorted([*NOTEBOOKS, *([SEGMENT_BUILDER] if (ROOT / SEGMENT_BUILDER).exists() else [])])
    report = tmp_path / "nbval.xml"
    env = dict(os.environ, WORKBENCH_WORKSPACE=str(sample_workspace))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
        *run,
    ]
    r = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    out = _tail(r.stdout + r.stderr)
    assert r.returncode == 0, f"nbval failed (exit {r.returncode}):\n{out}"

    seconds: dict[str, float] = defaultdict(float)
    cells: dict[str, int] = defaultdict(int)
    for case in ET.parse(report).getroot().iter("testcase"):
        nb = Path(case.get("file") or case.get("classname") or "").name
        seconds[nb] += float(case.get("time", 0))
        cells[nb] += 1
    assert sorted(seconds) == sorted(Path(p).name for p in run), f"{dict(seconds)}\n{out}"
    for nb, s in seconds.items():
        assert cells[nb] >= 3, f"{nb}: only {cells[nb]} cells ran"
        assert s < LIMIT_S, f"{nb} took {s:.1f}s (limit {LIMIT_S:.0f}s)"
