"""A small fluent API that builds the same definition model as YAML.

    from workbench.segments import attr, events, sequence, in_segment, segment

    vip = segment(
        "vip_recent_buyers",
        attr("tier").isin(["gold", "platinum"])
        & (events("purchase").within("90d").sum("total") >= 500),
        description="Gold/platinum members with 500+ spent in 90 days",
    )
    vip.to_yaml()

Conditions combine with ``&`` (all), ``|`` (any) and ``~`` (not). Python binds ``&`` tighter
than ``>=``, so put comparisons in parentheses when combining them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from workbench.segments.model import (
    Aggregate,
    All,
    AnyOf,
    Attr,
    Condition,
    Events,
    Filter,
    InSegment,
    Not,
    SegmentDefinition,
    Sequence,
    Step,
    Window,
    parse,
)


class Cond:
    """A condition that combines with ``&``, ``|`` and ``~``."""

    def __init__(self, node: Condition) -> None:
        self.node = node

    def __and__(self, other: Cond | Condition) -> Cond:
        a, b = self.node, _node(other)
        items = (
            *(a.items if isinstance(a, All) else (a,)),
            *(b.items if isinstance(b, All) else (b,)),
        )
        return Cond(All(items))

    def __or__(self, other: Cond | Condition) -> Cond:
        a, b = self.node, _node(other)
        items = (
            *(a.items if isinstance(a, AnyOf) else (a,)),
            *(b.items if isinstance(b, AnyOf) else (b,)),
        )
        return Cond(AnyOf(items))

    def __invert__(self) -> Cond:
        return Cond(self.node.item if isinstance(self.node, Not) else Not(self.node))

    def __repr__(self) -> str:
        return f"Cond({self.node!r})"


def _node(c: Cond | Condition | _Measure | EventsBuilder) -> Condition:
    if isinstance(c, EventsBuilder):
        return c.node
    return c.node if isinstance(c, Cond) else c  # type: ignore[return-value]


class _Field:
    """Comparison builder shared by attributes and event fields."""

    def __init__(self, name: str, fn: str | None = None, ci: bool = False) -> None:
        self.name, self.fn, self.ci = name, fn, ci

    def _make(self, op: str, value: Any = None) -> Any:
        raise NotImplementedError

    def __eq__(self, v: Any) -> Any:  # type: ignore[override]
        return self._make("eq", v)

    def __ne__(self, v: Any) -> Any:  # type: ignore[override]
        return self._make("ne", v)

    def __gt__(self, v: Any) -> Any:
        return self._make("gt", v)

    def __ge__(self, v: Any) -> Any:
        return self._make("gte", v)

    def __lt__(self, v: Any) -> Any:
        return self._make("lt", v)

    def __le__(self, v: Any) -> Any:
        return self._make("lte", v)

    __hash__ = None  # type: ignore[assignment]

    def isin(self, values: list[Any]) -> Any:
        """In a list of values."""
        return self._make("in", tuple(values))

    def notin(self, values: list[Any]) -> Any:
        """Not in a list of values (missing values do not match)."""
        return self._make("not_in", tuple(values))

    def between(self, low: Any, high: Any) -> Any:
        """Between two values, both included."""
        return self._make("between", (low, high))

    def contains(self, v: str) -> Any:
        """Text contains ``v`` (or a list holds it)."""
        return self._make("contains", v)

    def startswith(self, v: str) -> Any:
        """Text starts with ``v``."""
        return self._make("starts_with", v)

    def endswith(self, v: str) -> Any:
        """Text ends with ``v``."""
        return self._make("ends_with", v)

    def exists(self) -> Any:
        """Has a value."""
        return self._make("exists")

    def missing(self) -> Any:
        """Has no value."""
        return self._make("not_exists")


class AttrBuilder(_Field):
    """``attr("tier") == "gold"``, ``attr("birth_date").age().between(25, 34)``."""

    def _make(self, op: str, value: Any = None) -> Cond:
        return Cond(Attr(self.name, op, value, self.fn, self.ci))

    def age(self) -> AttrBuilder:
        """Age in whole years at ``as_of``."""
        return AttrBuilder(self.name, "age", self.ci)

    def days_since(self) -> AttrBuilder:
        """Days from the date to ``as_of``."""
        return AttrBuilder(self.name, "days_since", self.ci)

    def days_until_anniversary(self) -> AttrBuilder:
        """Days from ``as_of`` to the next anniversary (0 on the day)."""
        return AttrBuilder(self.name, "days_until_anniversary", self.ci)

    def ignore_case(self) -> AttrBuilder:
        """Case-insensitive text comparisons."""
        return AttrBuilder(self.name, self.fn, True)


class FieldBuilder(_Field):
    """An event field filter: ``field("channel") == "offline"``."""

    def _make(self, op: str, value: Any = None) -> Filter:
        return Filter(self.name, op, value, self.ci)

    def ignore_case(self) -> FieldBuilder:
        """Case-insensitive text comparisons."""
        return FieldBuilder(self.name, None, True)


@dataclass(frozen=True)
class _Measure:
    events: Events
    fn: str
    field: str | None

    def _cmp(self, op: str, value: Any) -> Cond:
        return Cond(replace(self.events, aggregate=Aggregate(self.fn, self.field, op, value)))

    def __ge__(self, v: Any) -> Cond:
        return self._cmp("gte", v)

    def __gt__(self, v: Any) -> Cond:
        return self._cmp("gt", v)

    def __le__(self, v: Any) -> Cond:
        return self._cmp("lte", v)

    def __lt__(self, v: Any) -> Cond:
        return self._cmp("lt", v)

    def __eq__(self, v: Any) -> Cond:  # type: ignore[override]
        return self._cmp("eq", v)

    __hash__ = None  # type: ignore[assignment]

    def between(self, low: Any, high: Any) -> Cond:
        """Between two numbers, both included."""
        return self._cmp("between", (low, high))


class EventsBuilder(Cond):
    """``events("purchase").where(field("channel") == "offline").within("30d").at_least(2)``."""

    def __init__(self, node: Events) -> None:
        super().__init__(node)

    @property
    def _e(self) -> Events:
        assert isinstance(self.node, Events)
        return self.node

    def where(self, *filters: Filter) -> EventsBuilder:
        """Add event-field filters."""
        return EventsBuilder(replace(self._e, where=(*self._e.where, *filters)))

    def within(self, duration: str) -> EventsBuilder:
        """In the last ``duration`` (``30d``, ``24h``)."""
        return EventsBuilder(replace(self._e, window=Window(within=duration)))

    def between_ago(self, far: str, near: str) -> EventsBuilder:
        """From ``far`` ago to ``near`` ago (``"90d", "30d"``)."""
        return EventsBuilder(replace(self._e, window=Window(between=(far, near))))

    def since(self, when: dt.date | dt.datetime) -> EventsBuilder:
        """Since a fixed date."""
        return EventsBuilder(replace(self._e, window=Window(since=when)))

    def at_least(self, n: int) -> EventsBuilder:
        """At least ``n`` events."""
        return EventsBuilder(replace(self._e, aggregate=Aggregate("count", None, "gte", n)))

    def at_most(self, n: int) -> EventsBuilder:
        """At most ``n`` events."""
        return EventsBuilder(replace(self._e, aggregate=Aggregate("count", None, "lte", n)))

    def exactly(self, n: int) -> EventsBuilder:
        """Exactly ``n`` events."""
        return EventsBuilder(replace(self._e, aggregate=Aggregate("count", None, "eq", n)))

    def absent(self) -> EventsBuilder:
        """No such event."""
        return self.exactly(0)

    def sum(self, field_name: str) -> _Measure:
        """Sum of a numeric field, to compare: ``.sum("total") >= 500``."""
        return _Measure(self._e, "sum", field_name)

    def avg(self, field_name: str) -> _Measure:
        """Average of a numeric field."""
        return _Measure(self._e, "avg", field_name)

    def min(self, field_name: str) -> _Measure:
        """Minimum of a numeric field."""
        return _Measure(self._e, "min", field_name)

    def max(self, field_name: str) -> _Measure:
        """Maximum of a numeric field."""
        return _Measure(self._e, "max", field_name)


def attr(name: str) -> AttrBuilder:
    """A profile attribute."""
    return AttrBuilder(name)


def field(name: str) -> FieldBuilder:
    """An event field (for ``events(...).where(...)`` and sequence steps)."""
    return FieldBuilder(name)


def events(*types: str) -> EventsBuilder:
    """Events of some types (none = any type); at least one, all time, until refined."""
    return EventsBuilder(Events(tuple(types)))


def step(*types: str, where: tuple[Filter, ...] = ()) -> Step:
    """One step of a sequence."""
    return Step(tuple(types), tuple(where))


def sequence(
    first: Step,
    then: Step,
    then_within: str,
    *,
    then_absent: bool = False,
    within: str | None = None,
) -> Cond:
    """``first`` followed (or with ``then_absent``, not followed) by ``then`` within a gap."""
    return Cond(Sequence(first, then, then_within, then_absent, Window(within=within)))


def in_segment(name: str) -> Cond:
    """Member of another segment."""
    return Cond(InSegment(name))


def not_in_segment(name: str) -> Cond:
    """Not a member of another segment."""
    return Cond(InSegment(name, negate=True))


def all_of(*conds: Cond | Condition) -> Cond:
    """Every condition holds."""
    return Cond(All(tuple(_node(c) for c in conds)))


def any_of(*conds: Cond | Condition) -> Cond:
    """At least one condition holds."""
    return Cond(AnyOf(tuple(_node(c) for c in conds)))


def segment(
    name: str, rule: Cond | Condition, *, description: str = "", tags: tuple[str, ...] = ()
) -> SegmentDefinition:
    """A segment definition (checked like a parsed one: it round-trips through YAML)."""
    d = SegmentDefinition(name, _node(rule), description, tuple(tags))
    return parse(d.to_dict())


__all__ = [
    "Cond",
    "all_of",
    "any_of",
    "attr",
    "events",
    "field",
    "in_segment",
    "not_in_segment",
    "segment",
    "sequence",
    "step",
]
