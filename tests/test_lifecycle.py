"""A process that reads the lake and exits without closing anything still exits cleanly.

deltalake's own pyarrow filesystem bridge aborted the interpreter at exit after a filtered
scan ("terminate called without an active exception"): 6 of 10 runs in a fresh clone's
environment, none in others (a race at interpreter shutdown). Snapshots of local tables now
read through pyarrow's file system; this test runs the exit path several times.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from workbench import Workspace
from workbench.sample import generate


def test_exit_without_close_after_filtered_scans(ws: Workspace, tmp_path: Path) -> None:
    d = tmp_path / "sample"
    generate(d, persons=3000, seed=3)
    ws.ingest("web_events", d / "web_events.parquet")
    code = textwrap.dedent(
        f"""
        import pyarrow.dataset as pads
        from workbench import Workspace
        ws = Workspace.open({str(ws.path)!r})
        ws.engine
        t = ws.datasets.snapshot("web_events").to_table(filter=pads.field("_row") == 3)
        print(t.num_rows)
        """
    )
    for _ in range(6):
        p = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "1"
