"""Streaming memberships to streaming destinations (webhooks, audience managers), as they
happen.

A webhook destination that maps a streaming segment gets that segment's membership
changes from the streaming engine within its micro-batch wait (``connection.max_wait_s``,
default 1 s), through :class:`workbench.activation.streaming.EventStream` (signed, retried,
dead-lettered like the batch path). Only membership changes are sent, never profile
attributes (the rule of the reference platform for streaming segments); the identities are
the destination's identity columns, encoded as its file exports encode them. The
destination's consent policy applies: an entry of a member without consent is not sent
at all (the receiver never learns of them), an exit always is.

An audience manager that maps a streaming segment gets its confirmed segments' changes the
same way (:class:`workbench.activation.streaming.AudienceStream`), keyed by every identity
of the profile, email and phone hashed: within seconds, not at the next segment job.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from workbench.activation.destinations import Destination
from workbench.activation.service import CONSENT_NO, CONSENT_YES
from workbench.activation.streaming import AudienceStream, EventStream, audience_identities
from workbench.streaming.engine import Change

if TYPE_CHECKING:
    from workbench.streaming.engine import StreamEngine
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)


def consent_value(v: Any) -> str:
    """``y`` / ``n`` / ``unknown``, as :func:`workbench.activation.service.consent_sql` reads it."""
    if v is None:
        return "unknown"
    s = str(v).strip().lower()
    if s in CONSENT_YES:
        return "y"
    if s in CONSENT_NO:
        return "n"
    return "unknown"


def encode(source: str, value: Any, encoding: str) -> str | None:
    """An identity value encoded as the file exports encode it (``_encode_sql``)."""
    if value is None:
        return None
    s = str(value)
    if encoding == "clear":
        return s
    if encoding == "sha256_digits":
        s = s.replace("+", "")
    elif source == "email" or source.endswith("email"):
        s = s.strip().lower()
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


class StreamingDelivery:
    """Sends the engine's membership changes to every webhook mapping a streaming segment."""

    def __init__(self, ws: Workspace, engine: StreamEngine) -> None:
        self.engine = engine
        self.streams: list[tuple[Destination, EventStream | AudienceStream, set[str]]] = []
        streaming = set(engine.streaming)
        for d in ws.activation.list():
            segs = set(d.segments) & streaming
            if not segs:
                continue
            if d.type == "webhook":
                self.streams.append((d, EventStream(ws, d), segs))
            elif d.type == "audience_manager":
                self.streams.append((d, AudienceStream(ws, d), segs))
        #: the attributes each destination reads (its consent attribute and identity columns)
        self._needs = {
            d.name: [a for a in (d.consent.attribute, *(c.source for c in d.identities)) if a]
            for d, _, _ in self.streams
        }
        self.sent = 0
        self.skipped_no_consent = 0
        self._queue: queue.Queue[list[Change] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="stream-delivery", daemon=True)
        self._thread.start()
        if self.streams:
            log.info("streaming delivery to %s", ", ".join(d.name for d, _, _ in self.streams))

    def __call__(self, changes: list[Change]) -> None:
        """Hand changes over (the engine's thread never waits on a receiver)."""
        self._queue.put(changes)

    def _run(self) -> None:
        while True:
            changes = self._queue.get()
            if changes is None:
                return
            try:
                self._deliver(changes)
            except Exception:
                log.exception("streaming delivery failed")

    def _deliver(self, changes: list[Change]) -> None:
        for d, stream, segs in self.streams:
            for c in changes:
                if c.segment not in segs:
                    continue
                with self.engine._lock:
                    attrs = self.engine.state.attributes(c.profile_id, self._needs[d.name])
                    idents = list(self.engine.state.identities_of(c.profile_id))
                if (
                    c.status == "realized"
                    and d.consent.attribute is not None
                    and consent_value(attrs.get(d.consent.attribute)) not in d.consent.allow
                ):
                    self.skipped_no_consent += 1
                    continue
                if isinstance(stream, AudienceStream):
                    stream.send(c.segment, c.status, audience_identities(idents), as_of=c.at)
                    self.sent += 1
                    continue
                ids = {
                    col.column: encode(col.source, attrs.get(col.source), col.encoding)
                    for col in d.identities
                    if attrs.get(col.source) is not None
                }
                stream.send(
                    c.segment,
                    profile_id=c.profile_id,
                    status=c.status,
                    identities=ids or None,
                    as_of=c.at,
                )
                self.sent += 1

    def close(self) -> None:
        """Send what is queued and close the connections."""
        self._queue.put(None)
        self._thread.join(timeout=60)
        for _, s, _ in self.streams:
            try:
                s.close()
            except Exception:
                log.exception("closing a streaming destination failed")


__all__ = ["StreamingDelivery", "consent_value", "encode"]
