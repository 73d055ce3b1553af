"""Segment definitions evaluated for one profile at a time, in plain Python (no pandas, no SQL).

The streaming service re-evaluates a profile's streaming segments whenever one of its items
arrives, and schedules the instants at which time alone changes a membership:

    from workbench.segments.single import compile_predicate, next_change

    pred = compile_predicate(defn, definitions)      # once per definition
    pred(attributes, events, as_of)                  # -> bool, a few microseconds
    next_change(defn, definitions, events, as_of)    # -> datetime | None

``attributes`` is one row of the unified profile table as pyarrow's ``to_pylist()`` gives it
(attribute name -> Python value or None; a name that is not there is a missing value);
``events`` is that profile's event history, each a mapping like a row of the event history
(``timestamp``, ``event_type`` and the event fields; a field that is not there is missing),
**in any order**: nothing here assumes the events are sorted (a sequence sorts the times of
its second step itself, which costs nothing when the caller passes them sorted). Timestamps
are aware datetimes as pyarrow gives them (naive ones mean UTC); events after ``as_of`` are
ignored (they count once ``as_of`` reaches them). ``as_of`` naive means UTC.

The semantics are those of the SQL compiler (:mod:`workbench.segments.compiler`), which
the tests check profile by profile (and those of the pandas oracle
:mod:`workbench.segments.reference`, whose docstring states them): a comparison with a
missing value is false; ``not`` negates the whole condition; windows are start-exclusive,
end-inclusive, relative to ``as_of``; a count or a sum over no events is 0, an average,
minimum or maximum over none is missing (false); sums and averages are computed exactly
(decimals stay decimals) and rounded to :data:`~workbench.segments.reference.ROUND_DIGITS`
places; a sequence holds when an event of ``first`` in the window is followed (with
``then_absent``: not followed) by an event of ``then`` strictly after it, at most
``then_within`` later and up to ``as_of``. The kind of a value (text, number, boolean,
date, timestamp, list) is taken from its Python type, as the columns' types make them: a
calendar date compares with a timestamp's UTC day when every value of the comparison is a
calendar date, and with the instant of UTC midnight otherwise (as the engine does);
``contains`` / ``starts_with`` / ``ends_with`` take ``%`` and ``_`` literally.

:func:`next_change` is the earliest instant after ``as_of`` at which the value may change
with no new data: an event entering or leaving a window (future-dated events included), a
date attribute crossing a relative bound (``"30d ago"``) or a date function changing at a
UTC midnight. It is exact for events and sequences (candidate instants are tried in order);
without ``attributes`` the attribute conditions it cannot see are bounded conservatively
(the next UTC midnight for ``fn``, one microsecond for relative timestamps; streaming
segments have neither). Under the engine's semantics a ``then_absent`` sequence holds as
soon as its first event happens (nothing followed it *up to as_of*), so ``then_within``
running out changes nothing by itself; the first event leaving the window does.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import math
import operator
from collections.abc import Callable, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workbench.segments.model import (
    All,
    AnyOf,
    Attr,
    Condition,
    Events,
    Filter,
    InSegment,
    Not,
    SegmentDefinition,
    Window,
    parse_duration,
    relative_time,
)
from workbench.segments.model import Sequence as SeqCond
from workbench.segments.reference import ROUND_DIGITS

__all__ = [
    "CompiledSegment",
    "Predicate",
    "compile_predicate",
    "compile_segment",
    "next_change",
]

Row = Mapping[str, Any]
Events_ = Seq[Row]
#: ``predicate(attributes, events, as_of) -> bool``
Predicate = Callable[[Row, Events_, dt.datetime], bool]
#: a compiled condition: (attributes, events, as_of in UTC) -> bool
_Eval = Callable[[Row, Events_, dt.datetime], bool]
#: a leaf's next change: (attributes or None, events, t) -> the first instant after t at which
#: the leaf may differ from its value at t (the leaf is constant on [t, result)), None: never
_Next = Callable[[Row | None, Events_, dt.datetime], dt.datetime | None]
#: one comparison of a value: (value, as_of) -> bool
_Test = Callable[[Any, dt.datetime], bool]

UTC = dt.UTC
_US = dt.timedelta(microseconds=1)
_DAY = dt.timedelta(days=1)
#: candidate instants tried per leaf, and leaf steps per definition, before answering early
_LEAF_TRIES = 512
_STEPS = 64
#: days scanned for a change of days_until_anniversary (a whole leap cycle)
_ANNIV_SCAN = 4 * 366


# ---------------------------------------------------------------------------- time helpers
def _utc(t: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (naive means UTC)."""
    tz = t.tzinfo
    if tz is UTC:
        return t
    if tz is None:
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _midnight(d: dt.date) -> dt.datetime:
    """UTC midnight at the start of a calendar day."""
    return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)


def _utc_date(x: dt.datetime) -> dt.date:
    """The UTC calendar day of a timestamp (naive means UTC)."""
    if x.tzinfo is None or x.tzinfo is UTC:
        return x.date()
    return x.astimezone(UTC).date()


def _as_date(x: Any) -> dt.date:
    """The calendar day of a date, a timestamp (its UTC day) or ISO text."""
    if isinstance(x, dt.datetime):
        return _utc_date(x)
    if isinstance(x, dt.date):
        return x
    if isinstance(x, str):
        return dt.date.fromisoformat(x.strip()[:10])
    raise TypeError(f"{x!r} is not a date")


def _parse_date_value(v: Any) -> dt.date | dt.datetime:
    """A given (not relative) date value: a calendar date, or an aware instant (naive = UTC);
    ISO text with a time part (``T`` or a space) is an instant, as in the compiler."""
    if isinstance(v, str):
        parsed = dt.datetime.fromisoformat(v)
        if "T" not in v and " " not in v:
            return parsed.date()
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(v, dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, dt.date):
        return v
    raise ValueError(f"{v!r} is not a date")


# ---------------------------------------------------------------------------- kinds
def _kind(x: Any) -> str:
    """The kind of a present value, from its Python type."""
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int | float | Decimal):
        return "number"
    if isinstance(x, dt.datetime):
        return "timestamp"
    if isinstance(x, dt.date):
        return "date"
    if isinstance(x, list | tuple):
        return "array"
    return "string"


_ORDER = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _values(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _scalar(op: str, value: Any, conv: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """``x <op> value`` for a present, already converted ``x`` (every op but the text ones)."""
    if op in _ORDER:
        f = _ORDER[op]
        v = conv(value)
        return lambda x: f(x, v)
    if op == "between":
        lo, hi = conv(value[0]), conv(value[1])
        return lambda x: lo <= x <= hi
    if op in ("in", "not_in"):
        vals = [conv(v) for v in value]
        try:
            s = frozenset(vals)
        except TypeError:  # pragma: no cover - unhashable values
            s = None
        if s is not None:
            return (lambda x: x in s) if op == "in" else (lambda x: x not in s)
        return (lambda x: x in vals) if op == "in" else (lambda x: x not in vals)
    raise ValueError(f"operator {op} does not apply here")


def _num(v: Any) -> int | float:
    """A number as the comparison sees it (decimals as floats, like the oracle)."""
    if type(v) is int or type(v) is float:
        return v
    if isinstance(v, bool):
        return int(v)
    return float(v)


def _string_handler(op: str, value: Any, ci: bool) -> Callable[[Any, dt.datetime], bool]:
    def norm(v: Any) -> str:
        t = str(v)
        return t.lower() if ci else t

    if op in ("contains", "starts_with", "ends_with"):
        w = norm(value)
        if op == "contains":
            if ci:
                return lambda x, now: w in str(x).lower()
            return lambda x, now: w in (x if type(x) is str else str(x))
        if op == "starts_with":
            if ci:
                return lambda x, now: str(x).lower().startswith(w)
            return lambda x, now: (x if type(x) is str else str(x)).startswith(w)
        if ci:
            return lambda x, now: str(x).lower().endswith(w)
        return lambda x, now: (x if type(x) is str else str(x)).endswith(w)
    test = _scalar(op, value, norm)
    if ci:
        return lambda x, now: test(str(x).lower())
    return lambda x, now: test(x if type(x) is str else str(x))


def _number_handler(op: str, value: Any) -> Callable[[Any, dt.datetime], bool]:
    if op in ("contains", "starts_with", "ends_with"):
        raise ValueError(f"operator {op} does not apply to a number")
    test = _scalar(op, value, _num)
    return lambda x, now: test(_num(x))


def _boolean_handler(op: str, value: Any) -> Callable[[Any, dt.datetime], bool]:
    if op in ("contains", "starts_with", "ends_with"):
        raise ValueError(f"operator {op} does not apply to true/false")
    test = _scalar(op, value, bool)
    return lambda x, now: test(x)


def _array_handler(op: str, value: Any, ci: bool) -> Callable[[Any, dt.datetime], bool]:
    if op != "contains":
        raise ValueError(f"operator {op} does not apply to a list attribute")
    want = str(value).lower() if ci else str(value)
    if ci:
        return lambda x, now: any(i is not None and str(i).lower() == want for i in x)
    return lambda x, now: any(i is not None and str(i) == want for i in x)


#: One operand of a date comparison: (compares instants?, a fixed value or None, relative
#: offset or None). A relative value is ``as_of + offset`` (its UTC day for a day compare).
_Operand = tuple[bool, Any, dt.timedelta | None]


def _date_operands(kind: str, value: Any) -> list[_Operand]:
    """The operands of a date or timestamp comparison, as the compiler forms them.

    A date field compares calendar days with calendar-day values and instants (its UTC
    midnight) with instant values. A timestamp field compares its UTC day with calendar-day
    values and itself with instants: each value at its own grain.
    """
    out: list[_Operand] = []
    for v in _values(value):
        rel = relative_time(v)
        if rel is not None:
            out.append((kind == "timestamp", None, rel))
            continue
        c = _parse_date_value(v)
        out.append((isinstance(c, dt.datetime), c, None))
    return out


def _date_handler(kind: str, op: str, value: Any) -> Callable[[Any, dt.datetime], bool]:
    if op in ("contains", "starts_with", "ends_with"):
        raise ValueError(f"operator {op} does not apply to a {kind}")
    ops = _date_operands(kind, value)
    stamp = kind == "timestamp"

    def left(x: Any, inst: bool) -> Any:
        if inst:
            if stamp:
                return x if x.tzinfo is not None else x.replace(tzinfo=UTC)
            return _midnight(x)
        return _utc_date(x) if stamp else x

    def right(o: _Operand, now: dt.datetime) -> Any:
        inst, c, rel = o
        if rel is None:
            return c
        t = now + rel
        return t if inst else t.date()

    if op in _ORDER:
        f = _ORDER[op]
        o = ops[0]
        if o[2] is None:  # a fixed value: one comparison
            inst0, c0 = o[0], o[1]
            return lambda x, now: f(left(x, inst0), c0)
        return lambda x, now: f(left(x, o[0]), right(o, now))
    if op == "between":
        lo, hi = ops
        return lambda x, now: left(x, lo[0]) >= right(lo, now) and left(x, hi[0]) <= right(hi, now)
    if op in ("in", "not_in"):
        want = op == "in"
        return lambda x, now: any(left(x, o[0]) == right(o, now) for o in ops) is want
    raise ValueError(f"operator {op} does not apply to a {kind}")


def _handler(kind: str, op: str, value: Any, ci: bool) -> Callable[[Any, dt.datetime], bool]:
    if kind == "string":
        return _string_handler(op, value, ci)
    if kind == "number":
        return _number_handler(op, value)
    if kind == "boolean":
        return _boolean_handler(op, value)
    if kind == "array":
        return _array_handler(op, value, ci)
    return _date_handler(kind, op, value)


def _test(op: str, value: Any, ci: bool) -> _Test:
    """``x <op> value`` for any value ``x`` (false for a missing one); the comparison for a
    kind is built the first time a value of that type is seen."""
    if op == "exists":
        return lambda x, now: x is not None
    if op == "not_exists":
        return lambda x, now: x is None
    handlers: dict[type, Callable[[Any, dt.datetime], bool]] = {}

    def test(x: Any, now: dt.datetime) -> bool:
        if x is None:
            return False
        h = handlers.get(type(x))
        if h is None:
            h = handlers[type(x)] = _handler(_kind(x), op, value, ci)
        return h(x, now)

    return test


# ---------------------------------------------------------------------------- date functions
def _shift_year(d: dt.date, year: int) -> dt.date:
    """``d`` in ``year`` (February 29 becomes February 28 in a common year)."""
    if d.month == 2 and d.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return d.replace(year=year)


def _fn_value(fn: str, d: dt.date, today: dt.date) -> int:
    """``age`` / ``days_since`` / ``days_until_anniversary`` of ``d`` on ``today``."""
    if fn == "days_since":
        return (today - d).days
    if fn == "age":
        now = today.year * 10000 + today.month * 100 + today.day
        born = d.year * 10000 + d.month * 100 + d.day
        return (now - born) // 10000
    if fn == "days_until_anniversary":
        a = _shift_year(d, today.year)
        if a < today:
            a = _shift_year(d, today.year + 1)
        return (a - today).days
    raise ValueError(f"unknown function {fn}")


def _fn_test(fn: str, op: str, value: Any) -> _Test:
    if op == "exists":
        return lambda x, now: x is not None
    if op == "not_exists":
        return lambda x, now: x is None
    cmp = _scalar(op, value, _num)

    def test(x: Any, now: dt.datetime) -> bool:
        if x is None:
            return False
        return cmp(_fn_value(fn, _as_date(x), now.date()))

    return test


# ---------------------------------------------------------------------------- time points
def _relative_points(x: Any, rels: list[dt.timedelta]) -> list[dt.datetime]:
    """The instants at which a comparison of ``x`` with ``as_of + rel`` may change."""
    if isinstance(x, dt.datetime):
        out = []
        xi = _utc(x)
        for r in rels:
            out += [xi - r, xi - r + _US]
        return out
    if isinstance(x, dt.date):
        m = _midnight(x)
        out = []
        for r in rels:
            out += [m - r, m + _DAY - r]
        return out
    return []


def _thresholds(value: Any) -> list[int]:
    """Integers around each number of a comparison (where an integer function crosses it)."""
    out: set[int] = set()
    for v in _values(value):
        f = float(v)
        if math.isfinite(f):
            out.update((math.floor(f), math.floor(f) + 1, math.ceil(f), math.ceil(f) + 1))
    return sorted(out)


def _fn_points(fn: str, value: Any, d: dt.date) -> list[dt.datetime] | None:
    """UTC midnights at which ``fn(d) <op> value`` may change (None: scan day by day)."""
    out = []
    if fn == "days_since":
        for k in _thresholds(value):
            try:
                out.append(_midnight(d + dt.timedelta(days=k)))
            except OverflowError:
                continue
        return out
    if fn == "age":
        for k in _thresholds(value):
            y = d.year + k
            if not 1 <= y <= 9999:
                continue
            try:
                b = d.replace(year=y)
            except ValueError:  # February 29 in a common year: one on March 1
                b = dt.date(y, 3, 1)
            out.append(_midnight(b))
        return out
    return None


def _next_midnight(t: dt.datetime) -> dt.datetime:
    return _midnight(t.date()) + _DAY


def _first_change(
    ev: _Eval, attrs: Row, events: Events_, t: dt.datetime, points: list[dt.datetime]
) -> dt.datetime | None:
    """The first of ``points`` (a superset of the instants where ``ev`` may change) after
    ``t`` at which ``ev`` differs from its value at ``t``; None when none does."""
    later = sorted({p for p in points if p > t})
    if not later:
        return None
    v0 = ev(attrs, events, t)
    for i, p in enumerate(later):
        if i >= _LEAF_TRIES:
            return p  # constant on [t, p): early, never late
        if ev(attrs, events, p) != v0:
            return p
    return None


# ---------------------------------------------------------------------------- compiling
@dataclass
class _Leaf:
    """A leaf condition: how to evaluate it and when it may next change."""

    eval: _Eval
    next: _Next
    uses_attributes: bool = False


_NO_ATTRS: Row = {}

#: a rule's shape over its leaves: ("leaf", index) | ("not", node) | ("all"/"any", nodes)
_Node = tuple[Any, ...]


def _kleene(node: _Node, vals: list[bool | None]) -> bool | None:
    """The value of a rule from its leaves' values, None (unknown) allowed: three-valued
    logic, so a known result holds whatever the unknown leaves are."""
    kind = node[0]
    if kind == "leaf":
        return vals[node[1]]
    if kind == "not":
        v = _kleene(node[1], vals)
        return None if v is None else not v
    stop = kind == "any"  # the value that decides: True for any, False for all
    out: bool | None = not stop
    for child in node[1]:
        v = _kleene(child, vals)
        if v is stop:
            return stop
        if v is None:
            out = None
    return out


def _never(attrs: Row | None, events: Events_, t: dt.datetime) -> dt.datetime | None:
    return None


def _window_bounds(
    w: Window,
) -> tuple[
    Callable[[dt.datetime], tuple[dt.datetime | None, dt.datetime]],
    Callable[[dt.datetime], tuple[dt.datetime | None, dt.datetime | None]],
]:
    """(as_of -> (start exclusive or None, end inclusive), event time -> (the instant its
    event enters the window, the instant it leaves; None: never))."""
    if w.within is not None:
        d = parse_duration(w.within)
        return (lambda now: (now - d, now)), (lambda ts: (ts, ts + d))
    if w.between is not None:
        far, near = parse_duration(w.between[0]), parse_duration(w.between[1])
        return (lambda now: (now - far, now - near)), (lambda ts: (ts + near, ts + far))
    if w.since is not None:
        start = w.bounds(dt.datetime(2000, 1, 1, tzinfo=UTC))[0]
        assert start is not None
        s = _utc(start)
        return (lambda now: (s, now)), (lambda ts: (ts if ts > s else None, None))
    return (lambda now: (None, now)), (lambda ts: (ts, None))


class _Compiler:
    """Turns conditions into closures (references inlined) and collects the leaves."""

    def __init__(self, definitions: Mapping[str, SegmentDefinition]) -> None:
        self.definitions = definitions
        self.leaves: list[_Leaf] = []
        self.active: list[str] = []

    # ------------------------------------------------------------------ structure
    def condition(self, c: Condition) -> tuple[_Eval, int, _Node]:
        """The closure of a condition, a rough cost (cheap conditions are tried first) and
        its shape over the leaves (for :meth:`CompiledSegment.next_change`)."""
        if isinstance(c, All | AnyOf):
            parts = [self.condition(i) for i in c.items]
            node: _Node = ("all" if isinstance(c, All) else "any", tuple(p[2] for p in parts))
            parts.sort(key=lambda p: p[1])
            fs = tuple(p[0] for p in parts)
            cost = sum(p[1] for p in parts)
            if len(fs) == 1:
                return fs[0], cost, node
            if isinstance(c, All):
                if len(fs) == 2:
                    f0, f1 = fs
                    return (lambda a, e, n: f0(a, e, n) and f1(a, e, n)), cost, node
                return (lambda a, e, n: all(f(a, e, n) for f in fs)), cost, node
            if len(fs) == 2:
                f0, f1 = fs
                return (lambda a, e, n: f0(a, e, n) or f1(a, e, n)), cost, node
            return (lambda a, e, n: any(f(a, e, n) for f in fs)), cost, node
        if isinstance(c, Not):
            f, cost, inner = self.condition(c.item)
            return (lambda a, e, n: not f(a, e, n)), cost, ("not", inner)
        if isinstance(c, InSegment):
            f, cost, inner = self.segment(c.segment)
            if c.negate:
                return (lambda a, e, n: not f(a, e, n)), cost, ("not", inner)
            return f, cost, inner
        if isinstance(c, Attr):
            return self._leaf(self._attr(c), 1)
        if isinstance(c, Events):
            return self._leaf(self._events(c), 10 + 2 * len(c.where))
        if isinstance(c, SeqCond):
            return self._leaf(self._sequence(c), 30)
        raise TypeError(f"not a condition: {c!r}")

    def segment(self, name: str) -> tuple[_Eval, int, _Node]:
        if name in self.active:
            raise ValueError(f"segments refer to each other in a cycle: {[*self.active, name]}")
        d = self.definitions.get(name)
        if d is None:
            raise ValueError(f"no segment named {name!r}")
        self.active.append(name)
        try:
            return self.condition(d.rule)
        finally:
            self.active.pop()

    def _leaf(self, leaf: _Leaf, cost: int) -> tuple[_Eval, int, _Node]:
        self.leaves.append(leaf)
        return leaf.eval, cost, ("leaf", len(self.leaves) - 1)

    # ------------------------------------------------------------------ attributes
    def _attr(self, a: Attr) -> _Leaf:
        name = a.field
        if a.fn is not None:
            test = _fn_test(a.fn, a.op, a.value)
        else:
            test = _test(a.op, a.value, a.case_insensitive)

        def ev(attrs: Row, events: Events_, now: dt.datetime) -> bool:
            return test(attrs.get(name), now)

        rels = [r for v in _values(a.value) if (r := relative_time(v)) is not None]
        if a.op in ("exists", "not_exists") or (a.fn is None and not rels):
            return _Leaf(ev, _never, True)
        fn = a.fn

        def nxt(attrs: Row | None, events: Events_, t: dt.datetime) -> dt.datetime | None:
            if attrs is None:  # unseen: as early as the value could move
                return _next_midnight(t) if fn is not None else t + _US
            x = attrs.get(name)
            if x is None:
                return None
            if fn is None:
                return _first_change(ev, attrs, events, t, _relative_points(x, rels))
            d = _as_date(x)
            points = _fn_points(fn, a.value, d)
            if points is not None:
                return _first_change(ev, attrs, events, t, points)
            # days_until_anniversary: periodic; constant when every value 0..365 agrees
            cmp = _scalar(a.op, a.value, _num)
            if len({cmp(u) for u in range(366)}) == 1:
                return None
            v0 = ev(attrs, events, t)
            day = _next_midnight(t)
            for _ in range(_ANNIV_SCAN):
                if ev(attrs, events, day) != v0:
                    return day
                day += _DAY
            return day

        return _Leaf(ev, nxt, True)

    # ------------------------------------------------------------------ events
    def _step(
        self, types: tuple[str, ...], where: tuple[Filter, ...]
    ) -> tuple[
        frozenset[str] | None,
        Callable[[Row, dt.datetime], bool] | None,
        Callable[[Row], list[dt.datetime]] | None,
    ]:
        """(the event types or None for any, the filters' test or None, the instants at which
        the filters of one event may change or None when they cannot)."""
        tset = frozenset(types) if types else None
        tests = [(f.field, _test(f.op, f.value, f.case_insensitive)) for f in where]
        match: Callable[[Row, dt.datetime], bool] | None = None
        if len(tests) == 1:
            (f0, t0) = tests[0]
            match = lambda e, now: t0(e.get(f0), now)  # noqa: E731
        elif tests:
            match = lambda e, now: all(t(e.get(f), now) for f, t in tests)  # noqa: E731
        rel_fields = [
            (f.field, rels)
            for f in where
            if f.op not in ("exists", "not_exists")
            and (rels := [r for v in _values(f.value) if (r := relative_time(v)) is not None])
        ]
        points = None
        if rel_fields:

            def points(e: Row) -> list[dt.datetime]:
                out: list[dt.datetime] = []
                for fld, rels in rel_fields:
                    out += _relative_points(e.get(fld), rels)
                return out

        return tset, match, points

    def _events(self, e: Events) -> _Leaf:
        tset, match, fpoints = self._step(e.types, e.where)
        bounds, crossing = _window_bounds(e.window)
        agg = e.aggregate

        def select(events: Events_, now: dt.datetime) -> list[Row]:
            start, end = bounds(now)
            out = []
            for ev in events:
                if tset is not None and ev["event_type"] not in tset:
                    continue
                ts = ev["timestamp"]
                if ts > end or (start is not None and ts <= start):
                    continue
                if match is not None and not match(ev, now):
                    continue
                out.append(ev)
            return out

        if agg.fn == "count":
            if agg.op == "gte" and isinstance(agg.value, int):
                need = agg.value

                def at_least(attrs: Row, events: Events_, now: dt.datetime) -> bool:
                    if need <= 0:
                        return True
                    start, end = bounds(now)
                    n = 0
                    for ev in events:
                        if tset is not None and ev["event_type"] not in tset:
                            continue
                        ts = ev["timestamp"]
                        if ts > end or (start is not None and ts <= start):
                            continue
                        if match is not None and not match(ev, now):
                            continue
                        n += 1
                        if n >= need:
                            return True
                    return False

                ev_fn: _Eval = at_least
            else:
                cmp = _scalar(agg.op, agg.value, _num)

                def count(attrs: Row, events: Events_, now: dt.datetime) -> bool:
                    return cmp(len(select(events, now)))

                ev_fn = count
        else:
            cmp = _scalar(agg.op, agg.value, _num)
            fld = agg.field or ""
            measure = _measure(agg.fn)

            def aggregate(attrs: Row, events: Events_, now: dt.datetime) -> bool:
                vals = [v for ev in select(events, now) if (v := ev.get(fld)) is not None]
                m = measure(vals)
                return m is not None and cmp(m)

            ev_fn = aggregate

        def nxt(attrs: Row | None, events: Events_, t: dt.datetime) -> dt.datetime | None:
            points: list[dt.datetime] = []
            for ev in events:
                if tset is not None and ev["event_type"] not in tset:
                    continue
                if fpoints is not None:
                    points += fpoints(ev)
                elif match is not None and not match(ev, t):
                    continue  # filters that do not depend on time: never counts
                enter, leave = crossing(ev["timestamp"])
                if enter is not None:
                    points.append(enter)
                if leave is not None:
                    points.append(leave)
            return _first_change(ev_fn, _NO_ATTRS, events, t, points)

        return _Leaf(ev_fn, nxt)

    def _sequence(self, s: SeqCond) -> _Leaf:
        t1, m1, p1 = self._step(s.first.types, s.first.where)
        t2, m2, p2 = self._step(s.then.types, s.then.where)
        bounds, crossing = _window_bounds(s.window)
        gap = parse_duration(s.then_within)
        absent = s.then_absent

        def ev_fn(attrs: Row, events: Events_, now: dt.datetime) -> bool:
            start, end = bounds(now)
            firsts = []
            thens = []
            for ev in events:
                typ = ev["event_type"]
                ts = ev["timestamp"]
                if (
                    (t1 is None or typ in t1)
                    and ts <= end
                    and (start is None or ts > start)
                    and (m1 is None or m1(ev, now))
                ):
                    firsts.append(ts)
                if (t2 is None or typ in t2) and ts <= now and (m2 is None or m2(ev, now)):
                    thens.append(ts)
            if not firsts:
                return False
            thens.sort()
            n = len(thens)
            for a in firsts:
                i = bisect.bisect_right(thens, a)  # the first `then` strictly after a
                followed = i < n and thens[i] <= a + gap
                if followed is not absent:
                    return True
            return False

        def nxt(attrs: Row | None, events: Events_, t: dt.datetime) -> dt.datetime | None:
            points: list[dt.datetime] = []
            for ev in events:
                typ = ev["event_type"]
                ts = ev["timestamp"]
                if t1 is None or typ in t1:
                    if p1 is not None:
                        points += p1(ev)
                    if p1 is not None or m1 is None or m1(ev, t):
                        enter, leave = crossing(ts)
                        if enter is not None:
                            points.append(enter)
                        if leave is not None:
                            points.append(leave)
                if t2 is None or typ in t2:
                    if p2 is not None:
                        points += p2(ev)
                    if p2 is not None or m2 is None or m2(ev, t):
                        points.append(ts)
            return _first_change(ev_fn, _NO_ATTRS, events, t, points)

        return _Leaf(ev_fn, nxt)


def _measure(fn: str) -> Callable[[list[Any]], float | None]:
    """sum / avg / min / max of the present values (None for avg/min/max over none), computed
    exactly and rounded like the oracle (sums and averages to ROUND_DIGITS places)."""

    def exact(vals: list[Any]) -> Any:
        if all(type(v) is int for v in vals):
            return sum(vals)
        if all(type(v) is float for v in vals):
            return Decimal(math.fsum(vals))
        return sum((v if isinstance(v, Decimal) else Decimal(_num(v)) for v in vals), Decimal(0))

    if fn == "sum":
        return lambda vals: round(float(exact(vals)), ROUND_DIGITS) if vals else 0.0
    if fn == "avg":

        def avg(vals: list[Any]) -> float | None:
            if not vals:
                return None
            return round(float(Decimal(exact(vals)) / len(vals)), ROUND_DIGITS)

        return avg
    if fn == "min":
        return lambda vals: min(float(_num(v)) for v in vals) if vals else None
    if fn == "max":
        return lambda vals: max(float(_num(v)) for v in vals) if vals else None
    raise ValueError(f"unknown aggregate {fn}")


# ---------------------------------------------------------------------------- the API
def _aware_events(events: Events_) -> Events_:
    """The events with naive timestamps made UTC (the same list when none is naive)."""
    if all(e["timestamp"].tzinfo is not None for e in events):
        return events
    return [
        {**e, "timestamp": e["timestamp"].replace(tzinfo=UTC)}
        if e["timestamp"].tzinfo is None
        else e
        for e in events
    ]


class CompiledSegment:
    """One definition compiled to closures: :attr:`predicate` and :meth:`next_change`."""

    def __init__(self, defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]):
        known = dict(definitions)
        known.setdefault(defn.name, defn)
        c = _Compiler(known)
        c.active.append(defn.name)
        self.name = defn.name
        self._eval, _, self._tree = c.condition(defn.rule)
        self._leaves = tuple(c.leaves)
        self._timed = tuple(lf for lf in self._leaves if lf.next is not _never)
        self._uses_attributes = any(lf.uses_attributes for lf in self._leaves)
        ev = self._eval

        def predicate(attributes: Row, events: Events_, as_of: dt.datetime) -> bool:
            now = as_of if as_of.tzinfo is UTC else _utc(as_of)
            try:
                return ev(attributes, events, now)
            except TypeError:  # naive event timestamps (compared with an aware as_of)
                fixed = _aware_events(events)
                if fixed is events:
                    raise
                return ev(attributes, fixed, now)

        self.predicate: Predicate = predicate

    def next_change(
        self, events: Events_, as_of: dt.datetime, attributes: Row | None = None
    ) -> dt.datetime | None:
        """See :func:`next_change`."""
        if not self._timed:
            return None
        now = _utc(as_of)
        events = _aware_events(events)
        leaves = self._leaves
        attrs = attributes if attributes is not None else _NO_ATTRS
        blind = attributes is None and self._uses_attributes  # attribute values unknown
        # per leaf: (from, its next change), valid while time stays before that change
        known: list[tuple[dt.datetime, dt.datetime | None] | None] = [None] * len(leaves)

        def step(t: dt.datetime) -> tuple[dt.datetime | None, bool]:
            """(the first leaf change after t, whether the rule is settled for good: its
            leaves that may still change cannot change its value)."""
            best = None
            vals: list[bool | None] = [None] * len(leaves)
            for i, lf in enumerate(leaves):
                c = None
                if lf.next is not _never:
                    k = known[i]
                    if k is not None and (k[1] is None or t < k[1]):
                        c = k[1]
                    else:
                        c = lf.next(attributes, events, t)
                        known[i] = (t, c)
                if c is not None:
                    if best is None or c < best:
                        best = c
                elif not (blind and lf.uses_attributes):
                    vals[i] = lf.eval(attrs, events, t)
            return best, best is None or _kleene(self._tree, vals) is not None

        c, settled = step(now)
        if settled or blind:  # blind: the rule cannot be evaluated; the first leaf change
            return None if settled else c
        # the rule's value can change only where a leaf's does: step through those
        v0 = self._eval(attrs, events, now)
        for _ in range(_STEPS):
            assert c is not None
            if self._eval(attrs, events, c) != v0:
                return c
            c, settled = step(c)
            if settled:
                return None
        return c


def compile_segment(
    defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]
) -> CompiledSegment:
    """Compile a definition (references to other segments inlined from ``definitions``)."""
    return CompiledSegment(defn, definitions)


def compile_predicate(
    defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]
) -> Predicate:
    """``predicate(attributes, events, as_of) -> bool``: whether one profile is a member of
    ``defn`` at ``as_of`` (see the module docstring for the arguments' shapes)."""
    return CompiledSegment(defn, definitions).predicate


#: compiled definitions for next_change: id(defn) -> (defn, its references, compiled)
_CACHE: dict[int, tuple[SegmentDefinition, tuple[tuple[str, Any], ...], CompiledSegment]] = {}
_CACHE_SIZE = 512


def _references(
    defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]
) -> tuple[tuple[str, Any], ...]:
    out: dict[str, Any] = {}
    todo = list(defn.references())
    while todo:
        n = todo.pop()
        if n in out:
            continue
        d = definitions.get(n)
        out[n] = d
        if d is not None:
            todo.extend(d.references())
    return tuple(sorted(out.items(), key=lambda kv: kv[0]))


def _compiled(
    defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]
) -> CompiledSegment:
    refs = _references(defn, definitions)
    hit = _CACHE.get(id(defn))
    if (
        hit is not None
        and hit[0] is defn
        and len(hit[1]) == len(refs)
        and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(hit[1], refs, strict=True))
    ):
        return hit[2]
    c = CompiledSegment(defn, definitions)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[id(defn)] = (defn, refs, c)
    return c


def next_change(
    defn: SegmentDefinition,
    definitions: Mapping[str, SegmentDefinition],
    events: Events_,
    as_of: dt.datetime,
    *,
    attributes: Row | None = None,
) -> dt.datetime | None:
    """The earliest instant after ``as_of`` at which the predicate's value may change with
    time passing alone (no new data), or None when time alone can never change it.

    The value is the same at every instant of ``[as_of, result)``; the result is exact for
    event and sequence conditions (an event entering or leaving a window, future-dated events
    included) and may be earlier than necessary, never later. Give ``attributes`` (the
    profile's row) to have relative date comparisons (``"30d ago"``) and date functions
    (``age``, ``days_since``, ``days_until_anniversary``) placed exactly; without them such a
    condition answers the next UTC midnight (a function) or one microsecond later (a relative
    date). The compiled definition is cached (by identity of ``defn`` and its references).
    """
    return _compiled(defn, definitions).next_change(events, as_of, attributes)
