"""Job notebooks executed by papermill (real kernels), the run history, the schedule."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import time
from pathlib import Path

import nbformat
import pytest

from tests.test_segments import _data
from workbench.errors import ValidationError
from workbench.jobs import JobFailedError, JobLockedError
from workbench.jobs.runner import JOBS, validate_params
from workbench.jobs.schedule import ScheduleConfig, Scheduler
from workbench.segments import attr, events, segment

pytestmark = pytest.mark.slow


def _utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture
def jws(tmp_path):  # type: ignore[no-untyped-def]
    """The hand-made brand, ingested, with two segments and two local destinations."""
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path / "ws")
    register(ws)
    for name, df in _data().items():
        ws.ingest(name, df)
    ws.segments.add(
        [
            segment("gold_or_platinum", attr("tier").isin(["gold", "platinum"])),
            segment("viewers_3d", events("page_view").within("3d")),
        ]
    )
    ws.activation.add(
        {
            "name": "drop", "type": "file", "connection": {"url": str(tmp_path / "out")},
            "segments": ["gold_or_platinum", "viewers_3d"], "consent": "none",
            "schedule": {"daily_at": "07:00"},
        }
    )  # fmt: skip
    yield ws
    ws.close()


def test_daily_segmentation_then_export_notebooks(jws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = jws.jobs.run("daily_segmentation", {"as_of": "2026-12-01T00:00Z"})
    assert run.status == "success" and Path(run.output).exists()
    nb = nbformat.read(run.output, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "2026-12-01T00:00:00+00:00" in injected[0].source
    text = json.dumps(nb)
    assert "gold_or_platinum" in text and "realized" in text  # the summary table
    assert "application/vnd.plotly.v1+json" in text  # the plot
    assert jws.segments.runs(1)[0].as_of == _utc("2026-12-01T00:00Z")

    exp = jws.jobs.run(
        "export", {"destination": "drop", "as_of": "2026-12-01T06:00Z", "mode": "incremental"}
    )
    assert exp.status == "success"
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "drop_gold_or_platinum_20261201_060000.csv" in files
    assert [r.job for r in jws.jobs.list()] == ["export", "daily_segmentation"]
    assert jws.jobs.get(exp.id).parameters["destination"] == "drop"


def test_ingest_notebook_skips_content_already_loaded(jws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    drop = tmp_path / "drop"
    drop.mkdir()
    _data()["crm_customers"].to_csv(drop / "crm.csv", index=False)
    (drop / "notes.txt").write_text("ignored")
    first = jws.jobs.run("ingest", {"dataset": "crm_customers", "drop_folder": str(drop)})
    assert first.status == "success"
    second = jws.jobs.run("ingest", {"dataset": "crm_customers", "drop_folder": str(drop)})
    text = json.dumps(nbformat.read(second.output, as_version=4))
    assert "skipped" in text  # the same content is never loaded twice
    assert [b.source.endswith("crm.csv") for b in jws.batches("crm_customers")].count(True) == 1


def test_a_failing_job_is_recorded_with_its_notebook_and_error(jws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    jws.activation.add(
        {
            "name": "broken", "type": "file", "segments": ["gold_or_platinum"], "consent": "none",
            "connection": {"url": "sftp://nobody@127.0.0.1:1/nowhere", "key_file": str(tmp_path / "no_key")},
        }
    )  # fmt: skip
    jws.identity.build()
    jws.profiles.build()
    jws.segments.run("2026-12-01T00:00Z")
    with pytest.raises(JobFailedError) as e:
        jws.jobs.run(
            "export",
            {"destination": "broken", "as_of": "2026-12-01T06:00Z"},
            retries=1,
            backoff_s=0.01,
        )
    run = e.value.run
    assert run.status == "failed" and run.attempts == 2
    assert run.failed_cell is not None and run.error
    nb = nbformat.read(run.output, as_version=4)
    # papermill puts the error at the top of the kept notebook
    assert (
        "papermill-error-cell-tag" in json.dumps(nb.cells[0].metadata)
        or "An Exception was encountered" in nb.cells[0].source
    )
    assert jws.jobs.get(run.id).error == run.error


def test_parameters_are_checked_before_any_kernel_starts() -> None:
    spec = JOBS["export"]
    with pytest.raises(ValidationError) as e:
        validate_params(
            spec, {"workspace": "/x", "as_of": "yesterday", "colour": "red", "api_token": "t"}
        )
    paths = {p.path: p.message for p in e.value.problems}
    assert "is not an ISO date/time" in paths["as_of"]
    assert paths["colour"].startswith("unknown parameter")
    assert "secrets are never job parameters" in paths["api_token"]
    assert paths["destination"] == "required"
    ok = validate_params(
        JOBS["daily_segmentation"],
        {"workspace": "/x", "as_of": "2026-12-01T06:00Z", "segments": "a, b", "rebuild": "no"},
    )
    assert (
        ok["as_of"] == "2026-12-01T06:00:00+00:00"
        and ok["segments"] == ["a", "b"]
        and ok["rebuild"] is False
    )


def _hold_lock(path: str, slot: str, ready: mp.Event, release: mp.Event) -> None:  # type: ignore[valid-type]
    from workbench import Workspace

    ws = Workspace.open(path)
    with ws.jobs._lock("daily_segmentation", slot):
        ready.set()
        release.wait(20)


def test_the_same_job_and_slot_never_run_twice_at_once(jws) -> None:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(jws.path), "2026-12-01T06:00:00Z", ready, release))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(JobLockedError, match="already running"):
            jws.jobs.run(
                "daily_segmentation", {"as_of": "2026-12-01T06:00Z"}, slot="2026-12-01T06:00:00Z"
            )
    finally:
        release.set()
        p.join(30)


# ---------------------------------------------------------------------- the schedule
def test_next_runs_put_exports_before_their_delivery(jws) -> None:  # type: ignore[no-untyped-def]
    sch = Scheduler(
        jws,
        ScheduleConfig.from_dict(
            {"segmentation": {"cron": "0 6 * * *"}, "exports": {"lead_minutes": 15}}
        ),
    )
    got = [(s.at.isoformat(), s.job, s.key) for s in sch.next_runs(_utc("2026-12-01T00:00Z"), 30)]
    assert got == [
        ("2026-12-01T06:00:00+00:00", "daily_segmentation", "2026-12-01T06:00:00Z"),
        ("2026-12-01T06:45:00+00:00", "export", "drop@2026-12-01T07:00:00Z"),
        ("2026-12-02T06:00:00+00:00", "daily_segmentation", "2026-12-02T06:00:00Z"),
    ]
    with pytest.raises(ValidationError, match=r"segmentation\.cron"):
        ScheduleConfig.from_dict({"segmentation": {"cron": "every day"}})


def test_schedule_runs_each_slot_once_waits_for_segmentation_and_catches_up(jws) -> None:  # type: ignore[no-untyped-def]
    cfg = {
        "segmentation": {"cron": "0 6 * * *"},
        "exports": {"lead_minutes": 15},
        "catch_up": "once",
    }
    # "early" delivers at 05:00, before the day's segmentation (06:00): it waits for it
    jws.activation.add(
        {
            "name": "early", "type": "file", "connection": {"url": str(jws.path / "early")},
            "segments": ["gold_or_platinum"], "consent": "none", "schedule": {"daily_at": "05:00"},
        }
    )  # fmt: skip
    sch = Scheduler(jws, ScheduleConfig.from_dict(cfg))
    # first start at 12-01 05:00: catches up yesterday's segmentation and its export
    out = sch.run_due(_utc("2026-12-01T05:00Z"))
    assert [(s.job, s.key, o.split(" ")[0]) for s, o in out] == [
        ("daily_segmentation", "2026-11-30T06:00:00Z", "success"),
        ("export", "drop@2026-11-30T07:00:00Z", "success"),
        ("export", "early@2026-12-01T05:00:00Z", "waiting:"),
    ]
    # 07:00: the day's segmentation, then both of the day's exports (the waiting one too)
    out = sch.run_due(_utc("2026-12-01T07:00Z"))
    assert [(s.job, s.key, o.split(" ")[0]) for s, o in out] == [
        ("daily_segmentation", "2026-12-01T06:00:00Z", "success"),
        ("export", "early@2026-12-01T05:00:00Z", "success"),
        ("export", "drop@2026-12-01T07:00:00Z", "success"),
    ]
    # a restarted scheduler (a new object, same catalog) never runs a slot twice
    again = Scheduler(jws, ScheduleConfig.from_dict(cfg))
    assert again.run_due(_utc("2026-12-01T07:30Z")) == []
    # three days later, catch-up "once" runs only the latest missed slot of each job
    later = Scheduler(jws, ScheduleConfig.from_dict({**cfg, "window_hours": 72}))
    out = later.run_due(_utc("2026-12-04T07:00Z"))
    assert [(s.job, s.key) for s, _ in out] == [
        ("daily_segmentation", "2026-12-04T06:00:00Z"),
        ("export", "early@2026-12-04T05:00:00Z"),
        ("export", "drop@2026-12-04T07:00:00Z"),
    ]
    # "skip": missed slots are not run at all
    skip = Scheduler(jws, ScheduleConfig.from_dict({**cfg, "catch_up": "skip"}))
    assert skip.run_due(_utc("2026-12-05T12:00Z")) == []
    assert len(jws.segments.runs()) == 3
    assert len(jws.activation.status("drop")) == 2 * 3  # two segments, three deliveries


def test_loop_runs_due_slots(jws) -> None:  # type: ignore[no-untyped-def]
    cfg = ScheduleConfig.from_dict(
        {"segmentation": {"cron": "* * * * *"}, "exports": {"destinations": []}, "catch_up": "once"}
    )
    sch = Scheduler(jws, cfg)
    t = time.perf_counter()
    sch.loop(poll_s=0.1, max_iterations=1)
    assert time.perf_counter() - t < 60
    assert [r.job for r in jws.jobs.list()] == ["daily_segmentation"]


def test_plain_papermill_runs_a_job_notebook(jws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess
    import sys

    exe = shutil.which("papermill", path=str(Path(sys.executable).parent)) or "papermill"
    nb = Path(__file__).parents[1] / "notebooks" / "jobs" / "daily_segmentation.ipynb"
    out = tmp_path / "out.ipynb"
    r = subprocess.run(
        [exe, str(nb), str(out), "-p", "workspace", str(jws.path), "-p", "as_of", "2026-12-01T06:00:00+00:00"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "gold_or_platinum" in out.read_text()
    assert jws.segments.runs(1)[0].as_of == _utc("2026-12-01T06:00Z")
