"""Shared bench helpers: cached sample generation, timing, machine facts, result files."""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
RESULTS = ROOT / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb
    import pyarrow

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_dir(persons: int, seed: int = 42) -> Path:
    """The generated sample for ``persons`` (generated once, then cached)."""
    from workbench.sample import SampleManifest, generate
    from workbench.sample.generator import GENERATOR_VERSION

    d = CACHE / f"sample-{persons}-{seed}"
    m = d / "manifest.json"
    if m.exists():
        man = SampleManifest.load(m)
        same = man.generator_version == GENERATOR_VERSION
        if man.persons == persons and man.seed == seed and same:
            return d
        shutil.rmtree(d)
    t0 = time.perf_counter()
    generate(d, persons=persons, seed=seed)
    log.info("generated %d persons in %.1fs", persons, time.perf_counter() - t0)
    return d


@dataclass
class Timer:
    """Wall time of a block."""

    seconds: float = 0.0

    @contextmanager
    def __call__(self) -> Iterator[Timer]:
        t0 = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds = time.perf_counter() - t0


@dataclass
class Report:
    """Rows of one benchmark run, written to bench/results/<name>.json and printed."""

    name: str
    params: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        log.info("%s", row)

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        p = RESULTS / f"{self.name}.json"
        doc = {
            "name": self.name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
            "params": self.params,
            "rows": self.rows,
            "peak_rss_mb": round(peak_rss_mb()),
        }
        p.write_text(json.dumps(doc, indent=2, default=str))
        return p

    def print(self) -> None:
        from rich.console import Console
        from rich.table import Table

        if not self.rows:
            return
        cols = list(dict.fromkeys(k for r in self.rows for k in r))
        t = Table(title=f"{self.name} {self.params}")
        for c in cols:
            t.add_column(c)
        for r in self.rows:
            t.add_row(*(_fmt(r.get(c)) for c in cols))
        Console(width=200).print(t)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
