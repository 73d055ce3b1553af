"""The streaming service end to end over real HTTP on loopback.

A sample brand is built with its web events up to ``T0`` (7 days before the sample's
``as_of``) and the segment job run at ``T0``; the web events after ``T0`` are then replayed
in time order through ``POST /v1/collect/web_events``. At the end the streaming
memberships must equal what the batch job gives at the same ``as_of`` over the same data
(which the service has landed in the lake).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import copy_workspace
from workbench import Workspace
from workbench.sample import generate
from workbench.sample.brand import SAMPLE_DATASETS, register

ROOT = Path(__file__).resolve().parents[1]
PERSONS = 4000
SPLIT = dt.timedelta(days=7)


# ---------------------------------------------------------------------- the brand
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The brand up to T0 (segment job run at T0) and the web events after T0."""
    d = tmp_path_factory.mktemp("stream_sample")
    m = generate(d / "sample", persons=PERSONS, seed=5)
    as_of = m.as_of
    t0 = as_of - SPLIT
    web = pq.read_table(d / "sample" / "web_events.parquet")
    late = pc.greater(web.column("timestamp"), pa.scalar(t0, web.column("timestamp").type))
    pq.write_table(web.filter(pc.invert(late)), d / "web_base.parquet")
    stream = web.filter(late).sort_by("timestamp")
    path = d / "ws"
    ws = Workspace.create(path)
    register(ws)
    for sd in SAMPLE_DATASETS:
        for f in sd.files:
            src = d / "web_base.parquet" if sd.name == "web_events" else d / "sample" / f
            ws.ingest(sd.name, src)
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(ROOT / "segments")
    ws.segments.run(t0)
    ws.close()
    return {"path": path, "stream": stream, "as_of": as_of, "t0": t0}


@pytest.fixture
def brand(built: dict[str, Any], tmp_path: Path) -> Iterator[Workspace]:
    copy_workspace(built["path"], tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


def _items(t: pa.Table) -> list[dict[str, Any]]:
    """Rows as the JSON an application sends (ISO times, no nulls)."""
    out = []
    for r in t.to_pylist():
        out.append(
            {
                k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in r.items()
                if v is not None
            }
        )
    return out


# ---------------------------------------------------------------------- a live server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The service's app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, svc: Any, *, start_engine: bool = True) -> None:
        import uvicorn

        self.svc = svc
        self.port = _free_port()
        cfg = uvicorn.Config(svc.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        if start_engine:
            svc.start()
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.svc.stop()


def _key(ws: Workspace, name: str = "app", **kw: Any) -> str:
    _, token = ws.apikeys.create(name, **kw)
    return token


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_processed(engine: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while engine.queue_depth() or engine.counters["processed"] < engine.counters["accepted"]:
        assert time.monotonic() < deadline, "the engine did not catch up"
        time.sleep(0.02)
    time.sleep(0.05)


def _send_all(
    client: httpx.Client, items: list[dict[str, Any]], token: str, size: int = 40
) -> dict[str, Any]:
    """Post items in batches; a batch with bad items is answered 400 and sent again without
    them. What was accepted and what was rejected, with reasons."""
    accepted, rejected = 0, []
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        r = client.post("/v1/collect/web_events", json=chunk, headers=_auth(token))
        if r.status_code == 400:
            errs = r.json()["errors"]
            bad = {e["index"] for e in errs}
            rejected.extend(errs)
            for e in errs:
                assert e["path"].startswith(f"items[{e['index']}]"), e
                assert e["reason"], e
            chunk = [x for j, x in enumerate(chunk) if j not in bad]
            if not chunk:
                continue
            r = client.post("/v1/collect/web_events", json=chunk, headers=_auth(token))
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == len(chunk) and len(body["ids"]) == len(chunk)
        accepted += len(chunk)
    return {"accepted": accepted, "rejected": rejected}


PRIORITY = ("crm_id", "loyalty_id", "email", "phone", "device_id", "ecid")


def _canon(idents: list[tuple[str, str]]) -> str:
    """A profile named by its strongest identity (the same person in both evaluations)."""
    rank = {n: i for i, n in enumerate(PRIORITY)}
    return min(f"{rank.get(n, 99):02d}:{n}:{v}" for n, v in idents)


def _streaming_members(engine: Any) -> dict[str, set[str]]:
    return {
        s: {_canon(engine.state.identities_of(p)) for p in engine.members[s]}
        for s in engine.streaming
    }


def _batch_members(ws: Workspace, segments: list[str]) -> dict[str, set[str]]:
    ids = ws.identity.identities()
    ids = ids.filter(pc.equal(ids.column("status"), "active"))
    by_pid: dict[int, list[tuple[str, str]]] = {}
    for n, v, p in zip(
        ids.column("namespace").to_pylist(),
        ids.column("value").to_pylist(),
        ids.column("profile_id").to_pylist(),
        strict=True,
    ):
        by_pid.setdefault(p, []).append((n, v))
    return {s: {_canon(by_pid[p]) for p in ws.segments.members(s)["profile_id"]} for s in segments}


# ---------------------------------------------------------------------- end to end
def test_replay_equals_batch_evaluation(brand: Workspace, built: dict[str, Any]) -> None:
    from workbench.streaming.engine import EventClock
    from workbench.streaming.service import StreamingService

    ws = brand
    token = _key(ws, datasets=["web_events"])
    before = ws.datasets.count("web_events")
    svc = StreamingService(ws, clock=EventClock(built["t0"]), commit_interval=0)
    assert {"active_web_24h", "active_gold_web_24h"} <= set(svc.engine.streaming)
    srv = Server(svc)
    seen: list[dict[str, Any]] = []
    sse_ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=srv.url, timeout=None) as c,
            c.stream("GET", "/v1/memberships/stream", headers=_auth(token)) as r,
        ):
            assert r.status_code == 200
            sse_ready.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if len(seen) >= 10**9:
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert sse_ready.wait(10)
    items = _items(built["stream"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            out = _send_all(client, items, token)
            assert out["accepted"] + len(out["rejected"]) == len(items)  # counts add up
            _wait_processed(svc.engine)
            svc.engine.clock.set(built["as_of"])
            svc.engine.tick()
            streaming = _streaming_members(svc.engine)
            counts = {
                s: client.get(f"/v1/segments/{s}/members/count", headers=_auth(token)).json()[
                    "count"
                ]
                for s in svc.engine.streaming
            }
            metrics = client.get("/metrics").text
            time.sleep(0.3)  # the subscriber drains
    finally:
        srv.stop()
    assert counts == {s: len(v) for s, v in streaming.items()}
    assert (
        f'workbench_stream_accepted_total{{dataset="web_events"}} {float(out["accepted"])}'
        in metrics
    )
    assert "workbench_stream_evaluation_latency_seconds_bucket" in metrics
    # the subscriber saw every change, in order, and folding them gives the final state
    seqs = [c["seq"] for c in seen]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert len(seen) == svc.engine.change_log.last_seq
    assert any(c["status"] == "realized" for c in seen) and any(
        c["status"] == "exited" for c in seen
    )
    # the streamed events are in the lake: the batch job at the same as_of agrees
    assert ws.datasets.count("web_events") == before + out["accepted"]
    ws.identity.build()
    ws.profiles.build()
    ws.segments.run(built["as_of"])
    batch = _batch_members(ws, svc.engine.streaming)
    for s in svc.engine.streaming:
        assert streaming[s] == batch[s], (s, streaming[s] ^ batch[s])
        assert batch[s], f"{s} has no member: the test proves nothing"


# ---------------------------------------------------------------------- the API's rules
def test_auth_scopes_and_bad_input(brand: Workspace, built: dict[str, Any]) -> None:
    from workbench.streaming.engine import ManualClock
    from workbench.streaming.service import StreamingService

    ws = brand
    web_only = _key(ws, "web", datasets=["web_events"])
    reader = _key(ws, "reader", scopes=["read"])
    writer = _key(ws, "writer", scopes=["collect"])
    revoked = _key(ws, "old")
    ws.apikeys.revoke("old")
    svc = StreamingService(ws, clock=ManualClock(built["t0"]), commit_interval=0, max_body=200_000)
    srv = Server(svc)
    good = _items(built["stream"].slice(0, 1))[0]
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            url = "/v1/collect/web_events"
            assert c.post(url, json=good).status_code == 401
            r = c.post(url, json=good, headers=_auth("wb_not_a_key"))
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            assert c.post(url, json=good, headers=_auth(revoked)).status_code == 401
            assert c.post(url, json=good, headers=_auth(reader)).status_code == 403
            r = c.post("/v1/collect/crm_customers", json={"crm_id": "C1"}, headers=_auth(web_only))
            assert r.status_code == 403 and "crm_customers" in r.json()["error"]
            assert (
                c.get("/v1/personalization?identity=ecid:x", headers=_auth(writer)).status_code
                == 403
            )
            r = c.post("/v1/collect/nope", json=good, headers=_auth(_key(ws, "all")))
            assert r.status_code in (403, 404)
            # malformed JSON, wrong types, missing fields: 400 with the path of each
            r = c.post(
                url,
                content=b"{not json",
                headers={**_auth(web_only), "Content-Type": "application/json"},
            )
            assert r.status_code == 400 and "JSON" in r.json()["error"]
            bad = [
                dict(good, timestamp="yesterday"),
                {k: v for k, v in good.items() if k != "ecid"},
                good,
                7,
            ]
            r = c.post(url, json=bad, headers=_auth(web_only))
            assert r.status_code == 400, r.text
            errs = {e["index"]: e for e in r.json()["errors"]}
            assert set(errs) == {0, 1, 3}
            assert errs[0]["path"] == "items[0].timestamp"
            assert errs[1]["path"] == "items[1].ecid"
            assert errs[3]["path"] == "items[3]"
            assert svc.engine.input_log.last_seq == 0  # nothing of a rejected batch is kept
            # too big: the request, and too many items
            r = c.post(url, json=[good] * 1001, headers=_auth(web_only))
            assert r.status_code == 413
            r = c.post(url, json=dict(good, page="x" * 300_000), headers=_auth(web_only))
            assert r.status_code == 413
            # accepted: 202 with ids, durable
            r = c.post(url, json=good, headers=_auth(web_only))
            assert r.status_code == 202 and r.json() == {"accepted": 1, "ids": [1]}
            assert c.get("/healthz").json()["last_input_seq"] == 1
            spec = c.get("/openapi.json").json()
            assert (
                "/v1/collect/{dataset}" in spec["paths"]
                and "/v1/memberships/stream" in spec["paths"]
            )
            m = c.get("/metrics").text
            assert 'workbench_stream_rejected_total{dataset="web_events",reason="invalid"} 3.0' in m
            assert "workbench_stream_queue_depth" in m
    finally:
        srv.stop()


def test_overload_answers_429_with_retry_after(brand: Workspace, built: dict[str, Any]) -> None:
    from workbench.streaming.engine import ManualClock
    from workbench.streaming.service import StreamingService

    ws = brand
    token = _key(ws)
    svc = StreamingService(ws, clock=ManualClock(built["t0"]), commit_interval=0, max_queue=10)
    srv = Server(svc, start_engine=False)  # nothing drains the queue
    items = _items(built["stream"].slice(0, 30))
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            codes = [
                c.post("/v1/collect/web_events", json=items[i : i + 4], headers=_auth(token))
                for i in range(0, 24, 4)
            ]
    finally:
        srv.stop()
    statuses = [r.status_code for r in codes]
    assert statuses[:2] == [202, 202] and 429 in statuses
    r429 = codes[statuses.index(429)]
    assert int(r429.headers["Retry-After"]) >= 1
    # what was refused was not kept; what was accepted is durable
    assert svc.engine.input_log.last_seq == 4 * statuses.count(202)


def test_personalization_and_profile_read_from_memory(
    brand: Workspace, built: dict[str, Any]
) -> None:
    from workbench.streaming.engine import ManualClock
    from workbench.streaming.service import StreamingService

    ws = brand
    token = _key(ws)
    svc = StreamingService(ws, clock=ManualClock(built["t0"]), commit_interval=0)
    # a profile with a loyalty tier, a CRM record and a cookie
    p = ws.profiles.table().to_table(filter=None).to_pylist()
    row = next(r for r in p if r.get("tier") and r.get("email") and r.get("crm_id"))
    pid = row["profile_id"]
    ecid = next(v for n, v in svc.engine.state.identities_of(pid) if n == "ecid")
    srv = Server(svc)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.get(
                "/v1/personalization", params={"identity": f"ecid:{ecid}"}, headers=_auth(token)
            )
            assert r.status_code == 200
            body = r.json()
            assert body["known"] and body["profile_id"] == pid
            assert body["attributes"]["tier"] == row["tier"]
            for hidden in ("email", "first_name", "last_name", "phone", "birth_date", "crm_id"):
                assert hidden not in body["attributes"], hidden
            batch = set(
                ws.segments.memberships_of(pid)
                and [
                    m["segment"] for m in ws.segments.memberships_of(pid) if m["status"] != "exited"
                ]
            )
            assert set(body["segments"]) == batch
            email = row["email"].upper()  # looked up after normalization
            r = c.get("/v1/profiles", params={"identity": f"email:{email}"}, headers=_auth(token))
            assert r.status_code == 200 and r.json()["profile_id"] == pid
            assert r.json()["attributes"]["crm_id"] == row["crm_id"]
            r = c.get(
                "/v1/personalization", params={"identity": "ecid:never-seen"}, headers=_auth(token)
            )
            assert r.json() == {"known": False, "segments": [], "attributes": {}}
            assert (
                c.get(
                    "/v1/profiles", params={"identity": "ecid:never-seen"}, headers=_auth(token)
                ).status_code
                == 404
            )
            assert (
                c.get(
                    "/v1/profiles", params={"identity": "nonsense"}, headers=_auth(token)
                ).status_code
                == 400
            )
            # from memory: well under 10 ms each on loopback
            times = []
            for _ in range(200):
                t = time.perf_counter()
                c.get(
                    "/v1/personalization", params={"identity": f"ecid:{ecid}"}, headers=_auth(token)
                )
                times.append(time.perf_counter() - t)
            times.sort()
            assert (
                times[len(times) // 2] < 0.05
            )  # generous: CI machines are slow; bench has the bar
    finally:
        srv.stop()


# ---------------------------------------------------------------------- engine rules
def _engine(ws: Workspace, t: dt.datetime, tmp: Path) -> Any:
    from workbench.streaming.engine import ManualClock, StreamEngine

    return StreamEngine(ws, clock=ManualClock(t), data_dir=tmp / "stream", commit_interval=0)


def _event(ecid: str, t: dt.datetime, kind: str = "page_view", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{ecid}-{t.timestamp()}-{kind}",
        "timestamp": t.isoformat(),
        "event_type": kind,
        "ecid": ecid,
        "page": "/",
        **kw,
    }


def _post(engine: Any, ws: Workspace, dataset: str, items: list[dict[str, Any]]) -> None:
    from workbench.ingest.records import validate_items

    res = validate_items(ws, dataset, items)
    assert not res.errors, res.errors
    engine.accept(dataset, res.table.to_pylist(), items)
    engine._process([engine._queue.get_nowait() for _ in range(engine._queue.qsize())])


def test_time_driven_exit_and_new_visitor(
    brand: Workspace, built: dict[str, Any], tmp_path: Path
) -> None:
    t0 = built["t0"]
    e = _engine(brand, t0, tmp_path)
    try:
        changes: list[Any] = []
        e.subscribe(changes.extend)
        at = t0 + dt.timedelta(minutes=5)
        e.clock.set(at)
        _post(e, brand, "web_events", [_event("new-visitor-1", at)])
        pid = e.lookup("ecid:new-visitor-1")
        assert pid is not None and pid >= (1 << 40)  # provisional id, never a batch id
        mine = lambda: [(c.segment, c.status, c.cause) for c in changes if c.profile_id == pid]  # noqa: E731
        assert mine() == [("active_web_24h", "realized", "1")]
        assert e._scheduled[pid] == at + dt.timedelta(hours=24)
        e.clock.set(at + dt.timedelta(hours=23, minutes=59))
        e.tick()
        assert len(mine()) == 1
        e.clock.set(at + dt.timedelta(hours=24, seconds=1))
        e.tick()
        assert mine()[1:] == [("active_web_24h", "exited", "timer")]
        # members whose page views of the batch data aged out exited too, by the timer
        assert any(c.cause == "timer" and c.profile_id != pid for c in changes)
        assert pid not in e.members["active_web_24h"]
    finally:
        e.stop()


def test_identity_guardrails_in_the_stream(
    brand: Workspace, built: dict[str, Any], tmp_path: Path
) -> None:
    ws = brand
    t0 = built["t0"]
    e = _engine(ws, t0, tmp_path)
    try:
        ids = ws.identity.identities()
        with_cookie = set(
            ids.filter(pc.equal(ids.column("namespace"), "ecid")).column("profile_id").to_pylist()
        )
        crm = [
            r
            for r in ids.filter(pc.equal(ids.column("namespace"), "crm_id")).to_pylist()
            if r["profile_id"] in with_cookie
        ]
        a, b = crm[0], crm[1]
        cookie_a = next(v for n, v in e.state.identities_of(a["profile_id"]) if n == "ecid")
        at = t0 + dt.timedelta(minutes=1)
        e.clock.set(at + dt.timedelta(seconds=5))
        # a shared device: b logs in on a's cookie -> no fusion of two crm ids
        _post(e, ws, "web_events", [_event(cookie_a, at, "login", crm_id=b["value"])])
        assert e.lookup(f"crm_id:{a['value']}") != e.lookup(f"crm_id:{b['value']}")
        assert e.state.stats.links_cut_unique >= 1
        assert e.lookup(f"ecid:{cookie_a}") == a["profile_id"]
        # a new cookie seen with a's crm id joins a's profile
        _post(e, ws, "web_events", [_event("fresh-cookie", at, "login", crm_id=a["value"])])
        assert e.lookup("ecid:fresh-cookie") == a["profile_id"]
        # two visitors, then one login from each cookie with one new crm id: merged, the
        # older id survives and the other exits its segments (the survivor stays in)
        _post(e, ws, "web_events", [_event("v1", at), _event("v2", at + dt.timedelta(seconds=1))])
        p1, p2 = e.lookup("ecid:v1"), e.lookup("ecid:v2")
        assert p1 != p2 and p1 in e.members["active_web_24h"] and p2 in e.members["active_web_24h"]
        seen: list[Any] = []
        e.subscribe(seen.extend)
        later = at + dt.timedelta(seconds=2)
        _post(
            e,
            ws,
            "web_events",
            [
                _event("v1", later, "login", crm_id="NEW-1"),
                _event("v2", later, "login", crm_id="NEW-1"),
            ],
        )
        assert e.lookup("ecid:v1") == e.lookup("ecid:v2") == e.lookup("crm_id:NEW-1") == min(p1, p2)
        assert [(c.profile_id, c.status) for c in seen] == [(max(p1, p2), "exited")]
        assert e.state.stats.merges == 1
        # blocked values never link anything
        _post(e, ws, "web_events", [_event("unknown", at)])
        assert e.lookup("ecid:unknown") is None and e.state.stats.blocked_values >= 1
    finally:
        e.stop()


# ---------------------------------------------------------------------- kill -9
def _serve(ws_path: Path, port: int, t0: dt.datetime, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "workbench.cli", "serve", "--workspace", str(ws_path),
        "--port", str(port), "--clock", "event", "--as-of", t0.isoformat(), "--commit-interval", "0.5",
    ]  # fmt: skip
    p = subprocess.Popen(
        cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=dict(os.environ, COLUMNS="200")
    )
    deadline = time.monotonic() + 120
    while True:
        assert p.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


class SSE:
    """A membership-stream client in a thread (``Last-Event-ID`` to resume)."""

    def __init__(self, url: str, token: str, last: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.ready = threading.Event()
        headers = _auth(token)
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.ready.wait(20)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream(
                "GET", f"{url}/v1/memberships/stream", headers=headers, timeout=None
            ) as r:
                self.ready.set()
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        self.ids.append(int(line[4:]))
                    elif line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except httpx.HTTPError:  # the server was killed
            self.ready.set()


@pytest.mark.slow
def test_kill_9_loses_nothing_and_resumes_without_duplicates(
    brand: Workspace, built: dict[str, Any], tmp_path: Path
) -> None:
    ws = brand
    token = _key(ws)
    before = ws.datasets.count("web_events")
    ws_path = ws.path
    ws.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    items = [
        x
        for x in _items(built["stream"])
        if x.get("event_type") in ("page_view", "product_view", "add_to_cart", "purchase", "login")
    ]
    half = len(items) // 2
    p = _serve(ws_path, port, built["t0"], log)
    sub = SSE(url, token)
    acked: list[int] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(0, half, 20):
            r = c.post(
                "/v1/collect/web_events", json=items[i : min(i + 20, half)], headers=_auth(token)
            )
            assert r.status_code == 202, r.text
            acked.extend(r.json()["ids"])
    os.kill(p.pid, signal.SIGKILL)  # straight after the last 202: no chance to flush anything
    p.wait()
    sub.thread.join(timeout=10)
    first = list(sub.ids)
    p = _serve(ws_path, port, built["t0"], log)
    try:
        health = httpx.get(f"{url}/healthz").json()
        assert health["last_input_seq"] == len(acked) == half  # every acknowledged item survived
        last = first[-1] if first else 0
        resumed = SSE(url, token, last=last)
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(half, len(items), 20):
                r = c.post("/v1/collect/web_events", json=items[i : i + 20], headers=_auth(token))
                assert r.status_code == 202, r.text
            deadline = time.monotonic() + 60
            while True:
                h = c.get("/healthz").json()
                if (
                    h["queue_depth"] == 0
                    and h["counters"]["processed"] >= h["counters"]["accepted"]
                    and h["lake_pending"] == 0
                ):
                    break
                assert time.monotonic() < deadline, h
                time.sleep(0.2)
            time.sleep(0.5)
            total = c.get("/healthz").json()["last_change_seq"]
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    # the subscriber got every change exactly once across the crash, in order
    ids = first + resumed.ids
    assert ids == list(range(1, total + 1)), (first[-3:], resumed.ids[:3], total)
    # no change was made twice: each one flips the membership it names
    state: dict[tuple[str, int], str] = {}
    for ev in sub.events + resumed.events:
        key = (ev["segment"], ev["profile_id"])
        assert state.get(key, "exited" if ev["status"] == "realized" else None) != ev["status"], ev
        state[key] = ev["status"]
    # everything accepted reached the lake once
    ws = Workspace.open(ws_path)
    try:
        assert ws.datasets.count("web_events") == before + len(items)
    finally:
        ws.close()


# ---------------------------------------------------------------------- fuzzing
def _fuzz(
    op: Any,
    mode: Any,
    headers: dict[str, str],
    url: str,
    failures: list[str],
    calls: list[int],
    unsatisfiable: set[str],
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        r = case.call(base_url=url, headers=headers, timeout=30)
        calls[0] += 1
        if r.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {case.body!r:.200}: {r.status_code} {r.text[:200]}"
            )

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
        assert mode.value == "negative", op.label
        unsatisfiable.add(op.label)


@pytest.mark.slow
def test_fuzz_the_api_from_its_own_openapi_spec(brand: Workspace, built: dict[str, Any]) -> None:
    """schemathesis, positive and negative cases for every operation: never a 5xx."""
    import schemathesis

    from workbench.streaming.engine import ManualClock
    from workbench.streaming.service import StreamingService

    ws = brand
    token = _key(ws)
    svc = StreamingService(ws, clock=ManualClock(built["t0"]), commit_interval=0)
    srv = Server(svc)
    failures: list[str] = []
    calls = [0]
    unsatisfiable: set[str] = set()
    try:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        for result in schema.get_all_operations():
            op = result.ok()
            if op.path == "/v1/memberships/stream":  # endless by design: checked below
                continue
            for mode in schemathesis.GenerationMode:
                for headers in (_auth(token), {}):
                    _fuzz(op, mode, headers, srv.url, failures, calls, unsatisfiable)
        # the stream's own errors
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            r = c.get("/v1/memberships/stream", headers={**_auth(token), "Last-Event-ID": "abc"})
            assert r.status_code == 400
            r = c.get("/v1/memberships/stream", params={"segment": "nope"}, headers=_auth(token))
            assert r.status_code == 400
            assert c.get("/v1/memberships/stream").status_code == 401
    finally:
        srv.stop()
    assert calls[0] > 200
    # no parameter that could be made invalid (a path segment is any text)
    assert unsatisfiable <= {
        "GET /healthz",
        "GET /metrics",
        "GET /v1/segments/{name}/members/count",
    }
    assert not failures, failures[:5]


# ---------------------------------------------------------------------- destinations
def test_streaming_segments_reach_webhook_and_audience_manager_within_seconds(
    brand: Workspace, built: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_activation_streaming import FAST, SECRET, SECRET_ENV, Receiver
    from workbench.activation.streaming import sign
    from workbench.streaming.engine import ManualClock
    from workbench.streaming.service import StreamingService

    ws = brand
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = Receiver()
    am = Receiver(
        reply=lambda req, n: (
            200,
            {},
            {"id": "R-7", "status": "active"} if req.path == "/segments" else {"ok": True},
        )
    )
    try:
        conn = {"secret_env": SECRET_ENV, "max_wait_s": 0.2, **FAST}
        ws.activation.add(
            {
                "name": "hook",
                "type": "webhook",
                "connection": {"url": hook.url, **conn},
                "segments": ["active_web_24h", "vip_at_risk"],
            }
        )
        ws.activation.add(
            {
                "name": "aam",
                "type": "audience_manager",
                "connection": {"url": am.url, **conn},
                "segments": ["active_web_24h"],
            }
        )
        token = _key(ws)
        svc = StreamingService(
            ws, clock=ManualClock(built["t0"] + dt.timedelta(minutes=10)), commit_interval=0
        )
        srv = Server(svc)
        try:
            at = built["t0"] + dt.timedelta(minutes=5)
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                t = time.monotonic()
                r = c.post(
                    "/v1/collect/web_events", json=_event("brand-new", at), headers=_auth(token)
                )
                assert r.status_code == 202
                deadline = time.monotonic() + 10
                while not (any(q.path == "/memberships" for q in am.requests) and hook.requests):
                    assert time.monotonic() < deadline, (hook.requests, am.requests)
                    time.sleep(0.02)
                took = time.monotonic() - t
        finally:
            srv.stop()
        pid = svc.engine.lookup("ecid:brand-new")
        events = [e for q in hook.requests for e in json.loads(q.body)["events"]]
        mine = [e for e in events if e["profile_id"] == pid]
        assert [(e["segment"], e["status"]) for e in mine] == [("active_web_24h", "realized")]
        assert hook.requests[0].headers["x-workbench-signature"] == sign(
            SECRET, hook.requests[0].body
        )
        assert "attributes" not in mine[0]  # streaming segments send membership changes only
        assert (
            am.requests[0].path == "/segments"
            and json.loads(am.requests[0].body)["id"] == "active_web_24h"
        )
        shared = [json.loads(q.body) for q in am.requests if q.path == "/memberships"]
        assert shared[0]["segment_id"] == "R-7"
        ours = [
            m
            for b in shared
            for m in b["memberships"]
            if {"namespace": "ecid", "value": "brand-new"} in m["identities"]
        ]
        assert [m["status"] for m in ours] == ["realized"]
        assert took < 5  # seconds, not the next batch job
    finally:
        hook.stop()
        am.stop()
