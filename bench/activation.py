"""Export of a ~1,000,000-member audience with hashed email and phone (consent filtered,
manifest written) to a local CSV, and an incremental export of ~1% changes.

    python -m bench activation --persons 1000000

The audience: every profile with an email or a phone, except those whose birthday is in
the next 3 days (so that moving ``as_of`` by two days changes about 1% of it). The
destination is an advertising (customer-match) file: SHA-256 of the normalized email and
of the E.164 phone, consent on ``consent_ads``. Timed: ``ws.activation.run`` as a user runs
it (reading memberships and profiles, checks, hashing, writing, SHA-256 of the file,
manifest, catalog records). For scale, the same run reports DuckDB alone hashing the two
columns of the same rows into a CSV.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import statistics
import time

from bench.common import CACHE, Report, peak_rss_mb
from bench.common_ws import ingested_workspace
from bench.segments import _prepare
from workbench import Workspace
from workbench.segments import attr, segment

log = logging.getLogger(__name__)

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def run(persons: int, seed: int = 42, reps: int = 3) -> Report:
    """Full export (median of ``reps``) and an incremental export of ~1% changes."""
    path = ingested_workspace(persons, seed)
    ws = Workspace.open(path)
    _prepare(ws)
    out = CACHE / "activation-out"
    shutil.rmtree(out, ignore_errors=True)
    audience = segment(
        "bench_audience",
        (attr("email").exists() | attr("phone").exists())
        & ~(attr("birth_date").days_until_anniversary().between(0, 2)),
    )
    ws.segments.add(audience)
    for d in ws.activation.list():
        ws.activation.remove(d.name)
    base = {
        "type": "advertising",
        "connection": {"url": str(out)},
        "segments": ["bench_audience"],
    }
    ws.activation.add({**base, "name": "bench_ads"})
    ws.activation.add({**base, "name": "bench_ads_inc", "mode": "incremental"})

    # segment runs: reps full exports each at their own as_of (re-runs are idempotent)
    times, counts = [], None
    last = ws.segments.runs(1)
    start = max(T0, last[0].as_of + dt.timedelta(hours=1)) if last else T0
    for i in range(reps):
        when = start + dt.timedelta(minutes=i)
        ws.segments.run(when, ["bench_audience"])
        t = time.perf_counter()
        (r,) = ws.activation.run("bench_ads", when)
        times.append(time.perf_counter() - t)
        counts = r.counts
    assert counts is not None
    rep = Report(
        "activation",
        {"persons": persons, "members": counts.eligible, "exported": counts.exported},
    )
    rep.add(
        step="full export: ~1M members, SHA-256 email + phone, consent, CSV + manifest (median)",
        seconds=round(statistics.median(times), 3),
        detail={"runs_s": [round(x, 3) for x in times], "counts": counts.__dict__},
    )
    # what DuckDB alone takes to hash the two columns of these rows into a CSV
    eng = ws.engine
    ws.lake.register(eng, "__bp", ws.profiles.table_uri())
    t = time.perf_counter()
    eng.execute(
        f"COPY (SELECT sha256(lower(trim(email))) AS e, sha256(phone) AS p FROM __bp "
        f"WHERE email IS NOT NULL OR phone IS NOT NULL LIMIT {counts.exported}) "
        f"TO '{out / 'raw.csv'}' (FORMAT csv, HEADER true)"
    )
    rep.add(
        step="for scale: DuckDB alone, hash 2 columns + write CSV",
        seconds=round(time.perf_counter() - t, 3),
    )
    eng.unregister("__bp")

    # incremental: a back-fill, then a run two days later (~1% changed)
    when = start + dt.timedelta(minutes=reps + 1)
    ws.activation.run("bench_ads_inc", when)
    later = when + dt.timedelta(days=2)
    ws.segments.run(later, ["bench_audience"])
    t = time.perf_counter()
    (inc,) = ws.activation.run("bench_ads_inc", later)
    secs = time.perf_counter() - t
    rep.add(
        step="incremental export of the changes two days later",
        seconds=round(secs, 3),
        detail={
            "added": inc.counts.added,
            "removed": inc.counts.removed,
            "share_of_audience": round(
                (inc.counts.added + inc.counts.removed) / max(counts.eligible, 1), 4
            ),
        },
    )
    rep.add(step="peak memory", mb=round(peak_rss_mb()))
    ws.close()
    return rep


__all__ = ["run"]
