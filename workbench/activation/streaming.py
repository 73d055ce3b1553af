"""Streaming destinations: segment membership changes pushed over HTTP.

    ws.activation.run("crm_webhook", as_of="2026-12-01T06:00Z")   # calls deliver()
    retry(ws, "crm_webhook")                                      # replay dead letters
    deliver_all(ws, "2026-12-01T06:00Z")                          # every destination, in parallel

Two destination types are delivered here (``ws.activation.run`` hands them over):

``webhook``
    Each mapped segment's membership changes since this destination's last delivery of
    the segment are POSTed as JSON ``{"events": [...]}`` in micro-batches. One event::

        {"destination": "crm_webhook", "segment": "gold", "profile_id": 17,
         "status": "realized" | "exited", "as_of": "2026-12-01T06:00:00+00:00",
         "identities": {"email": "ana@x.com"}}     # or {"profile_id": 17} without identities

    ``identities`` holds the destination's identity columns, encoded as the file exports
    encode them (``clear``, ``sha256``, ``sha256_digits``); ``attributes`` is added when the
    destination maps profile attributes.

``audience_manager``
    An external audience manager at ``connection.url``. Each segment's metadata is pushed
    first (``POST {url}/segments`` ``{"id", "name", "description", "version"}``) and must be
    confirmed (a 2xx answer ``{"id": <remote id>, "status": "active"}``); the confirmation
    is kept in the catalog (``audience_syncs``) and the metadata is pushed again when the
    segment's version changes. Memberships are shared only once the sync is confirmed
    (``POST {url}/memberships`` ``{"segment_id", "memberships": [{"status", "identities"}]}``):
    the first push sends every current member as ``existing``, later ones the changes.

What is sent (the watermark)
    The changes come from the membership change log (``segments/changes``): every entry
    (``realized``) and exit (``exited``) of the segment in the segment runs after the last
    one this destination received, up to the latest successful run at or before ``as_of``;
    a profile that changed more than once is sent with its last status. The run delivered
    is recorded as ``segment_run_id`` on the activation record and is the next delivery's
    watermark (for an audience manager, the sync keeps it, so a new remote audience starts
    over). The first delivery is a back-fill: every current member as ``realized``
    (``existing`` for an audience manager). A run that dead-letters batches still moves the
    watermark: the dead letters hold those changes until :func:`retry` delivers them.
    Delivery is at least once: a delivery interrupted mid-way is sent again in full.

Consent
    The destination's consent policy applies (``consent: {attribute, allow}``). A member
    whose consent is not allowed is sent as ``exited`` instead of ``realized`` (an opt-out
    is an exit; counted in ``skipped_no_consent``). A member whose consent changed since the
    last delivery without any membership change is sent too: ``exited`` on an opt-out,
    ``realized`` when consent was given (the profile table's version used by each delivery
    is kept in the activation's manifest for this comparison).

Micro-batches, signatures, retries
    ``connection.max_batch`` changes per POST (default 500). ``connection.max_wait_s``
    (default 1 s) is how long a partial batch may wait for more changes in the streaming
    path (:class:`EventStream` / :class:`MicroBatcher`, changes arriving one at a time); the
    batch path (:func:`deliver`) has every change at hand and sends its batches right away.
    Every POST carries ``X-Workbench-Delivery: <uuid>`` (the idempotency key, the same on
    every retry and replay) and, when ``connection.secret_env`` / ``secret_file`` names a
    secret, ``X-Workbench-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` (see
    :func:`sign`). Connection errors, timeouts (``connection.timeout_s``, default 10 s),
    429 and 5xx are retried with exponential backoff (``retry_base_s`` default 0.5 s,
    doubling, at most ``retry_max_s`` = 30 s between tries, ``max_attempts`` default 5),
    a ``Retry-After`` of a 429/503 taking the place of the backoff; any other 4xx is final.
    Once a batch has used its retries on a receiver that is down, the remaining batches of
    the run are dead-lettered without being tried (the run does not wait on it any longer).

Dead letters
    A batch that could not be delivered goes, body and delivery id unchanged, to the Delta
    table ``lake/activation/dead_letter``; the activation is recorded ``partial`` (some
    batches got through) or ``failed`` (none did), with ``dead_lettered`` in its counts.
    :func:`retry` replays them (same body, same delivery id, same signature) and removes the
    delivered ones. Replays can arrive after newer changes: every event carries ``as_of``
    so a receiver can drop a change older than the one it already holds.

Isolation
    :func:`deliver_all` runs every destination in its own thread (with its own query
    engine) under a per-destination time limit: a destination that fails or hangs is
    reported without delaying the others. Deliveries to one destination never overlap
    (a lock per destination), and re-running the same (destination, segment, ``as_of``)
    reports the earlier delivery instead of sending twice. Secrets are read when needed
    and never logged, stored or put in an error message.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import write_deltalake

from workbench.activation.destinations import Destination
from workbench.activation.service import (
    ActivationResult,
    Counts,
    _encode_sql,
    _secret,
    consent_sql,
)
from workbench.catalog.store import ActivationInfo
from workbench.errors import ConfigError, NotFoundError, WorkbenchError
from workbench.identity.graph import IDENTITIES
from workbench.lake.sql import ident, lit
from workbench.segments.service import CHANGES, MEMBERSHIPS, to_utc

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

STREAMING_TYPES = ("webhook", "audience_manager")
SIGNATURE_HEADER = "X-Workbench-Signature"
DELIVERY_HEADER = "X-Workbench-Delivery"
USER_AGENT = "audience-workbench"
DEAD_LETTER = ("activation", "dead_letter")
DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("segment", pa.string()),
        ("delivery_id", pa.string()),
        ("endpoint", pa.string()),  # path under connection.url: "" or "/memberships"
        ("payload", pa.string()),  # the exact JSON body
        ("events", pa.int64()),
        ("added", pa.int64()),
        ("removed", pa.int64()),
        ("attempts", pa.int64()),
        ("last_error", pa.string()),
        ("activation_id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
#: Default time limit of one destination in :func:`deliver_all` (``deliver_timeout_s``).
DEFAULT_DELIVER_TIMEOUT_S = 900.0
#: Hashed namespaces of the audience manager: the value is sent as SHA-256 hex.
HASHED_NAMESPACES = {"email": "email_sha256", "phone": "phone_sha256"}
#: Activation statuses after which the segment's changes count as handed over.
_HANDED_OVER = ("success", "partial")


# ---------------------------------------------------------------------- options
@dataclass(frozen=True)
class Options:
    """Delivery settings of a streaming destination (its ``connection`` keys).

    Attributes:
        max_batch: Changes per POST.
        max_wait_s: Longest wait of a partial batch in the streaming path.
        timeout_s: Timeout of one HTTP request (connect, read, write).
        retry_base_s: First backoff; doubles on every retry.
        retry_max_s: Longest wait between two tries (also caps ``Retry-After``).
        max_attempts: Tries per batch, the first included.
        deliver_timeout_s: Time limit of the whole destination in :func:`deliver_all`.
    """

    max_batch: int = 500
    max_wait_s: float = 1.0
    timeout_s: float = 10.0
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    max_attempts: int = 5
    deliver_timeout_s: float = DEFAULT_DELIVER_TIMEOUT_S

    @classmethod
    def of(cls, d: Destination) -> Options:
        """The options of a destination, checked.

        Args:
            d: The destination.

        Returns:
            Its options, defaults filled in.

        Raises:
            ConfigError: An option is not a positive number.
        """
        out: dict[str, Any] = {}
        for f in fields(cls):
            v = d.option(f.name)
            if v is None:
                continue
            want_int = f.name in ("max_batch", "max_attempts")
            ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            if not ok or (want_int and not isinstance(v, int)):
                kind = "a whole number >= 1" if want_int else "a number > 0"
                raise ConfigError(f"destination {d.name!r}: connection.{f.name} must be {kind}")
            out[f.name] = int(v) if want_int else float(v)
        return cls(**out)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Workbench-Signature`` value of a body: ``sha256=`` and the hex HMAC-SHA256
    of the raw body bytes keyed with the secret (a receiver recomputes and compares it).

    Args:
        secret: The shared secret.
        body: The exact bytes sent.

    Returns:
        ``sha256=<64 hex digits>``.
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _safe_url(url: str) -> str:
    """A URL without credentials, query or fragment (for logs and records)."""
    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"


# ---------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class Outcome:
    """How one POST ended after its retries.

    Attributes:
        delivered: A 2xx answer came back.
        attempts: Tries made (0: not tried, the receiver was already known to be down).
        status_code: HTTP status of the last answer, None without one.
        error: Why it was not delivered.
        body: The decoded JSON answer of a delivered POST (None when not JSON).
        final: The failure will not pass by retrying now (a 4xx other than 429).
    """

    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    body: Any = None
    final: bool = False


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class Sender:
    """POSTs signed JSON bodies to one destination with retries and backoff.

    After a batch used all its tries on a receiver that is down (connection errors,
    timeouts, 429/5xx), later POSTs of the same sender are not tried: they fail at once
    (``attempts`` 0) so a dead receiver costs one batch's retry budget, not every batch's.

    Args:
        d: The destination (``d.url`` is the base URL).
        options: Its delivery options.
        secret: The signing secret, or None to send unsigned.
        client: An httpx client to use (one is made otherwise).
    """

    def __init__(
        self,
        d: Destination,
        options: Options,
        secret: str | None,
        client: httpx.Client | None = None,
    ) -> None:
        self.destination = d.name
        self.url = d.url.rstrip("/")
        self.options = options
        self._secret = secret
        self._own = client is None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(options.timeout_s), follow_redirects=False
        )
        self.down: str | None = None

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client (when this sender made it)."""
        if self._own:
            self._client.close()

    def post(self, path: str, body: bytes, delivery_id: str) -> Outcome:
        """POST ``body`` to ``url + path``, retrying what may pass later.

        Args:
            path: Path under the destination URL (``""`` for the URL itself).
            body: The exact JSON bytes (signed as they are).
            delivery_id: The idempotency key, the same on every try.

        Returns:
            How it ended; never raises for HTTP or network failures.
        """
        if self.down is not None:
            return Outcome(False, 0, None, f"not tried: {self.down}")
        o = self.options
        url = self.url + path
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: delivery_id,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        where = _safe_url(url)
        attempts = 0
        code: int | None = None
        error = ""
        while True:
            attempts += 1
            wait: float | None = None
            try:
                r = self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException as e:
                code, error = None, f"timeout after {o.timeout_s:g}s ({type(e).__name__})"
            except httpx.TransportError as e:
                code, error = None, f"connection failed ({type(e).__name__}: {e})"
            else:
                code = r.status_code
                if 200 <= code < 300:
                    return Outcome(True, attempts, code, None, _json_or_none(r))
                error = f"HTTP {code}" + (f": {r.text[:200]}" if r.text else "")
                if code in (429, 503):
                    wait = _retry_after(r.headers.get("Retry-After"))
                if code != 429 and code < 500:
                    log.warning(
                        "%s: POST %s delivery %s refused (HTTP %s), not retried",
                        self.destination, where, delivery_id, code,
                    )  # fmt: skip
                    return Outcome(False, attempts, code, error, final=True)
            if attempts >= o.max_attempts:
                break
            delay = wait if wait is not None else o.retry_base_s * 2 ** (attempts - 1)
            delay = min(delay, o.retry_max_s)
            log.info(
                "%s: POST %s delivery %s try %d/%d failed (%s); retrying in %.2fs",
                self.destination, where, delivery_id, attempts, o.max_attempts, error, delay,
            )  # fmt: skip
            time.sleep(delay)
        self.down = f"receiver unavailable ({error})"
        log.warning(
            "%s: POST %s delivery %s failed after %d tries: %s",
            self.destination, where, delivery_id, attempts, error,
        )  # fmt: skip
        return Outcome(False, attempts, code, error)


def _json_or_none(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _body(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


# ---------------------------------------------------------------------- micro-batches
class MicroBatcher:
    """Groups items arriving one at a time into batches for ``send``.

    A batch is handed over when it holds ``max_batch`` items, or when its oldest item has
    waited ``max_wait_s`` (a background timer), or on :meth:`flush` / :meth:`close`.
    Batches are sent one at a time, in arrival order; :meth:`add` waits while a full batch
    is being sent (back-pressure).

    Args:
        send: Called with each batch (a list); its errors propagate to the caller of
            :meth:`add` / :meth:`flush`, and are logged when the timer flushes.
        max_batch: Items per batch.
        max_wait_s: Longest wait of a partial batch.
    """

    def __init__(
        self, send: Callable[[list[Any]], None], max_batch: int, max_wait_s: float
    ) -> None:
        if max_batch < 1 or max_wait_s <= 0:
            raise ConfigError("max_batch must be >= 1 and max_wait_s > 0")
        self._send = send
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._items: list[Any] = []
        self._first_at: float | None = None
        self._lock = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        self._timer = threading.Thread(target=self._tick, name="micro-batcher", daemon=True)
        self._timer.start()

    def add(self, item: Any) -> None:
        """Queue one item; sends the batch when it is full."""
        with self._lock:
            if self._closed:
                raise WorkbenchError("the micro-batcher is closed")
            if not self._items:
                self._first_at = time.monotonic()
                self._lock.notify_all()
            self._items.append(item)
            full = len(self._items) >= self.max_batch
        if full:
            self.flush(only_full=True)

    def flush(self, *, only_full: bool = False) -> None:
        """Send what is queued (with ``only_full``: only full batches)."""
        with self._send_lock:
            while True:
                with self._lock:
                    if not self._items or (only_full and len(self._items) < self.max_batch):
                        return
                    batch = self._items[: self.max_batch]
                    del self._items[: self.max_batch]
                    self._first_at = time.monotonic() if self._items else None
                self._send(batch)

    def close(self) -> None:
        """Send what is left and stop the timer."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self.flush()
        self._timer.join(timeout=5)

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tick(self) -> None:
        while True:
            with self._lock:
                while not self._closed and self._first_at is None:
                    self._lock.wait()
                if self._closed:
                    return
                due = (self._first_at or time.monotonic()) + self.max_wait_s
                left = due - time.monotonic()
                if left > 0:
                    self._lock.wait(timeout=left)
                    continue
            try:
                self.flush()
            except Exception:
                log.exception("micro-batch flush failed")


class _Stream:
    """What the streaming paths share: the destination, its sender, and one POST of a
    micro-batch that either is delivered or goes to the dead letters whole."""

    TYPE = ""

    def __init__(self, ws: Workspace, destination: str | Destination) -> None:
        d = ws.activation.get(destination) if isinstance(destination, str) else destination
        if d.type != self.TYPE:
            raise ConfigError(f"destination {d.name!r} is not of type {self.TYPE}")
        self._ws = ws
        self._d = d
        self.options = Options.of(d)
        self._sender = Sender(d, self.options, _secret(d, "secret"))
        self.delivered = 0
        self.dead_lettered = 0

    def _deliver(
        self, segment: str, endpoint: str, payload: dict[str, Any], items: list[dict[str, Any]]
    ) -> None:
        delivery_id = str(uuid.uuid4())
        body = _body(payload)
        out = self._sender.post(endpoint, body, delivery_id)
        if out.delivered:
            self.delivered += len(items)
            return
        self._sender.down = None  # a stream keeps trying the batches that come later
        added = sum(i["status"] == "realized" for i in items)
        _dead_letter(
            self._ws,
            [
                _dead_row(
                    self._d.name, segment, delivery_id, endpoint, body, len(items), added,
                    len(items) - added, out, None,
                )
            ],
        )  # fmt: skip
        self.dead_lettered += len(items)


class EventStream(_Stream):
    """The streaming path of a webhook: changes sent as they happen, in micro-batches.

    A producer (a streaming segment evaluation, for instance) calls :meth:`send` for each
    change; batches leave when full or after ``connection.max_wait_s``, signed and retried
    as in :func:`deliver`; a batch that cannot be delivered goes to the dead letters.

    .. code-block:: python

        with EventStream(ws, "crm_webhook") as s:
            s.send("gold", profile_id=17, status="realized", identities={"email": "a@x.com"})

    Args:
        ws: The workspace.
        destination: A webhook destination (name or definition).
    """

    TYPE = "webhook"

    def __init__(self, ws: Workspace, destination: str | Destination) -> None:
        super().__init__(ws, destination)
        self._batcher = MicroBatcher(self._post, self.options.max_batch, self.options.max_wait_s)

    def send(
        self,
        segment: str,
        profile_id: int,
        status: str,
        identities: dict[str, Any] | None = None,
        as_of: Any = None,
    ) -> None:
        """Queue one change (``realized`` / ``exited``) of a profile in a segment."""
        if status not in ("realized", "exited"):
            raise ConfigError(f"status must be realized or exited, not {status!r}")
        self._batcher.add(
            {
                "destination": self._d.name,
                "segment": segment,
                "profile_id": int(profile_id),
                "status": status,
                "as_of": to_utc(as_of).isoformat(),
                "identities": identities or {"profile_id": int(profile_id)},
            }
        )

    def _post(self, events: list[dict[str, Any]]) -> None:
        segs = {e["segment"] for e in events}
        self._deliver(segs.pop() if len(segs) == 1 else "*", "", {"events": events}, events)

    def flush(self) -> None:
        """Send what is queued now."""
        self._batcher.flush()

    def close(self) -> None:
        """Send what is left and close the connection."""
        try:
            self._batcher.close()
        finally:
            self._sender.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def audience_identities(identities: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """A profile's identities as an audience manager gets them (as :func:`_stage` writes
    them): email and phone as the SHA-256 of the normalized value under ``email_sha256`` /
    ``phone_sha256``, the other namespaces as they are; sorted."""
    out = [
        {"namespace": HASHED_NAMESPACES[ns], "value": hashlib.sha256(v.encode()).hexdigest()}
        if ns in HASHED_NAMESPACES
        else {"namespace": ns, "value": v}
        for ns, v in identities
    ]
    return sorted(out, key=lambda x: (x["namespace"], x["value"]))


class AudienceStream(_Stream):
    """The streaming path of an audience manager: a confirmed segment's membership changes
    shared as they happen (micro-batches per segment, signed, retried, dead-lettered like
    :class:`EventStream`).

    A segment the audience manager has not confirmed gets its metadata pushed on its first
    change; until it is confirmed its changes are not shared (counted in ``unconfirmed``):
    the next segment job's delivery shares its members as ``existing``.

    .. code-block:: python

        with AudienceStream(ws, "aam") as s:
            s.send("gold", "realized", audience_identities([("ecid", "123")]))
    """

    TYPE = "audience_manager"

    def __init__(self, ws: Workspace, destination: str | Destination) -> None:
        super().__init__(ws, destination)
        self._remote: dict[str, str | None] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._lock = threading.Lock()
        self.unconfirmed = 0

    def _remote_id(self, segment: str) -> str | None:
        with self._lock:
            if segment not in self._remote:
                sync, _, error = ensure_sync(self._ws, self._d, segment, self._sender)
                self._remote[segment] = sync.remote_id if sync is not None else None
                if sync is None:
                    log.warning("%s: %s (streaming changes are held back)", self._d.name, error)
            return self._remote[segment]

    def send(
        self, segment: str, status: str, identities: list[dict[str, str]], as_of: Any = None
    ) -> None:
        """Queue one membership change (``realized`` / ``exited``) of a profile."""
        if status not in ("realized", "exited"):
            raise ConfigError(f"status must be realized or exited, not {status!r}")
        if not identities:
            return
        remote = self._remote_id(segment)
        if remote is None:
            self.unconfirmed += 1
            return
        with self._lock:
            b = self._batchers.get(segment)
            if b is None:
                b = MicroBatcher(
                    lambda items, seg=segment, rid=remote: self._post(seg, rid, items),
                    self.options.max_batch,
                    self.options.max_wait_s,
                )
                self._batchers[segment] = b
        b.add({"status": status, "identities": identities})

    def _post(self, segment: str, remote: str, items: list[dict[str, Any]]) -> None:
        self._deliver(segment, "/memberships", {"segment_id": remote, "memberships": items}, items)

    def flush(self) -> None:
        """Send what is queued now."""
        for b in list(self._batchers.values()):
            b.flush()

    def close(self) -> None:
        """Send what is left and close the connection."""
        try:
            for b in list(self._batchers.values()):
                b.close()
        finally:
            self._sender.close()

    def __enter__(self) -> AudienceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- dead letters
def _dead_row(
    destination: str,
    segment: str,
    delivery_id: str,
    endpoint: str,
    body: bytes,
    events: int,
    added: int,
    removed: int,
    out: Outcome,
    activation_id: int | None,
) -> dict[str, Any]:
    return {
        "destination": destination,
        "segment": segment,
        "delivery_id": delivery_id,
        "endpoint": endpoint,
        "payload": body.decode(),
        "events": events,
        "added": added,
        "removed": removed,
        "attempts": out.attempts,
        "last_error": out.error or "",
        "activation_id": activation_id,
        "created_at": dt.datetime.now(dt.UTC),
    }


def _dead_letter(ws: Workspace, rows: list[dict[str, Any]]) -> None:
    """Append undeliverable batches to the dead-letter table (one commit)."""
    if not rows:
        return
    path = ws.lake.path(*DEAD_LETTER)
    table = pa.Table.from_pylist(rows, schema=DEAD_LETTER_SCHEMA)
    with ws.lake.lock("activation_dead_letter"):
        if not ws.lake.exists(path):
            ws.lake.create(path, DEAD_LETTER_SCHEMA, "dead_letter", "undelivered batches")
        version = ws.lake.append(path, table, {"operation": "dead_letter"})
    ws.catalog.record_version("activation/dead_letter", version, "dead_letter", len(rows), None)
    log.warning(
        "%s: %d batch(es) (%d changes) dead-lettered",
        rows[0]["destination"], len(rows), sum(r["events"] for r in rows),
    )  # fmt: skip


def dead_letters(ws: Workspace, destination: str | None = None) -> pa.Table:
    """The dead-lettered batches (all, or one destination's), oldest first.

    Args:
        ws: The workspace.
        destination: A destination name, or None for every destination.

    Returns:
        Rows of :data:`DEAD_LETTER_SCHEMA`.
    """
    path = ws.lake.path(*DEAD_LETTER)
    if not ws.lake.exists(path):
        return DEAD_LETTER_SCHEMA.empty_table()
    flt = None if destination is None else pads.field("destination") == destination
    t = ws.lake.snapshot(path).to_table(filter=flt)
    return t.sort_by([("created_at", "ascending")])  # a stable sort: batch order kept


def retry(ws: Workspace, destination: str | Destination) -> dict[str, int]:
    """Replay a destination's dead letters: same body, same delivery id, signed the same
    way; the delivered ones leave the dead-letter table and their activations' counts and
    status are brought up to date.

    Args:
        ws: The workspace.
        destination: A streaming destination (name or definition).

    Returns:
        ``{"replayed": batches delivered, "still_failing": batches left}``.

    Raises:
        ConfigError: Not a streaming destination, or its secret cannot be read.
    """
    d = ws.activation.get(destination) if isinstance(destination, str) else destination
    if d.type not in STREAMING_TYPES:
        raise ConfigError(f"destination {d.name!r} ({d.type}) has no dead letters to replay")
    with ws.lake.lock(f"activation_{d.name}"):
        rows = dead_letters(ws, d.name).to_pylist()
        if not rows:
            return {"replayed": 0, "still_failing": 0}
        opts = Options.of(d)
        delivered: dict[str, dict[str, Any]] = {}
        failed: dict[str, Outcome] = {}
        with Sender(d, opts, _secret(d, "secret")) as sender:
            for r in rows:
                out = sender.post(r["endpoint"], r["payload"].encode(), r["delivery_id"])
                if out.delivered:
                    delivered[r["delivery_id"]] = r
                else:
                    failed[r["delivery_id"]] = out
        if delivered or failed:
            _rewrite_dead_letters(ws, d.name, delivered, failed)
        _settle(ws, delivered.values())
    log.info(
        "%s: replayed %d dead-lettered batch(es), %d still failing",
        d.name, len(delivered), len(failed),
    )  # fmt: skip
    return {"replayed": len(delivered), "still_failing": len(failed)}


def _rewrite_dead_letters(
    ws: Workspace,
    destination: str,
    delivered: dict[str, dict[str, Any]],
    failed: dict[str, Outcome],
) -> None:
    """Drop the delivered batches and count the new tries of the others (one commit)."""
    path = ws.lake.path(*DEAD_LETTER)
    with ws.lake.lock("activation_dead_letter"):
        rows = ws.lake.snapshot(path).to_table().to_pylist()
        keep = []
        for r in rows:
            if r["destination"] == destination and r["delivery_id"] in delivered:
                continue
            if r["destination"] == destination and r["delivery_id"] in failed:
                out = failed[r["delivery_id"]]
                r["attempts"] += out.attempts
                r["last_error"] = out.error or r["last_error"]
            keep.append(r)
        write_deltalake(
            path,
            pa.Table.from_pylist(keep, schema=DEAD_LETTER_SCHEMA),
            mode="overwrite",
        )
        version = ws.lake.version(path)
    ws.catalog.record_version("activation/dead_letter", version, "retry", len(keep), None)


def _settle(ws: Workspace, delivered: Any) -> None:
    """Move replayed changes from ``dead_lettered`` to delivered in their activations."""
    by_act: dict[int, list[dict[str, Any]]] = {}
    for r in delivered:
        if r["activation_id"] is not None:
            by_act.setdefault(int(r["activation_id"]), []).append(r)
    for act_id, rs in by_act.items():
        try:
            a = ws.catalog.get_activation(act_id)
        except NotFoundError:
            continue
        c = _counts(a.counts)
        n = sum(r["events"] for r in rs)
        c = Counts(
            **{
                **asdict(c),
                "exported": c.exported + n,
                "added": c.added + sum(r["added"] for r in rs),
                "removed": c.removed + sum(r["removed"] for r in rs),
                "dead_lettered": max(0, c.dead_lettered - n),
            }
        )
        ids = {r["delivery_id"] for r in rs}
        files = [
            {**f, "status": "delivered (replayed)"} if f.get("delivery_id") in ids else f
            for f in a.files
        ]
        ws.catalog.finish_activation(
            act_id,
            status="success" if c.dead_lettered == 0 else "partial",
            counts=asdict(c),
            files=files,
            error=a.error if c.dead_lettered else None,
        )


# ---------------------------------------------------------------------- delivery
def _counts(d: dict[str, Any]) -> Counts:
    known = {f.name for f in fields(Counts)}
    return Counts(**{k: v for k, v in d.items() if k in known})


def _handed_over(a: ActivationInfo) -> bool:
    """Whether an activation's changes left (delivered, or kept in the dead letters)."""
    return a.status in _HANDED_OVER or (
        a.status == "failed" and int(a.counts.get("dead_lettered", 0) or 0) > 0
    )


def _segment_run(ws: Workspace, segment: str, as_of: dt.datetime) -> Any:
    runs = [
        r
        for r in ws.catalog.list_segment_runs(status="success", limit=10_000)
        if r.as_of <= as_of and segment in r.segments
    ]
    if not runs:
        raise NotFoundError(
            f"segment {segment!r} has not been evaluated at or before {as_of.isoformat()}: "
            "run workbench segment run first"
        )
    return max(runs, key=lambda r: (r.as_of, r.id))


def _manifest_profiles_version(a: ActivationInfo | None) -> int | None:
    if a is None or not a.manifest:
        return None
    try:
        v = json.loads(a.manifest).get("profiles_version")
    except (ValueError, AttributeError):
        return None
    return int(v) if isinstance(v, int) else None


@dataclass
class _Plan:
    """What one segment's delivery sends: the rows to send (Arrow, by profile id; turned
    into dicts one batch at a time, so a large back-fill is never held as Python objects)
    and what was left out."""

    table: pa.Table | None
    eligible: int
    no_identity: int
    no_consent: int
    profiles_version: int
    identities: str = "columns"  # columns | all | profile_id
    columns: tuple[str, ...] = ()
    mapped: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Rows to send."""
        return 0 if self.table is None else self.table.num_rows

    def batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The rows as ``{profile_id, status, identities[, attributes]}``, ``size`` at a time."""
        if self.table is None:
            return
        for start in range(0, self.n, size):
            out = []
            for r in self.table.slice(start, size).to_pylist():
                if self.identities == "all":
                    ids: Any = [dict(x) for x in r["__ids"]]
                elif self.identities == "columns":
                    ids = {
                        col: r[f"__id{k}"]
                        for k, col in enumerate(self.columns)
                        if r[f"__id{k}"] is not None
                    }
                else:
                    ids = {"profile_id": r["profile_id"]}
                row = {"profile_id": r["profile_id"], "status": r["__status"], "identities": ids}
                if self.mapped:
                    row["attributes"] = {col: r[f"__a{k}"] for k, col in enumerate(self.mapped)}
                out.append(row)
            yield out


def _empty_plan(ws: Workspace) -> _Plan:
    return _Plan(None, 0, 0, 0, ws.lake.version(ws.profiles.table_uri()))


def _stage(
    ws: Workspace,
    d: Destination,
    segment: str,
    run: Any,
    since_run: int | None,
    prev_profiles: int | None,
    first_status: str,
    *,
    all_identities: bool,
) -> _Plan:
    """The changes of one segment to send, with identities, consent applied, by profile.

    Each returned row has ``profile_id``, ``status``, ``identities`` (a dict of the
    destination's identity columns, or a list of ``{namespace, value}`` with
    ``all_identities``) and ``attributes`` (mapped attributes).
    """
    eng = ws.engine
    u = uuid.uuid4().hex[:10]
    mem, chg, prof, prev, idt = (f"__st_{k}_{u}" for k in ("mem", "chg", "prof", "prev", "idt"))
    views: list[str] = []

    def reg(name: str, uri: str, version: int | None = None) -> None:
        ws.lake.register(eng, name, uri, version)
        views.append(name)

    puri = ws.profiles.table_uri()
    pversion = ws.lake.version(puri)
    s = lit(segment)
    allow = ", ".join(lit(a) for a in d.consent.allow)
    attr = d.consent.attribute
    try:
        reg(mem, ws.lake.path(*MEMBERSHIPS), run.table_version)
        reg(prof, puri, pversion)
        members = f"SELECT profile_id FROM {mem} WHERE segment = {s} AND status IN ('realized', 'existing')"
        if since_run is None:
            who = f"SELECT profile_id, {lit(first_status)} AS status, 'm' AS __src FROM ({members})"
        else:
            reg(chg, ws.lake.path(*CHANGES))
            window = (
                f"FROM {chg} WHERE segment = {s} AND run_id > {lit(since_run)} "
                f"AND run_id <= {lit(run.id)}"
            )
            who = (
                f"SELECT profile_id, arg_max(status, run_id) AS status, 'm' AS __src {window} "
                "GROUP BY profile_id"
            )
            if attr is not None and prev_profiles is not None and prev_profiles != pversion:
                try:
                    reg(prev, puri, prev_profiles)
                except Exception as e:  # vacuumed: consent changes are not looked for
                    log.warning(
                        "%s/%s: profile table version %s is gone (%s); consent changes of "
                        "unchanged members are not looked for",
                        d.name, segment, prev_profiles, type(e).__name__,
                    )  # fmt: skip
                else:
                    c = consent_sql(attr)
                    who += (
                        " UNION ALL SELECT m.profile_id, CASE WHEN coalesce(n.c, 'unknown') IN "
                        f"({allow}) THEN 'realized' ELSE 'exited' END AS status, 'c' AS __src "
                        f"FROM ({members}) AS m "
                        f"LEFT JOIN (SELECT profile_id, {c} AS c FROM {prof}) AS n ON n.profile_id = m.profile_id "
                        f"LEFT JOIN (SELECT profile_id, {c} AS c FROM {prev}) AS o ON o.profile_id = m.profile_id "
                        f"WHERE m.profile_id NOT IN (SELECT profile_id {window}) "
                        f"AND (coalesce(n.c, 'unknown') IN ({allow})) <> (coalesce(o.c, 'unknown') IN ({allow}))"
                    )
        consent = consent_sql(attr) if attr is not None else "'y'"
        ok = f"(coalesce({consent}, 'unknown') IN ({allow}))"
        if all_identities:
            reg(idt, ws.lake.path(*IDENTITIES))
            hashed = " ".join(
                f"WHEN {lit(ns)} THEN {lit(h)}" for ns, h in HASHED_NAMESPACES.items()
            )
            names = ", ".join(lit(ns) for ns in HASHED_NAMESPACES)
            ids_cols = ", i.ids AS __ids"
            ids_join = (
                "LEFT JOIN (SELECT profile_id, list({'namespace': CASE namespace "
                f"{hashed} ELSE namespace END, 'value': CASE WHEN namespace IN ({names}) "
                "THEN sha256(value) ELSE value END} ORDER BY namespace, value) AS ids "
                f"FROM {idt} WHERE status = 'active' GROUP BY profile_id) AS i "
                "ON i.profile_id = w.profile_id"
            )
            id_ok = "(i.ids IS NOT NULL AND len(i.ids) > 0)"
        else:
            ids_cols = "".join(
                f", {_encode_sql(c.source, c.encoding)} AS __id{k}"
                for k, c in enumerate(d.identities)
            )
            ids_join = ""
            tests = [f"{ident(c.source)} IS NOT NULL" for c in d.identities]
            id_ok = (
                f"({(' OR ' if d.require == 'any' else ' AND ').join(tests)})" if tests else "true"
            )
        attrs = "".join(
            f", CAST(p.{ident(src)} AS VARCHAR) AS __a{k}" for k, (src, _) in enumerate(d.mapping)
        )
        # an entry without consent is not sent (the receiver never learns of the person);
        # a member whose consent changes to "no" is sent as an exit (the 'c' rows)
        optout = f"(w.__src = 'm' AND w.status <> 'exited' AND NOT {ok})"
        table = eng.query(
            f"SELECT w.profile_id, w.status AS __status, "
            f"{optout} AS __optout, {id_ok} AS __id_ok{ids_cols}{attrs} FROM ({who}) AS w "
            f"LEFT JOIN {prof} AS p ON p.profile_id = w.profile_id {ids_join} "
            "ORDER BY w.profile_id"
        )
    finally:
        for v in views:
            eng.unregister(v)
    eligible = table.num_rows
    table = table.filter(pc.fill_null(table.column("__id_ok"), False))
    no_consent = int(pc.sum(table.column("__optout").cast(pa.int64())).as_py() or 0)
    table = table.filter(pc.invert(pc.fill_null(table.column("__optout"), False)))
    return _Plan(
        table,
        eligible,
        eligible - table.num_rows,
        no_consent,
        pversion,
        "all" if all_identities else "columns" if d.identities else "profile_id",
        tuple(c.column for c in d.identities),
        tuple(col for _, col in d.mapping),
    )


@dataclass
class _Sent:
    counts: Counts
    deliveries: list[dict[str, Any]]
    error: str | None


def _send_batches(
    ws: Workspace,
    d: Destination,
    segment: str,
    sender: Sender,
    endpoint: str,
    plan: _Plan,
    make_body: Callable[[Sequence[dict[str, Any]]], Any],
    act_id: int,
    base: Counts,
) -> _Sent:
    """POST the rows in micro-batches; dead-letter what does not get through."""
    delivered = added = removed = dead = 0
    deliveries: list[dict[str, Any]] = []
    dead_rows: list[dict[str, Any]] = []
    errors: list[str] = []
    total = -(-plan.n // sender.options.max_batch)
    for i, chunk in enumerate(plan.batches(sender.options.max_batch), 1):
        delivery_id = str(uuid.uuid4())
        body = _body(make_body(chunk))
        n_add = sum(r["status"] != "exited" for r in chunk)
        out = sender.post(endpoint, body, delivery_id)
        deliveries.append(
            {
                "name": f"batch {i}/{total}",
                "delivery_id": delivery_id,
                "events": len(chunk),
                "bytes": len(body),
                "attempts": out.attempts,
                "http_status": out.status_code,
                "status": "delivered" if out.delivered else "dead_lettered",
            }
        )
        if out.delivered:
            delivered += len(chunk)
            added += n_add
            removed += len(chunk) - n_add
            continue
        dead += len(chunk)
        errors.append(out.error or "")
        dead_rows.append(
            _dead_row(
                d.name, segment, delivery_id, endpoint, body, len(chunk), n_add,
                len(chunk) - n_add, out, act_id,
            )
        )  # fmt: skip
    _dead_letter(ws, dead_rows)
    counts = Counts(
        **{
            **asdict(base),
            "exported": delivered,
            "added": added,
            "removed": removed,
            "dead_lettered": dead,
        }
    )
    error = None
    if errors:
        error = f"{len(dead_rows)} of {total} batch(es) dead-lettered: {errors[0]}"
    return _Sent(counts, deliveries, error)


def _result(
    act_id: int,
    d: Destination,
    segment: str,
    as_of: dt.datetime,
    mode: str,
    status: str,
    counts: Counts,
    files: list[dict[str, Any]] | None = None,
    manifest: str | None = None,
    error: str | None = None,
    t0: float | None = None,
) -> ActivationResult:
    secs = round(time.perf_counter() - t0, 3) if t0 is not None else 0.0
    return ActivationResult(
        act_id, d.name, segment, as_of, mode, status, counts, files or [], manifest, error, secs
    )


def deliver(
    ws: Workspace,
    d: Destination | str,
    as_of: Any,
    segments: Sequence[str] | None = None,
) -> list[ActivationResult]:
    """Deliver each segment's membership changes to a streaming destination.

    ``ws.activation.run`` calls this for ``webhook`` and ``audience_manager`` destinations.
    Each segment is recorded in the catalog as an activation (``success``, ``partial``,
    ``failed``, ``blocked`` or, for an audience manager whose segment is not confirmed,
    ``unconfirmed``); the same (destination, segment, ``as_of``) delivered before is
    reported as ``already_delivered`` and not sent again.

    Args:
        ws: The workspace.
        d: The destination (definition or name).
        as_of: The evaluation time: the latest segment run at or before it is delivered.
        segments: Mapped segments to deliver (default: all of them).

    Returns:
        One result per segment, in order.

    Raises:
        ConfigError: Not a streaming destination, a bad option, or a secret that cannot be
            read (the activation is recorded ``failed`` first).
        NotFoundError: The segment has not been run at or before ``as_of``.
    """
    if isinstance(d, str):
        d = ws.activation.get(d)
    if d.type not in STREAMING_TYPES:
        raise ConfigError(f"destination {d.name!r} ({d.type}) is not a streaming destination")
    when = to_utc(as_of)
    names = list(d.segments) if segments is None else list(segments)
    for s in names:
        if s not in d.segments:
            raise ConfigError(f"segment {s!r} is not mapped to destination {d.name!r}")
    opts = Options.of(d)
    client = httpx.Client(timeout=httpx.Timeout(opts.timeout_s), follow_redirects=False)
    secret: list[str | None] = []  # read once, on first need, inside a recorded activation

    def get_secret() -> str | None:
        if not secret:
            secret.append(_secret(d, "secret"))
        return secret[0]

    senders: list[Sender] = []

    def make_sender() -> Sender:  # one per call: a receiver found down stays down
        if not senders:
            senders.append(Sender(d, opts, get_secret(), client))
        return senders[0]

    try:
        return [_deliver_segment(ws, d, s, when, make_sender) for s in names]
    finally:
        client.close()


def _deliver_segment(
    ws: Workspace,
    d: Destination,
    segment: str,
    as_of: dt.datetime,
    make_sender: Callable[[], Sender],
) -> ActivationResult:
    with ws.lake.lock(f"activation_{d.name}"):  # deliveries to one destination never overlap
        history = [
            a for a in ws.catalog.list_activations(d.name, segment, limit=10_000) if _handed_over(a)
        ]
        for a in history:
            if a.as_of == as_of:
                log.info(
                    "activation %s/%s at %s already delivered (#%s)", d.name, segment, as_of, a.id
                )
                return ActivationResult(
                    a.id, d.name, segment, as_of, a.mode, "already_delivered",
                    _counts(a.counts), a.files, a.manifest,
                )  # fmt: skip
        t0 = time.perf_counter()
        run = _segment_run(ws, segment, as_of)
        act_id = ws.catalog.start_activation(d.name, segment, as_of, "stream", run.id)
        try:
            blocked = ws.activation.blocked_by(d, segment)
            if blocked:
                error = "blocked by governance: " + "; ".join(blocked)
                ws.catalog.finish_activation(
                    act_id, status="blocked", error=error, counts=asdict(Counts())
                )
                return _result(
                    act_id, d, segment, as_of, "stream", "blocked", Counts(), error=error, t0=t0
                )
            last = max(history, key=lambda a: a.segment_run_id or 0) if history else None
            if d.type == "webhook":
                return _webhook(ws, d, segment, as_of, run, last, act_id, make_sender, t0)
            return _audience(ws, d, segment, as_of, run, last, act_id, make_sender, t0)
        except BaseException as e:
            ws.catalog.finish_activation(act_id, status="failed", error=f"{type(e).__name__}: {e}")
            raise


def _finish(
    ws: Workspace,
    d: Destination,
    segment: str,
    as_of: dt.datetime,
    run: Any,
    act_id: int,
    mode: str,
    plan: _Plan,
    sent: _Sent,
    t0: float,
) -> ActivationResult:
    c = sent.counts
    status = "success"
    if c.dead_lettered:
        status = "partial" if c.exported else "failed"
    manifest = json.dumps(
        {
            "url": _safe_url(d.url),
            "segment_run_id": run.id,
            "segment_run_as_of": run.as_of.isoformat(),
            "profiles_version": plan.profiles_version,
        }
    )
    ws.catalog.finish_activation(
        act_id,
        status=status,
        mode=mode,
        segment_run_id=run.id,
        counts=asdict(c),
        files=sent.deliveries,
        manifest=manifest,
        error=sent.error,
    )
    res = _result(
        act_id, d, segment, as_of, mode, status, c, sent.deliveries, manifest, sent.error, t0
    )
    log.info(
        "activation %s: %s -> %s (%s, run %s): %d change(s) delivered in %d batch(es), "
        "%d dead-lettered, %.2fs",
        act_id, segment, d.name, mode, run.id, c.exported, len(sent.deliveries),
        c.dead_lettered, res.seconds,
    )  # fmt: skip
    return res


def _webhook(
    ws: Workspace,
    d: Destination,
    segment: str,
    as_of: dt.datetime,
    run: Any,
    last: ActivationInfo | None,
    act_id: int,
    make_sender: Callable[[], Sender],
    t0: float,
) -> ActivationResult:
    since = last.segment_run_id if last is not None else None
    mode = "backfill" if since is None else "incremental"
    if since is not None and run.id <= since:
        plan = _empty_plan(ws)
    else:
        plan = _stage(
            ws, d, segment, run, since, _manifest_profiles_version(last), "realized",
            all_identities=False,
        )  # fmt: skip
    stamp = as_of.isoformat()

    def body(chunk: Sequence[dict[str, Any]]) -> dict[str, Any]:
        events = []
        for r in chunk:
            e = {
                "destination": d.name,
                "segment": segment,
                "profile_id": r["profile_id"],
                "status": r["status"],
                "as_of": stamp,
                "identities": r["identities"],
            }
            if "attributes" in r:
                e["attributes"] = r["attributes"]
            events.append(e)
        return {"events": events}

    base = Counts(
        eligible=plan.eligible,
        skipped_no_identity=plan.no_identity,
        skipped_no_consent=plan.no_consent,
    )
    sender = make_sender() if plan.n else None
    sent = (
        _send_batches(ws, d, segment, sender, "", plan, body, act_id, base)
        if sender is not None
        else _Sent(base, [], None)
    )
    return _finish(ws, d, segment, as_of, run, act_id, mode, plan, sent, t0)


def ensure_sync(
    ws: Workspace, d: Destination, segment: str, sender: Sender
) -> tuple[Any, Outcome | None, str | None]:
    """The audience manager's confirmation of a segment (its metadata pushed first when
    it has none for the segment's current version): ``(sync, None, None)``, or ``(None,
    outcome, why)`` when the audience manager did not confirm it."""
    info = ws.segments.info(segment)
    sync = ws.catalog.get_audience_sync(d.name, segment)
    if sync is not None and sync.segment_version == info.version:
        return sync, None, None
    meta = {
        "id": segment,
        "name": segment,
        "description": info.description,
        "version": info.version,
    }
    out = sender.post("/segments", _body(meta), str(uuid.uuid4()))
    body = out.body if isinstance(out.body, dict) else {}
    remote = body.get("id")
    if out.delivered and body.get("status") == "active" and remote not in (None, ""):
        sync = ws.catalog.confirm_audience_sync(d.name, segment, str(remote), info.version)
        log.info(
            "%s: segment %s v%s confirmed as %s", d.name, segment, info.version, sync.remote_id
        )
        return sync, None, None
    why = (
        f"pushing the segment failed: {out.error}"
        if not out.delivered
        else f"the audience manager answered status {body.get('status')!r}"
    )
    error = (
        f"segment {segment!r} (version {info.version}) is not confirmed by the "
        f"audience manager ({why}); no memberships were shared"
    )
    return None, out, error


def _audience(
    ws: Workspace,
    d: Destination,
    segment: str,
    as_of: dt.datetime,
    run: Any,
    last: ActivationInfo | None,
    act_id: int,
    make_sender: Callable[[], Sender],
    t0: float,
) -> ActivationResult:
    """Share one segment with an audience manager: metadata first, memberships once the
    audience manager confirmed it.

    Memberships are keyed by every active identity of the profile in the identity graph.
    Email addresses and phone numbers never leave in clear: they are sent as the SHA-256
    hex of the normalized value (lower-case email; E.164 phone, ``+`` included) under the
    namespaces ``email_sha256`` and ``phone_sha256``, so the audience manager can match
    them against its own hashed contacts without learning new ones; other namespaces
    (CRM, loyalty, cookie ids) are sent as they are, being the shared keys of the two
    systems. Internal profile ids are not sent.
    """
    sender = make_sender()
    sync, out, error = ensure_sync(ws, d, segment, sender)
    if sync is None:
        assert out is not None and error is not None
        status = "failed" if not out.delivered else "unconfirmed"
        files = [
            {
                "name": "segment metadata",
                "attempts": out.attempts,
                "http_status": out.status_code,
                "status": status,
            }
        ]
        ws.catalog.finish_activation(
            act_id, status=status, mode="sync", counts=asdict(Counts()), files=files,
            error=error,
        )  # fmt: skip
        log.warning("%s: %s", d.name, error)
        return _result(act_id, d, segment, as_of, "sync", status, Counts(), files, None, error, t0)
    since = sync.memberships_run_id
    mode = "existing" if since is None else "incremental"
    if since is not None and run.id <= since:
        plan = _empty_plan(ws)
    else:
        prev = _manifest_profiles_version(last) if since is not None else None
        plan = _stage(ws, d, segment, run, since, prev, "existing", all_identities=True)
    remote_id = sync.remote_id

    def body(chunk: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {
            "segment_id": remote_id,
            "memberships": [{"status": r["status"], "identities": r["identities"]} for r in chunk],
        }

    base = Counts(
        eligible=plan.eligible,
        skipped_no_identity=plan.no_identity,
        skipped_no_consent=plan.no_consent,
    )
    sent = (
        _send_batches(ws, d, segment, sender, "/memberships", plan, body, act_id, base)
        if plan.n
        else _Sent(base, [], None)
    )
    res = _finish(ws, d, segment, as_of, run, act_id, mode, plan, sent, t0)
    if since is None or run.id > since:
        ws.catalog.set_audience_sync_run(d.name, segment, run.id)
    return res


# ---------------------------------------------------------------------- every destination
def deliver_all(
    ws: Workspace,
    as_of: Any,
    destinations: Sequence[str] | None = None,
    *,
    timeout_s: float | None = None,
) -> dict[str, list[ActivationResult] | str]:
    """Run every destination (file or streaming) at ``as_of``, each in its own thread.

    Each destination runs ``ws.activation.run(name, as_of)`` on its own view of the
    workspace (same catalog and lake, its own query engine) so none waits on another's
    queries. A destination that raises is reported by its error; one still running at its
    time limit (``connection.deliver_timeout_s``, else ``timeout_s``, else 900 s) is
    reported as timed out and left to finish in the background; neither delays the others.

    Args:
        ws: The workspace.
        as_of: The evaluation time.
        destinations: Destination names (default: every stored destination).
        timeout_s: Time limit of a destination without its own ``deliver_timeout_s``.

    Returns:
        By destination name: its results, or a one-line error (``ErrorType: message``).
    """
    when = to_utc(as_of)
    names = (
        list(destinations)
        if destinations is not None
        else [n for n, _, _, _ in ws.catalog.list_destinations()]
    )
    out: dict[str, list[ActivationResult] | str] = {}
    futures: dict[str, cf.Future[list[ActivationResult]]] = {}
    deadlines: dict[str, float] = {}
    limits: dict[str, float] = {}
    start = time.monotonic()
    for name in names:
        try:
            d = ws.activation.get(name)
            own = Options.of(d).deliver_timeout_s  # checked
            limit = own if d.option("deliver_timeout_s") is not None else timeout_s or own
        except WorkbenchError as e:
            out[name] = f"{type(e).__name__}: {e}"
            continue
        fut: cf.Future[list[ActivationResult]] = cf.Future()
        threading.Thread(
            target=_run_one, args=(fut, ws, name, when), name=f"deliver-{name}", daemon=True
        ).start()
        futures[name] = fut
        limits[name] = limit
        deadlines[name] = start + limit
    pending = set(futures)
    while pending:
        now = time.monotonic()
        for name in sorted(pending):
            fut = futures[name]
            if fut.done():
                pending.discard(name)
                e = fut.exception()
                if e is None:
                    out[name] = fut.result()
                else:
                    out[name] = f"{type(e).__name__}: {e}"
                    log.warning("deliver_all: %s failed: %s", name, out[name])
            elif deadlines[name] <= now:
                pending.discard(name)
                out[name] = (
                    f"TimeoutError: still running after {limits[name]:g}s (left to finish "
                    "in the background)"
                )
                log.warning("deliver_all: %s %s", name, out[name])
        if pending:
            left = min(deadlines[n] for n in pending) - time.monotonic()
            cf.wait(
                [futures[n] for n in pending],
                timeout=max(0.0, left),
                return_when=cf.FIRST_COMPLETED,
            )
    log.info(
        "deliver_all at %s: %d destination(s), %d reported an error, %.2fs",
        when.isoformat(), len(names), sum(isinstance(v, str) for v in out.values()),
        time.monotonic() - start,
    )  # fmt: skip
    return {n: out[n] for n in names if n in out}


def _run_one(
    fut: cf.Future[list[ActivationResult]], ws: Workspace, name: str, as_of: dt.datetime
) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    view = type(ws)(ws.path, ws.settings, ws.catalog)  # its own engine, the same catalog
    result: list[ActivationResult] | None = None
    error: BaseException | None = None
    try:
        result = view.activation.run(name, as_of)
    except BaseException as e:
        error = e
    finally:
        # the engine is closed before the caller hears of the result: a process that exits
        # right after deliver_all must not tear DuckDB down under a running thread
        engine = view.__dict__.get("_engine")
        if engine is not None:
            engine.close()
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result or [])


__all__ = [
    "DEAD_LETTER",
    "DEAD_LETTER_SCHEMA",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "AudienceStream",
    "EventStream",
    "MicroBatcher",
    "Options",
    "Outcome",
    "Sender",
    "audience_identities",
    "dead_letters",
    "deliver",
    "deliver_all",
    "ensure_sync",
    "retry",
    "sign",
]
