"""The streaming service: the engine, its HTTP app, subscribers, destinations and metrics.

    svc = StreamingService(ws)          # loads the state (seconds at 1M persons)
    svc.serve(host="127.0.0.1", port=8787)

or ``workbench serve --workspace W --port 8787``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from workbench.streaming.delivery import StreamingDelivery
from workbench.streaming.engine import Change, Clock, StreamEngine

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Buckets (seconds) of the accept-to-membership-change histogram.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class Metrics:
    """The service's Prometheus metrics (one registry per service)."""

    def __init__(self, svc: StreamingService) -> None:
        r = self.registry = CollectorRegistry()
        self.accepted = Counter(
            "workbench_stream_accepted", "Items accepted (durably stored)", ["dataset"], registry=r
        )
        self.rejected = Counter(
            "workbench_stream_rejected",
            "Items or requests rejected",
            ["dataset", "reason"],
            registry=r,
        )
        self.changes = Counter(
            "workbench_stream_membership_changes", "Membership changes", ["status"], registry=r
        )
        self.auth_failures = Counter(
            "workbench_stream_auth_failures",
            "Requests refused by authentication",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "workbench_stream_evaluation_latency_seconds",
            "From an item accepted to the membership change it caused",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "workbench_stream_request_seconds",
            "Request handling time",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        q = Gauge(
            "workbench_stream_queue_depth", "Items accepted and not yet processed", registry=r
        )
        q.set_function(lambda: svc.engine.queue_depth())
        s = Gauge("workbench_stream_subscribers", "Open membership streams", registry=r)
        s.set_function(lambda: len(svc.hub.subscribers))
        p = Gauge(
            "workbench_stream_lake_pending", "Items accepted and not yet in the lake", registry=r
        )
        p.set_function(lambda: len(svc.engine._pending_lake))

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def __call__(self, changes: list[Change]) -> None:
        now = time.monotonic()
        for c in changes:
            self.changes.labels(c.status).inc()
            if c.accepted is not None:
                self.latency.observe(now - c.accepted)


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[list[Change] | None]
    segments: set[str] = field(default_factory=set)
    overflowed: bool = False


class Hub:
    """Fans membership changes out to server-sent-event subscribers."""

    #: Change groups a slow subscriber may have waiting before it is cut off (it resumes
    #: with ``Last-Event-ID``).
    MAX_BACKLOG = 10_000

    def __init__(self, engine: StreamEngine) -> None:
        self.engine = engine
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: set[_Subscriber] = set()
        self.keepalive = 15.0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on this event loop (the app's)."""
        self.loop = loop

    def __call__(self, changes: list[Change]) -> None:  # on the engine's thread
        loop = self.loop
        if loop is None or not self.subscribers:
            return
        for sub in list(self.subscribers):
            loop.call_soon_threadsafe(self._push, sub, changes)

    def _push(self, sub: _Subscriber, changes: list[Change]) -> None:
        if sub.overflowed:
            return
        if sub.queue.qsize() >= self.MAX_BACKLOG:
            sub.overflowed = True
            sub.queue.put_nowait(None)
            return
        sub.queue.put_nowait(changes)

    @staticmethod
    def _format(seq: int, rec: dict[str, Any]) -> str:
        return f"id: {seq}\nevent: membership\ndata: {json.dumps(rec, separators=(',', ':'))}\n\n"

    async def events(
        self, request: Request, after: int | None, segments: set[str]
    ) -> AsyncIterator[str]:
        """The event stream of one subscriber: the logged changes after ``after`` first (a
        resume), then live ones; each event's ``id`` is the change's sequence number."""
        sub = _Subscriber(asyncio.Queue(), segments)
        self.subscribers.add(sub)  # before reading the log: nothing falls in between
        last = after if after is not None else self.engine.change_log.last_seq
        try:
            yield "retry: 1000\n\n"
            if after is not None:
                while True:
                    recs = await asyncio.to_thread(self.engine.changes_after, last, 5000)
                    for rec in recs:
                        last = rec["seq"]
                        if not segments or rec["segment"] in segments:
                            yield self._format(rec["seq"], rec)
                    if len(recs) < 5000:
                        break
            while True:
                try:
                    group = await asyncio.wait_for(sub.queue.get(), self.keepalive)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if group is None:  # too slow: the client reconnects with Last-Event-ID
                    return
                for c in group:
                    if c.seq <= last:
                        continue
                    last = c.seq
                    if not segments or c.segment in segments:
                        yield self._format(c.seq, c.to_dict())
        finally:
            self.subscribers.discard(sub)


class StreamingService:
    """Everything ``workbench serve`` runs.

    Args:
        ws: The workspace.
        clock: The engine's clock (default: the wall clock).
        max_body: The largest request body accepted, in bytes.
        max_queue: Items waiting for processing before requests get 429.
        commit_interval: Seconds between commits of streamed items to the lake.
        deliver: Send streaming segments' changes to webhook destinations.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Clock | None = None,
        max_body: int = 5 << 20,
        max_queue: int = 20_000,
        commit_interval: float = 5.0,
        deliver: bool = True,
        data_dir: Any = None,
    ) -> None:
        self.ws = ws
        self.max_body = max_body
        self.engine = StreamEngine(
            ws, clock=clock, max_queue=max_queue, commit_interval=commit_interval, data_dir=data_dir
        )
        self.hub = Hub(self.engine)
        self.metrics = Metrics(self)
        self.delivery = StreamingDelivery(ws, self.engine) if deliver else None
        self.engine.subscribe(self.metrics)
        self.engine.subscribe(self.hub)
        if self.delivery is not None and self.delivery.streams:
            self.engine.subscribe(self.delivery)
        self._keys: dict[str, tuple[float, Any]] = {}
        self._keys_lock = threading.Lock()
        self.key_cache_s = 30.0
        self.started_at = dt.datetime.now(dt.UTC)

    # ------------------------------------------------------------------ pieces
    def verify(self, token: str) -> Any:
        """The API key of a bearer token (cached for ``key_cache_s``; revocation applies
        within that time), or None."""
        now = time.monotonic()
        with self._keys_lock:
            hit = self._keys.get(token)
        if hit is not None and now - hit[0] < self.key_cache_s:
            return hit[1]
        key = self.ws.apikeys.verify(token)
        with self._keys_lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[token] = (now, key)
        return key

    def validate(self, dataset: str, items: list[Any]) -> Any:
        """Items checked with the dataset's schema rules (as batch ingestion checks rows)."""
        from workbench.ingest.records import validate_items

        return validate_items(self.ws, dataset, items)

    def health(self) -> dict[str, Any]:
        """Liveness and the state of the queues."""
        e = self.engine
        return {
            "status": "ok",
            "started_at": self.started_at.isoformat(),
            "now": e.clock.now().isoformat(),
            "queue_depth": e.queue_depth(),
            "lake_pending": len(e._pending_lake),
            "last_input_seq": e.input_log.last_seq,
            "last_change_seq": e.change_log.last_seq,
            "streaming_segments": e.streaming,
            "counters": dict(e.counters),
            "identity": e.state.stats.as_dict(),
        }

    def app(self) -> FastAPI:
        """The ASGI app."""
        from workbench.streaming.app import create_app

        return create_app(self)

    def start(self) -> None:
        """Start processing (``serve`` does it)."""
        self.engine.start()

    def stop(self) -> None:
        """Process and commit what was accepted, close destinations."""
        self.engine.stop()
        if self.delivery is not None:
            self.delivery.close()

    def serve(
        self, host: str = "127.0.0.1", port: int = 8787, *, log_level: str = "warning"
    ) -> None:
        """Run the HTTP service until interrupted."""
        import uvicorn

        self.start()
        try:
            uvicorn.run(self.app(), host=host, port=port, log_level=log_level, access_log=False)
        finally:
            self.stop()


__all__ = ["LATENCY_BUCKETS", "Hub", "Metrics", "StreamingService"]
