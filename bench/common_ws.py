"""A workspace with the whole sample ingested, cached between bench runs."""

from __future__ import annotations

import logging
import shutil
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
