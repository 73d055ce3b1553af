"""The streaming service under load, on loopback, with the 1,000,000-person sample loaded.

    python -m bench streaming --persons 1000000

1. A snapshot of the bench workspace (hard links: Delta files never change) with the sample
   segments defined and run; ``workbench serve`` started in its own process (wall clock).
2. A load generator (another process) sends one ``page_view`` per request at 500 events/s
   for 60 s, each from a different known visitor (an ``ecid`` of a profile that is not in
   ``active_web_24h``), so that every event makes a membership change. Reported: p50/p99
   from accept to membership change (the service's own histogram, ``/metrics``), the
   202 round trip seen by the client, and the changes received over server-sent events.
3. The highest sustained rate before 429s: batches of 50 events per request at rising
   rates, 10 s each, until the service answers 429 or falls behind.
4. Personalization: p50/p99 of ``GET /v1/personalization`` over loopback.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import CACHE, ROOT, Report, peak_rss_mb
from bench.common_ws import ingested_workspace, snapshot_workspace

REPO = ROOT.parent

log = logging.getLogger(__name__)

RATE = 500
SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric_quantiles(text: str, name: str) -> dict[str, float]:
    """p50/p99 (upper bucket bounds, interpolated) of a Prometheus histogram."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
    total = buckets[-1][1] if buckets else 0.0
    out = {"count": total}
    for q in (0.5, 0.99):
        want = q * total
        prev_b, prev_c = 0.0, 0.0
        for b, c in buckets:
            if c >= want:
                frac = 0.0 if c == prev_c else (want - prev_c) / (c - prev_c)
                out[f"p{int(q * 100)}_ms"] = (
                    round(1000 * (prev_b + frac * (b - prev_b)), 2)
                    if b != float("inf")
                    else float("inf")
                )
                break
            prev_b, prev_c = b, c
    return out


LOADGEN = r"""
import json, sys, time, threading, datetime as dt, httpx
url, token, rate, seconds, batch = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
ecids = json.load(open(sys.argv[6]))
H = {"Authorization": f"Bearer {token}"}
lat, codes, lock = [], {}, threading.Lock()
n_req = int(rate * seconds / batch)
start = time.monotonic()
def worker(k, stride):
    with httpx.Client(base_url=url, timeout=30) as c:
        i = k
        while i < n_req:
            due = start + i * batch / rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            now = dt.datetime.now(dt.UTC).isoformat()
            body = [{"event_id": f"lg-{i}-{j}", "timestamp": now, "event_type": "page_view",
                     "ecid": ecids[(i * batch + j) % len(ecids)], "page": "/bench"} for j in range(batch)]
            t = time.monotonic()
            r = c.post("/v1/collect/web_events", json=body if batch > 1 else body[0], headers=H)
            with lock:
                lat.append(time.monotonic() - t)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
            i += stride
threads = [threading.Thread(target=worker, args=(k, 16)) for k in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
el = time.monotonic() - start
lat.sort()
print(json.dumps({"requests": len(lat), "codes": codes, "elapsed_s": el,
  "achieved_events_per_s": codes.get(202, 0) * batch / el,
  "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}))
"""


def run(persons: int, seed: int = 42) -> Report:
    """The load test (see the module doc)."""
    from bench.segments import _prepare
    from workbench import Workspace

    src = ingested_workspace(persons, seed)
    ws = Workspace.open(src)
    _prepare(ws)
    ws.close()
    path = CACHE / f"ws-stream-{persons}-{seed}"
    snapshot_workspace(src, path)
    ws = Workspace.open(path)
    for d in ws.activation.list():
        ws.activation.remove(d.name)
    from workbench.segments.service import dependency_order

    for name in reversed(dependency_order(ws.segments.definitions())):
        ws.segments.remove(name)
    ws.segments.add(REPO / "segments")
    import datetime as dt

    ws.segments.run(dt.datetime.now(dt.UTC), force=True)
    _, token = ws.apikeys.create("bench")
    # visitors whose page view makes them enter active_web_24h
    members = set(ws.segments.members("active_web_24h")["profile_id"])
    ids = ws.identity.identities()
    import pyarrow.compute as pc

    ids = ids.filter(pc.equal(ids.column("namespace"), "ecid"))
    seen, ecids = set(), []
    for v, p in zip(
        ids.column("value").to_pylist(), ids.column("profile_id").to_pylist(), strict=True
    ):
        if p not in members and p not in seen:
            seen.add(p)
            ecids.append(v)
    n_profiles = ws.profiles.table().count_rows()
    ws.close()
    ecid_file = path / "bench_ecids.json"
    ecid_file.write_text(json.dumps(ecids[:400_000]))
    rep = Report(
        "streaming", {"persons": persons, "profiles": n_profiles, "rate": RATE, "seconds": SECONDS}
    )

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    logf = (path / "serve.log").open("wb")
    t = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "-w",
            str(path),
            "--port",
            str(port),
            "--max-queue",
            "20000",
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((path / "serve.log").read_text())
            time.sleep(0.5)
        rep.add(
            step="service start-up (load identity index, profiles, memberships)",
            seconds=round(time.perf_counter() - t, 2),
        )

        # SSE subscriber counts the changes it receives
        got = [0]

        def listen() -> None:
            try:
                with httpx.stream(
                    "GET",
                    f"{url}/v1/memberships/stream",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=None,
                ) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            got[0] += 1
            except httpx.HTTPError:
                pass

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1)

        def load(rate: float, seconds: float, batch: int) -> dict[str, Any]:
            p = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    LOADGEN,
                    url,
                    token,
                    str(rate),
                    str(seconds),
                    str(batch),
                    str(ecid_file),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            return json.loads(p.stdout.strip().splitlines()[-1])

        before = httpx.get(f"{url}/metrics").text
        out = load(RATE, SECONDS, 1)
        time.sleep(2)
        after = httpx.get(f"{url}/metrics").text
        q = _metric_quantiles(after, "workbench_stream_evaluation_latency_seconds")
        q0 = _metric_quantiles(before, "workbench_stream_evaluation_latency_seconds")
        rep.add(
            step=f"{RATE} events/s for {SECONDS} s, one event per request: accept -> membership change",
            p50_ms=q.get("p50_ms"),
            p99_ms=q.get("p99_ms"),
            detail={"changes": q["count"] - q0["count"], "client": out, "sse_received": got[0]},
        )
        # personalization reads, the service idle (queue drained, lake committed)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            h = httpx.get(f"{url}/healthz").json()
            if h["queue_depth"] == 0 and h["lake_pending"] == 0:
                break
            time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=10) as c:
            lat = []
            for i in range(2000):
                t = time.perf_counter()
                c.get(
                    "/v1/personalization",
                    params={"identity": f"ecid:{ecids[i * 7 % len(ecids)]}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                lat.append(time.perf_counter() - t)
            lat.sort()
        served = _metric_quantiles(
            httpx.get(f"{url}/metrics").text.replace(
                'workbench_stream_request_seconds_bucket{endpoint="personalization",',
                "personalization_bucket{",
            ),
            "personalization",
        )
        rep.add(
            step="GET /v1/personalization: round trip over loopback (2,000 calls, service idle)",
            p50_ms=round(1000 * statistics.median(lat), 2),
            p99_ms=round(1000 * lat[int(len(lat) * 0.99)], 2),
            detail={"in the service (histogram)": served},
        )
        # the highest sustained rate without 429
        best = 0.0
        for rate in (1000, 2000, 3000, 4000, 6000, 8000):
            o = load(rate, 10, 50)
            ok = o["codes"].get("429", 0) == 0 and o["achieved_events_per_s"] >= 0.95 * rate
            log.info("rate %s: %s", rate, o)
            rep.add(
                step=f"offered {rate} events/s (batches of 50) for 10 s",
                achieved=round(o["achieved_events_per_s"]),
                detail=o,
            )
            if not ok:
                break
            best = rate
        rep.add(step="highest sustained rate before 429s or falling behind (events/s)", rate=best)
        hwm = [
            ln
            for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if ln.startswith("VmHWM")
        ]
        rep.add(
            step="peak memory of the service process",
            mb=round(int(hwm[0].split()[1]) / 1024) if hwm else None,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
    rep.add(step="peak memory (bench process)", mb=round(peak_rss_mb()))
    return rep


__all__ = ["run"]
