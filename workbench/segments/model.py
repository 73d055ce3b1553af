"""The segment definition model: small immutable nodes that round-trip to YAML/JSON exactly.

A segment is a name, a description and a **rule**. A rule is one condition:

* ``{attribute: tier, op: in, value: [gold, platinum]}`` — a profile attribute
  (``fn: age | days_since | days_until_anniversary`` turns a date into a number first;
  ``case_insensitive: true`` for strings; dates accept ``"30d ago"`` / ``"in 7d"``);
* ``{events: {type: purchase, where: [...], within: 30d, at_least: 2}}`` — an aggregate over
  the profile's events in a window relative to ``as_of`` (``within``, ``between: [90d, 30d]``
  ago, ``since: 2026-01-01``, or all time), ``at_least / at_most / exactly`` N, ``absent``,
  or ``sum / avg / min / max: {field, op, value}``;
* ``{sequence: {first: {...}, then: {...}, then_within: 1d, then_absent: false, within: 7d}}``
  — an event of ``first`` followed by (or, with ``then_absent``, *not* followed by) an event
  of ``then`` within ``then_within``;
* ``{in_segment: other}`` / ``{not_in_segment: other}``;
* ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``, nested to any depth.

Semantics, the same in every evaluator: a leaf condition is either true or false, never
unknown — a comparison with a missing value is false (so ``tier != gold`` leaves out profiles
with no tier, while ``not: {tier = gold}`` includes them). Events count only up to ``as_of``.
A count or sum over no events is 0; an average, minimum or maximum over no events is
missing, so its comparison is false.

:func:`parse` collects every problem with its path (``rule.all[2].events.where[0].op``);
``parse(d.to_dict()) == d`` and ``to_dict`` is canonical, so YAML written back is stable.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from workbench.errors import Problem, ValidationError

# ---------------------------------------------------------------------------- vocabulary
#: Comparison operators, canonical names; symbols and spellings accepted on input.
OPS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "exists",
    "not_exists",
)
OP_ALIASES = {
    "=": "eq",
    "==": "eq",
    "equals": "eq",
    "!=": "ne",
    "<>": "ne",
    "not_equals": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "not in": "not_in",
    "starts with": "starts_with",
    "ends with": "ends_with",
    "not exists": "not_exists",
    "is_null": "not_exists",
    "is_not_null": "exists",
}
STRING_OPS = frozenset({"contains", "starts_with", "ends_with"})
ORDER_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
NO_VALUE_OPS = frozenset({"exists", "not_exists"})
LIST_OPS = frozenset({"in", "not_in"})
#: Functions that turn a date/timestamp attribute into a number relative to ``as_of``.
DATE_FNS = ("age", "days_since", "days_until_anniversary")
AGG_FNS = ("count", "sum", "avg", "min", "max")
COUNT_WORDS = {"at_least": "gte", "at_most": "lte", "exactly": "eq"}
_COUNT_OPS = {v: k for k, v in COUNT_WORDS.items()}

_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE_RE = re.compile(r"^\s*(?:(\d+\s*[smhdw])\s+ago|in\s+(\d+\s*[smhdw]))\s*$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def parse_duration(text: Any) -> dt.timedelta:
    """``30d``, ``24h``, ``90m``, ``2w``, ``45s`` → timedelta (raises ValueError otherwise)."""
    m = _DURATION_RE.match(str(text)) if isinstance(text, str | int) else None
    if m is None or isinstance(text, int):
        raise ValueError(f"{text!r} is not a duration (like 30d, 24h, 90m, 2w)")
    return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def relative_time(text: Any) -> dt.timedelta | None:
    """``"30d ago"`` → -30 days, ``"in 7d"`` → +7 days; None when ``text`` is not relative."""
    if not isinstance(text, str):
        return None
    m = _RELATIVE_RE.match(text)
    if m is None:
        return None
    if m.group(1):
        return -parse_duration(m.group(1))
    return parse_duration(m.group(2))


# ---------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Attr:
    """A condition on a unified-profile attribute."""

    field: str
    op: str
    value: Any = None
    fn: str | None = None
    case_insensitive: bool = False


@dataclass(frozen=True)
class Filter:
    """A condition on a field of an event."""

    field: str
    op: str
    value: Any = None
    case_insensitive: bool = False


@dataclass(frozen=True)
class Window:
    """When events count, relative to ``as_of``: ``within`` (last N), ``between`` (from N ago
    to M ago) or ``since`` (a fixed date); all three None means all time up to ``as_of``."""

    within: str | None = None
    between: tuple[str, str] | None = None
    since: dt.date | dt.datetime | None = None

    @property
    def is_all_time(self) -> bool:
        """No bound other than ``as_of``."""
        return self.within is None and self.between is None and self.since is None

    def length(self) -> dt.timedelta | None:
        """How far back the window reaches (None for all time or a fixed date)."""
        if self.within is not None:
            return parse_duration(self.within)
        if self.between is not None:
            return parse_duration(self.between[0])
        return None

    def bounds(self, as_of: dt.datetime) -> tuple[dt.datetime | None, dt.datetime]:
        """(start exclusive or None, end inclusive) in absolute time."""
        if self.within is not None:
            return as_of - parse_duration(self.within), as_of
        if self.between is not None:
            return as_of - parse_duration(self.between[0]), as_of - parse_duration(self.between[1])
        if self.since is not None:
            s = self.since
            if not isinstance(s, dt.datetime):
                s = dt.datetime(s.year, s.month, s.day, tzinfo=dt.UTC)
            elif s.tzinfo is None:
                s = s.replace(tzinfo=dt.UTC)
            # "since" includes its first instant: make the exclusive start one microsecond earlier
            return s - dt.timedelta(microseconds=1), as_of
        return None, as_of


@dataclass(frozen=True)
class Aggregate:
    """What is measured over the matching events and how it is compared."""

    fn: str = "count"
    field: str | None = None
    op: str = "gte"
    value: Any = 1


@dataclass(frozen=True)
class Events:
    """An aggregate over the profile's events of some types, filtered, in a window."""

    types: tuple[str, ...] = ()
    where: tuple[Filter, ...] = ()
    window: Window = field(default_factory=Window)
    aggregate: Aggregate = field(default_factory=Aggregate)

    @property
    def is_absence(self) -> bool:
        """True for "no such event" (count = 0 or count <= 0)."""
        a = self.aggregate
        return a.fn == "count" and a.op in ("eq", "lte") and a.value == 0


@dataclass(frozen=True)
class Step:
    """One step of a sequence: event types and filters."""

    types: tuple[str, ...] = ()
    where: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Sequence:
    """An event of ``first`` (in ``window``) followed by an event of ``then`` within
    ``then_within`` — or, with ``then_absent``, not followed by one (up to ``as_of``)."""

    first: Step
    then: Step
    then_within: str
    then_absent: bool = False
    window: Window = field(default_factory=Window)


@dataclass(frozen=True)
class InSegment:
    """Membership of another segment (``negate`` for "not in segment")."""

    segment: str
    negate: bool = False


@dataclass(frozen=True)
class All:
    """Every condition holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one condition holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The condition does not hold."""

    item: Condition


Condition = Union[Attr, Events, Sequence, InSegment, All, AnyOf, Not]  # noqa: UP007


@dataclass(frozen=True)
class SegmentDefinition:
    """A named segment: its rule plus descriptive metadata."""

    name: str
    rule: Condition
    description: str = ""
    tags: tuple[str, ...] = ()

    # ------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """Canonical plain dict (``parse(d.to_dict()) == d``)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.tags:
            out["tags"] = list(self.tags)
        out["rule"] = condition_to_dict(self.rule)
        return out

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (dates as ISO strings)."""
        return json.dumps(self.to_dict(), default=_json_default)

    def references(self) -> list[str]:
        """Names of the segments this rule refers to (in order of appearance, unique)."""
        out: list[str] = []
        for c in walk(self.rule):
            if isinstance(c, InSegment) and c.segment not in out:
                out.append(c.segment)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/<name>.yaml``."""
        p = Path(folder) / f"{self.name}.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_yaml())
        return p


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    raise TypeError(type(v).__name__)


def walk(c: Condition) -> list[Condition]:
    """Every node of a rule, depth first."""
    out: list[Condition] = [c]
    if isinstance(c, All | AnyOf):
        for i in c.items:
            out.extend(walk(i))
    elif isinstance(c, Not):
        out.extend(walk(c.item))
    return out


def _value_out(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_value_out(x) for x in v]
    return v


def _filter_dict(f: Attr | Filter, key: str) -> dict[str, Any]:
    d: dict[str, Any] = {key: f.field}
    if isinstance(f, Attr) and f.fn:
        d["fn"] = f.fn
    d["op"] = f.op
    if f.op not in NO_VALUE_OPS:
        d["value"] = _value_out(f.value)
    if f.case_insensitive:
        d["case_insensitive"] = True
    return d


def _window_dict(w: Window, d: dict[str, Any]) -> None:
    if w.within is not None:
        d["within"] = w.within
    if w.between is not None:
        d["between"] = list(w.between)
    if w.since is not None:
        d["since"] = w.since


def _types_out(types: tuple[str, ...]) -> Any:
    return types[0] if len(types) == 1 else list(types)


def _step_dict(s: Step) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if s.types:
        d["type"] = _types_out(s.types)
    if s.where:
        d["where"] = [_filter_dict(f, "field") for f in s.where]
    return d


def condition_to_dict(c: Condition) -> dict[str, Any]:
    """Canonical dict of one condition."""
    if isinstance(c, Attr):
        return _filter_dict(c, "attribute")
    if isinstance(c, All):
        return {"all": [condition_to_dict(i) for i in c.items]}
    if isinstance(c, AnyOf):
        return {"any": [condition_to_dict(i) for i in c.items]}
    if isinstance(c, Not):
        return {"not": condition_to_dict(c.item)}
    if isinstance(c, InSegment):
        return {"not_in_segment" if c.negate else "in_segment": c.segment}
    if isinstance(c, Events):
        e = _step_dict(Step(c.types, c.where))
        _window_dict(c.window, e)
        a = c.aggregate
        if a.fn == "count":
            e[_COUNT_OPS[a.op]] = a.value
        else:
            e[a.fn] = {"field": a.field, "op": a.op, "value": a.value}
        return {"events": e}
    if isinstance(c, Sequence):
        s: dict[str, Any] = {
            "first": _step_dict(c.first),
            "then": _step_dict(c.then),
            "then_within": c.then_within,
        }
        if c.then_absent:
            s["then_absent"] = True
        _window_dict(c.window, s)
        return {"sequence": s}
    raise TypeError(f"not a condition: {c!r}")


# ---------------------------------------------------------------------------- parsing
class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: str, msg: str) -> None:
        self.problems.append(Problem(path, msg))

    def op(self, raw: Any, path: str) -> str | None:
        if not isinstance(raw, str):
            self.bad(f"{path}.op", f"an operator is required ({', '.join(OPS)})")
            return None
        o = OP_ALIASES.get(raw.strip().lower(), raw.strip().lower().replace(" ", "_"))
        if o not in OPS:
            self.bad(f"{path}.op", f"unknown operator {raw!r} (known: {', '.join(OPS)})")
            return None
        return o

    def value(self, op: str, data: Mapping[str, Any], path: str) -> Any:
        if op in NO_VALUE_OPS:
            if data.get("value") is not None:
                self.bad(f"{path}.value", f"{op} takes no value")
            return None
        if "value" not in data or data["value"] is None:
            self.bad(f"{path}.value", f"{op} needs a value")
            return None
        v = data["value"]
        if op in LIST_OPS:
            if not isinstance(v, list | tuple) or not v:
                self.bad(f"{path}.value", f"{op} needs a non-empty list")
                return None
            return tuple(v)
        if op == "between":
            if not isinstance(v, list | tuple) or len(v) != 2:
                self.bad(f"{path}.value", "between needs a list of two values [low, high]")
                return None
            return tuple(v)
        if isinstance(v, list | tuple | Mapping):
            self.bad(f"{path}.value", f"{op} needs a single value")
            return None
        return v

    def keys(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for k in sorted(set(data) - allowed, key=str):
            self.bad(f"{path}.{k}" if path else str(k), "unknown key")

    def attr(self, data: Mapping[str, Any], path: str) -> Attr | None:
        self.keys(data, {"attribute", "op", "value", "fn", "case_insensitive"}, path)
        name = data.get("attribute")
        if not isinstance(name, str) or not name:
            self.bad(f"{path}.attribute", "an attribute name is required")
            name = ""
        fn = data.get("fn")
        if fn is not None and fn not in DATE_FNS:
            self.bad(f"{path}.fn", f"unknown function {fn!r} (known: {', '.join(DATE_FNS)})")
            fn = None
        op = self.op(data.get("op"), path)
        if op is None:
            return None
        value = self.value(op, data, path)
        ci = data.get("case_insensitive", False)
        if not isinstance(ci, bool):
            self.bad(f"{path}.case_insensitive", "must be true or false")
            ci = False
        return Attr(name, op, value, fn, ci)

    def filt(self, data: Any, path: str) -> Filter | None:
        if not isinstance(data, Mapping):
            self.bad(path, "a filter must be a mapping {field, op, value}")
            return None
        self.keys(data, {"field", "op", "value", "case_insensitive"}, path)
        name = data.get("field")
        if not isinstance(name, str) or not name:
            self.bad(f"{path}.field", "a field name is required")
            name = ""
        op = self.op(data.get("op"), path)
        if op is None:
            return None
        value = self.value(op, data, path)
        ci = data.get("case_insensitive", False)
        if not isinstance(ci, bool):
            self.bad(f"{path}.case_insensitive", "must be true or false")
            ci = False
        return Filter(name, op, value, ci)

    def types(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
            self.bad(f"{path}.type", "type must be an event type or a list of them")
            return ()
        return tuple(raw)

    def step(self, data: Any, path: str) -> Step | None:
        if not isinstance(data, Mapping):
            self.bad(path, "a step must be a mapping {type, where}")
            return None
        self.keys(data, {"type", "where"}, path)
        return Step(self.types(data.get("type"), path), self.where(data.get("where"), path))

    def where(self, raw: Any, path: str) -> tuple[Filter, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.bad(f"{path}.where", "where must be a list of filters")
            return ()
        out = [self.filt(f, f"{path}.where[{i}]") for i, f in enumerate(raw)]
        return tuple(f for f in out if f is not None)

    def window(self, data: Mapping[str, Any], path: str) -> Window:
        given = [k for k in ("within", "between", "since") if data.get(k) is not None]
        if len(given) > 1:
            self.bad(f"{path}.{given[1]}", f"use one of within / between / since, not {given}")
            return Window()
        if not given:
            return Window()
        k = given[0]
        v = data[k]
        if k == "within":
            try:
                parse_duration(v)
            except ValueError as e:
                self.bad(f"{path}.within", str(e))
                return Window()
            return Window(within=str(v))
        if k == "between":
            if not isinstance(v, list | tuple) or len(v) != 2:
                self.bad(f"{path}.between", "between needs [from, to] ago, like [90d, 30d]")
                return Window()
            try:
                far, near = parse_duration(v[0]), parse_duration(v[1])
            except ValueError as e:
                self.bad(f"{path}.between", str(e))
                return Window()
            if far <= near:
                self.bad(
                    f"{path}.between",
                    f"the first bound ({v[0]}) must reach further back than the second ({v[1]})",
                )
                return Window()
            return Window(between=(str(v[0]), str(v[1])))
        if isinstance(v, str):
            try:
                v = dt.datetime.fromisoformat(v) if "T" in v else dt.date.fromisoformat(v)
            except ValueError:
                self.bad(f"{path}.since", f"{v!r} is not an ISO date or timestamp")
                return Window()
        if not isinstance(v, dt.date):
            self.bad(f"{path}.since", f"{v!r} is not a date")
            return Window()
        return Window(since=v)

    def aggregate(self, data: Mapping[str, Any], path: str) -> Aggregate:
        found = [k for k in (*COUNT_WORDS, "absent", *AGG_FNS[1:]) if k in data]
        if len(found) > 1:
            self.bad(f"{path}.{found[1]}", f"one aggregate per condition, got {found}")
            return Aggregate()
        if not found:
            return Aggregate()
        k = found[0]
        v = data[k]
        if k == "absent":
            if v is not True:
                self.bad(f"{path}.absent", "absent must be true (or leave it out)")
            return Aggregate("count", None, "eq", 0)
        if k in COUNT_WORDS:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                self.bad(f"{path}.{k}", f"{k} needs a whole number >= 0, not {v!r}")
                return Aggregate()
            return Aggregate("count", None, COUNT_WORDS[k], v)
        if not isinstance(v, Mapping):
            self.bad(f"{path}.{k}", f"{k} needs {{field, op, value}}")
            return Aggregate()
        self.keys(v, {"field", "op", "value"}, f"{path}.{k}")
        fld = v.get("field")
        if not isinstance(fld, str) or not fld:
            self.bad(f"{path}.{k}.field", f"{k} needs the field to aggregate")
            fld = ""
        op = self.op(v.get("op"), f"{path}.{k}")
        if op is None:
            return Aggregate()
        if op not in ("eq", "ne", "gt", "gte", "lt", "lte", "between"):
            self.bad(f"{path}.{k}.op", f"{op} does not compare a {k}")
            return Aggregate()
        value = self.value(op, v, f"{path}.{k}")
        nums = value if isinstance(value, tuple) else (value,)
        for x in nums:
            if x is not None and (isinstance(x, bool) or not isinstance(x, int | float)):
                self.bad(f"{path}.{k}.value", f"{k} is compared with numbers, not {x!r}")
                return Aggregate()
        if op == "between" and value is not None and value[0] > value[1]:
            self.bad(f"{path}.{k}.value", f"between needs [low, high]; {value[0]} > {value[1]}")
        return Aggregate(k, fld, op, value)

    def events(self, data: Any, path: str) -> Events | None:
        if not isinstance(data, Mapping):
            self.bad(path, "events needs a mapping {type, where, within, at_least...}")
            return None
        self.keys(
            data,
            {"type", "where", "within", "between", "since", "absent", *COUNT_WORDS, *AGG_FNS[1:]},
            path,
        )
        return Events(
            self.types(data.get("type"), path),
            self.where(data.get("where"), path),
            self.window(data, path),
            self.aggregate(data, path),
        )

    def sequence(self, data: Any, path: str) -> Sequence | None:
        if not isinstance(data, Mapping):
            self.bad(path, "sequence needs a mapping {first, then, then_within}")
            return None
        self.keys(
            data,
            {"first", "then", "then_within", "then_absent", "within", "between", "since"},
            path,
        )
        first = self.step(data.get("first"), f"{path}.first")
        then = self.step(data.get("then"), f"{path}.then")
        tw = data.get("then_within")
        try:
            parse_duration(tw)
        except ValueError as e:
            self.bad(f"{path}.then_within", str(e))
        absent = data.get("then_absent", False)
        if not isinstance(absent, bool):
            self.bad(f"{path}.then_absent", "must be true or false")
            absent = False
        w = self.window(data, path)
        if first is None or then is None:
            return None
        return Sequence(first, then, str(tw), absent, w)

    def condition(self, data: Any, path: str) -> Condition | None:
        if not isinstance(data, Mapping) or not data:
            self.bad(
                path,
                "a condition must be a mapping (attribute, events, sequence, in_segment, all, any, not)",
            )
            return None
        kinds = [
            k
            for k in (
                "attribute",
                "events",
                "sequence",
                "in_segment",
                "not_in_segment",
                "all",
                "any",
                "not",
            )
            if k in data
        ]
        if len(kinds) != 1:
            what = f"one of {kinds}" if kinds else f"unknown keys {sorted(map(str, data))}"
            self.bad(
                path,
                f"a condition needs exactly one kind (attribute, events, sequence, in_segment, not_in_segment, all, any, not): {what}",
            )
            return None
        k = kinds[0]
        if k == "attribute":
            return self.attr(data, path)
        if k in ("all", "any"):
            self.keys(data, {k}, path)
            items = data[k]
            if not isinstance(items, list) or not items:
                self.bad(f"{path}.{k}", f"{k} needs a non-empty list of conditions")
                return None
            parsed = [self.condition(c, f"{path}.{k}[{i}]") for i, c in enumerate(items)]
            if any(p is None for p in parsed):
                return None
            kept = tuple(p for p in parsed if p is not None)
            return All(kept) if k == "all" else AnyOf(kept)
        if k == "not":
            self.keys(data, {k}, path)
            inner = self.condition(data[k], f"{path}.not")
            return None if inner is None else Not(inner)
        if k in ("in_segment", "not_in_segment"):
            self.keys(data, {k}, path)
            ref = data[k]
            if not isinstance(ref, str) or not _NAME_RE.match(ref):
                self.bad(f"{path}.{k}", f"{ref!r} is not a segment name")
                return None
            return InSegment(ref, negate=k == "not_in_segment")
        self.keys(data, {k}, path)
        if k == "events":
            return self.events(data[k], f"{path}.events")
        return self.sequence(data[k], f"{path}.sequence")


def parse(data: Any, *, source: str = "") -> SegmentDefinition:
    """A :class:`SegmentDefinition` from a dict; :class:`ValidationError` lists every problem."""
    what = f"segment {source}".strip() if source else "segment"
    if isinstance(data, SegmentDefinition):
        return data
    if not isinstance(data, Mapping):
        raise ValidationError(what, [Problem("", "a segment must be a mapping {name, rule}")])
    p = _Parser()
    p.keys(data, {"name", "description", "tags", "rule"}, "")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        p.bad("name", f"{name!r} is not a valid segment name (a-z, 0-9, _; starts with a letter)")
        name = ""
    what = f"segment {name!r}" + (f" ({source})" if source else "")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        p.bad("tags", "tags must be a list of strings")
        tags = []
    desc = data.get("description") or ""
    if not isinstance(desc, str):
        p.bad("description", "description must be text")
        desc = ""
    if "rule" not in data:
        p.bad("rule", "a segment needs a rule")
        rule = None
    else:
        rule = p.condition(data["rule"], "rule")
    if p.problems or rule is None:
        raise ValidationError(what, p.problems or [Problem("rule", "invalid rule")])
    return SegmentDefinition(name, rule, desc, tuple(tags))


def load(path: str | Path) -> SegmentDefinition:
    """One definition from a YAML or JSON file."""
    p = Path(path)
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValidationError(f"segment file {p}", [Problem("", f"cannot read: {e}")]) from e
    return parse(data, source=str(p))


def load_folder(folder: str | Path) -> list[SegmentDefinition]:
    """Every ``*.yaml`` / ``*.yml`` / ``*.json`` definition of a folder (sorted by file name)."""
    root = Path(folder)
    files = sorted(
        f for f in root.iterdir() if f.suffix in (".yaml", ".yml", ".json") and f.is_file()
    )
    return [load(f) for f in files]


__all__ = [
    "AGG_FNS",
    "DATE_FNS",
    "OPS",
    "Aggregate",
    "All",
    "AnyOf",
    "Attr",
    "Condition",
    "Events",
    "Filter",
    "InSegment",
    "Not",
    "SegmentDefinition",
    "Sequence",
    "Step",
    "Window",
    "condition_to_dict",
    "load",
    "load_folder",
    "parse",
    "parse_duration",
    "relative_time",
    "walk",
]
