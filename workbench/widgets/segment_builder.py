"""The segment builder: author a segment with live audience size, in Python or in a notebook.

:class:`SegmentBuilder` keeps an editable rule tree (groups ``all`` / ``any`` / ``not`` whose
leaves are the model's own conditions) and exposes it as a Python API that needs no browser::

    b = SegmentBuilder(ws, name="gold_buyers", as_of="2026-12-01T00:00Z", debounce_s=0)
    b.add_attribute("tier", "in", ["gold", "platinum"])
    b.add_event(types=["purchase"], within="30d")
    b.definition        # a SegmentDefinition, or None while the rule has problems
    b.errors            # every problem with its path (rule.all[1].events.within), never raised
    b.refresh()         # estimate, then the exact count
    b.size              # Size(estimate=Estimate(...), count=...)
    b.save("segments")  # validate, write segments/gold_buyers.yaml and add it to the catalog

:attr:`SegmentBuilder.widget` is a thin ipywidgets layer over the same methods: condition rows
added and removed with buttons, operator choices filtered by the field's type, value inputs
that fit the type, the YAML beside the builder, a debounced audience size (estimate first,
then the exact count), a sparkline of the size over the last 30 days and the evaluation method
with its reason. Paths given to :meth:`SegmentBuilder.remove` / :meth:`SegmentBuilder.update`
are tuples of child positions from the root group: ``()`` is the root, ``(1, 0)`` the first
condition of the root's second item.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from workbench.errors import NotFoundError, Problem, ValidationError, WorkbenchError
from workbench.lake.sql import ident, lit
from workbench.segments.classify import Method
from workbench.segments.fields import OPS_FOR_KIND, FieldCatalog, FieldInfo
from workbench.segments.model import (
    AGG_FNS,
    DATE_FNS,
    LIST_OPS,
    NO_VALUE_OPS,
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
    Window,
    condition_to_dict,
    load,
    parse,
)
from workbench.segments.service import Estimate, to_utc

if TYPE_CHECKING:
    import ipywidgets as widgets

    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Tree paths: positions of children from the root group.
TreePath = tuple[int, ...]
GROUP_KINDS = ("all", "any", "not")
#: How many frequent values :meth:`SegmentBuilder.value_choices` offers.
CHOICES_LIMIT = 30
SPARK_DAYS = 30
_AGG_OPS = ("gte", "gt", "eq", "ne", "lte", "lt", "between")
_COUNT_AGG_OPS = ("gte", "lte", "eq")


@dataclass
class Group:
    """An editable ``all`` / ``any`` / ``not`` group of the builder's rule tree."""

    kind: str = "all"
    items: list[Node] = field(default_factory=list)


Node = Group | Attr | Events | InSegment | Condition


@dataclass(frozen=True)
class Size:
    """The latest audience size: the estimate (first) and the exact count (then)."""

    estimate: Estimate | None = None
    count: int | None = None

    def __str__(self) -> str:
        if self.count is not None:
            return f"{self.count:,} {_profiles(self.count)} (exact)"
        if self.estimate is not None:
            e = self.estimate
            if e.exact:
                return f"{e.estimate:,} {_profiles(e.estimate)} (exact)"
            return f"≈ {e.estimate:,} profiles (estimate, 95% {e.low:,}–{e.high:,}) …"
        return "—"


def _profiles(n: int) -> str:
    return "profile" if n == 1 else "profiles"


def _to_tree(c: Condition) -> Node:
    if isinstance(c, All | AnyOf):
        return Group("all" if isinstance(c, All) else "any", [_to_tree(i) for i in c.items])
    if isinstance(c, Not):
        return Group("not", [_to_tree(c.item)])
    return c


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's event loop when called from it (a widget callback), else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _number(v: Any) -> Any:
    """Whole floats as ints (FloatText gives 300.0 for 300)."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class SegmentBuilder:
    """Build a segment interactively, with validation, YAML and live audience size.

    Args:
        ws: The workspace (its profiles must be built for sizes).
        name: The segment's name.
        as_of: When the segment is evaluated (a datetime, date or ISO text; None = now).
        debounce_s: In the widget, how long the rule must stay unchanged before it is sized
            (0 sizes at once, synchronously).
        folder: Where :meth:`save` writes definitions by default.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        name: str = "new_segment",
        as_of: Any = None,
        debounce_s: float = 0.3,
        folder: str | Path = "segments",
    ) -> None:
        self.ws = ws
        self.folder = Path(folder)
        self.name = name
        self.description = ""
        self.tags: tuple[str, ...] = ()
        self.as_of: dt.datetime = to_utc(as_of)
        self.debounce_s = debounce_s
        self.root = Group("all")
        self._collapse = True  # a root "all" of one condition is written as that condition
        self._fields: FieldCatalog | None = None
        self._choices: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._state: tuple[SegmentDefinition | None, list[Problem], dict[str, Any] | None] | None
        self._state = None
        self._rule_paths: dict[TreePath, str] = {}
        self._size = Size()
        self._size_for: SegmentDefinition | None = None
        self._size_problem: Problem | None = None
        self._spark: tuple[Any, pd.DataFrame] | None = None
        self._ui: _BuilderUI | None = None

    # ------------------------------------------------------------------ fields
    @property
    def fields(self) -> FieldCatalog:
        """Attributes, event fields and event types of the workspace (read once)."""
        if self._fields is None:
            self._fields = self.ws.segments.fields()
        return self._fields

    def field_info(self, name: str, *, event: bool = False) -> FieldInfo | None:
        """An attribute (or, with ``event``, an event field), or None when unknown."""
        return (self.fields.events if event else self.fields.attributes).get(name)

    def operators_for(
        self, field: str, *, fn: str | None = None, event: bool = False
    ) -> tuple[str, ...]:
        """The operators that fit a field's kind (a date with ``fn`` compares as a number).

        Args:
            field: An attribute name (an event field with ``event=True``).
            fn: ``age`` / ``days_since`` / ``days_until_anniversary`` on a date attribute.
            event: Look ``field`` up among the event fields.

        Returns:
            The allowed operators, or every operator of the model for an unknown field.
        """
        info = self.field_info(field, event=event)
        if info is None:
            return tuple(dict.fromkeys(op for ops in OPS_FOR_KIND.values() for op in ops))
        kind = "number" if fn and info.kind in ("date", "timestamp") else info.kind
        return OPS_FOR_KIND[kind]

    def kind_of(self, field: str, *, fn: str | None = None, event: bool = False) -> str | None:
        """string, number, boolean, date, timestamp or array (None for an unknown field)."""
        info = self.field_info(field, event=event)
        if info is None:
            return None
        return "number" if fn and info.kind in ("date", "timestamp") else info.kind

    def value_choices(self, field: str, *, event: bool = False) -> tuple[Any, ...]:
        """Values to offer for ``in`` / ``not_in``: the field's enum values, or for a text
        field its most frequent values in the profile (or event) table — one query, cached.

        Returns:
            The values, most frequent first; empty for other kinds or before any build.
        """
        key = ("event" if event else "attribute", field)
        if key in self._choices:
            return self._choices[key]
        info = self.field_info(field, event=event)
        out: tuple[Any, ...] = ()
        if info is not None and info.values:
            out = tuple(info.values)
        elif info is not None and info.kind == "string":
            out = self._frequent(field, event)
        self._choices[key] = out
        return out

    def _frequent(self, field: str, event: bool) -> tuple[Any, ...]:
        ws = self.ws
        eng = ws.engine
        view = "__wb_builder_values"
        try:
            uri = ws.profiles.events_uri() if event else ws.profiles.table_uri()
            ws.lake.register(eng, view, uri)
        except WorkbenchError as e:
            log.info("no values for %s yet: %s", field, e)
            return ()
        try:
            col = ident(field)
            rows = eng.query(
                f"SELECT {col} AS v, count(*) AS n FROM {view} WHERE {col} IS NOT NULL "
                f"GROUP BY 1 ORDER BY n DESC, v LIMIT {lit(CHOICES_LIMIT)}"
            ).column("v")
            return tuple(rows.to_pylist())
        except WorkbenchError as e:
            log.warning("frequent values of %s failed: %s", field, e)
            return ()
        finally:
            eng.unregister(view)

    def segment_names(self) -> list[str]:
        """Names of the segments in the catalog."""
        return sorted(s.name for s in self.ws.segments.list())

    # ------------------------------------------------------------------ the tree
    def node(self, path: Sequence[int] = ()) -> Node:
        """The group or condition at ``path`` (``()`` is the root group)."""
        n: Node = self.root
        for i in tuple(path):
            if not isinstance(n, Group) or not 0 <= i < len(n.items):
                raise NotFoundError(f"no condition at {tuple(path)}")
            n = n.items[i]
        return n

    def _group(self, path: Sequence[int]) -> Group:
        g = self.node(path)
        if not isinstance(g, Group):
            raise NotFoundError(f"{tuple(path)} is a condition, not a group")
        return g

    def _add(self, node: Node, group: Sequence[int]) -> TreePath:
        g = self._group(group)
        g.items.append(node)
        self._changed(structure=True)
        return (*tuple(group), len(g.items) - 1)

    def add_attribute(
        self,
        field: str,
        op: str,
        value: Any = None,
        *,
        fn: str | None = None,
        case_insensitive: bool = False,
        group: Sequence[int] = (),
    ) -> TreePath:
        """Add an attribute condition (``tier in [gold, platinum]``) to a group.

        Args:
            field: The attribute.
            op: The operator (see :meth:`operators_for`).
            value: The value (a list for ``in`` / ``not_in`` / ``between``; none for
                ``exists`` / ``not_exists``).
            fn: ``age`` / ``days_since`` / ``days_until_anniversary`` on a date attribute.
            case_insensitive: Compare text ignoring case.
            group: The group's path (the root by default).

        Returns:
            The new condition's path. Invalid input is kept and reported in :attr:`errors`.
        """
        if isinstance(value, list):
            value = tuple(value)
        return self._add(Attr(field, op, value, fn, case_insensitive), group)

    def add_event(
        self,
        types: str | Iterable[str] = (),
        where: Iterable[Any] = (),
        within: str | tuple[str, str] | dt.date | None = None,
        aggregate: Sequence[Any] | Aggregate = ("count", "gte", 1),
        group: Sequence[int] = (),
    ) -> TreePath:
        """Add an event condition to a group.

        Args:
            types: Event types (one or several; none means any type).
            where: Filters on event fields: ``(field, op, value)`` tuples, dicts or
                :class:`~workbench.segments.model.Filter`.
            within: The window: ``"30d"`` (the last 30 days), ``("365d", "90d")`` (from 365
                to 90 days ago), a date (since that date) or None (all time).
            aggregate: ``(count, op, n)`` with op gte / lte / eq, or ``(fn, field, op,
                value)`` for sum / avg / min / max.
            group: The group's path.

        Returns:
            The new condition's path.
        """
        ev = Events(_types(types), _filters(where), _window(within), _aggregate(aggregate))
        return self._add(ev, group)

    def add_reference(
        self, segment: str, negate: bool = False, group: Sequence[int] = ()
    ) -> TreePath:
        """Add ``in_segment: segment`` (``not_in_segment`` with ``negate``) to a group."""
        return self._add(InSegment(segment, negate), group)

    def add_group(self, kind: str = "all", group: Sequence[int] = ()) -> TreePath:
        """Add an empty ``all`` / ``any`` / ``not`` group; returns its path."""
        if kind not in GROUP_KINDS:
            raise ValidationError("group", [Problem("kind", f"{kind!r} is not all, any or not")])
        return self._add(Group(kind), group)

    def add_condition(
        self, condition: Condition | Mapping[str, Any], group: Sequence[int] = ()
    ) -> TreePath:
        """Add any condition of the model (a dict is parsed first), e.g. a sequence."""
        if isinstance(condition, Mapping):
            condition = parse({"name": "x", "rule": dict(condition)}).rule
        return self._add(_to_tree(condition), group)

    def remove(self, path: Sequence[int]) -> None:
        """Remove the condition or group at ``path`` (the root group cannot be removed)."""
        path = tuple(path)
        if not path:
            raise NotFoundError("the root group cannot be removed (set_kind or clear it)")
        self.node(path)
        del self._group(path[:-1]).items[path[-1]]
        self._changed(structure=True)

    def clear(self) -> None:
        """Start over with an empty ``all`` group."""
        self.root = Group("all")
        self._collapse = True
        self._changed(structure=True)

    def set_kind(self, path: Sequence[int], kind: str) -> None:
        """Make the group at ``path`` an ``all``, ``any`` or ``not`` group."""
        if kind not in GROUP_KINDS:
            raise ValidationError("group", [Problem("kind", f"{kind!r} is not all, any or not")])
        self._group(path).kind = kind
        self._changed()

    def update(self, path: Sequence[int], **changes: Any) -> None:
        """Change fields of the condition at ``path``.

        Attribute conditions take ``field``, ``op``, ``value``, ``fn``, ``case_insensitive``;
        event conditions ``types``, ``where``, ``within`` (as in :meth:`add_event`) and
        ``aggregate``; references ``segment`` and ``negate``. Changing a field or a function
        keeps the operator only when it still fits the field's kind (else the first that
        does) and drops a value that no longer fits.
        """
        path = tuple(path)
        n = self.node(path)
        if isinstance(n, Group):
            if "kind" in changes:
                self.set_kind(path, changes.pop("kind"))
            if changes:
                raise ValidationError("group", [Problem(k, "unknown change") for k in changes])
            return
        if isinstance(n, Attr):
            new = self._update_attr(n, changes)
        elif isinstance(n, Events):
            kw: dict[str, Any] = {}
            if "types" in changes:
                kw["types"] = _types(changes.pop("types"))
            if "where" in changes:
                kw["where"] = _filters(changes.pop("where"))
            if "within" in changes:
                kw["window"] = _window(changes.pop("within"))
            if "window" in changes:
                kw["window"] = changes.pop("window")
            if "aggregate" in changes:
                kw["aggregate"] = _aggregate(changes.pop("aggregate"))
            if changes:
                raise ValidationError("events", [Problem(k, "unknown change") for k in changes])
            new = dataclasses.replace(n, **kw)
        else:
            if isinstance(changes.get("value"), list):
                changes["value"] = tuple(changes["value"])
            new = dataclasses.replace(n, **changes)  # type: ignore[type-var]
        self._group(path[:-1]).items[path[-1]] = new
        self._changed()

    def _update_attr(self, n: Attr, changes: dict[str, Any]) -> Attr:
        if isinstance(changes.get("value"), list):
            changes["value"] = tuple(changes["value"])
        new = dataclasses.replace(n, **changes)
        if ("field" in changes or "fn" in changes) and "op" not in changes:
            info = self.field_info(new.field)
            if info is not None and new.fn and info.kind not in ("date", "timestamp"):
                new = dataclasses.replace(new, fn=None)
            old_kind = self.kind_of(n.field, fn=n.fn)
            kind = self.kind_of(new.field, fn=new.fn)
            ops = self.operators_for(new.field, fn=new.fn)
            if new.op not in ops:
                new = dataclasses.replace(new, op=ops[0])
            if kind != old_kind and "value" not in changes:
                new = dataclasses.replace(new, value=None, case_insensitive=False)
        elif "op" in changes and "value" not in changes:
            was_list = n.op in LIST_OPS or n.op == "between"
            is_list = new.op in LIST_OPS or new.op == "between"
            if new.op in NO_VALUE_OPS or was_list != is_list:
                new = dataclasses.replace(new, value=None)
        return new

    # ------------------------------------------------------------------ load
    def set_definition(
        self, defn_or_name: SegmentDefinition | Mapping[str, Any] | str | Path
    ) -> None:
        """Load a definition into the builder: a definition, a dict, a YAML/JSON file or the
        name of a segment in the catalog."""
        d = defn_or_name
        if isinstance(d, Path) or (
            isinstance(d, str) and Path(d).suffix in (".yaml", ".yml", ".json")
        ):
            d = load(d)
        elif isinstance(d, str):
            d = self.ws.segments.get(d)
        elif isinstance(d, Mapping):
            d = parse(d)
        self.name = d.name
        self.description = d.description
        self.tags = d.tags
        rule = d.rule
        if isinstance(rule, All | AnyOf):
            self.root = _to_tree(rule)  # type: ignore[assignment]
            self._collapse = False
        else:
            self.root = Group("all", [_to_tree(rule)])
            self._collapse = True
        log.info("builder loaded segment %s", d.name)
        self._changed(structure=True)

    # ------------------------------------------------------------------ the definition
    def _changed(self, *, structure: bool = False) -> None:
        self._state = None
        if self._ui is not None:
            self._ui.changed(structure=structure)

    def _emit(
        self, n: Node, path: TreePath, rp: str, problems: list[Problem], paths: dict[TreePath, str]
    ) -> dict[str, Any] | None:
        paths[path] = rp
        if not isinstance(n, Group):
            try:
                return condition_to_dict(n)
            except (TypeError, KeyError) as e:
                problems.append(Problem(rp, f"cannot write this condition: {e}"))
                return None
        if n.kind == "not":
            if not n.items:
                problems.append(Problem(f"{rp}.not", "add the condition this group negates"))
                return None
            if len(n.items) > 1:
                problems.append(
                    Problem(
                        f"{rp}.not",
                        "a not group holds one condition: put an all or any group inside it",
                    )
                )
                kids = [
                    self._emit(item, (*path, i), f"{rp}.not.all[{i}]", problems, paths)
                    for i, item in enumerate(n.items)
                ]
                return {"not": {"all": [k for k in kids if k is not None]}}
            d = self._emit(n.items[0], (*path, 0), f"{rp}.not", problems, paths)
            return None if d is None else {"not": d}
        key = n.kind
        if not n.items:
            what = "the rule" if not path else "this group"
            problems.append(
                Problem(rp if not path else f"{rp}.{key}", f"add a condition to {what}")
            )
            return None
        if not path and self._collapse and n.kind == "all" and len(n.items) == 1:
            return self._emit(n.items[0], (0,), rp, problems, paths)
        out = []
        for i, item in enumerate(n.items):
            d = self._emit(item, (*path, i), f"{rp}.{key}[{len(out)}]", problems, paths)
            if d is not None:
                out.append(d)
        return {key: out} if out else None

    def _compute(self) -> tuple[SegmentDefinition | None, list[Problem], dict[str, Any] | None]:
        if self._state is not None:
            return self._state
        problems: list[Problem] = []
        paths: dict[TreePath, str] = {}
        rule = self._emit(self.root, (), "rule", problems, paths)
        self._rule_paths = paths
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.tags:
            data["tags"] = list(self.tags)
        if rule is not None:
            data["rule"] = rule
        defn: SegmentDefinition | None = None
        if rule is None and not problems:
            problems.append(Problem("rule", "add a condition"))
        if rule is not None:
            try:
                defn = parse(data)
            except ValidationError as e:
                problems.extend(e.problems)
                problems.extend(self._check_tree())  # field problems of the rest too
            if defn is not None:
                try:
                    self.ws.segments.validate(defn)
                except ValidationError as e:
                    problems.extend(e.problems)
                except WorkbenchError as e:
                    problems.append(Problem("", str(e)))
        else:
            try:
                parse({"name": self.name, "rule": {"in_segment": "x"}})
            except ValidationError as e:
                problems.extend(e.problems)
            problems.extend(self._check_tree())
        problems = list(dict.fromkeys(problems))
        self._state = (None if problems else defn, problems, data)
        return self._state

    def _direct(self, n: Node, path: TreePath) -> Condition | None:
        """The tree as model objects, as :meth:`_emit` writes it (for field checks while
        the definition does not parse)."""
        if not isinstance(n, Group):
            return n
        kids = [self._direct(item, (*path, i)) for i, item in enumerate(n.items)]
        got = [k for k in kids if k is not None]
        if not got:
            return None
        if n.kind == "not":
            return Not(got[0] if len(n.items) == 1 else All(tuple(got)))
        if not path and self._collapse and n.kind == "all" and len(n.items) == 1:
            return got[0]
        return All(tuple(got)) if n.kind == "all" else AnyOf(tuple(got))

    def _check_tree(self) -> list[Problem]:
        rule = self._direct(self.root, ())
        if rule is None:
            return []
        try:
            known = {*self.segment_names(), self.name}
            return self.fields.check(SegmentDefinition(self.name, rule), known)
        except Exception as e:  # a half-built rule: the parser's problems are enough
            log.debug("field check of a half-built rule failed: %s", e)
            return []

    @property
    def definition(self) -> SegmentDefinition | None:
        """The segment being built, or None while it has problems (see :attr:`errors`)."""
        return self._compute()[0]

    @property
    def errors(self) -> list[Problem]:
        """Every problem of the rule with its path (``rule.all[1].value``); empty when valid.
        Includes a failure to size a valid definition."""
        out = list(self._compute()[1])
        if self._size_problem is not None and self._size_for == self.definition:
            out.append(self._size_problem)
        return out

    def rule_path(self, path: Sequence[int]) -> str:
        """The definition path (``rule.all[0]``) of a tree path, as used in :attr:`errors`."""
        self._compute()
        return self._rule_paths.get(tuple(path), "rule")

    def errors_at(self, path: Sequence[int]) -> list[Problem]:
        """The problems of the condition at ``path`` (for a group: of the group itself)."""
        rp = self.rule_path(path)
        n = self.node(path)
        out = []
        for p in self._compute()[1]:
            if isinstance(n, Group):
                if p.path in (rp, f"{rp}.{n.kind}") and (path or p.path != "rule" or not n.items):
                    out.append(p)
            elif p.path == rp or p.path.startswith((f"{rp}.", f"{rp}[")):
                out.append(p)
        return out

    @property
    def yaml(self) -> str:
        """The definition as YAML (what is built so far while it has problems)."""
        d = self.definition
        if d is not None:
            return d.to_yaml()
        data = self._compute()[2] or {"name": self.name}
        try:
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            return repr(data)

    @property
    def method(self) -> Method | None:
        """The evaluation method (streaming / batch) with its reason; None while invalid."""
        d = self.definition
        if d is None:
            return None
        try:
            return self.ws.segments.method(d)
        except WorkbenchError as e:
            log.warning("no method for %s: %s", d.name, e)
            return None

    # ------------------------------------------------------------------ sizes
    @property
    def size(self) -> Size:
        """The latest audience size of the current definition (empty before :meth:`refresh`)."""
        if self._size_for != self.definition or self.definition is None:
            return Size()
        return self._size

    def estimate(self) -> Estimate | None:
        """Estimate the size of the current definition (from the sample); None while invalid."""
        d = self.definition
        if d is None:
            return None
        if self._size_for != d:
            self._size, self._size_for, self._size_problem = Size(), d, None
        try:
            e = self.ws.segments.estimate(d, self.as_of)
        except WorkbenchError as err:
            self._size_problem = Problem("", f"cannot size the segment: {err}")
            return None
        self._size = Size(e, self._size.count)
        return e

    def count(self) -> int | None:
        """The exact size of the current definition; None while invalid."""
        d = self.definition
        if d is None:
            return None
        if self._size_for != d:
            self._size, self._size_for, self._size_problem = Size(), d, None
        try:
            n = self.ws.segments.count(d, self.as_of)
        except WorkbenchError as err:
            self._size_problem = Problem("", f"cannot size the segment: {err}")
            return None
        self._size = Size(self._size.estimate, n)
        return n

    def refresh(self) -> Size:
        """Size the current definition now: the estimate, then the exact count."""
        self.estimate()
        self.count()
        return self.size

    @property
    def sparkline(self) -> pd.DataFrame:
        """The estimated size at ``as_of`` minus 29, 28 … 0 days (30 rows: ``as_of``,
        ``estimate``, ``low``, ``high``); empty while the definition is invalid."""
        d = self.definition
        cols = ["as_of", "estimate", "low", "high"]
        if d is None:
            return pd.DataFrame(columns=cols)
        key = (d, self.as_of)
        if self._spark is not None and self._spark[0] == key:
            return self._spark[1]
        rows = []
        try:
            for k in range(SPARK_DAYS - 1, -1, -1):
                when = self.as_of - dt.timedelta(days=k)
                e = self.ws.segments.estimate(d, when)
                rows.append((when, e.estimate, e.low, e.high))
        except WorkbenchError as err:
            log.warning("no sparkline for %s: %s", d.name, err)
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame(rows, columns=cols)
        self._spark = (key, df)
        return df

    def sparkline_figure(self) -> Any:
        """The sparkline as a small plotly figure."""
        import plotly.graph_objects as go

        fig = go.Figure()
        _spark_trace(fig, self.sparkline)
        return fig

    # ------------------------------------------------------------------ save
    def validate(self) -> SegmentDefinition:
        """The definition, or :class:`ValidationError` with every problem."""
        d = self.definition
        if d is None:
            raise ValidationError(f"segment {self.name!r}", self.errors)
        return d

    def save(self, folder: str | Path | None = None) -> Path:
        """Validate, write ``<folder>/<name>.yaml`` (default: the builder's ``folder``,
        ``segments``) and add the segment to the catalog.

        Returns:
            The file written.

        Raises:
            ValidationError: The definition has problems (the widget shows them instead).
        """
        d = self.validate()
        path = d.save(self.folder if folder is None else folder)
        self.ws.segments.add(d)
        log.info("saved segment %s to %s and the catalog", d.name, path)
        if self._ui is not None:
            self._ui.refresh_segment_list()
        return path

    # ------------------------------------------------------------------ widget
    @property
    def widget(self) -> widgets.VBox:
        """The ipywidgets UI (built on first use)."""
        if self._ui is None:
            self._ui = _BuilderUI(self)
        return self._ui.box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"SegmentBuilder({self.name!r}, as_of={self.as_of.isoformat()})"


# ---------------------------------------------------------------------- argument helpers
def _types(types: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(types, str):
        return (types,) if types else ()
    return tuple(types)


def _filters(where: Iterable[Any]) -> tuple[Filter, ...]:
    out = []
    for f in where:
        if isinstance(f, Filter):
            out.append(f)
        elif isinstance(f, Mapping):
            v = f.get("value")
            out.append(
                Filter(
                    f["field"],
                    f["op"],
                    tuple(v) if isinstance(v, list) else v,
                    bool(f.get("case_insensitive", False)),
                )
            )
        else:
            t = tuple(f)
            v = t[2] if len(t) > 2 else None
            out.append(Filter(t[0], t[1], tuple(v) if isinstance(v, list) else v))
    return tuple(out)


def _window(within: Any) -> Window:
    if within is None or within == "":
        return Window()
    if isinstance(within, Window):
        return within
    if isinstance(within, dt.date):
        return Window(since=within)
    if isinstance(within, list | tuple):
        return Window(between=(str(within[0]), str(within[1])))
    return Window(within=str(within))


def _aggregate(a: Sequence[Any] | Aggregate) -> Aggregate:
    if isinstance(a, Aggregate):
        return a
    t = tuple(a)
    if t and t[0] == "count":
        return Aggregate("count", None, t[1], t[2])
    fn, fld, op, value = t
    return Aggregate(fn, fld, op, tuple(value) if isinstance(value, list) else value)


def _spark_trace(fig: Any, df: pd.DataFrame) -> None:
    import plotly.graph_objects as go

    fig.add_trace(
        go.Scatter(
            x=list(df["as_of"]),
            y=list(df["estimate"]),
            mode="lines",
            line={"width": 2},
            hovertemplate="%{x|%Y-%m-%d}: %{y:,}<extra></extra>",
        )
    )
    fig.update_layout(
        height=90,
        width=300,
        margin={"l": 4, "r": 4, "t": 4, "b": 4},
        xaxis={"visible": False},
        yaxis={"visible": False, "rangemode": "tozero"},
        showlegend=False,
        template="plotly_white",
    )


def _spark_svg(df: pd.DataFrame, width: int = 300, height: int = 60, stale: bool = False) -> str:
    """A tiny inline SVG line (used when plotly's FigureWidget is not available); ``stale``
    greys it out while the sparkline of a changed rule is computed."""
    if df.empty:
        return "<div class='wb-spark'></div>"
    ys = [float(y) for y in df["estimate"]]
    top = max(ys) or 1.0
    n = len(ys)
    pts = " ".join(
        f"{i * (width - 4) / max(n - 1, 1) + 2:.1f},{height - 2 - y / top * (height - 4):.1f}"
        for i, y in enumerate(ys)
    )
    first, last = df["as_of"].iloc[0], df["as_of"].iloc[-1]
    title = html.escape(
        f"estimated size from {first:%Y-%m-%d} to {last:%Y-%m-%d}: {int(ys[0]):,} → {int(ys[-1]):,}"
    )
    extra_class, style = (" wb-stale", " style='opacity:0.35'") if stale else ("", "")
    return (
        f"<div class='wb-spark{extra_class}' title='{title}'{style}>"
        f"<svg width='{width}' height='{height}'>"
        f"<polyline fill='none' stroke='#3b6fb6' stroke-width='2' points='{pts}'/></svg>"
        f"<div style='font-size:11px;color:#666'>last {n} days: {int(ys[0]):,} → {int(ys[-1]):,}</div></div>"
    )


# ---------------------------------------------------------------------- the UI
def _problems_html(problems: list[Problem]) -> str:
    if not problems:
        return ""
    items = "".join(
        f"<li><code>{html.escape(p.path or '(segment)')}</code> {html.escape(p.message)}</li>"
        for p in problems
    )
    return f"<ul style='color:#b00020;margin:2px 0 2px 0;padding-left:18px'>{items}</ul>"


class _BuilderUI:
    """ipywidgets over a :class:`SegmentBuilder`: every edit calls the builder's API."""

    def __init__(self, b: SegmentBuilder) -> None:
        import ipywidgets as w

        self.b = b
        self.w = w
        self._row_errors: dict[TreePath, widgets.HTML] = {}
        self._gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loading = False
        self._spark_df: pd.DataFrame | None = None
        self.load = w.Dropdown(description="Load", layout=w.Layout(width="320px"))
        self.load.add_class("wb-load")
        self.refresh_segment_list()
        self.load.observe(self._on_load, "value")
        self.name = w.Text(value=b.name, description="Name", layout=w.Layout(width="320px"))
        self.name.add_class("wb-name")
        self.name.observe(self._on_name, "value")
        as_of = w.HTML(f"<span style='color:#666'>as of {b.as_of:%Y-%m-%d %H:%M} UTC</span>")
        self.rows = w.VBox()
        self.rows.add_class("wb-rows")
        self.size = w.HTML("—")
        self.size.add_class("wb-size")
        self.method = w.HTML()
        self.method.add_class("wb-method")
        self.yaml = w.HTML()
        self.yaml.add_class("wb-yaml")
        self.problems = w.HTML()
        self.problems.add_class("wb-problems")
        self.status = w.HTML()
        self.status.add_class("wb-status")
        self.spark: Any
        try:
            import plotly.graph_objects as go

            self.spark = go.FigureWidget()
            _spark_trace(self.spark, pd.DataFrame({"as_of": [], "estimate": []}))
            self._spark_is_figure = True
        except ImportError:  # plotly >= 6 needs anywidget for FigureWidget
            self.spark = w.HTML()
            self._spark_is_figure = False
        validate = w.Button(description="Validate", icon="check")
        validate.add_class("wb-validate")
        validate.on_click(lambda _: self._on_validate())
        save = w.Button(description="Save", icon="save", button_style="primary")
        save.add_class("wb-save")
        save.on_click(lambda _: self._on_save())
        self.folder = w.Text(
            value=str(b.folder), description="Folder", layout=w.Layout(width="260px")
        )
        right = w.VBox(
            [
                w.HTML("<b>Audience size</b>"),
                self.size,
                self.spark,
                self.method,
                w.HTML("<b>YAML</b>"),
                self.yaml,
            ],
            layout=w.Layout(width="40%", padding="0 0 0 12px"),
        )
        left = w.VBox([self.rows], layout=w.Layout(width="60%"))
        self.box = w.VBox(
            [
                w.HBox([self.load, self.name, as_of]),
                w.HBox([left, right]),
                self.problems,
                w.HBox([validate, self.folder, save, self.status]),
            ]
        )
        self.box.add_class("wb-segment-builder")
        self.render_rows()
        self.show_state()
        self._gen += 1
        if b.definition is not None:  # the first size at once: the widget opens with it
            self._step_estimate(self._gen, None)

    # -------------------------------------------------------------- wiring
    def changed(self, *, structure: bool) -> None:
        if self._loading:
            return
        if structure:
            self.sync_header()
            self.render_rows()
        self.show_state()
        self.schedule_size()

    def guarded(self, fn: Callable[[], Any]) -> None:
        """Run a UI action; problems are shown inline, never raised."""
        try:
            fn()
        except ValidationError as e:
            self.problems.value = _problems_html(e.problems)
        except (WorkbenchError, ValueError, TypeError) as e:
            log.info("builder action refused: %s", e)
            self.problems.value = _problems_html([Problem("", str(e))])

    def refresh_segment_list(self) -> None:
        try:
            names = self.b.segment_names()
        except WorkbenchError:
            names = []
        keep = self.b.name if self.b.name in names else None
        self._loading = True
        try:
            self.load.options = [("— load a segment —", None), *[(n, n) for n in names]]
            self.load.value = keep
        finally:
            self._loading = False

    def sync_header(self) -> None:
        """Show the builder's name (and the loaded segment) after a load through the API."""
        self._set_name(self.b.name)
        self.refresh_segment_list()

    def _on_load(self, change: dict[str, Any]) -> None:
        if self._loading or not change["new"]:
            return
        self.guarded(lambda: self.b.set_definition(change["new"]))
        self._set_name(self.b.name)

    def _set_name(self, name: str) -> None:
        self._loading = True
        try:
            self.name.value = name
        finally:
            self._loading = False

    def _on_name(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        self.b.name = change["new"].strip()
        self.b._changed()

    def _on_validate(self) -> None:
        self.b._state = None
        self.b._fields = None
        self.show_state()
        errs = self.b.errors
        self.status.value = (
            "<span style='color:#1b7f3b'>valid ✓</span>"
            if not errs
            else f"<span style='color:#b00020'>{len(errs)} problem(s)</span>"
        )

    def _on_save(self) -> None:
        def do() -> None:
            p = self.b.save(self.folder.value or "segments")
            self.status.value = f"<span style='color:#1b7f3b'>saved {html.escape(str(p))} and added to the catalog</span>"

        self.status.value = ""
        self.guarded(do)

    def show_state(self) -> None:
        b = self.b
        errs = b.errors
        self.problems.value = _problems_html(errs)
        self.yaml.value = (
            "<pre style='font-size:12px;line-height:1.35;background:#f6f8fa;padding:6px;"
            "margin:0;white-space:pre-wrap'>"
            f"{html.escape(b.yaml)}</pre>"
        )
        m = b.method
        self.method.value = (
            f"<b>{html.escape(m.method)}</b> — {html.escape(m.reason)}"
            if m is not None
            else "<span style='color:#666'>method: — (fix the rule first)</span>"
        )
        for path, box in list(self._row_errors.items()):
            try:
                box.value = _problems_html(b.errors_at(path))
            except NotFoundError:
                box.value = ""
        if b.definition is None:
            self.size.value = "— <span style='color:#666'>(the rule has problems)</span>"

    # -------------------------------------------------------------- sizing
    def schedule_size(self) -> None:
        self._gen += 1
        gen = self._gen
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.b.definition is None:
            return
        loop = _running_loop() if self.b.debounce_s > 0 else None
        if loop is None:
            self._step_estimate(gen, None)
            return
        self._timer = loop.call_later(self.b.debounce_s, self._step_estimate, gen, loop)

    def _step_estimate(self, gen: int, loop: asyncio.AbstractEventLoop | None) -> None:
        if gen != self._gen:
            return
        try:
            if not self._spark_is_figure and self._spark_df is not None:
                self.spark.value = _spark_svg(self._spark_df, stale=True)
            e = self.b.estimate()
            if e is not None:
                self.size.value = html.escape(str(self.b.size))
            self._next(self._step_exact, gen, loop)
        except Exception as err:  # never a traceback in the widget
            self._size_failed(err)

    def _step_exact(self, gen: int, loop: asyncio.AbstractEventLoop | None) -> None:
        if gen != self._gen:
            return
        try:
            n = self.b.count()
            if n is not None:
                self.size.value = html.escape(str(self.b.size))
            else:
                self.show_state()
            self._next(self._step_spark, gen, loop)
        except Exception as err:
            self._size_failed(err)

    def _step_spark(self, gen: int, loop: asyncio.AbstractEventLoop | None) -> None:
        if gen != self._gen:
            return
        try:
            df = self.b.sparkline
            if self._spark_is_figure:
                with self.spark.batch_update():
                    self.spark.data[0].x = list(df["as_of"])
                    self.spark.data[0].y = list(df["estimate"])
            else:
                self._spark_df = df
                self.spark.value = _spark_svg(df)
        except Exception as err:
            log.warning("sparkline failed: %s", err)

    def _next(
        self, step: Callable[..., None], gen: int, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        if loop is None:
            step(gen, None)
        else:  # let the estimate reach the browser before the exact count runs
            loop.call_soon(step, gen, loop)

    def _size_failed(self, err: Exception) -> None:
        log.warning("sizing failed: %s", err)
        self.size.value = "— <span style='color:#b00020'>(could not size the segment)</span>"
        self.show_state()

    # -------------------------------------------------------------- rows
    def render_rows(self) -> None:
        self._row_errors = {}
        self.rows.children = [self._render(self.b.root, ())]

    def _remove_button(self, path: TreePath) -> widgets.Button:
        w = self.w
        btn = w.Button(icon="trash", tooltip="remove", layout=w.Layout(width="36px"))
        btn.add_class("wb-remove")
        btn.on_click(lambda _: self.guarded(lambda: self.b.remove(path)))
        return btn

    def _errors_box(self, path: TreePath) -> widgets.HTML:
        box = self.w.HTML()
        box.add_class("wb-row-problems")
        self._row_errors[path] = box
        return box

    def _render(self, n: Node, path: TreePath) -> widgets.Widget:
        if isinstance(n, Group):
            return self._render_group(n, path)
        if isinstance(n, Attr):
            return self._render_attr(n, path)
        if isinstance(n, Events):
            return self._render_events(n, path)
        if isinstance(n, InSegment):
            return self._render_ref(n, path)
        return self._render_raw(n, path)

    def _render_group(self, g: Group, path: TreePath) -> widgets.Widget:
        w = self.w
        kind = w.Dropdown(
            options=[("all of", "all"), ("any of", "any"), ("not", "not")],
            value=g.kind,
            layout=w.Layout(width="90px"),
        )
        kind.add_class("wb-group-kind")
        kind.observe(lambda c: self.guarded(lambda: self.b.set_kind(path, c["new"])), "value")
        head = [kind]
        if path:
            head.append(self._remove_button(path))
        adds = []
        for label, cls, fn in (
            ("+ attribute", "wb-add-attribute", self._add_attribute),
            ("+ event", "wb-add-event", self._add_event),
            ("+ segment", "wb-add-segment", self._add_reference),
            ("+ group", "wb-add-group", lambda p: self.b.add_group("all", group=p)),
        ):
            btn = w.Button(description=label, layout=w.Layout(width="auto"))
            btn.add_class(cls)
            btn.on_click(lambda _, f=fn: self.guarded(lambda: f(path)))
            adds.append(btn)
        children = [self._render(item, (*path, i)) for i, item in enumerate(g.items)]
        box = w.VBox(
            [w.HBox(head), *children, w.HBox(adds), self._errors_box(path)],
            layout=w.Layout(
                border="1px solid #ddd" if path else "",
                padding="4px",
                margin="2px 0 2px 16px" if path else "0",
            ),
        )
        box.add_class("wb-group")
        return box

    def _add_attribute(self, group: TreePath) -> None:
        attrs = self.b.fields.attributes
        first = "tier" if "tier" in attrs else next(iter(attrs))
        ops = self.b.operators_for(first)
        self.b.add_attribute(first, "in" if "in" in ops else ops[0], group=group)

    def _add_event(self, group: TreePath) -> None:
        types = self.b.fields.event_types or ()
        self.b.add_event(types=types[:1], within="30d", group=group)

    def _add_reference(self, group: TreePath) -> None:
        names = [n for n in self.b.segment_names() if n != self.b.name]
        self.b.add_reference(names[0] if names else "", group=group)

    # attribute and filter rows share the field / op / value editor
    def _field_editor(
        self,
        cond: Attr | Filter,
        *,
        event: bool,
        on_change: Callable[[dict[str, Any], bool], None],
    ) -> list[widgets.Widget]:
        """Widgets for field, (fn), op, value, (case); ``on_change(changes, rerender)``."""
        w = self.w
        b = self.b
        names = sorted(b.fields.events if event else b.fields.attributes)
        if cond.field not in names:
            names = [cond.field, *names]
        fld = w.Dropdown(options=names, value=cond.field, layout=w.Layout(width="170px"))
        fld.add_class("wb-field")
        fld.observe(lambda c: on_change({"field": c["new"]}, True), "value")
        out: list[widgets.Widget] = [fld]
        fn = getattr(cond, "fn", None)
        info = b.field_info(cond.field, event=event)
        if not event and info is not None and info.kind in ("date", "timestamp"):
            fnw = w.Dropdown(
                options=[("value", None), *[(f, f) for f in DATE_FNS]],
                value=fn,
                layout=w.Layout(width="130px"),
            )
            fnw.add_class("wb-fn")
            fnw.observe(lambda c: on_change({"fn": c["new"]}, True), "value")
            out.append(fnw)
        ops = list(b.operators_for(cond.field, fn=fn, event=event))
        if cond.op not in ops:
            ops = [cond.op, *ops]
        op = w.Dropdown(options=ops, value=cond.op, layout=w.Layout(width="110px"))
        op.add_class("wb-op")
        op.observe(lambda c: on_change({"op": c["new"]}, True), "value")
        out.append(op)
        kind = b.kind_of(cond.field, fn=fn, event=event)
        val = self._value_editor(cond, kind, event, lambda v: on_change({"value": v}, False))
        if val is not None:
            out.append(val)
        if kind == "string" and cond.op not in NO_VALUE_OPS:
            ci = w.Checkbox(
                value=cond.case_insensitive,
                description="ignore case",
                indent=False,
                layout=w.Layout(width="100px"),
            )
            ci.add_class("wb-case")
            ci.observe(lambda c: on_change({"case_insensitive": c["new"]}, False), "value")
            out.append(ci)
        return out

    def _value_editor(
        self, cond: Attr | Filter, kind: str | None, event: bool, set_value: Callable[[Any], None]
    ) -> widgets.Widget | None:
        w = self.w
        op, value = cond.op, cond.value
        if op in NO_VALUE_OPS:
            return None
        if op in LIST_OPS:
            choices = (
                list(self.b.value_choices(cond.field, event=event)) if kind != "boolean" else []
            )
            if choices:
                current = list(value) if isinstance(value, tuple) else []
                opts = list(dict.fromkeys([*choices, *current]))
                sel = w.SelectMultiple(
                    options=[(str(o), o) for o in opts],
                    value=tuple(v for v in current if v in opts),
                    rows=min(6, len(opts)),
                    layout=w.Layout(width="200px"),
                )
                sel.add_class("wb-value")
                sel.observe(lambda c: set_value(tuple(c["new"]) or None), "value")
                return sel
            text = ", ".join(str(v) for v in value) if isinstance(value, tuple) else ""
            t = w.Text(value=text, placeholder="a, b, c", layout=w.Layout(width="200px"))
            t.add_class("wb-value")
            t.observe(lambda c: set_value(_split(c["new"], kind)), "value")
            return t
        if op == "between":
            lo, hi = value if isinstance(value, tuple) and len(value) == 2 else (None, None)
            parts = [self._single(lo, kind), self._single(hi, kind)]
            box = w.HBox([p for p, _ in parts])
            box.add_class("wb-value")

            def both(_: Any) -> None:
                vals = (parts[0][1](), parts[1][1]())
                set_value(None if vals == (None, None) else vals)

            for p, _ in parts:
                p.observe(both, "value")
            return box
        widget, get = self._single(value, kind)
        widget.add_class("wb-value")
        widget.observe(lambda _: set_value(get()), "value")
        return widget

    def _single(self, value: Any, kind: str | None) -> tuple[widgets.Widget, Callable[[], Any]]:
        """One value input fitting ``kind`` and a getter of its value (None when empty)."""
        w = self.w
        if kind == "number":
            num = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            f = w.FloatText(value=num if num is not None else 0.0, layout=w.Layout(width="110px"))
            return f, lambda: _number(f.value)
        if kind == "boolean":
            d = w.Dropdown(
                options=[("true", True), ("false", False)],
                value=value if isinstance(value, bool) else None,
                layout=w.Layout(width="80px"),
            )
            return d, lambda: d.value
        if kind in ("date", "timestamp") and (value is None or isinstance(value, dt.date)):
            day = value.date() if isinstance(value, dt.datetime) else value
            p = w.DatePicker(value=day, layout=w.Layout(width="150px"))
            return p, lambda: p.value
        text = "" if value is None else str(value)
        placeholder = "2026-01-31 or 30d ago" if kind in ("date", "timestamp") else "value"
        t = w.Text(value=text, placeholder=placeholder, layout=w.Layout(width="160px"))
        return t, lambda: t.value if t.value.strip() else None

    def _render_attr(self, a: Attr, path: TreePath) -> widgets.Widget:
        w = self.w

        def on_change(changes: dict[str, Any], rerender: bool) -> None:
            self.guarded(lambda: self.b.update(path, **changes))
            if rerender:
                self.render_rows()

        row = w.HBox(
            [*self._field_editor(a, event=False, on_change=on_change), self._remove_button(path)]
        )
        box = w.VBox([row, self._errors_box(path)])
        box.add_class("wb-attribute")
        return box

    def _render_events(self, e: Events, path: TreePath) -> widgets.Widget:
        w = self.w
        b = self.b
        known = list(b.fields.event_types or ())
        opts = list(dict.fromkeys([*known, *e.types]))
        if opts:
            types = w.SelectMultiple(
                options=opts,
                value=tuple(e.types),
                rows=min(4, len(opts)),
                description="events",
                layout=w.Layout(width="240px"),
            )
            types.observe(
                lambda c: self.guarded(lambda: b.update(path, types=tuple(c["new"]))), "value"
            )
        else:
            types = w.Text(value=", ".join(e.types), description="events", placeholder="purchase")
            types.observe(
                lambda c: self.guarded(lambda: b.update(path, types=_split(c["new"], None) or ())),
                "value",
            )
        types.add_class("wb-event-types")
        win = e.window
        mode = (
            "all"
            if win.is_all_time
            else "within"
            if win.within
            else "between"
            if win.between
            else "since"
        )
        mode_w = w.Dropdown(
            options=[
                ("all time", "all"),
                ("within", "within"),
                ("between … ago", "between"),
                ("since", "since"),
            ],
            value=mode,
            layout=w.Layout(width="120px"),
        )
        mode_w.add_class("wb-window")
        w1 = w.Text(layout=w.Layout(width="70px"), placeholder="30d")
        w2 = w.Text(layout=w.Layout(width="70px"), placeholder="7d")
        since = w.DatePicker(layout=w.Layout(width="150px"))
        if win.within:
            w1.value = win.within
        if win.between:
            w1.value, w2.value = win.between
        if win.since is not None:
            since.value = win.since.date() if isinstance(win.since, dt.datetime) else win.since
        visible = {"all": [], "within": [w1], "between": [w1, w2], "since": [since]}

        def window_value() -> Any:
            m = mode_w.value
            if m == "within":
                return w1.value.strip() or "30d"
            if m == "between":
                return (w1.value.strip() or "90d", w2.value.strip() or "30d")
            if m == "since":
                return since.value or (b.as_of - dt.timedelta(days=30)).date()
            return None

        win_box = w.HBox([mode_w, *visible[mode]])

        def on_window(change: dict[str, Any]) -> None:
            win_box.children = [mode_w, *visible[mode_w.value]]
            self.guarded(lambda: b.update(path, within=window_value()))

        mode_w.observe(on_window, "value")
        for x in (w1, w2, since):
            x.observe(on_window, "value")
        agg = e.aggregate
        fn_w = w.Dropdown(options=list(AGG_FNS), value=agg.fn, layout=w.Layout(width="80px"))
        fn_w.add_class("wb-agg-fn")
        numeric = sorted(n for n, f in b.fields.events.items() if f.kind == "number")
        afield = w.Dropdown(
            options=list(dict.fromkeys([*([agg.field] if agg.field else []), *numeric])) or [""],
            value=agg.field if agg.field else (numeric[0] if numeric else ""),
            layout=w.Layout(width="110px"),
        )
        afield.add_class("wb-agg-field")
        aops = _COUNT_AGG_OPS if agg.fn == "count" else _AGG_OPS
        aop = w.Dropdown(
            options=list(dict.fromkeys([agg.op, *aops])),
            value=agg.op,
            layout=w.Layout(width="80px"),
        )
        aop.add_class("wb-agg-op")
        if agg.fn == "count":
            av = w.IntText(
                value=int(agg.value) if isinstance(agg.value, int) else 1,
                layout=w.Layout(width="90px"),
            )
        else:
            single = agg.value if isinstance(agg.value, int | float) else 0
            av = w.FloatText(value=single, layout=w.Layout(width="110px"))
        av.add_class("wb-agg-value")

        def on_agg(change: dict[str, Any]) -> None:
            fn = fn_w.value
            if change["owner"] is fn_w:  # a new function: start from its defaults
                if fn == "count":
                    new: Any = ("count", "gte", 1)
                else:
                    new = (fn, afield.value or (numeric[0] if numeric else ""), "gte", 0)
                self.guarded(lambda: b.update(path, aggregate=new))
                self.render_rows()
                return
            value = _number(av.value)
            new = (
                ("count", aop.value, value)
                if fn == "count"
                else (fn, afield.value, aop.value, value)
            )
            self.guarded(lambda: b.update(path, aggregate=new))

        for x in (fn_w, afield, aop, av):
            x.observe(on_agg, "value")
        agg_widgets = [fn_w, *([] if agg.fn == "count" else [afield]), aop, av]
        head = w.HBox([types, win_box, *agg_widgets, self._remove_button(path)])
        filters = [self._render_filter(e, path, i) for i in range(len(e.where))]
        add_f = w.Button(description="+ filter", layout=w.Layout(width="auto"))
        add_f.add_class("wb-add-filter")

        def add_filter(_: Any) -> None:
            names = sorted(b.fields.events)
            first = "channel" if "channel" in names else names[0]
            ops = b.operators_for(first, event=True)
            self.guarded(lambda: b.update(path, where=(*e.where, Filter(first, ops[0], None))))
            self.render_rows()

        add_f.on_click(add_filter)
        box = w.VBox(
            [head, *filters, add_f, self._errors_box(path)],
            layout=w.Layout(border="1px dashed #ccc", padding="2px", margin="2px 0"),
        )
        box.add_class("wb-events")
        return box

    def _render_filter(self, e: Events, path: TreePath, i: int) -> widgets.Widget:
        w = self.w
        b = self.b

        def on_change(changes: dict[str, Any], rerender: bool) -> None:
            def do() -> None:
                cur = b.node(path)
                assert isinstance(cur, Events)
                f = cur.where[i]
                if isinstance(changes.get("value"), list):
                    changes["value"] = tuple(changes["value"])
                nf = dataclasses.replace(f, **changes)
                if "field" in changes:
                    ops = b.operators_for(nf.field, event=True)
                    if nf.op not in ops:
                        nf = dataclasses.replace(nf, op=ops[0])
                    if b.kind_of(nf.field, event=True) != b.kind_of(f.field, event=True):
                        nf = dataclasses.replace(nf, value=None, case_insensitive=False)
                elif "op" in changes and (
                    nf.op in NO_VALUE_OPS or (nf.op in LIST_OPS) != (f.op in LIST_OPS)
                ):
                    nf = dataclasses.replace(nf, value=None)
                where = list(cur.where)
                where[i] = nf
                b.update(path, where=where)

            self.guarded(do)
            if rerender:
                self.render_rows()

        def drop(_: Any) -> None:
            cur = b.node(path)
            assert isinstance(cur, Events)
            self.guarded(
                lambda: b.update(path, where=[f for j, f in enumerate(cur.where) if j != i])
            )
            self.render_rows()

        rm = w.Button(icon="times", tooltip="remove filter", layout=w.Layout(width="36px"))
        rm.on_click(drop)
        row = w.HBox(
            [
                w.HTML("<span style='color:#666'>where</span>"),
                *self._field_editor(e.where[i], event=True, on_change=on_change),
                rm,
            ],
            layout=w.Layout(margin="0 0 0 24px"),
        )
        row.add_class("wb-filter")
        return row

    def _render_ref(self, r: InSegment, path: TreePath) -> widgets.Widget:
        w = self.w
        b = self.b
        neg = w.Dropdown(
            options=[("in segment", False), ("not in segment", True)],
            value=r.negate,
            layout=w.Layout(width="140px"),
        )
        names = [n for n in b.segment_names() if n != b.name]
        opts = list(dict.fromkeys([r.segment, *names])) if r.segment else names or [""]
        seg = w.Dropdown(
            options=opts,
            value=r.segment if r.segment in opts else opts[0],
            layout=w.Layout(width="220px"),
        )
        neg.observe(lambda c: self.guarded(lambda: b.update(path, negate=c["new"])), "value")
        seg.observe(lambda c: self.guarded(lambda: b.update(path, segment=c["new"])), "value")
        box = w.VBox([w.HBox([neg, seg, self._remove_button(path)]), self._errors_box(path)])
        box.add_class("wb-reference")
        return box

    def _render_raw(self, c: Node, path: TreePath) -> widgets.Widget:
        w = self.w
        text = yaml.safe_dump(condition_to_dict(c), sort_keys=False)  # type: ignore[arg-type]
        pre = w.HTML(f"<pre style='font-size:12px;margin:0'>{html.escape(text)}</pre>")
        box = w.VBox([w.HBox([pre, self._remove_button(path)]), self._errors_box(path)])
        box.add_class("wb-raw")
        return box


def _split(text: str, kind: str | None) -> tuple[Any, ...] | None:
    """``"a, b"`` → ("a", "b"); numbers for a number field (None when empty)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return None
    if kind == "number":
        out: list[Any] = []
        for p in parts:
            try:
                out.append(_number(float(p)))
            except ValueError:
                out.append(p)  # kept as text: reported as "not a number"
        return tuple(out)
    return tuple(parts)


__all__ = ["GROUP_KINDS", "Group", "SegmentBuilder", "Size"]
