"""Compile segment definitions to SQL through sqlglot expressions.

Nothing here pastes a value into SQL text: every value becomes a sqlglot literal, and the
query is rendered for a dialect at the end (``duckdb`` today; the same expressions render
for ``spark``). The shape of a job's query:

.. code-block:: sql

    SELECT p.profile_id, <segment 1 boolean> AS s0, <segment 2 boolean> AS s1, ...
    FROM profiles AS p
    LEFT JOIN (      -- one group per set of event types: reads only those rows
      SELECT profile_id, COALESCE(e0, 0) >= 300 AS b0, COALESCE(e1, 0) >= 2 AS b1, ...
      FROM (SELECT profile_id,
                   SUM(CASE WHEN f1 THEN total END) AS e0,    -- one aggregate per distinct
                   COUNT(CASE WHEN f1 AND f3 THEN 1 END) AS e1 -- event condition
            FROM (SELECT profile_id, total, <window test> AS f1, <filter test> AS f3
                  FROM events
                  WHERE timestamp <= <as_of> AND event_type = 'purchase'
                    AND (<union of the group's windows>))
            GROUP BY profile_id)) AS a0 ON a0.profile_id = p.profile_id
    LEFT JOIN (...) AS a1 ...          -- the next event-type group
    LEFT JOIN (...) AS sq0 ...         -- sequences: a semi/anti join of events with themselves

Each distinct row-level test (a window, a field filter) is computed once per row as a flag;
each row updates only the aggregates of its own event-type group; the event history is
stored ordered by type and time, so a group (and a window) reads only its row groups; and
the comparison is made inside the group, so only narrow booleans cross the join.

Segments of segments are inlined (the referenced rule is compiled in place), so one query
evaluates a whole dependency graph; :func:`dependency_order` refuses cycles, naming them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from workbench.errors import Problem, ValidationError
from workbench.lake.sql import literal
from workbench.segments.fields import FieldCatalog
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
    Sequence,
    Step,
    Window,
    parse_duration,
    relative_time,
    walk,
)

TRUE = exp.Boolean(this=True)
FALSE = exp.Boolean(this=False)


#: sqlglot literal expressions, built in one place for the whole package
lit = literal


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference."""
    return exp.column(name, table=table, quoted=True)


def _and(parts: list[exp.Expression]) -> exp.Expression:
    if not parts:
        return TRUE
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


def _or(parts: list[exp.Expression]) -> exp.Expression:
    out = parts[0]
    for p in parts[1:]:
        out = exp.Or(this=out, expression=p)
    return out


def _holds(x: float, op: str, value: Any) -> bool:
    """Whether ``x op value`` holds (for the value of an aggregate over no events)."""
    if op == "between":
        return bool(value[0] <= x <= value[1])
    return bool(
        {
            "eq": x == value,
            "ne": x != value,
            "gt": x > value,
            "gte": x >= value,
            "lt": x < value,
            "lte": x <= value,
        }[op]
    )


def _mixed_grain(c: exp.Expression, op: str, vals: list[Any], day: list[bool]) -> exp.Expression:
    """A timestamp field against calendar days and instants together (``between``, ``in``,
    ``not_in``): days compare the field's UTC day, instants the field itself."""
    as_day = exp.Cast(this=c, to=exp.DataType.build("DATE"))
    cols = [as_day if d else c for d in day]
    if op == "between":
        e: exp.Expression = exp.And(
            this=exp.GTE(this=cols[0], expression=lit(vals[0])),
            expression=exp.LTE(this=cols[1], expression=lit(vals[1])),
        )
    elif op in ("in", "not_in"):
        e = exp.Or(
            this=exp.In(
                this=as_day, expressions=[lit(v) for v, d in zip(vals, day, strict=True) if d]
            ),
            expression=exp.In(
                this=c, expressions=[lit(v) for v, d in zip(vals, day, strict=True) if not d]
            ),
        )
        if op == "not_in":
            e = exp.And(
                this=exp.Not(this=exp.Is(this=c, expression=exp.Null())),
                expression=exp.Not(this=exp.paren(e)),
            )
    else:  # pragma: no cover - one value cannot mix
        raise ValueError(op)
    return _coalesce_false(e)


def _coalesce_false(e: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=exp.paren(e), expressions=[FALSE])


def dependency_order(
    definitions: Mapping[str, SegmentDefinition], names: list[str] | None = None
) -> list[str]:
    """``names`` and everything they refer to, dependencies first; a cycle or a dangling
    reference is a :class:`ValidationError` naming it (``a -> b -> a``)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*trail[trail.index(n) :], n]
            raise ValidationError(
                f"segment {trail[0]!r}", [Problem("rule", f"segment cycle: {' -> '.join(cycle)}")]
            )
        d = definitions.get(n)
        if d is None:
            raise ValidationError(
                f"segment {trail[-1]!r}" if trail else f"segment {n!r}",
                [Problem("rule", f"refers to segment {n!r}, which does not exist")],
            )
        state[n] = 1
        for ref in d.references():
            visit(ref, [*trail, n])
        state[n] = 2
        order.append(n)

    for n in names if names is not None else sorted(definitions):
        visit(n, [])
    return order


@dataclass
class _Group:
    """The event conditions on one set of event types (or on any type): one pass over the
    rows of those types, one aggregate per distinct condition."""

    alias: str
    type_flag: str | None
    aggs: dict[str, tuple[str, exp.Expression]] = field(default_factory=dict)
    tests: dict[str, tuple[str, exp.Expression]] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    #: per aggregate: its window flag (for the group's pre-filter)
    windows: list[str | None] = field(default_factory=list)


@dataclass
class _Scan:
    """The shared event scan: row tests (flags) and per-type groups, deduplicated."""

    flags: dict[str, tuple[str, exp.Expression]] = field(default_factory=dict)
    groups: dict[str | None, _Group] = field(default_factory=dict)
    n_aggs: int = 0
    n_tests: int = 0


class Compiler:
    """Compiles a set of definitions (a job, or one segment) at one ``as_of``."""

    def __init__(
        self,
        definitions: Mapping[str, SegmentDefinition],
        as_of: dt.datetime,
        fields: FieldCatalog,
        *,
        events_table: str = "events",
        profiles_table: str = "profiles",
        dialect: str = "duckdb",
    ) -> None:
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=dt.UTC)
        self.definitions = dict(definitions)
        self.as_of = as_of.astimezone(dt.UTC)
        self.as_of_date = self.as_of.date()
        self.fields = fields
        self.events_table = events_table
        self.profiles_table = profiles_table
        self.dialect = dialect
        self._scan = _Scan()
        self._seqs: dict[str, tuple[str, exp.Expression]] = {}
        self._memo: dict[str, exp.Expression] = {}

    # ------------------------------------------------------------------ values
    def _date_value(self, v: Any, kind: str) -> Any:
        rel = relative_time(v)
        if rel is not None:
            t = self.as_of + rel
            return t.date() if kind == "date" else t
        if isinstance(v, str):
            parsed = dt.datetime.fromisoformat(v)
            if "T" not in v and " " not in v:
                return parsed.date()
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        return v

    def _date_fn(self, fn: str, c: exp.Expression) -> exp.Expression:
        d = exp.Cast(this=c, to=exp.DataType.build("DATE"))
        asof = lit(self.as_of_date)
        if fn == "days_since":
            return exp.DateDiff(this=asof, expression=d, unit=exp.var("DAY"))
        if fn == "age":
            a = self.as_of_date
            code = a.year * 10000 + a.month * 100 + a.day

            def part(u: str, mul: int) -> exp.Expression:
                e: exp.Expression = exp.Extract(this=exp.var(u), expression=d)
                return exp.Mul(this=e, expression=lit(mul)) if mul != 1 else e

            born = exp.Add(
                this=exp.Add(this=part("YEAR", 10000), expression=part("MONTH", 100)),
                expression=part("DAY", 1),
            )
            diff = exp.Sub(this=lit(code), expression=exp.paren(born))
            return exp.Cast(
                this=exp.Floor(this=exp.Div(this=exp.paren(diff), expression=lit(10000.0))),
                to=exp.DataType.build("BIGINT"),
            )

        # days_until_anniversary: 0 on the day, 364/365 the day after
        def anniv(offset: int) -> exp.Expression:
            years = exp.Sub(
                this=lit(self.as_of_date.year + offset),
                expression=exp.Extract(this=exp.var("YEAR"), expression=d),
            )
            return exp.DateDiff(
                this=exp.DateAdd(this=d, expression=exp.paren(years), unit=exp.var("YEAR")),
                expression=asof,
                unit=exp.var("DAY"),
            )

        this_year = anniv(0)
        return exp.Case(
            ifs=[exp.If(this=exp.LT(this=this_year, expression=lit(0)), true=anniv(1))],
            default=anniv(0),
        )

    def _compare(
        self, c: exp.Expression, kind: str, op: str, value: Any, ci: bool
    ) -> exp.Expression:
        """A comparison, never NULL (missing values compare false)."""
        if op == "exists":
            return exp.Not(this=exp.Is(this=c, expression=exp.Null()))
        if op == "not_exists":
            return exp.Is(this=c, expression=exp.Null())
        if kind in ("date", "timestamp"):
            vals = [
                self._date_value(v, kind) for v in (value if isinstance(value, tuple) else (value,))
            ]
            # a calendar date against a timestamp field compares the field's (UTC) day, an
            # instant the instant: each value at its own grain (`between` an instant and
            # a day runs through the end of that day)
            if kind == "timestamp":
                day = [isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in vals]
                if all(day):
                    c = exp.Cast(this=c, to=exp.DataType.build("DATE"))
                elif any(day):
                    return _mixed_grain(c, op, vals, day)
            value = tuple(vals) if isinstance(value, tuple) else vals[0]
        if ci:
            c = exp.Lower(this=c)
            value = tuple(v.lower() for v in value) if isinstance(value, tuple) else value.lower()
        if op == "eq":
            e: exp.Expression = exp.EQ(this=c, expression=lit(value))
        elif op == "ne":
            e = exp.NEQ(this=c, expression=lit(value))
        elif op in ("in", "not_in"):
            e = exp.In(this=c, expressions=[lit(v) for v in value])
            if op == "not_in":
                e = exp.And(
                    this=exp.Not(this=exp.Is(this=c, expression=exp.Null())),
                    expression=exp.Not(this=exp.paren(e)),
                )
        elif op == "gt":
            e = exp.GT(this=c, expression=lit(value))
        elif op == "gte":
            e = exp.GTE(this=c, expression=lit(value))
        elif op == "lt":
            e = exp.LT(this=c, expression=lit(value))
        elif op == "lte":
            e = exp.LTE(this=c, expression=lit(value))
        elif op == "between":
            e = exp.Between(this=c, low=lit(value[0]), high=lit(value[1]))
        elif op == "contains":
            if kind == "array":
                e = exp.ArrayContains(this=c, expression=lit(value))
            else:
                e = exp.GT(this=exp.StrPosition(this=c, substr=lit(value)), expression=lit(0))
        elif op == "starts_with":
            e = exp.EQ(this=exp.Left(this=c, expression=lit(len(value))), expression=lit(value))
        elif op == "ends_with":
            e = exp.EQ(this=exp.Right(this=c, expression=lit(len(value))), expression=lit(value))
        else:  # pragma: no cover - the parser refuses unknown operators
            raise ValueError(op)
        return _coalesce_false(e)

    # ------------------------------------------------------------------ leaves
    def _attr(self, a: Attr) -> exp.Expression:
        info = self.fields.attributes.get(a.field)
        kind = info.kind if info is not None else "string"
        c: exp.Expression = col(a.field, "p")
        if a.fn is not None:
            c = self._date_fn(a.fn, c)
            kind = "number"
        return self._compare(c, kind, a.op, a.value, a.case_insensitive)

    def _filter(self, f: Filter, table: str | None) -> exp.Expression:
        info = self.fields.events.get(f.field)
        kind = info.kind if info is not None else "string"
        return self._compare(col(f.field, table), kind, f.op, f.value, f.case_insensitive)

    def _types(self, types: tuple[str, ...], table: str | None) -> exp.Expression | None:
        if not types:
            return None
        c = col("event_type", table)
        if len(types) == 1:
            return exp.EQ(this=c, expression=lit(types[0]))
        return exp.In(this=c, expressions=[lit(t) for t in types])

    def _window(self, w: Window, table: str | None) -> exp.Expression | None:
        start, end = w.bounds(self.as_of)
        ts = col("timestamp", table)
        parts: list[exp.Expression] = []
        if start is not None:
            parts.append(exp.GT(this=ts, expression=lit(start)))
        if end != self.as_of:
            parts.append(exp.LTE(this=ts, expression=lit(end)))
        return _and(parts) if parts else None

    def _flag(self, e: exp.Expression | None) -> str | None:
        if e is None:
            return None
        key = e.sql(self.dialect)
        have = self._scan.flags.get(key)
        if have is None:
            have = (f"f{len(self._scan.flags)}", e)
            self._scan.flags[key] = have
        return have[0]

    def _events(self, e: Events) -> exp.Expression:
        tflag = self._flag(self._types(e.types, None))
        wflag = self._flag(self._window(e.window, None))
        fflags = [self._flag(self._filter(f, None)) for f in e.where]
        # conditions are grouped by their event types: each group reads only the rows of
        # its types (the event history is stored ordered by type and time, so that is a
        # pruned read), and each row updates only the aggregates of its own group
        g = self._scan.groups.get(tflag)
        if g is None:
            g = _Group(f"a{len(self._scan.groups)}", tflag)
            self._scan.groups[tflag] = g
        names = [n for n in (wflag, *fflags) if n is not None]
        a = e.aggregate
        key = f"{a.fn}|{a.field}|{'&'.join(sorted(names))}"
        have = g.aggs.get(key)
        if have is None:
            for n in names:
                if n not in g.flags:
                    g.flags.append(n)
            # plain aggregates over CASE, not FILTER clauses: engines vectorize them far
            # better (DuckDB: 11 s -> 2 s for 38 conditions over 10M rows on 2 cores)
            cond = _and([col(n) for n in names]) if names else None
            if a.fn == "count":
                agg: exp.Expression = exp.Count(this=exp.Star())
                if cond is not None:  # COUNT of a CASE without ELSE counts the matching rows
                    agg = exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=lit(1))]))
            else:
                if a.field not in g.values:
                    g.values.append(a.field or "")
                v: exp.Expression = col(a.field or "")
                if cond is not None:
                    v = exp.Case(ifs=[exp.If(this=cond, true=v)])
                agg = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[a.fn](this=v)
            have = (f"e{self._scan.n_aggs}", agg)
            self._scan.n_aggs += 1
            g.aggs[key] = have
            g.windows.append(wflag)
        # the comparison is made inside the group's result (a narrow boolean per condition
        # crosses the join, not a wide number); a profile with no events at all gets the
        # value the comparison has over no events: 0 for count and sum, false otherwise
        value: exp.Expression = col(have[0])
        empty: bool = False
        if a.fn in ("count", "sum"):
            value = exp.Coalesce(this=value, expressions=[lit(0)])
            empty = _holds(0, a.op, a.value)
        test = self._compare(value, "number", a.op, a.value, False)
        tkey = test.sql(self.dialect)
        t = g.tests.get(tkey)
        if t is None:
            t = (f"b{self._scan.n_tests}", test)
            self._scan.n_tests += 1
            g.tests[tkey] = t
        return exp.Coalesce(this=col(t[0], g.alias), expressions=[lit(empty)])

    def _step_pred(self, s: Step, table: str) -> list[exp.Expression]:
        parts = [self._filter(f, table) for f in s.where]
        t = self._types(s.types, table)
        return [t, *parts] if t is not None else parts

    def _sequence(self, s: Sequence) -> exp.Expression:
        ev = self.events_table
        a_parts = [
            exp.LTE(this=col("timestamp", "sa"), expression=lit(self.as_of)),
            *self._step_pred(s.first, "sa"),
        ]
        w = self._window(s.window, "sa")
        if w is not None:
            a_parts.append(w)
        gap = int(parse_duration(s.then_within).total_seconds())
        b_parts = [
            exp.EQ(this=col("profile_id", "sb"), expression=col("profile_id", "sa")),
            *self._step_pred(s.then, "sb"),
            exp.GT(this=col("timestamp", "sb"), expression=col("timestamp", "sa")),
            exp.LTE(
                this=col("timestamp", "sb"),
                expression=exp.Add(
                    this=col("timestamp", "sa"),
                    expression=exp.Interval(
                        this=exp.Literal.string(str(gap)), unit=exp.var("SECOND")
                    ),
                ),
            ),
            exp.LTE(this=col("timestamp", "sb"), expression=lit(self.as_of)),
        ]
        inner = exp.select(lit(1)).from_(exp.to_table(ev).as_("sb")).where(_and(b_parts))
        test: exp.Expression = exp.Exists(this=inner)
        if s.then_absent:
            test = exp.Not(this=test)
        q = (
            exp.select(col("profile_id", "sa"), exp.alias_(TRUE, "hit"))
            .distinct()
            .from_(exp.to_table(ev).as_("sa"))
            .where(_and([*a_parts, test]))
        )
        key = q.sql(self.dialect)
        have = self._seqs.get(key)
        if have is None:
            have = (f"sq{len(self._seqs)}", q)
            self._seqs[key] = have
        return exp.Coalesce(this=col("hit", have[0]), expressions=[FALSE])

    # ------------------------------------------------------------------ rules
    def condition(self, c: Condition) -> exp.Expression:
        """The boolean expression of a condition over the joined relation."""
        if isinstance(c, Attr):
            return self._attr(c)
        if isinstance(c, All):
            return exp.paren(_and([self.condition(i) for i in c.items]))
        if isinstance(c, AnyOf):
            return exp.paren(_or([self.condition(i) for i in c.items]))
        if isinstance(c, Not):
            return exp.Not(this=exp.paren(self.condition(c.item)))
        if isinstance(c, Events):
            return self._events(c)
        if isinstance(c, Sequence):
            return self._sequence(c)
        if isinstance(c, InSegment):
            e = self.segment(c.segment)
            return exp.Not(this=exp.paren(e)) if c.negate else e
        raise TypeError(f"not a condition: {c!r}")

    def segment(self, name: str) -> exp.Expression:
        """The boolean expression of a named segment (references inlined)."""
        if name not in self._memo:
            dependency_order(self.definitions, [name])
            self._memo[name] = exp.paren(self.condition(self.definitions[name].rule))
        return self._memo[name].copy()

    # ------------------------------------------------------------------ queries
    def _from(self) -> exp.Select:
        q = exp.select().from_(exp.to_table(self.profiles_table).as_("p"))
        for g in self._scan.groups.values():
            q = q.join(
                self._group_query(g).subquery(g.alias),
                on=exp.EQ(this=col("profile_id", g.alias), expression=col("profile_id", "p")),
                join_type="left",
            )
        for alias, sq in self._seqs.values():
            q = q.join(
                sq.subquery(alias),
                on=exp.EQ(this=col("profile_id", alias), expression=col("profile_id", "p")),
                join_type="left",
            )
        return q

    def _group_query(self, g: _Group) -> exp.Select:
        by_name = {n: e for n, e in self._scan.flags.values()}
        cols: list[exp.Expression] = [col("profile_id")]
        cols += [col(v) for v in g.values]
        cols += [exp.alias_(by_name[n].copy(), n, quoted=True) for n in g.flags]
        where = [exp.LTE(this=col("timestamp"), expression=lit(self.as_of))]
        if g.type_flag is not None:
            where.append(by_name[g.type_flag].copy())
        # rows outside every window of the group are skipped before the flags
        if g.windows and all(w is not None for w in g.windows):
            uniq = list(dict.fromkeys(w for w in g.windows if w is not None))
            where.append(exp.paren(_or([by_name[w].copy() for w in uniq])))
        inner = exp.select(*cols).from_(exp.to_table(self.events_table)).where(_and(where))
        aggs = [exp.alias_(e, n, quoted=True) for n, e in g.aggs.values()]
        grouped = (
            exp.select(col("profile_id"), *aggs)
            .from_(inner.subquery("r"))
            .group_by(col("profile_id"))
        )
        tests = [exp.alias_(e, n, quoted=True) for n, e in g.tests.values()]
        return exp.select(col("profile_id"), *tests).from_(grouped.subquery("g"))

    def query(self, names: list[str]) -> exp.Select:
        """``profile_id`` and one boolean column per segment (``s0``, ``s1``... in order)."""
        exprs = [self.segment(n) for n in names]
        q = self._from()
        return q.select(
            col("profile_id", "p"),
            *[exp.alias_(e, f"s{i}", quoted=True) for i, e in enumerate(exprs)],
        )

    def members_query(self, name: str) -> exp.Select:
        """The profile ids of one segment."""
        e = self.segment(name)
        return self._from().select(col("profile_id", "p")).where(e)

    def count_query(self, name: str) -> exp.Select:
        """The size of one segment."""
        e = self.segment(name)
        return self._from().select(exp.alias_(exp.Count(this=exp.Star()), "n")).where(e)

    def sql(self, q: exp.Expression, pretty: bool = False) -> str:
        """Render for the compiler's dialect."""
        return q.sql(self.dialect, pretty=pretty)


def uses_events(defn: SegmentDefinition, definitions: Mapping[str, SegmentDefinition]) -> bool:
    """Whether a segment (with its references) reads events at all."""
    for c in walk(defn.rule):
        if isinstance(c, Events | Sequence):
            return True
        if (
            isinstance(c, InSegment)
            and c.segment in definitions
            and uses_events(definitions[c.segment], definitions)
        ):
            return True
    return False


__all__ = ["Compiler", "col", "dependency_order", "lit", "uses_events"]
