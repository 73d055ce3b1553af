"""The schedule: the daily segmentation job, and each destination's export just before its
delivery, with the rule that an export waits for (and requires) the day's successful
segmentation run.

.. code-block:: yaml

    # schedule.yaml
    segmentation: {cron: "0 6 * * *"}   # UTC
    exports: {lead_minutes: 15, destinations: all}
    catch_up: once                      # once | skip
    window_hours: 24

Slots come from cron expressions (croniter): the segmentation's own, and for each
destination its delivery time (``daily_at: HH:MM`` or ``every_hours: N``) minus the lead.
A slot runs at most once: the catalog records each job run with its slot, and a lock keeps
two processes from running the same slot. On start, missed slots of the last
``window_hours`` are caught up by policy: ``once`` runs the latest missed slot of each job
(and destination), ``skip`` runs none of them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from croniter import croniter
from sqlalchemy import select

from workbench.catalog.models import JobRunRow
from workbench.errors import Problem, ValidationError, WorkbenchError
from workbench.jobs.runner import JobLockedError

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleConfig:
    """A parsed ``schedule.yaml``."""

    segmentation_cron: str = "0 6 * * *"
    lead_minutes: int = 15
    destinations: tuple[str, ...] | None = None  # None = all
    catch_up: str = "once"
    window_hours: int = 24

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> ScheduleConfig:
        """Parse and check; every problem with its path."""
        what = f"schedule {source}".strip()
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(what, [Problem("", "a schedule must be a mapping")])
        problems: list[Problem] = []
        for k in sorted(
            set(map(str, data))
            - {"segmentation", "exports", "catch_up", "window_hours", "workspace"}
        ):
            problems.append(Problem(k, "unknown key"))
        seg = data.get("segmentation") or {}
        cron = seg.get("cron", "0 6 * * *") if isinstance(seg, Mapping) else None
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            problems.append(Problem("segmentation.cron", f"{cron!r} is not a cron expression"))
            cron = "0 6 * * *"
        ex = data.get("exports") or {}
        lead = ex.get("lead_minutes", 15) if isinstance(ex, Mapping) else 15
        if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead <= 720:
            problems.append(Problem("exports.lead_minutes", "a whole number of minutes, 0 to 720"))
            lead = 15
        dests = ex.get("destinations", "all") if isinstance(ex, Mapping) else "all"
        if dests != "all" and not (
            isinstance(dests, list) and all(isinstance(x, str) for x in dests)
        ):
            problems.append(Problem("exports.destinations", "all, or a list of destination names"))
            dests = "all"
        catch = data.get("catch_up", "once")
        if catch not in ("once", "skip"):
            problems.append(Problem("catch_up", "once or skip"))
            catch = "once"
        window = data.get("window_hours", 24)
        if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 24 * 14:
            problems.append(Problem("window_hours", "a whole number of hours, 1 to 336"))
            window = 24
        if problems:
            raise ValidationError(what, problems)
        return cls(cron, lead, None if dests == "all" else tuple(dests), catch, window)

    @classmethod
    def load(cls, path: str | Path) -> ScheduleConfig:
        """From a YAML file."""
        p = Path(path)
        return cls.from_dict(yaml.safe_load(p.read_text()), str(p))


@dataclass(frozen=True)
class Slot:
    """One scheduled run: when, which job, its parameters, and its slot key."""

    at: dt.datetime
    job: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    destination: str | None = None


@dataclass(frozen=True)
class Due:
    """A slot that should run now, or why it waits."""

    slot: Slot
    waiting: str | None = None


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cron_between(expr: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Cron times in (start, end]."""
    it = croniter(expr, start)
    out = []
    while True:
        t = it.get_next(dt.datetime)
        if t > end:
            return out
        out.append(t)


def _delivery_cron(d: Any) -> str | None:
    if d.schedule.daily_at:
        hh, mm = d.schedule.daily_at.split(":")
        return f"{int(mm)} {int(hh)} * * *"
    if d.schedule.every_hours:
        return f"0 */{d.schedule.every_hours} * * *"
    return None


class Scheduler:
    """Computes and runs the slots of a workspace's schedule."""

    def __init__(self, ws: Workspace, config: ScheduleConfig | None = None) -> None:
        self.ws = ws
        self.config = config or ScheduleConfig()

    def _destinations(self) -> list[Any]:
        out = []
        for d in self.ws.activation.list():
            if self.config.destinations is not None and d.name not in self.config.destinations:
                continue
            if _delivery_cron(d) is not None:
                out.append(d)
        return out

    def slots(self, start: dt.datetime, end: dt.datetime) -> list[Slot]:
        """Every slot with a run time in (start, end], in time order (segmentation first on ties)."""
        out = [
            Slot(t, "daily_segmentation", _iso(t), {"as_of": _iso(t)})
            for t in _cron_between(self.config.segmentation_cron, start, end)
        ]
        lead = dt.timedelta(minutes=self.config.lead_minutes)
        for d in self._destinations():
            expr = _delivery_cron(d)
            assert expr is not None
            for delivery in _cron_between(expr, start + lead, end + lead):
                out.append(
                    Slot(
                        delivery - lead,
                        "export",
                        f"{d.name}@{_iso(delivery)}",
                        {"destination": d.name, "as_of": _iso(delivery)},
                        d.name,
                    )
                )
        return sorted(out, key=lambda s: (s.at, s.job != "daily_segmentation", s.key))

    def _succeeded(self, jobs: set[str]) -> set[tuple[str, str]]:
        """(job, slot) of every successful run of these jobs."""
        if not jobs:
            return set()
        with self.ws.catalog.session() as s:
            rows = s.execute(
                select(JobRunRow.job, JobRunRow.slot).where(
                    JobRunRow.job.in_(sorted(jobs)), JobRunRow.status == "success"
                )
            )
            return {(j, k) for j, k in rows}

    def _segmentation_done(self, day: dt.date) -> bool:
        prefix = day.isoformat()
        with self.ws.catalog.session() as s:
            row = s.scalars(
                select(JobRunRow.id).where(
                    JobRunRow.job == "daily_segmentation",
                    JobRunRow.status == "success",
                    JobRunRow.slot.startswith(prefix),
                )
            ).first()
        return row is not None

    def due(self, now: dt.datetime, since: dt.datetime | None = None) -> list[Due]:
        """Slots to run at ``now``: not done yet, in the catch-up window (``since`` or
        ``window_hours`` back), filtered by the catch-up policy; exports whose day has no
        successful segmentation yet are returned as waiting."""
        start = since or now - dt.timedelta(hours=self.config.window_hours)
        slots = self.slots(start, now)
        done = self._succeeded({s.job for s in slots})
        # a slot older than one already done for the same job (and destination) is never
        # caught up: statuses and deliveries move forward in time
        last_done: dict[tuple[str, str | None], dt.datetime] = {}
        for s in slots:
            if (s.job, s.key) in done:
                last_done[(s.job, s.destination)] = s.at
        pending = [
            s
            for s in slots
            if (s.job, s.key) not in done and s.at > last_done.get((s.job, s.destination), start)
        ]
        if since is None and self.config.catch_up == "skip":
            # missed slots before the start are skipped: only those due in the last minute
            pending = [s for s in pending if s.at > now - dt.timedelta(minutes=1)]
        elif since is None:  # once: the latest missed slot of each job / destination
            latest: dict[tuple[str, str | None], Slot] = {}
            for s in pending:
                latest[(s.job, s.destination)] = s
            pending = sorted(latest.values(), key=lambda s: (s.at, s.job != "daily_segmentation"))
        out = []
        for s in pending:
            waiting = None
            if s.job == "export":
                delivery = dt.datetime.fromisoformat(s.params["as_of"].replace("Z", "+00:00"))
                if not self._segmentation_done(delivery.date()):
                    waiting = f"waits for the successful daily segmentation of {delivery.date()}"
            out.append(Due(s, waiting))
        return out

    def next_runs(self, now: dt.datetime, hours: int = 24) -> list[Slot]:
        """The slots of the next ``hours``."""
        return self.slots(now, now + dt.timedelta(hours=hours))

    def run_due(self, now: dt.datetime, since: dt.datetime | None = None) -> list[tuple[Slot, str]]:
        """Run what is due at ``now`` (segmentation first, so the day's exports can follow);
        returns (slot, outcome) pairs. A failing job is recorded and does not stop the rest."""
        done: list[tuple[Slot, str]] = []
        for _ in range(2):  # a second pass runs exports unblocked by this pass's segmentation
            progressed = False
            for due in self.due(now, since):
                if any(due.slot.key == s.key and due.slot.job == s.job for s, _ in done):
                    continue
                if due.waiting:
                    continue
                try:
                    run = self.ws.jobs.run(due.slot.job, due.slot.params, slot=due.slot.key)
                    outcome = f"{run.status} (run {run.id}: {run.output})"
                except JobLockedError as e:
                    outcome = f"skipped: {e}"
                except WorkbenchError as e:
                    outcome = f"failed: {e}"
                log.info("schedule: %s %s -> %s", due.slot.job, due.slot.key, outcome)
                done.append((due.slot, outcome))
                progressed = True
            if not progressed:
                break
        for due in self.due(now, since):
            if due.waiting and not any(due.slot.key == s.key for s, _ in done):
                done.append((due.slot, f"waiting: {due.waiting}"))
        return done

    def loop(self, poll_s: float = 30.0, *, max_iterations: int | None = None) -> None:
        """Run due slots forever (catching up on start by the policy)."""
        since: dt.datetime | None = None
        n = 0
        while max_iterations is None or n < max_iterations:
            now = dt.datetime.now(dt.UTC)
            results = self.run_due(now, since)
            since = now - dt.timedelta(seconds=poll_s * 2)
            # exports still waiting for their day's segmentation stay in the window
            waiting = [s.at for s, outcome in results if outcome.startswith("waiting")]
            if waiting:
                since = min(since, min(waiting) - dt.timedelta(seconds=1))
            n += 1
            if max_iterations is None or n < max_iterations:
                time.sleep(poll_s)


__all__ = ["Due", "ScheduleConfig", "Scheduler", "Slot"]
