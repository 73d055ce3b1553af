"""What the headless-browser tests share: Debian's Chromium with its launch arguments,
a free loopback port, and waiting for a server started by the test to answer."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
VOILA = Path(sys.executable).parent / "voila"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until ``url`` answers; fail with the server's log if it exits or times out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"voila did not answer on {url} in {timeout}s:\n{log.read_text()[-3000:]}")


def voila_pool_kernels(log: Path) -> list[str]:
    """The ids of the preheated kernels Voila holds in its pools now, from its log: kernels
    started, minus those handed to a page (``Using pre-heated kernel``) or shut down."""
    text = log.read_text(errors="replace")
    started = re.findall(r"Kernel started: ([0-9a-f-]{36})", text)
    gone = set(re.findall(r"Using pre-heated kernel: ([0-9a-f-]{36})", text))
    gone |= set(re.findall(r"Kernel shutdown: ([0-9a-f-]{36})", text))
    return [k for k in started if k not in gone]


def wait_for_voila_pool(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    kernels: int,
    timeout: float,
    settle: float = 2.0,
) -> float:
    """Wait until Voila's preheated-kernel pools are ready: ``kernels`` pooled kernels, each
    idle (it has run its notebook) with no activity for ``settle`` seconds.

    Voila logs ``Kernel pool ... is filled`` as soon as the kernels are *started*; each then
    still imports the workbench and runs its notebook, which takes many seconds on two cores.
    A page opened before that waits for it and competes for the CPU with every other kernel
    still preheating. The kernels' state comes from the server's REST API
    (``/api/kernels/<id>``). Returns the seconds waited; fails with the log on a timeout or
    when Voila exits.
    """
    t0 = time.monotonic()
    end = t0 + timeout
    state: list[tuple[str, str]] = []
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        ids = voila_pool_kernels(log)
        state = []
        now = dt.datetime.now(dt.UTC)
        quiet = len(ids) >= kernels
        for k in ids:
            try:
                with urllib.request.urlopen(f"{url}/api/kernels/{k}", timeout=5) as r:
                    info = json.load(r)
            except OSError:
                quiet = False  # starting, or shut down just now
                continue
            last = dt.datetime.fromisoformat(info["last_activity"].replace("Z", "+00:00"))
            state.append((k[:8], f"{info['execution_state']} {(now - last).total_seconds():.1f}s"))
            if info["execution_state"] != "idle" or (now - last).total_seconds() < settle:
                quiet = False
        if quiet:
            return time.monotonic() - t0
        time.sleep(0.5)
    pytest.fail(
        f"Voila's kernel pools were not ready in {timeout}s (want {kernels} idle kernels; "
        f"have {state}):\n{log.read_text()[-3000:]}"
    )
