"""Streaming destinations (webhook, audience manager) against real HTTP receivers.

Every receiver is a threaded ``http.server`` on 127.0.0.1 (a free port) that records what
it gets; nothing is mocked. The workspace is the hand-made brand of ``test_segments``
(five CRM customers C1..C5 and one anonymous visitor), copied fresh for every test, with:

* ``named`` — has a first name: C1..C5;
* ``gold`` — loyalty tier gold: C1;
* ``recent_buyer`` — a purchase in the last 7 days: C1 at R1 (2026-11-26), C1 + C3 at
  R2 (2026-11-30T12:00, C3's store order that morning), C1 at R3 (2026-12-07T15:00,
  C3's order left the window).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import copy_workspace
from tests.test_segments import _data
from workbench.activation.streaming import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    EventStream,
    dead_letters,
    deliver_all,
    retry,
    sign,
)

R1 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
R2 = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
R3 = dt.datetime(2026, 12, 7, 15, tzinfo=dt.UTC)
SECRET = "s3cr3t-hmac-key-never-logged-0123456789"
SECRET_ENV = "WB_TEST_WEBHOOK_SECRET"
FAST = {"retry_base_s": 0.01, "retry_max_s": 0.05, "timeout_s": 5}


# ---------------------------------------------------------------------- receivers
@dataclass
class Request:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], Any]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST; ``reply`` decides the answer."""

    reply: Callable[[Request, int], Reply] = lambda req, n: (200, {}, {"ok": True})
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        rec = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls do_<METHOD>
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with lock:
                    rec.requests.append(req)
                    n = len(rec.requests)
                status, headers, payload = rec.reply(req, n)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests for e in r.json["events"]]


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start receivers (``receivers(reply)``); all stopped after the test."""
    made: list[Receiver] = []

    def make(reply: Callable[[Request, int], Reply] | None = None) -> Receiver:
        r = Receiver(reply) if reply is not None else Receiver()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def _verify(req: Request) -> None:
    """What every receiver checks: the delivery id and the HMAC of the raw body."""
    assert uuid.UUID(req.headers[DELIVERY_HEADER.lower()])
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers[SIGNATURE_HEADER.lower()] == expected
    assert sign(SECRET, req.body) == expected


# ---------------------------------------------------------------------- workspace
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The brand built once (profiles, segments defined, not run), closed for copying."""
    from workbench import Workspace
    from workbench.sample.brand import register

    path = tmp_path_factory.mktemp("stream") / "ws"
    ws = Workspace.create(path)
    register(ws)
    for name, df in _data().items():
        assert ws.ingest(name, df).batch.rows_rejected == 0
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(
        [
            {"name": "named", "rule": {"attribute": "first_name", "op": "exists"}},
            {"name": "gold", "rule": {"attribute": "tier", "op": "eq", "value": "gold"}},
            {"name": "recent_buyer", "rule": {"events": {"type": "purchase", "within": "7d"}}},
        ]
    )
    ids = {f"C{i}": ws.identity.lookup(f"crm_id:C{i}") for i in range(1, 6)}
    ws.close()
    return path, ids


@pytest.fixture
def brand(base: tuple[Path, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh copy of the brand: (workspace, {C1..C5: profile id}); the secret is set."""
    from workbench import Workspace

    path, ids = base
    copy_workspace(path, tmp_path / "ws")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    ws = Workspace.open(tmp_path / "ws")
    yield ws, ids
    ws.close()


def _webhook(ws: Any, name: str, url: str, segments: list[str], **conn: Any) -> None:
    extra = {k: conn.pop(k) for k in ("identities", "consent", "require") if k in conn}
    ws.activation.add(
        {
            "name": name,
            "type": "webhook",
            "connection": {"url": url, "secret_env": SECRET_ENV, **FAST, **conn},
            "segments": segments,
            **extra,
        }
    )


def _who(events: list[dict[str, Any]], ids: dict[str, int]) -> list[tuple[str, str]]:
    back = {v: k for k, v in ids.items()}
    return sorted((back[e["profile_id"]], e["status"]) for e in events)


def _no_secret(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "expected some log lines"
    for rec in caplog.records:
        assert SECRET not in rec.getMessage()
        assert SECRET not in str(rec.args)


def _sha(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


# ---------------------------------------------------------------------- webhook
def test_webhook_delivers_the_members_signed_once(brand, receivers, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ws, ids = brand
    rcv = receivers()
    ws.segments.run(R1)
    _webhook(
        ws, "hook", rcv.url, ["named"],
        identities=[{"source": "email"}, {"source": "phone", "encoding": "sha256"}],
        require="any",
    )  # fmt: skip
    [res] = ws.activation.run("hook", R1)
    assert res.status == "success" and res.mode == "backfill"
    assert len(rcv.requests) == 1
    req = rcv.requests[0]
    _verify(req)
    assert req.headers["content-type"] == "application/json"
    events = rcv.events()
    assert _who(events, ids) == [(c, "realized") for c in ("C1", "C2", "C3", "C4", "C5")]
    members = set(ws.segments.members("named").profile_id)
    assert {e["profile_id"] for e in events} == members
    crm = _data()["crm_customers"].set_index("crm_id")
    back = {v: k for k, v in ids.items()}
    for e in events:
        assert e["destination"] == "hook" and e["segment"] == "named"
        assert e["as_of"] == R1.isoformat()
        row = crm.loc[back[e["profile_id"]]]
        want = {}
        if isinstance(row["email"], str):
            want["email"] = row["email"]
        if isinstance(row["phone"], str):
            want["phone"] = _sha(row["phone"])
        assert e["identities"] == want
    c = res.counts
    assert (c.eligible, c.exported, c.added, c.removed, c.dead_lettered) == (5, 5, 5, 0, 0)
    [rec] = ws.catalog.list_activations("hook")
    assert rec.status == "success" and rec.counts["exported"] == 5
    assert rec.segment_run_id == ws.segments.runs(1)[0].id
    assert rec.files[0]["delivery_id"] == req.headers[DELIVERY_HEADER.lower()]
    # the same (destination, segment, as_of) again: reported, not sent
    [again] = ws.activation.run("hook", R1)
    assert again.status == "already_delivered" and again.id == res.id
    assert len(rcv.requests) == 1
    _no_secret(caplog)


def test_without_identities_events_carry_the_profile_id(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["gold"])
    ws.activation.run("hook", R1)
    [e] = rcv.events()
    assert e["identities"] == {"profile_id": ids["C1"]} and e["status"] == "realized"


def test_profiles_without_the_required_identity_are_skipped(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"], identities=[{"source": "email", "encoding": "sha256"}])
    [res] = ws.activation.run("hook", R1)
    assert _who(rcv.events(), ids) == [(c, "realized") for c in ("C1", "C2", "C3", "C5")]
    assert (res.counts.eligible, res.counts.skipped_no_identity, res.counts.exported) == (5, 1, 4)
    assert {e["identities"]["email"] for e in rcv.events()} == {
        _sha(e) for e in ("ana@x.com", "bo@x.com", "cy@x.com", "ed@x.com")
    }


def test_micro_batches_have_at_most_max_batch_changes(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"], max_batch=2)
    [res] = ws.activation.run("hook", R1)
    assert [len(r.json["events"]) for r in rcv.requests] == [2, 2, 1]
    ids_sent = [r.headers[DELIVERY_HEADER.lower()] for r in rcv.requests]
    assert len(set(ids_sent)) == 3
    assert [f["delivery_id"] for f in res.files] == ids_sent
    assert [f["events"] for f in res.files] == [2, 2, 1]
    assert sorted(e["profile_id"] for e in rcv.events()) == sorted(ids.values())
    for r in rcv.requests:
        _verify(r)


def test_a_receiver_failing_twice_then_accepting_gets_the_batch(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    rcv = receivers(
        lambda req, n: (503, {"Retry-After": "0"}, None) if n <= 2 else (200, {}, {"ok": True})
    )
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"])
    [res] = ws.activation.run("hook", R1)
    assert res.status == "success" and res.counts.exported == 5
    assert len(rcv.requests) == 3
    assert len({r.headers[DELIVERY_HEADER.lower()] for r in rcv.requests}) == 1  # same key
    assert len({r.body for r in rcv.requests}) == 1
    for r in rcv.requests:
        _verify(r)
    assert res.files[0]["attempts"] == 3 and res.files[0]["status"] == "delivered"
    assert ws.catalog.list_activations("hook")[0].files[0]["attempts"] == 3
    assert dead_letters(ws).num_rows == 0


def test_a_refused_batch_is_not_retried_and_the_run_is_partial(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    rcv = receivers(lambda req, n: (400, {}, {"error": "bad"}) if n == 2 else (200, {}, {}))
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"], max_batch=2)
    [res] = ws.activation.run("hook", R1)
    assert len(rcv.requests) == 3  # the 400 is final; the next batch is still sent
    assert res.status == "partial"
    assert (res.counts.exported, res.counts.dead_lettered) == (3, 2)
    assert [f["status"] for f in res.files] == ["delivered", "dead_lettered", "delivered"]
    assert res.files[1]["attempts"] == 1 and res.files[1]["http_status"] == 400
    [dl] = dead_letters(ws, "hook").to_pylist()
    assert dl["attempts"] == 1 and dl["last_error"].startswith("HTTP 400")
    assert dl["payload"].encode() == rcv.requests[1].body
    assert ws.catalog.list_activations("hook")[0].status == "partial"


def test_dead_letters_then_retry_replays_them(brand, receivers, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ws, ids = brand
    healthy = threading.Event()
    rcv = receivers(lambda req, n: (200, {}, {}) if healthy.is_set() else (500, {}, None))
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"], max_batch=2, max_attempts=3)
    t = time.perf_counter()
    [res] = ws.activation.run("hook", R1)
    assert time.perf_counter() - t < 5
    # the first batch used its 3 tries; the receiver is down, the others are not tried
    assert len(rcv.requests) == 3
    assert res.status == "failed"
    assert (res.counts.exported, res.counts.dead_lettered) == (0, 5)
    assert [f["attempts"] for f in res.files] == [3, 0, 0]
    rec = ws.catalog.list_activations("hook")[0]
    assert rec.status == "failed" and rec.counts["dead_lettered"] == 5 and "HTTP 500" in rec.error
    dl = dead_letters(ws, "hook").to_pylist()
    assert [r["events"] for r in dl] == [2, 2, 1]
    assert {r["delivery_id"] for r in dl} == {f["delivery_id"] for f in res.files}
    assert all(r["activation_id"] == res.id and r["segment"] == "named" for r in dl)
    # the receiver is still down: nothing delivered, the tries are counted
    assert retry(ws, "hook") == {"replayed": 0, "still_failing": 3}
    assert dead_letters(ws, "hook").column("attempts").to_pylist() == [6, 0, 0]
    healthy.set()
    rcv.requests.clear()
    assert retry(ws, "hook") == {"replayed": 3, "still_failing": 0}
    assert dead_letters(ws, "hook").num_rows == 0
    assert [r.body.decode() for r in rcv.requests] == [r["payload"] for r in dl]
    assert [r.headers[DELIVERY_HEADER.lower()] for r in rcv.requests] == [
        r["delivery_id"] for r in dl
    ]
    for r in rcv.requests:
        _verify(r)
    assert _who(rcv.events(), ids) == [(c, "realized") for c in ("C1", "C2", "C3", "C4", "C5")]
    rec = ws.catalog.get_activation(res.id)
    assert rec.status == "success" and rec.error is None
    assert (rec.counts["exported"], rec.counts["added"], rec.counts["dead_lettered"]) == (5, 5, 0)
    assert retry(ws, "hook") == {"replayed": 0, "still_failing": 0}
    # the dead-lettered run moved the watermark: a later delivery sends nothing again
    rcv.requests.clear()
    [later] = ws.activation.run("hook", R1 + dt.timedelta(hours=1))
    assert later.status == "success" and later.counts.exported == 0 and not rcv.requests
    for a in ws.catalog.list_activations("hook"):
        assert SECRET not in json.dumps([a.error, a.files, a.manifest, a.counts])
    assert not any(SECRET in str(r) for r in dead_letters(ws).to_pylist())
    _no_secret(caplog)


def test_incremental_changes_over_three_segment_runs(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    _webhook(ws, "hook", rcv.url, ["recent_buyer"])
    seen = []
    for when in (R1, R2, R3):
        ws.segments.run(when)
        rcv.requests.clear()
        [res] = ws.activation.run("hook", when)
        assert res.status == "success"
        seen.append((res.mode, _who(rcv.events(), ids)))
        assert {e["as_of"] for e in rcv.events()} == {when.isoformat()}
    assert seen == [
        ("backfill", [("C1", "realized")]),
        ("incremental", [("C3", "realized")]),
        ("incremental", [("C3", "exited")]),
    ]
    runs = [r.id for r in reversed(ws.segments.runs(3))]
    assert [a.segment_run_id for a in reversed(ws.catalog.list_activations("hook"))] == runs
    # no segment run since: nothing to send
    rcv.requests.clear()
    [res] = ws.activation.run("hook", R3 + dt.timedelta(days=1))
    assert res.counts.eligible == 0 and not rcv.requests


def test_changes_of_several_runs_are_netted_per_profile(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    _webhook(ws, "hook", rcv.url, ["recent_buyer"])
    ws.segments.run(R1)
    ws.activation.run("hook", R1)
    ws.segments.run(R2)
    ws.segments.run(R3)  # C3 in then out again: one exit
    rcv.requests.clear()
    ws.activation.run("hook", R3)
    assert _who(rcv.events(), ids) == [("C3", "exited")]


def test_consent_opt_out_is_sent_as_an_exit(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    rcv = receivers()
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["named"], consent={"attribute": "consent_email", "allow": ["y"]})
    [res] = ws.activation.run("hook", R1)
    # consent_email: C1 y, C2 n, C3 y, C4 unknown, C5 y: members without consent are not
    # sent at all (the receiver never learns of them)
    assert _who(rcv.events(), ids) == [("C1", "realized"), ("C3", "realized"), ("C5", "realized")]
    assert (res.counts.added, res.counts.removed, res.counts.skipped_no_consent) == (3, 0, 2)
    # C1 withdraws consent and C2 gives it: no membership change, yet both are sent
    crm = _data()["crm_customers"].iloc[[0, 1]].copy()
    crm["consent_email"] = [False, True]
    crm["updated_at"] = pd.Timestamp("2026-11-27", tz="UTC")
    ws.ingest("crm_customers", crm)
    ws.identity.build()
    ws.profiles.build()
    ws.segments.run(R2)
    rcv.requests.clear()
    [res] = ws.activation.run("hook", R2)
    assert _who(rcv.events(), ids) == [("C1", "exited"), ("C2", "realized")]
    assert res.mode == "incremental"


# ---------------------------------------------------------------------- deliver_all
def test_deliver_all_isolates_a_hanging_and_a_failing_destination(
    brand, receivers, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    ok = receivers()
    hang = receivers()
    hang.reply = lambda req, n: (hang.release.wait(30), (200, {}, {}))[1]
    bad = receivers(lambda req, n: (500, {}, None))
    ws.segments.run(R1)
    _webhook(ws, "a_ok", ok.url, ["named"])
    _webhook(ws, "b_hang", hang.url, ["named"], timeout_s=30, deliver_timeout_s=0.5)
    _webhook(ws, "c_bad", bad.url, ["named"], max_attempts=2)
    _webhook(ws, "d_nosecret", ok.url, ["gold"], secret_env="WB_TEST_UNSET_SECRET")
    monkeypatch.delenv("WB_TEST_UNSET_SECRET", raising=False)
    ws.activation.add(
        {
            "name": "e_file",
            "type": "file",
            "connection": {"url": str(tmp_path / "out"), "format": "csv"},
            "segments": ["gold"],
        }
    )
    t = time.perf_counter()
    out = deliver_all(ws, R1)
    took = time.perf_counter() - t
    assert took < 4, took
    assert list(out) == ["a_ok", "b_hang", "c_bad", "d_nosecret", "e_file"]
    assert [r.status for r in out["a_ok"]] == ["success"]
    assert len(ok.events()) == 5
    assert isinstance(out["b_hang"], str) and out["b_hang"].startswith("TimeoutError")
    assert [r.status for r in out["c_bad"]] == ["failed"]
    assert isinstance(out["d_nosecret"], str) and "WB_TEST_UNSET_SECRET" in out["d_nosecret"]
    assert out["d_nosecret"].startswith("ConfigError")
    assert [r.status for r in out["e_file"]] == ["success"]
    assert list((tmp_path / "out").glob("*.csv"))
    a = ws.catalog.list_activations("a_ok")[0]
    assert a.duration_s is not None and a.duration_s < 2
    # the hanging one finishes in the background once its receiver answers
    hang.release.set()
    deadline = time.monotonic() + 10
    while ws.catalog.list_activations("b_hang")[0].status == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ws.catalog.list_activations("b_hang")[0].status == "success"
    assert ws.catalog.list_activations("d_nosecret")[0].status == "failed"


# ---------------------------------------------------------------------- audience manager
def _audience_manager(ws: Any, url: str, segments: list[str], **conn: Any) -> None:
    ws.activation.add(
        {
            "name": "aud",
            "type": "audience_manager",
            "connection": {"url": url, "secret_env": SECRET_ENV, **FAST, **conn},
            "segments": segments,
        }
    )


def _identities(ws: Any, pid: int) -> list[dict[str, str]]:
    """What the audience manager should get for a profile: every active identity, email
    and phone hashed."""
    out = []
    for r in ws.identity.members(pid).to_pylist():
        if r["status"] != "active":
            continue
        ns, v = r["namespace"], r["value"]
        if ns in ("email", "phone"):
            ns, v = f"{ns}_sha256", _sha(v)
        out.append({"namespace": ns, "value": v})
    return sorted(out, key=lambda x: (x["namespace"], x["value"]))


def test_audience_manager_shares_nothing_before_confirmation_then_existing_then_changes(
    brand, receivers, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ws, ids = brand
    confirm = threading.Event()

    def reply(req: Request, n: int) -> Reply:
        if req.path.endswith("/segments"):
            status = "active" if confirm.is_set() else "pending"
            return (
                200,
                {},
                {"id": f"remote-{req.json['id']}-v{req.json['version']}", "status": status},
            )
        return 200, {}, {"ok": True}

    rcv = receivers(reply)
    _audience_manager(ws, rcv.url + "/api", ["recent_buyer"])
    ws.segments.run(R1)
    [res] = ws.activation.run("aud", R1)
    assert res.status == "unconfirmed" and "not confirmed" in (res.error or "")
    assert [r.path for r in rcv.requests] == ["/api/segments"]
    assert ws.catalog.get_audience_sync("aud", "recent_buyer") is None
    meta = rcv.requests[0].json
    info = ws.segments.info("recent_buyer")
    assert meta == {
        "id": "recent_buyer", "name": "recent_buyer", "description": info.description,
        "version": info.version,
    }  # fmt: skip
    assert ws.catalog.list_activations("aud")[0].status == "unconfirmed"

    # confirmed at R2: the metadata again, then everyone currently in as existing
    confirm.set()
    ws.segments.run(R2)
    rcv.requests.clear()
    [res] = ws.activation.run("aud", R2)
    assert res.status == "success" and res.mode == "existing"
    assert [r.path for r in rcv.requests] == ["/api/segments", "/api/memberships"]
    for r in rcv.requests:
        _verify(r)
    sync = ws.catalog.get_audience_sync("aud", "recent_buyer")
    assert sync is not None and sync.remote_id == "remote-recent_buyer-v1"
    assert sync.segment_version == info.version
    push = rcv.requests[1].json
    assert push["segment_id"] == "remote-recent_buyer-v1"
    assert [m["status"] for m in push["memberships"]] == ["existing", "existing"]
    assert [m["identities"] for m in push["memberships"]] == [
        _identities(ws, ids["C1"]), _identities(ws, ids["C3"])
    ]  # fmt: skip
    c1 = {x["namespace"] for x in push["memberships"][0]["identities"]}
    assert c1 == {"crm_id", "ecid", "email_sha256", "loyalty_id", "phone_sha256"}
    assert {"namespace": "email_sha256", "value": _sha("ana@x.com")} in push["memberships"][0][
        "identities"
    ]
    assert "ana@x.com" not in rcv.requests[1].body.decode()
    assert "+12025550101" not in rcv.requests[1].body.decode()

    # later: only the changes, no metadata (same version)
    ws.segments.run(R3)
    rcv.requests.clear()
    [res] = ws.activation.run("aud", R3)
    assert res.mode == "incremental"
    assert [r.path for r in rcv.requests] == ["/api/memberships"]
    [m] = rcv.requests[0].json["memberships"]
    assert m == {"status": "exited", "identities": _identities(ws, ids["C3"])}

    # a new segment version is pushed (and confirmed) before any further membership
    ws.segments.add(
        {
            "name": "recent_buyer",
            "description": "bought in the last 30 days",
            "rule": {"events": {"type": "purchase", "within": "30d"}},
        }
    )
    ws.segments.run(R3 + dt.timedelta(hours=1))
    rcv.requests.clear()
    [res] = ws.activation.run("aud", R3 + dt.timedelta(hours=1))
    assert [r.path for r in rcv.requests] == ["/api/segments", "/api/memberships"]
    assert rcv.requests[0].json["version"] == info.version + 1
    # a new remote audience: everyone in it, as existing
    assert rcv.requests[1].json["segment_id"] == f"remote-recent_buyer-v{info.version + 1}"
    assert {m["status"] for m in rcv.requests[1].json["memberships"]} == {"existing"}
    assert len(rcv.requests[1].json["memberships"]) == len(ws.segments.members("recent_buyer"))
    _no_secret(caplog)


def test_audience_manager_memberships_use_the_shared_retry_and_dead_letters(
    brand, receivers
) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    up = threading.Event()

    def reply(req: Request, n: int) -> Reply:
        if req.path == "/segments":
            return 201, {}, {"id": "r1", "status": "active"}
        return (200, {}, {}) if up.is_set() else (429, {"Retry-After": "0"}, None)

    rcv = receivers(reply)
    _audience_manager(ws, rcv.url, ["named"], max_batch=2, max_attempts=2)
    ws.segments.run(R1)
    [res] = ws.activation.run("aud", R1)
    assert res.status == "failed" and res.counts.dead_lettered == 5
    assert [r.path for r in rcv.requests] == ["/segments", "/memberships", "/memberships"]
    dl = dead_letters(ws, "aud").to_pylist()
    assert [r["endpoint"] for r in dl] == ["/memberships"] * 3
    up.set()
    rcv.requests.clear()
    assert retry(ws, "aud") == {"replayed": 3, "still_failing": 0}
    assert [r.path for r in rcv.requests] == ["/memberships"] * 3
    assert sum(len(r.json["memberships"]) for r in rcv.requests) == 5
    for r in rcv.requests:
        _verify(r)
    assert ws.catalog.get_activation(res.id).status == "success"


def test_a_receiver_that_is_down_does_not_confirm(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    rcv = receivers(lambda req, n: (503, {"Retry-After": "0"}, None))
    _audience_manager(ws, rcv.url, ["gold"], max_attempts=2)
    ws.segments.run(R1)
    [res] = ws.activation.run("aud", R1)
    assert res.status == "failed" and "pushing the segment failed" in (res.error or "")
    assert [r.path for r in rcv.requests] == ["/segments", "/segments"]
    assert dead_letters(ws, "aud").num_rows == 0  # metadata is pushed again next time


# ---------------------------------------------------------------------- streaming path
def test_event_stream_sends_full_batches_at_once_and_partial_ones_after_max_wait(
    brand, receivers
) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    rcv = receivers()
    _webhook(ws, "hook", rcv.url, ["named"], max_batch=3, max_wait_s=0.3)
    with EventStream(ws, "hook") as stream:
        t = time.perf_counter()
        for i in range(7):
            stream.send("named", i, "realized", as_of=R1)
        assert [len(r.json["events"]) for r in rcv.requests] == [3, 3]
        while len(rcv.requests) < 3:
            assert time.perf_counter() - t < 5
            time.sleep(0.02)
        waited = time.perf_counter() - t
        assert 0.25 <= waited < 3, waited
        assert len(rcv.requests[2].json["events"]) == 1
        stream.send("named", 99, "exited", as_of=R1)
    assert [len(r.json["events"]) for r in rcv.requests] == [3, 3, 1, 1]  # close flushed
    for r in rcv.requests:
        _verify(r)
    assert stream.delivered == 8


# ---------------------------------------------------------------------- options, CLI
def test_bad_delivery_options_are_refused(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    from workbench.errors import ConfigError

    ws, _ = brand
    ws.segments.run(R1)
    _webhook(ws, "hook", receivers().url, ["gold"], max_batch=0)
    with pytest.raises(ConfigError, match="max_batch must be a whole number"):
        ws.activation.run("hook", R1)


def test_cli_deliver_all_and_retry(brand, receivers) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    ws, _ = brand
    up = threading.Event()
    rcv = receivers(lambda req, n: (200, {}, {}) if up.is_set() else (500, {}, None))
    ws.segments.run(R1)
    _webhook(ws, "hook", rcv.url, ["gold"], max_attempts=1)
    exe = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    w = ["-w", str(ws.path)]
    r = subprocess.run(
        [exe, "activate", "deliver-all", "--as-of", R1.isoformat(), *w],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "hook" in r.stdout and "failed" in r.stdout
    up.set()
    r = subprocess.run(
        [exe, "activate", "retry", "hook", *w], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "replayed: 1, still_failing: 0" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    assert ws.catalog.list_activations("hook")[0].status == "success"
