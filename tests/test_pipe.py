"""The producer/consumer pipe: results, early stops and errors on either side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.lake.pipe import pipe


def test_consumes_everything_in_order() -> None:
    assert pipe(range(100), lambda it: list(it), depth=2) == list(range(100))


def test_consumer_that_stops_early_does_not_block_the_producer() -> None:
    def first_three(it: Iterator[int]) -> list[int]:
        return [next(it) for _ in range(3)]

    assert pipe(range(1000), first_three, depth=2) == [0, 1, 2]


def test_consumer_error_is_raised_here() -> None:
    def boom(it: Iterator[int]) -> None:
        for x in it:
            if x == 5:
                raise ValueError("five")

    with pytest.raises(ValueError, match="five"):
        pipe(range(1000), boom, depth=2)


def test_producer_error_is_raised_here() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        pipe(produce(), lambda it: list(it))
