"""Durable append-only logs of the streaming service: accepted items and membership changes.

Every accepted item is written here, and ``fsync``-ed, before the service answers 202:
an accepted item survives a ``kill -9``. Writers hand whole requests to one thread that
writes everything pending in one go and syncs once (group commit), so many concurrent
requests cost one ``fsync``.

A log is a folder of JSON Lines files named by the sequence number of their first line
(``00000000000000000001.jsonl``); a new file starts past :data:`ROTATE_BYTES`. Each line is
one object with a monotonic ``seq``. A line cut short by a crash (never acknowledged, since
acknowledgement waits for the sync) is ignored on reading.

    log = DurableLog(path)
    seqs = log.append([{"dataset": "web_events", "item": {...}}])   # blocks until synced
    for rec in log.read(after=120): ...
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

#: A log file is closed and a new one started once it is this big.
ROTATE_BYTES = 64 << 20


class LogError(WorkbenchError):
    """The durable log cannot be written."""


def _name(seq: int) -> str:
    return f"{seq:020d}.jsonl"


class DurableLog:
    """An append-only, fsync-ed, sequence-numbered JSON Lines log with group commit.

    Args:
        path: The folder of the log (created when missing).
        sync: Whether to ``fsync`` each group (only tests of speed turn it off).
    """

    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self._lock = threading.Condition()
        self._pending: list[tuple[list[dict[str, Any]], Future[list[int]]]] = []
        self._closed = False
        self.last_seq = self._recover_last_seq()
        self._file: Any = None
        self._file_bytes = 0
        self._thread = threading.Thread(
            target=self._writer, name=f"log-{self.path.name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ reading
    def files(self) -> list[Path]:
        """The log's files, oldest first."""
        return sorted(self.path.glob("*.jsonl"))

    def read(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """Every complete line with ``seq > after``, in order."""
        files = self.files()
        starts = [int(f.stem) for f in files]
        for i, f in enumerate(files):
            if i + 1 < len(starts) and starts[i + 1] <= after + 1:
                continue  # every line of this file is at or before ``after``
            with open(f, "rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        log.warning("%s: ignoring a line cut short (a crash while writing)", f)
                        break
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        log.warning("%s: ignoring an unreadable line", f)
                        continue
                    if rec.get("seq", 0) > after:
                        yield rec

    def _recover_last_seq(self) -> int:
        files = self.files()
        last = 0
        for f in reversed(files):
            for rec in self._lines(f):
                last = max(last, int(rec.get("seq", 0)))
            if last:
                return last
            last = max(last, int(f.stem) - 1)
        return last

    @staticmethod
    def _lines(f: Path) -> Iterator[dict[str, Any]]:
        with open(f, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue

    # ------------------------------------------------------------------ writing
    def submit(self, records: list[dict[str, Any]]) -> Future[list[int]]:
        """Queue records; the future gives their sequence numbers once they are synced."""
        fut: Future[list[int]] = Future()
        with self._lock:
            if self._closed:
                raise LogError(f"log {self.path} is closed")
            self._pending.append((records, fut))
            self._lock.notify()
        return fut

    def append(self, records: list[dict[str, Any]], timeout: float | None = 30.0) -> list[int]:
        """Write records durably; their sequence numbers."""
        return self.submit(records).result(timeout)

    def _open(self, first_seq: int) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(self.path / _name(first_seq), "ab")  # noqa: SIM115 - kept open
        self._file_bytes = self._file.tell()

    def _writer(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if not self._pending and self._closed:
                    break
                batch, self._pending = self._pending, []
            try:
                chunks: list[bytes] = []
                seqs: list[list[int]] = []
                seq = self.last_seq
                if self._file is None or self._file_bytes > ROTATE_BYTES:
                    self._open(seq + 1)
                for records, _ in batch:
                    mine = []
                    for r in records:
                        seq += 1
                        r["seq"] = seq
                        mine.append(seq)
                        chunks.append(
                            json.dumps(r, separators=(",", ":"), default=str).encode() + b"\n"
                        )
                    seqs.append(mine)
                data = b"".join(chunks)
                self._file.write(data)
                self._file.flush()
                if self.sync:
                    os.fsync(self._file.fileno())
                self._file_bytes += len(data)
                self.last_seq = seq
            except BaseException as e:  # a failed write acknowledges nothing
                log.exception("log %s: write failed", self.path)
                for _, fut in batch:
                    fut.set_exception(LogError(f"log {self.path}: write failed: {e}"))
                continue
            for (_, fut), s in zip(batch, seqs, strict=True):
                fut.set_result(s)
        if self._file is not None:
            self._file.close()

    def pending(self) -> int:
        """Requests waiting to be written."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout=30)

    def truncate_before(self, seq: int) -> int:
        """Delete whole files whose every line is at or before ``seq``; how many."""
        files = self.files()
        starts = [int(f.stem) for f in files]
        gone = 0
        for i, f in enumerate(files[:-1]):  # the current file is never deleted
            if starts[i + 1] <= seq + 1:
                f.unlink()
                gone += 1
        return gone


__all__ = ["ROTATE_BYTES", "DurableLog", "LogError"]
