"""What a segment may refer to: profile attributes, event fields and event types, with types.

Built from the workspace's schemas (not from built tables), so a definition can be validated
before any data exists. :meth:`FieldCatalog.check` returns every problem with its path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import Problem
from workbench.schema.model import FieldType, SchemaClass
from workbench.segments.model import (
    NO_VALUE_OPS,
    STRING_OPS,
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
    relative_time,
)

if TYPE_CHECKING:
    from workbench.workspace import Workspace

#: The kinds a field's type falls into, for operator checks.
KIND_OF = {
    FieldType.STRING: "string",
    FieldType.EMAIL: "string",
    FieldType.PHONE: "string",
    FieldType.ENUM: "string",
    FieldType.INTEGER: "number",
    FieldType.DECIMAL: "number",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.ARRAY_STRING: "array",
}
#: Operators allowed per kind.
OPS_FOR_KIND = {
    "string": (
        "eq",
        "ne",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "ends_with",
        "exists",
        "not_exists",
    ),
    "number": (
        "eq",
        "ne",
        "in",
        "not_in",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "exists",
        "not_exists",
    ),
    "boolean": ("eq", "ne", "exists", "not_exists"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "not_exists"),
    "timestamp": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "not_exists"),
    "array": ("contains", "exists", "not_exists"),
}


@dataclass(frozen=True)
class FieldInfo:
    """One attribute or event field a segment can use."""

    name: str
    type: FieldType
    values: tuple[str, ...] | None = None
    datasets: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> str:
        """string, number, boolean, date, timestamp or array."""
        return KIND_OF[self.type]


#: Attributes every profile has, whatever the datasets.
BUILTIN_ATTRIBUTES = (
    FieldInfo("profile_id", FieldType.INTEGER, description="the unified profile's id"),
    FieldInfo(
        "identity_count", FieldType.INTEGER, description="identities in the profile's cluster"
    ),
    FieldInfo("first_seen", FieldType.TIMESTAMP, description="earliest evidence of any identity"),
    FieldInfo("last_seen", FieldType.TIMESTAMP, description="latest evidence of any identity"),
    FieldInfo("records", FieldType.INTEGER, description="profile records merged"),
)


@dataclass
class FieldCatalog:
    """Attributes, event fields and event types known to a workspace."""

    attributes: dict[str, FieldInfo] = field(default_factory=dict)
    events: dict[str, FieldInfo] = field(default_factory=dict)
    #: Known event types; None when some event dataset has a free-text event_type.
    event_types: tuple[str, ...] | None = ()

    @classmethod
    def from_workspace(cls, ws: Workspace) -> FieldCatalog:
        """The fields of the profile-enabled datasets' schemas."""
        cat = cls()
        for a in BUILTIN_ATTRIBUTES:
            cat.attributes[a.name] = a
        ev: dict[str, FieldInfo] = {
            "dataset": FieldInfo("dataset", FieldType.STRING, description="the event's dataset"),
            "channel": FieldInfo(
                "channel",
                FieldType.ENUM,
                ("online", "offline"),
                description="online or offline (from the schema)",
            ),
        }
        types: list[str] = []
        free_types = False
        datasets = [d for d in ws.catalog.list_datasets() if d.profile_enabled]
        for d in datasets:
            sch = ws.catalog.get_schema(d.schema_name)
            target = cat.attributes if sch.cls is SchemaClass.PROFILE else ev
            for f in sch.fields:
                if sch.cls is SchemaClass.PROFILE and f.name == "updated_at":
                    continue
                if sch.cls is SchemaClass.EVENT and f.identity is not None:
                    continue  # identities live in the graph, not in the event history
                if sch.cls is SchemaClass.EVENT and f.name == "event_type":
                    if f.values:
                        types.extend(v for v in f.values if v not in types)
                    else:
                        free_types = True
                have = target.get(f.name)
                values = tuple(f.values) if f.values else None
                if have is None:
                    target[f.name] = FieldInfo(f.name, f.type, values, (d.name,), f.description)
                else:
                    typ = have.type if KIND_OF[have.type] == KIND_OF[f.type] else FieldType.STRING
                    merged = None
                    if have.values is not None and values is not None:
                        merged = tuple(dict.fromkeys((*have.values, *values)))
                    target[f.name] = FieldInfo(
                        f.name, typ, merged, (*have.datasets, d.name), have.description
                    )
        cat.events = ev
        cat.event_types = None if free_types else tuple(types)
        return cat

    # ------------------------------------------------------------------ checks
    def check(
        self, defn: SegmentDefinition, known_segments: set[str] | None = None
    ) -> list[Problem]:
        """Every problem with fields, operators, values and references, with its path."""
        out: list[Problem] = []
        self._cond(defn.rule, "rule", out, known_segments)
        return out

    def _cond(self, c: Condition, path: str, out: list[Problem], known: set[str] | None) -> None:
        if isinstance(c, All | AnyOf):
            key = "all" if isinstance(c, All) else "any"
            for i, item in enumerate(c.items):
                self._cond(item, f"{path}.{key}[{i}]", out, known)
        elif isinstance(c, Not):
            self._cond(c.item, f"{path}.not", out, known)
        elif isinstance(c, Attr):
            self._attr(c, path, out)
        elif isinstance(c, Events):
            self._events(c, f"{path}.events", out)
        elif isinstance(c, Sequence):
            self._step(c.first, f"{path}.sequence.first", out)
            self._step(c.then, f"{path}.sequence.then", out)
        elif isinstance(c, InSegment):
            key = "not_in_segment" if c.negate else "in_segment"
            if known is not None and c.segment not in known:
                out.append(Problem(f"{path}.{key}", f"no segment named {c.segment!r}"))

    def _attr(self, a: Attr, path: str, out: list[Problem]) -> None:
        info = self.attributes.get(a.field)
        if info is None:
            out.append(
                Problem(
                    f"{path}.attribute",
                    f"unknown attribute {a.field!r}{_hint(a.field, self.attributes)}",
                )
            )
            return
        kind = info.kind
        if a.fn is not None:
            if kind not in ("date", "timestamp"):
                out.append(
                    Problem(
                        f"{path}.fn",
                        f"{a.fn} needs a date or timestamp attribute; {a.field} is {info.type.value}",
                    )
                )
                return
            kind = "number"
            info = FieldInfo(info.name, FieldType.INTEGER)
        _check_op(info, kind, a.op, a.value, a.case_insensitive, path, out, "attribute")

    def _filters(self, where: tuple[Filter, ...], path: str, out: list[Problem]) -> None:
        for i, f in enumerate(where):
            p = f"{path}.where[{i}]"
            info = self.events.get(f.field)
            if info is None:
                if f.field in ("timestamp",):
                    out.append(
                        Problem(f"{p}.field", "use within / between / since for time windows")
                    )
                else:
                    out.append(
                        Problem(
                            f"{p}.field",
                            f"unknown event field {f.field!r}{_hint(f.field, self.events)}",
                        )
                    )
                continue
            _check_op(info, info.kind, f.op, f.value, f.case_insensitive, p, out, "field")

    def _types(self, types: tuple[str, ...], path: str, out: list[Problem]) -> None:
        if self.event_types is None:
            return
        for t in types:
            if t not in self.event_types:
                out.append(
                    Problem(
                        f"{path}.type",
                        f"unknown event type {t!r} (known: {', '.join(self.event_types)})",
                    )
                )

    def _step(self, s: Step, path: str, out: list[Problem]) -> None:
        self._types(s.types, path, out)
        self._filters(s.where, path, out)

    def _events(self, e: Events, path: str, out: list[Problem]) -> None:
        self._step(Step(e.types, e.where), path, out)
        a: Aggregate = e.aggregate
        if a.fn != "count":
            info = self.events.get(a.field or "")
            if info is None:
                out.append(
                    Problem(
                        f"{path}.{a.fn}.field",
                        f"unknown event field {a.field!r}{_hint(a.field or '', self.events)}",
                    )
                )
            elif info.kind != "number":
                out.append(
                    Problem(
                        f"{path}.{a.fn}.field",
                        f"{a.fn} needs a numeric field; {a.field} is {info.type.value}",
                    )
                )


def _hint(name: str, known: dict[str, FieldInfo]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_date_value(v: Any) -> bool:
    if isinstance(v, dt.date):
        return True
    if relative_time(v) is not None:
        return True
    if isinstance(v, str):
        try:
            dt.datetime.fromisoformat(v)
            return True
        except ValueError:
            return False
    return False


def _check_op(
    info: FieldInfo,
    kind: str,
    op: str,
    value: Any,
    ci: bool,
    path: str,
    out: list[Problem],
    what: str,
) -> None:
    allowed = OPS_FOR_KIND[kind]
    if op not in allowed:
        out.append(
            Problem(
                f"{path}.op",
                f"{op} does not fit {info.name} ({info.type.value}); use one of {', '.join(allowed)}",
            )
        )
        return
    if ci and kind != "string":
        out.append(
            Problem(
                f"{path}.case_insensitive",
                f"only for text fields; {info.name} is {info.type.value}",
            )
        )
    if op in NO_VALUE_OPS or value is None:
        return
    values = list(value) if isinstance(value, tuple) else [value]
    for v in values:
        if kind == "number" and not _is_number(v):
            out.append(Problem(f"{path}.value", f"{info.name} is a number; {v!r} is not"))
        elif kind == "boolean" and not isinstance(v, bool):
            out.append(Problem(f"{path}.value", f"{info.name} is true/false; {v!r} is not"))
        elif kind in ("date", "timestamp") and not _is_date_value(v):
            out.append(
                Problem(
                    f"{path}.value",
                    f"{v!r} is not a date (ISO like 2026-01-31, or relative like '30d ago' / 'in 7d')",
                )
            )
        elif kind in ("string", "array") and not isinstance(v, str):
            out.append(Problem(f"{path}.value", f"{info.name} is text; {v!r} is not"))
        elif (
            kind == "string"
            and info.values is not None
            and op not in STRING_OPS
            and not ci
            and v not in info.values
        ):
            out.append(
                Problem(
                    f"{path}.value",
                    f"{v!r} is not a value of {info.name} ({', '.join(info.values)})",
                )
            )
    if (
        op == "between"
        and len(values) == 2
        and kind == "number"
        and all(map(_is_number, values))
        and values[0] > values[1]
    ):
        out.append(
            Problem(f"{path}.value", f"between needs [low, high]; {values[0]} > {values[1]}")
        )


__all__ = ["BUILTIN_ATTRIBUTES", "OPS_FOR_KIND", "FieldCatalog", "FieldInfo"]
