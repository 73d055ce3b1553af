"""Sample generator speed: ``python -m bench generate --persons 1000000``."""

from __future__ import annotations

import shutil
import tempfile
import time

from bench.common import CACHE, Report


def run(persons: int, seed: int = 42) -> Report:
    """Generate ``persons`` into a temporary folder and time it."""
    from workbench.sample import generate

    CACHE.mkdir(parents=True, exist_ok=True)
    out = tempfile.mkdtemp(prefix="wb-gen-", dir=CACHE)
    try:
        t0 = time.perf_counter()
        m = generate(out, persons=persons, seed=seed)
        secs = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rep = Report("generate", {"persons": persons, "seed": seed})
    rep.add(persons=persons, rows=sum(f.rows for f in m.files), seconds=round(secs, 1))
    return rep
