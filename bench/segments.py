"""The batch segment job, exact counts and estimates at scale, against the straightforward
vectorized pandas evaluation of the same segments, in the same run.

    python -m bench segments --persons 1000000

50 segments: the 18 of ``segments/`` plus 32 variations of them (other windows, types,
thresholds, stores, tiers). The job is timed as a user runs it (``ws.segments.run``:
reading the Delta tables, evaluating, writing memberships and statuses). The baseline reads
the same tables into pandas and evaluates each segment with one boolean mask and one groupby
per event condition (``workbench.segments.reference``); both must give the same members.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import statistics
import time
from pathlib import Path

from bench.common import Report, peak_rss_mb
from bench.common_ws import ingested_workspace
from workbench import Workspace
from workbench.segments import SegmentDefinition, dependency_order, load_folder, parse

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def variations() -> list[SegmentDefinition]:
    """32 realistic variations of the library segments (deterministic)."""
    out: list[dict] = []
    for w in ("7d", "30d", "90d", "180d"):
        out.append({"name": f"buyers_{w}", "rule": {"events": {"type": "purchase", "within": w}}})
        out.append(
            {
                "name": f"web_visitors_{w}",
                "rule": {"events": {"type": "page_view", "within": w, "at_least": 2}},
            }
        )
    for store in ("S001", "S002", "S003", "S004"):
        out.append(
            {
                "name": f"store_{store.lower()}_buyers_90d",
                "rule": {
                    "events": {
                        "type": "purchase",
                        "where": [{"field": "store_id", "op": "eq", "value": store}],
                        "within": "90d",
                    }
                },
            }
        )
    for tier in ("bronze", "silver", "gold", "platinum"):
        out.append(
            {
                "name": f"{tier}_active_30d",
                "rule": {
                    "all": [
                        {"attribute": "tier", "op": "eq", "value": tier},
                        {"events": {"within": "30d", "at_least": 1}},
                    ]
                },
            }
        )
    for amount in (100, 250, 500, 1000):
        out.append(
            {
                "name": f"spent_{amount}_365d",
                "rule": {
                    "events": {
                        "type": "purchase",
                        "within": "365d",
                        "sum": {"field": "total", "op": "gte", "value": amount},
                    }
                },
            }
        )
    for w, n in (("30d", 3), ("90d", 5), ("180d", 10), ("365d", 20)):
        out.append(
            {
                "name": f"frequent_viewers_{w}",
                "rule": {"events": {"type": "product_view", "within": w, "at_least": n}},
            }
        )
    for w in ("30d", "90d"):
        out.append(
            {
                "name": f"email_clickers_{w}",
                "rule": {
                    "all": [
                        {"events": {"type": "click", "within": w}},
                        {"attribute": "consent_email", "op": "eq", "value": True},
                    ]
                },
            }
        )
        out.append(
            {
                "name": f"lapsed_web_buyers_{w}",
                "rule": {
                    "all": [
                        {
                            "events": {
                                "type": "purchase",
                                "where": [{"field": "channel", "op": "eq", "value": "online"}],
                            }
                        },
                        {"events": {"type": "purchase", "within": w, "absent": True}},
                    ]
                },
            }
        )
    out.append(
        {
            "name": "chicago_loyal_buyers",
            "rule": {
                "all": [
                    {"attribute": "city", "op": "eq", "value": "chicago", "case_insensitive": True},
                    {"attribute": "tier", "op": "exists"},
                    {"events": {"type": "purchase", "between": ["180d", "30d"]}},
                ]
            },
        }
    )
    out.append(
        {
            "name": "big_online_orders_90d",
            "rule": {
                "events": {
                    "type": "purchase",
                    "within": "90d",
                    "max": {"field": "amount", "op": "gte", "value": 200},
                }
            },
        }
    )
    out.append(
        {
            "name": "seniors_reachable_sms",
            "rule": {
                "all": [
                    {"attribute": "birth_date", "fn": "age", "op": "gte", "value": 65},
                    {"attribute": "consent_sms", "op": "eq", "value": True},
                    {"attribute": "phone", "op": "exists"},
                ]
            },
        }
    )
    out.append(
        {
            "name": "high_points_no_store_visit_90d",
            "rule": {
                "all": [
                    {"attribute": "points", "op": "gte", "value": 10000},
                    {
                        "events": {
                            "type": "purchase",
                            "where": [{"field": "channel", "op": "eq", "value": "offline"}],
                            "within": "90d",
                            "absent": True,
                        }
                    },
                ]
            },
        }
    )
    return [parse(d) for d in out]


def _prepare(ws: Workspace) -> None:
    """Identity and profiles built with the current code (event history with fields)."""
    have = ws.lake.exists(ws.lake.path("profiles", "events"))
    if have and "channel" in ws.profiles.events_table().schema.names:
        return
    ws.identity.build(full=True)
    ws.profiles.build()


def run(persons: int, seed: int = 42, reps: int = 3, baseline: bool = True) -> Report:
    """The job, counts and estimates, and the pandas baseline."""
    path = ingested_workspace(persons, seed)
    ws = Workspace.open(path)
    _prepare(ws)
    defs = [*load_folder(ROOT / "segments"), *variations()]
    assert len(defs) == 50, len(defs)
    for name in reversed(dependency_order(ws.segments.definitions())):  # users first
        ws.segments.remove(name)
    ws.segments.add(defs)
    n_events = ws.profiles.events_table().count_rows()
    n_profiles = ws.profiles.table().count_rows()
    rep = Report(
        "segments",
        {"persons": persons, "profiles": n_profiles, "events": n_events, "segments": len(defs)},
    )
    ws.close()

    # the job, as a user runs it: a fresh workspace object each time (nothing cached)
    job_times, runs = [], []
    for i in range(reps):
        gc.collect()
        ws = Workspace.open(path)
        t = time.perf_counter()
        r = ws.segments.run(AS_OF + dt.timedelta(hours=i), force=True)
        job_times.append(time.perf_counter() - t)
        runs.append(r)
        ws.close()
    job = statistics.median(job_times)
    last = runs[-1]
    rep.add(
        step=f"batch segment job: {len(defs)} segments (read, evaluate, statuses, write)",
        seconds=round(job, 3),
        detail={"runs_s": [round(x, 3) for x in job_times], "timings": last.timings},
    )
    members_total = sum(x.size for x in last.results)
    log.info("job: %.2fs median, %s memberships", job, members_total)

    # sizing: exact count and estimate for single segments (after the one-off preparation)
    ws = Workspace.open(path)
    t = time.perf_counter()
    ws.segments._prepare()
    prep = time.perf_counter() - t
    typical = [d.name for d in defs[:18]]
    counts, ests = [], []
    for _ in range(3):
        for name in typical:
            d = ws.segments.get(name)
            t = time.perf_counter()
            ws.segments.count(d, AS_OF)
            counts.append(time.perf_counter() - t)
            t = time.perf_counter()
            ws.segments.estimate(d, AS_OF)
            ests.append(time.perf_counter() - t)
    covered = 0
    for name in typical:
        d = ws.segments.get(name)
        e = ws.segments.estimate(d, AS_OF)
        covered += e.low <= ws.segments.count(d, AS_OF) <= e.high
    rep.add(step="sizing preparation (events + profiles in memory, sample)", seconds=round(prep, 3))
    rep.add(
        step="exact count, one segment (median of 54)",
        seconds=round(statistics.median(counts), 4),
        detail={"p90_s": round(sorted(counts)[int(len(counts) * 0.9)], 4)},
    )
    rep.add(
        step="estimate, one segment (median of 54)",
        seconds=round(statistics.median(ests), 4),
        detail={
            "p90_s": round(sorted(ests)[int(len(ests) * 0.9)], 4),
            "interval_contains_exact": f"{covered}/{len(typical)}",
            "sample_profiles": ws.settings.estimate_sample_size,
        },
    )
    ws.close()

    if baseline:
        from workbench.segments.reference import evaluate

        gc.collect()
        ws = Workspace.open(path)
        t = time.perf_counter()
        profiles = ws.profiles.table().to_table().to_pandas()
        ev_cols = [
            "profile_id", "dataset", "channel", "timestamp", "event_type",
            "store_id", "total", "items", "amount",
        ]  # fmt: skip
        events = ws.profiles.events_table().to_table(columns=ev_cols).to_pandas()
        read = time.perf_counter() - t
        known = {d.name: d for d in defs}
        t = time.perf_counter()
        got = evaluate(known, [d.name for d in defs], profiles, events, last.as_of)
        evaluate_s = time.perf_counter() - t
        total = read + evaluate_s
        sizes = {x.segment: x.size for x in last.results}
        mismatched = [n for n in sizes if len(got[n]) != sizes[n]]
        rep.add(
            step="baseline: pandas, one mask + groupby per segment (read + evaluate)",
            seconds=round(total, 3),
            detail={"read_s": round(read, 3), "evaluate_s": round(evaluate_s, 3)},
        )
        rep.add(step="speed-up of the job over pandas", x=round(total / job, 1))
        rep.add(
            step="segments whose size differs from pandas", count=len(mismatched), detail=mismatched
        )
        ws.close()
    rep.add(step="peak memory", mb=round(peak_rss_mb()))
    return rep


__all__ = ["run", "variations"]
