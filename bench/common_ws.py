"""A workspace with the whole sample ingested, cached between bench runs."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from bench.common import CACHE, sample_dir

log = logging.getLogger(__name__)


def ingested_workspace(persons: int, seed: int = 42) -> Path:
    """``bench/.cache/ws-<persons>-<seed>``: the sample, ingested (done once)."""
    from workbench import Workspace
    from workbench.sample.brand import ingest, register
    from workbench.sample.generator import GENERATOR_VERSION

    d = sample_dir(persons, seed)
    path = CACHE / f"ws-{persons}-{seed}"
    done = path / ".ingested"
    if done.exists() and done.read_text() == GENERATOR_VERSION:
        return path
    if path.exists():
        shutil.rmtree(path)
    ws = Workspace.create(path)
    register(ws)
    ingest(ws, d)
    ws.close()
    done.write_text(GENERATOR_VERSION)
    return path


def snapshot_workspace(src: Path, dst: Path) -> None:
    """A writable copy of a closed workspace sharing the (immutable) Delta data files."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(src / "lake"), str(dst / "lake")], check=True)
    # Delta logs and checkpoints are new files per commit: linking is safe; the catalog is
    # not (it keeps dataset tables relative to the lake: the copy writes its own)
    for f in ("catalog.db", "workbench.yaml"):
        shutil.copy2(src / f, dst / f)
    for d in ("exports", "runs"):
        (dst / d).mkdir(exist_ok=True)
