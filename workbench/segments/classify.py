"""Evaluation method: ``streaming`` or ``batch``, decided from the rule, with the reason.

The rules users of commercial CDPs know (see ``cdp-facts.md``):

* streaming: attribute conditions only; one event condition in a window of at most 24 hours
  (with or without attribute conditions); several event conditions, each within 24 hours
  (a sequence in time order within 24 hours included; a negated event only beside a positive
  one); segments made only of streaming segments;
* batch: everything else — windows over 24 hours or no window, absence on its own, sums,
  averages, minima and maxima, count comparisons other than "at least", date attributes
  relative to the clock (age, anniversaries, "30d ago"), a segment reference combined with
  an event condition, a reference to a batch segment.

Streaming segments are evaluated by the batch job too, so that time-based exits happen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from workbench.segments.model import (
    All,
    AnyOf,
    Attr,
    Condition,
    Events,
    InSegment,
    Not,
    SegmentDefinition,
    Sequence,
    Window,
    parse_duration,
    relative_time,
)

STREAMING = "streaming"
BATCH = "batch"
#: The longest window a streaming segment may look back over.
STREAMING_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Method:
    """The evaluation method of a segment and why."""

    method: str
    reason: str

    @property
    def is_streaming(self) -> bool:
        """True for streaming segments."""
        return self.method == STREAMING


def _leaves(c: Condition, negated: bool = False) -> list[tuple[Condition, bool]]:
    if isinstance(c, All | AnyOf):
        return [x for i in c.items for x in _leaves(i, negated)]
    if isinstance(c, Not):
        return _leaves(c.item, not negated)
    return [(c, negated)]


def _window_ok(w: Window) -> str | None:
    """None when the window fits streaming, else why not."""
    if w.since is not None:
        return f"a fixed start date (since {w.since}) is not a rolling window of 24 hours or less"
    length = w.length()
    if length is None:
        return "no time window (all history)"
    if length > STREAMING_WINDOW:
        span = w.within if w.within else f"between {w.between[0]} and {w.between[1]} ago"  # type: ignore[index]
        return f"a window over 24 hours ({span})"
    return None


def classify(
    defn: SegmentDefinition,
    definitions: Mapping[str, SegmentDefinition] | None = None,
    _seen: frozenset[str] = frozenset(),
) -> Method:
    """Decide the evaluation method of ``defn`` (references looked up in ``definitions``)."""
    definitions = definitions or {}
    leaves = _leaves(defn.rule)
    attrs = [c for c, _ in leaves if isinstance(c, Attr)]
    events = [(c, neg) for c, neg in leaves if isinstance(c, Events)]
    seqs = [(c, neg) for c, neg in leaves if isinstance(c, Sequence)]
    refs = [c for c, _ in leaves if isinstance(c, InSegment)]

    for a in attrs:
        if a.fn is not None:
            return Method(
                BATCH,
                f"{a.fn}({a.field}) depends on the clock: the daily batch job re-evaluates it",
            )
        values = a.value if isinstance(a.value, tuple) else (a.value,)
        if any(relative_time(v) is not None for v in values):
            return Method(
                BATCH,
                f"{a.field} is compared with a date relative to as_of: it changes with the clock",
            )
    positive = 0
    negative = 0
    for e, neg in events:
        why = _window_ok(e.window)
        if why:
            return Method(BATCH, f"event condition on {_types(e)}: {why}")
        a = e.aggregate
        if a.fn != "count":
            return Method(
                BATCH,
                f"event condition on {_types(e)}: a {a.fn} of {a.field} is an aggregate the batch job computes",
            )
        if e.is_absence:
            absent = not neg
        elif a.op in ("gte", "gt") and a.value >= (1 if a.op == "gte" else 0):
            absent = neg
        else:
            return Method(
                BATCH,
                f"event condition on {_types(e)}: counting {a.op} {a.value} is not an 'at least' test",
            )
        if absent:
            negative += 1
        else:
            positive += 1
    for s, neg in seqs:
        why = _window_ok(s.window)
        if why:
            return Method(BATCH, f"sequence: {why}")
        if parse_duration(s.then_within) > STREAMING_WINDOW:
            return Method(
                BATCH,
                f"sequence: its second step may come up to {s.then_within} later, over 24 hours",
            )
        if neg:
            negative += 1
        else:
            positive += 1
    if negative and not positive:
        return Method(
            BATCH,
            "absence of events on its own (nothing happening) can only be seen by the batch job",
        )
    if refs:
        if events or seqs:
            return Method(BATCH, "a segment reference combined with an event condition")
        for r in refs:
            d = definitions.get(r.segment)
            if d is None or r.segment in _seen:
                return Method(BATCH, f"refers to segment {r.segment!r}, which is not known here")
            m = classify(d, definitions, _seen | {defn.name})
            if not m.is_streaming:
                return Method(BATCH, f"refers to batch segment {r.segment!r}")
        if not attrs:
            return Method(STREAMING, "made of streaming segments only")
        return Method(STREAMING, "attribute conditions and streaming segments only")
    n = len(events) + len(seqs)
    if n == 0:
        return Method(STREAMING, "attribute conditions only")
    if seqs:
        return Method(STREAMING, "events in time order within 24 hours")
    what = "one event condition" if n == 1 else f"{n} event conditions"
    extra = " with attribute conditions" if attrs else ""
    return Method(STREAMING, f"{what} within 24 hours{extra}")


def _types(e: Events) -> str:
    return ", ".join(e.types) if e.types else "any event"


__all__ = ["BATCH", "STREAMING", "Method", "classify"]
