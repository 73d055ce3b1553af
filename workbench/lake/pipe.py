"""Overlap producing and consuming: the caller's thread produces, a worker consumes.

Used where an engine streams batches (which must stay on the thread that started the
query) into a writer that encodes Parquet (which releases the GIL): both cores work.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_END = object()


def pipe(
    items: Iterable[T], consume: Callable[[Iterator[T]], R], depth: int = 4, name: str = "pipe"
) -> R:
    """Run ``consume(iterator)`` on a worker thread while this thread pulls ``items``.

    At most ``depth`` items wait in between. An exception in ``consume`` stops the
    production and is re-raised here; one in the production reaches ``consume`` as the
    end of its input and is re-raised here.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    result: list[R] = []
    errors: list[BaseException] = []

    ended = [False]

    def feed() -> Iterator[T]:
        while (x := q.get()) is not _END:
            yield x  # type: ignore[misc]
        ended[0] = True

    def work() -> None:
        try:
            result.append(consume(feed()))
        except BaseException as e:
            errors.append(e)
        while not ended[0] and q.get() is not _END:  # drain, so the producer never blocks
            pass

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    try:
        for x in items:
            if errors:
                break
            q.put(x)
    finally:
        q.put(_END)
        t.join()
    if errors:
        raise errors[0]
    return result[0]


__all__ = ["pipe"]
