"""The streaming engine: accepted items in, profile state and streaming memberships out.

    engine = StreamEngine(ws, clock=WallClock())
    engine.start()
    seqs = engine.accept("web_events", rows, raw_items)   # durable when it returns
    engine.personalization("ecid:123")
    engine.stop()

One processing thread applies accepted items in log order: identities resolved (and the
graph extended, :mod:`workbench.streaming.state`), the record merged into the profile or
the event kept, every streaming segment re-evaluated for that profile only (compiled
per-profile predicates, :mod:`workbench.segments.single`), and each membership change
(``realized`` / ``exited``) written to the durable change log with a monotonic sequence
number, then handed to subscribers (server-sent events, streaming destinations).

Time-driven changes (an event leaving a 24-hour window) are scheduled per profile at the
instant :func:`workbench.segments.single.next_change` gives and applied when the clock
reaches it. The clock is explicit: :class:`WallClock` in production, :class:`EventClock`
(the latest event time seen) to replay history, :class:`ManualClock` in tests.

Durability and restart: accepted items are in the input log (synced before 202); changes
are in the change log (synced before they are published). At start the engine loads the
lake (identity graph, profiles, recent events, the last segment job's memberships as the
baseline of the streaming memberships), replays the change log onto the baseline, replays
the input log onto the state without emitting, then evaluates every profile that may have
changed: what it emits then is new (time passed, or items accepted just before a crash),
never a change already published.

Streamed items also land in the lake: every ``commit_interval`` seconds the items accepted
since the last commit are appended to their datasets as one ingestion batch per dataset
(the batch's source names the range of the log it holds, so a crash between the commit
and the checkpoint does not write them twice), and the changes to the Delta table
``segments/stream_changes``.
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from workbench.errors import NotFoundError, WorkbenchError
from workbench.schema.model import SchemaClass
from workbench.segments.classify import STREAMING_WINDOW, classify
from workbench.segments.model import Attr, Events, InSegment, SegmentDefinition, Sequence, walk
from workbench.segments.service import to_utc
from workbench.segments.single import compile_predicate, next_change
from workbench.streaming.log import DurableLog
from workbench.streaming.state import PERSONALIZATION_FORBIDDEN, PROVISIONAL_BASE, OnlineState

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Ingestion batches of streamed items have the source ``stream:<dataset>@<first>-<last>``.
STREAM_SOURCE = "stream:"
#: Delta table of the membership changes made by the streaming service.
STREAM_CHANGES = ("segments", "stream_changes")
CHANGE_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("segment", pa.string()),
        ("profile_id", pa.int64()),
        ("status", pa.string()),
        ("at", pa.timestamp("us", "UTC")),
        ("cause", pa.string()),
    ]
)


class Overloaded(WorkbenchError):
    """The engine's queue is full: the caller should retry later (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the streaming engine is overloaded; retry after {retry_after:g} s")
        self.retry_after = retry_after


# ---------------------------------------------------------------------------- clocks
class WallClock:
    """The real time, UTC."""

    def now(self) -> dt.datetime:
        """Now."""
        return dt.datetime.now(dt.UTC)

    def observe(self, t: dt.datetime) -> None:
        """Events do not move the wall clock."""


class EventClock:
    """The latest event time seen (never before ``start``): replays history in time order."""

    def __init__(self, start: Any) -> None:
        self._t = to_utc(start)

    def now(self) -> dt.datetime:
        """The latest event time seen."""
        return self._t

    def observe(self, t: dt.datetime) -> None:
        """Move forward to an event's time."""
        if t > self._t:
            self._t = t

    def set(self, t: Any) -> None:
        """Move forward to ``t`` (never back)."""
        self.observe(to_utc(t))


class ManualClock(EventClock):
    """A clock only :meth:`set` moves (tests)."""

    def observe(self, t: dt.datetime) -> None:
        """Events do not move a manual clock."""

    def set(self, t: Any) -> None:
        """Move to ``t`` (never back)."""
        t = to_utc(t)
        if t > self._t:
            self._t = t


Clock = WallClock | EventClock


@dataclass(frozen=True)
class Change:
    """One membership change made by the streaming engine."""

    seq: int
    segment: str
    profile_id: int
    status: str
    at: dt.datetime
    cause: str
    #: monotonic time the item causing it was accepted (None for time-driven changes)
    accepted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "seq": self.seq,
            "segment": self.segment,
            "profile_id": self.profile_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "cause": self.cause,
        }


@dataclass
class _Item:
    seq: int
    dataset: str
    row: dict[str, Any]
    accepted: float


def _lookback(defs: Iterable[SegmentDefinition]) -> dt.timedelta:
    """How long events matter to the streaming segments (their longest window, <= 24 h)."""
    longest = dt.timedelta(0)
    for d in defs:
        for c in walk(d.rule):
            if isinstance(c, Events | Sequence):
                n = c.window.length()
                if n is not None:
                    longest = max(longest, n)
    return min(longest, STREAMING_WINDOW) + dt.timedelta(hours=1)


class StreamEngine:
    """Streaming ingestion state and streaming segment evaluation (see the module doc).

    Args:
        ws: The workspace.
        clock: Where "now" comes from (default :class:`WallClock`).
        data_dir: The durable logs and checkpoints (default ``<workspace>/stream``).
        max_queue: Items waiting for the processing thread before :class:`Overloaded`.
        commit_interval: Seconds between commits of streamed items to the lake (0: never).
        sync: ``fsync`` the logs (leave on; off only for measuring its cost).
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Clock | None = None,
        data_dir: str | Path | None = None,
        max_queue: int = 20_000,
        commit_interval: float = 5.0,
        sync: bool = True,
    ) -> None:
        self.ws = ws
        self.clock: Clock = clock or WallClock()
        self.dir = Path(data_dir) if data_dir else ws.path / "stream"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_queue = max_queue
        self.commit_interval = commit_interval
        self.definitions = ws.segments.definitions()
        self.streaming = sorted(
            n for n, d in self.definitions.items() if classify(d, self.definitions).is_streaming
        )
        self._preds = {
            n: compile_predicate(self.definitions[n], self.definitions) for n in self.streaming
        }
        self.lookback = _lookback(self.definitions[n] for n in self.streaming)
        #: the attributes the streaming segments read (only these are fetched to evaluate)
        self._eval_attrs = sorted(_attributes_used(self.streaming, self.definitions))
        self.input_log = DurableLog(self.dir / "log", sync=sync)
        self.change_log = DurableLog(self.dir / "changes", sync=sync)
        self._lock = threading.RLock()
        self._lake_lock = threading.Lock()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._timers: list[tuple[dt.datetime, int]] = []
        self._scheduled: dict[int, dt.datetime] = {}
        self._listeners: list[Callable[[list[Change]], None]] = []
        self._pending_lake: list[tuple[int, str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.counters = {"accepted": 0, "processed": 0, "changes": 0}
        self.started = False
        t0 = time.perf_counter()
        self.state = OnlineState(ws, self.clock.now(), self.lookback)
        self.members: dict[str, set[int]] = {}
        self._recover()
        # millions of long-lived objects (the index, the profiles): keep them out of the
        # cyclic garbage collector's full passes, which would otherwise pause requests
        gc.collect()
        gc.freeze()
        log.info(
            "streaming engine ready in %.1fs: %d streaming segments, %d changes so far",
            time.perf_counter() - t0,
            len(self.streaming),
            self.change_log.last_seq,
        )

    # ------------------------------------------------------------------ recovery
    def _checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.json"

    def _checkpoint(self) -> dict[str, Any]:
        p = self._checkpoint_path()
        return json.loads(p.read_text()) if p.exists() else {"lake_seq": 0, "changes_seq": 0}

    def _save_checkpoint(self, **kw: Any) -> None:
        cp = {**self._checkpoint(), **kw}
        tmp = self._checkpoint_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(cp))
        os.replace(tmp, self._checkpoint_path())

    def _baseline(self) -> dict[str, set[int]]:
        """The streaming memberships the service started from (the segment job's), kept."""
        p = self.dir / "baseline.parquet"
        import pyarrow.parquet as pq

        have: dict[str, set[int]] = {}
        if p.exists():
            t = pq.read_table(p)
            for s in set(t.column("segment").to_pylist()):
                have[s] = set()
            g = t.group_by("segment").aggregate([("profile_id", "list")])
            for s, ids in zip(
                g.column("segment").to_pylist(),
                g.column("profile_id_list").to_pylist(),
                strict=True,
            ):
                have[s] = {i for i in ids if i is not None}
        missing = [s for s in self.streaming if s not in have]
        if missing:
            have.update(self.state.batch_member_sets(missing))
            rows = [(s, pid) for s in have for pid in (have[s] or [None])]
            t = pa.table(
                {
                    "segment": [r[0] for r in rows],
                    "profile_id": pa.array([r[1] for r in rows], pa.int64()),
                }
            )
            tmp = p.with_suffix(".tmp")
            pq.write_table(t, tmp)
            os.replace(tmp, p)
        return have

    def _recover(self) -> None:
        base = self._baseline()
        self.members = {s: set(base.get(s, set())) for s in self.streaming}
        n_changes = 0
        for rec in self.change_log.read():
            m = self.members.get(rec["segment"])
            if m is None:
                continue
            if rec["status"] == "exited":
                m.discard(rec["profile_id"])
            else:
                m.add(rec["profile_id"])
            n_changes += 1
        lake_seq = self._lake_seq()
        dirty: set[int] = set()
        n_items = 0
        for dataset, recs in _runs(self.input_log.read()):
            rows = self._typed(dataset, [r["item"] for r in recs])
            for r, row in zip(recs, rows, strict=True):
                n_items += 1
                if row is None:
                    continue
                if r["seq"] > lake_seq:
                    self._pending_lake.append((r["seq"], dataset, r["item"]))
                if isinstance(row.get("timestamp"), dt.datetime) and self._is_event(dataset):
                    self.clock.observe(row["timestamp"])
                pid, retired = self._apply(dataset, row)
                dirty.update(retired)
                if pid is not None:
                    dirty.add(pid)
        self.state.prune(self.clock.now())
        # who may have changed: streamed profiles, profiles with recent events, members of
        # segments that depend on events (time may have passed since the baseline)
        dirty.update(self.state.events)
        for s in self.streaming:
            if _uses_events(self.definitions[s]):
                dirty.update(self.members[s])
        changes = self._evaluate_many(dirty, cause="recovery")
        self._publish(changes)
        log.info(
            "recovered: %d changes replayed, %d logged items replayed (%d not yet in the lake), "
            "%d profiles re-evaluated, %d new changes",
            n_changes,
            n_items,
            len(self._pending_lake),
            len(dirty),
            len(changes),
        )

    def _lake_seq(self) -> int:
        """The last input sequence number committed to the lake: the checkpoint, or the
        stream batches in the catalog (a crash between a commit and the checkpoint)."""
        seq = int(self._checkpoint().get("lake_seq", 0))
        for name in self.state.datasets:
            try:
                self.ws.ingest.reconcile(name)  # a commit whose batch was left 'loading'
            except NotFoundError:
                continue
            for b in self.ws.catalog.list_batches(name, status="success", limit=100):
                if b.source.startswith(f"{STREAM_SOURCE}{name}@"):
                    seq = max(seq, int(b.source.rsplit("-", 1)[1]))
                    break
        return seq

    def _typed(self, dataset: str, items: list[Any]) -> list[dict[str, Any] | None]:
        """Logged JSON items as typed rows (None for an item that no longer validates)."""
        from workbench.ingest.records import validate_items

        res = validate_items(self.ws, dataset, items)
        rows: list[dict[str, Any] | None] = [None] * len(items)
        for i, row in zip(res.accepted_index, res.table.to_pylist(), strict=True):
            rows[i] = row
        for e in res.errors:
            log.warning("logged item %s of %s no longer validates: %s", e.path, dataset, e.reason)
        return rows

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the processing thread (and the lake committer)."""
        if self.started:
            return
        self.started = True
        t = threading.Thread(target=self._run, name="stream-engine", daemon=True)
        t.start()
        self._threads.append(t)
        if self.commit_interval > 0:
            c = threading.Thread(target=self._committer, name="stream-lake", daemon=True)
            c.start()
            self._threads.append(c)

    def stop(self) -> None:
        """Process what was accepted, commit to the lake, stop."""
        if self.started:
            self._queue.put(None)
            self._stop.set()
            for t in self._threads:
                t.join(timeout=60)
            self.started = False
        try:
            self.commit()
        finally:
            self.input_log.close()
            self.change_log.close()
            gc.unfreeze()

    def subscribe(self, listener: Callable[[list[Change]], None]) -> None:
        """Call ``listener`` with each group of changes once they are durable."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ accepting
    def queue_depth(self) -> int:
        """Items accepted and not yet processed."""
        return self._queue.qsize()

    def submit(
        self, dataset: str, rows: list[dict[str, Any]], items: list[Any]
    ) -> Future[list[int]]:
        """Log validated items and queue them once durable; the future gives their sequence
        numbers when they are synced (answer 202 then).

        ``rows`` are the typed rows (:func:`workbench.ingest.records.validate_items`), ``items``
        the JSON items as received (what the log keeps). Raises :class:`Overloaded` when the
        queue is full, before anything is written.
        """
        if dataset not in self.state.datasets:
            raise NotFoundError(f"no dataset named {dataset!r}")
        depth = self._queue.qsize() + self.input_log.pending()
        if depth + len(rows) > self.max_queue:
            raise Overloaded(retry_after=max(1.0, round(depth / 2000, 1)))
        accepted = time.monotonic()
        fut = self.input_log.submit([{"dataset": dataset, "item": it} for it in items])

        def queued(f: Future[list[int]]) -> None:  # on the log's writer thread, in log order
            if f.exception() is not None:
                return
            seqs = f.result()
            with self._lake_lock:
                self.counters["accepted"] += len(rows)
                self._pending_lake.extend(
                    (s, dataset, it) for s, it in zip(seqs, items, strict=True)
                )
            for s, row in zip(seqs, rows, strict=True):
                self._queue.put(_Item(s, dataset, row, accepted))

        fut.add_done_callback(queued)
        return fut

    def accept(self, dataset: str, rows: list[dict[str, Any]], items: list[Any]) -> list[int]:
        """:meth:`submit` and wait until the items are durable."""
        return self.submit(dataset, rows, items).result(timeout=60)

    # ------------------------------------------------------------------ processing
    def _run(self) -> None:
        pruned = time.monotonic()
        while True:
            due = self._timers[0][0] if self._timers else None
            wait = 1.0
            if due is not None:
                wait = min(wait, max(0.0, (due - self.clock.now()).total_seconds()))
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = _TICK
            batch = [first]
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is None for b in batch)
            try:
                self._process([b for b in batch if isinstance(b, _Item)])
                if time.monotonic() - pruned > 60:  # events that no window can see any more
                    with self._lock:
                        self.state.prune(self.clock.now())
                    pruned = time.monotonic()
            except Exception:
                log.exception("streaming engine: processing failed")
            if stop:
                return

    def _process(self, items: list[_Item]) -> None:
        """Apply items, then evaluate each touched profile once (and the timers due). The
        lock is held per item and per profile, so readers never wait for a whole batch."""
        changes: list[Change] = []
        todo: dict[int, tuple[str, float | None]] = {}
        for it in items:
            with self._lock:
                if isinstance(it.row.get("timestamp"), dt.datetime) and self._is_event(it.dataset):
                    self.clock.observe(it.row["timestamp"])
                pid, retired = self._apply(it.dataset, it.row)
                for g in retired:
                    changes.extend(self._exit_all(g, f"merge:{it.seq}", it.accepted))
                    todo.pop(g, None)
                if pid is not None:  # the earliest item's accept time: latency is not flattered
                    todo.setdefault(pid, (str(it.seq), it.accepted))
        now = self.clock.now()
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                t, pid = heapq.heappop(self._timers)
                if self._scheduled.get(pid) == t:
                    del self._scheduled[pid]
                    todo.setdefault(self.state.resolve_id(pid), ("timer", None))
        for pid, (cause, acc) in todo.items():
            with self._lock:
                changes.extend(self._evaluate(pid, now, cause, acc))
        self._publish(changes)
        self.counters["processed"] += len(items)

    def _is_event(self, dataset: str) -> bool:
        p = self.state.datasets.get(dataset)
        return p is not None and p.cls is SchemaClass.EVENT

    def _apply(self, dataset: str, row: Mapping[str, Any]) -> tuple[int | None, list[int]]:
        plan = self.state.datasets[dataset]
        if not plan.profile_enabled:
            return None, []
        ids = self.state.row_identities(plan, row)
        pid, retired = self.state.attach(plan, ids)
        if pid is None:  # counted in state.stats.not_attributable
            return None, retired
        if plan.cls is SchemaClass.PROFILE:
            self.state.apply_record(pid, plan, row)
        elif isinstance(row.get("timestamp"), dt.datetime):
            self.state.add_event(pid, plan, row)
        return pid, retired

    def _evaluate(
        self, pid: int, now: dt.datetime, cause: str, accepted: float | None
    ) -> list[Change]:
        attrs = self.state.attributes(pid, self._eval_attrs)
        events = self.state.events.get(pid, [])
        out = []
        soonest: dt.datetime | None = None
        for s in self.streaming:
            is_member = self._preds[s](attrs, events, now)
            was = pid in self.members[s]
            if is_member != was:
                out.append(
                    Change(0, s, pid, "realized" if is_member else "exited", now, cause, accepted)
                )
            if events or _uses_events(self.definitions[s]):
                t = next_change(
                    self.definitions[s], self.definitions, events, now, attributes=attrs
                )
                if t is not None and (soonest is None or t < soonest):
                    soonest = t
        if soonest is not None and self._scheduled.get(pid) != soonest:
            self._scheduled[pid] = soonest
            heapq.heappush(self._timers, (soonest, pid))
        return out

    def _evaluate_many(self, pids: Iterable[int], cause: str) -> list[Change]:
        now = self.clock.now()
        with self._lock:
            out = []
            for pid in sorted(pids):
                if self.state.resolve_id(pid) != pid:
                    out.extend(self._exit_all(pid, cause, None))
                    continue
                out.extend(self._evaluate(pid, now, cause, None))
            return out

    def _exit_all(self, pid: int, cause: str, accepted: float | None) -> list[Change]:
        now = self.clock.now()
        return [
            Change(0, s, pid, "exited", now, cause, accepted)
            for s in self.streaming
            if pid in self.members[s]
        ]

    def tick(self) -> None:
        """Apply the time-driven changes due now (the processing thread does this by itself
        every second; a test with a :class:`ManualClock` calls it after moving the clock)."""
        self._process([])

    def _publish(self, changes: list[Change]) -> None:
        """Make changes durable (sequence numbers), apply them, then tell the listeners."""
        if not changes:
            return
        recs = [
            {
                "segment": c.segment,
                "profile_id": c.profile_id,
                "status": c.status,
                "at": c.at.isoformat(),
                "cause": c.cause,
            }
            for c in changes
        ]
        seqs = self.change_log.append(recs)
        done = []
        with self._lock:
            for c, s in zip(changes, seqs, strict=True):
                m = self.members[c.segment]
                if c.status == "exited":
                    m.discard(c.profile_id)
                else:
                    m.add(c.profile_id)
                done.append(Change(s, c.segment, c.profile_id, c.status, c.at, c.cause, c.accepted))
        self.counters["changes"] += len(done)
        for fn in list(self._listeners):
            try:
                fn(done)
            except Exception:
                log.exception("a membership listener failed")

    def changes_after(self, seq: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Logged changes with a sequence number above ``seq`` (for ``Last-Event-ID`` resume)."""
        out = []
        for rec in self.change_log.read(after=seq):
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ reading
    def lookup(self, identity: str) -> int | None:
        """The profile id of ``ns:value`` (normalized first), or None."""
        from workbench.identity.graph import parse_identity

        ns_name, raw = parse_identity(identity)
        ns = self.state.namespaces.get(ns_name)
        if ns is None:
            raise NotFoundError(
                f"unknown namespace {ns_name!r} (known: {', '.join(sorted(self.state.namespaces))})"
            )
        v = self.state.normalize(ns, raw)
        if v is None:
            return None
        with self._lock:
            return self.state.lookup(ns_name, v)

    def memberships(self, pid: int) -> dict[str, str]:
        """Current segment memberships of a profile: segment -> ``streaming`` / ``batch``."""
        with self._lock:
            out = {s: "batch" for s in self.state.batch_segments(pid) if s not in self._preds}
            for s in self.streaming:
                if pid in self.members[s]:
                    out[s] = "streaming"
            return dict(sorted(out.items()))

    def profile(self, identity: str, events: int = 20) -> dict[str, Any]:
        """The unified profile with streaming updates applied."""
        pid = self.lookup(identity)
        if pid is None:
            raise NotFoundError(f"no profile for {identity}")
        with self._lock:
            attrs = {k: v for k, v in self.state.attributes(pid).items() if v is not None}
            evs = list(self.state.events.get(pid, []))[-events:][::-1]
            return {
                "profile_id": pid,
                "provisional": pid >= PROVISIONAL_BASE,
                "attributes": attrs,
                "sources": self.state.sources(pid),
                "identities": [
                    {"namespace": n, "value": v} for n, v in self.state.identities_of(pid)
                ],
                "recent_events": evs,
                "segments": self.memberships(pid),
            }

    def personalization(self, identity: str) -> dict[str, Any]:
        """Memberships and the attributes allowed for on-site personalization."""
        pid = self.lookup(identity)
        if pid is None:
            return {"known": False, "segments": [], "attributes": {}}
        with self._lock:
            allowed = self.personalization_fields()
            attrs = self.state.attributes(pid, allowed)
            return {
                "known": True,
                "profile_id": pid,
                "segments": list(self.memberships(pid)),
                "attributes": {k: attrs[k] for k in allowed if attrs.get(k) is not None},
            }

    def personalization_fields(self) -> list[str]:
        """Profile attributes whose labels allow on-site personalization."""
        cached = getattr(self, "_pfields", None)
        if cached is not None:
            return cached
        labels: dict[str, set[str]] = {}
        for d in self.ws.catalog.list_datasets():
            sch = self.ws.catalog.get_schema(d.schema_name)
            if sch.cls is not SchemaClass.PROFILE:
                continue
            for f in sch.fields:
                labels.setdefault(f.name, set()).update(f.labels)
                if f.identity is not None:
                    labels[f.name].add("I1")
        out = [
            a
            for a in self.state.attr_names
            if not (labels.get(a, set()) & PERSONALIZATION_FORBIDDEN)
        ]
        self._pfields = out
        return out

    def count(self, segment: str) -> dict[str, Any]:
        """Members of a segment now (streaming state, or the last segment job)."""
        if segment not in self.definitions:
            raise NotFoundError(f"no segment named {segment!r}")
        if segment in self.members:
            with self._lock:
                return {
                    "segment": segment,
                    "method": "streaming",
                    "count": len(self.members[segment]),
                }
        return {"segment": segment, "method": "batch", "count": self.ws.segments.size(segment)}

    # ------------------------------------------------------------------ the lake
    def _committer(self) -> None:
        while not self._stop.wait(self.commit_interval):
            try:
                self.commit()
            except Exception:
                log.exception("streaming engine: lake commit failed (retried next time)")

    def commit(self) -> dict[str, int]:
        """Append the items accepted since the last commit to their datasets, and the new
        changes to ``segments/stream_changes``; rows written per dataset."""
        from workbench.ingest.records import append_records, validate_items

        with self._lake_lock:
            pending, self._pending_lake = self._pending_lake, []
        written: dict[str, int] = {}
        try:
            by_ds: dict[str, list[tuple[int, Any]]] = {}
            for seq, ds, item in pending:
                by_ds.setdefault(ds, []).append((seq, item))
            top = 0
            for ds, recs in by_ds.items():
                res = validate_items(self.ws, ds, [r[1] for r in recs])
                mark = max(r[0] for r in recs)
                if res.table.num_rows:  # the source names the log range (exactly once)
                    src = f"{STREAM_SOURCE}{ds}@{min(r[0] for r in recs)}-{mark}"
                    append_records(self.ws, ds, res.table, source=src)
                written[ds] = res.table.num_rows
                top = max(top, mark)
            if top:
                self._save_checkpoint(lake_seq=max(top, int(self._checkpoint().get("lake_seq", 0))))
        except BaseException:
            with self._lake_lock:  # nothing is lost: try again next time
                self._pending_lake[:0] = pending
            raise
        self._commit_changes()
        return written

    def _commit_changes(self) -> None:
        done = int(self._checkpoint().get("changes_seq", 0))
        path = self.ws.lake.path(*STREAM_CHANGES)
        if self.ws.lake.exists(path):  # a crash between the commit and the checkpoint
            for h in DeltaTable(path).history(5):
                v = h.get("workbench.stream_changes_seq")
                if v is not None:
                    done = max(done, int(v))
                    break
        recs = self.changes_after(done, limit=1_000_000)
        if not recs:
            return
        t = pa.table(
            {
                "seq": pa.array([r["seq"] for r in recs], pa.int64()),
                "segment": [r["segment"] for r in recs],
                "profile_id": pa.array([r["profile_id"] for r in recs], pa.int64()),
                "status": [r["status"] for r in recs],
                "at": pa.array([to_utc(r["at"]) for r in recs], pa.timestamp("us", "UTC")),
                "cause": [r["cause"] for r in recs],
            },
            schema=CHANGE_SCHEMA,
        )
        top = recs[-1]["seq"]
        write_deltalake(
            path,
            t,
            mode="append",
            commit_properties=CommitProperties(
                custom_metadata={"workbench.stream_changes_seq": str(top)}
            ),
        )
        self._save_checkpoint(changes_seq=top)


class _Tick:
    pass


_TICK = _Tick()


def _runs(recs: Iterable[dict[str, Any]]) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """Consecutive log records of the same dataset, grouped (order kept)."""
    cur: list[dict[str, Any]] = []
    ds = None
    for r in recs:
        if r["dataset"] != ds and cur:
            yield ds, cur  # type: ignore[misc]
            cur = []
        ds = r["dataset"]
        cur.append(r)
        if len(cur) >= 5000:
            yield ds, cur
            cur = []
    if cur:
        yield ds, cur  # type: ignore[misc]


def _attributes_used(names: Iterable[str], defs: Mapping[str, SegmentDefinition]) -> set[str]:
    """Profile attributes the segments read, through their references too."""
    out: set[str] = set()
    todo, seen = list(names), set()
    while todo:
        n = todo.pop()
        if n in seen or n not in defs:
            continue
        seen.add(n)
        for c in walk(defs[n].rule):
            if isinstance(c, Attr):
                out.add(c.field)
            elif isinstance(c, InSegment):
                todo.append(c.segment)
    return out


def _uses_events(d: SegmentDefinition) -> bool:
    return any(isinstance(c, Events | Sequence) for c in walk(d.rule))


def stream_changes(ws: Workspace) -> pa.Table:
    """The membership changes the streaming service committed to the lake."""
    path = ws.lake.path(*STREAM_CHANGES)
    if not ws.lake.exists(path):
        return CHANGE_SCHEMA.empty_table()
    return ws.lake.snapshot(path).to_table()


__all__ = [
    "CHANGE_SCHEMA",
    "STREAM_CHANGES",
    "Change",
    "Clock",
    "EventClock",
    "ManualClock",
    "Overloaded",
    "StreamEngine",
    "WallClock",
    "stream_changes",
]
