"""Schemas: named sets of typed fields of class ``profile`` or ``event``.

A schema is a small immutable value that round-trips through YAML/JSON exactly
(:meth:`Schema.to_dict` / :meth:`Schema.from_dict`). Validation collects every
problem with its path (``fields[2].type``) and reports them together.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputError, Problem, SchemaConflictError, ValidationError
from workbench.schema.namespaces import DEFAULT_NAMESPACES, Namespace, Normalizer

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Data-usage labels (contract, identity, sensitive). Custom labels must look like ``X9``.
KNOWN_LABELS: frozenset[str] = frozenset([f"C{i}" for i in range(1, 13)] + ["I1", "I2", "S1", "S2"])
_CUSTOM_LABEL_RE = re.compile(r"^[A-Z]{1,4}[0-9]{1,3}$")

#: Column names the workbench adds to every dataset row (lineage).
SYSTEM_COLUMNS: tuple[str, ...] = ("_batch_id", "_row", "_ingested_at")


class SchemaClass(StrEnum):
    """Record attributes (one row per entity) or a time series of events."""

    PROFILE = "profile"
    EVENT = "event"


#: The channels an event dataset can be of.
CHANNELS = ("online", "offline")


class FieldType(StrEnum):
    """The field types a schema may use."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    ENUM = "enum"
    EMAIL = "email"
    PHONE = "phone"
    ARRAY_STRING = "array<string>"

    @classmethod
    def parse(cls, value: str) -> FieldType:
        """Parse a type name; ``array[string]`` and ``string[]`` are accepted spellings."""
        v = str(value).strip().lower().replace(" ", "")
        aliases = {"array[string]": "array<string>", "string[]": "array<string>", "int": "integer"}
        return cls(aliases.get(v, v))


_NUMERIC = {FieldType.INTEGER, FieldType.DECIMAL}


@dataclass(frozen=True)
class IdentityMark:
    """Marks a field as an identity of a namespace; ``primary`` for the record's own id."""

    namespace: str
    primary: bool = False


@dataclass(frozen=True)
class Field:
    """One typed field of a schema."""

    name: str
    type: FieldType
    required: bool = False
    description: str = ""
    identity: IdentityMark | None = None
    labels: tuple[str, ...] = ()
    values: tuple[str, ...] | None = None  # enum values
    minimum: float | None = None
    maximum: float | None = None
    scale: int = 2  # decimal places for decimals
    pattern: str | None = None  # regular expression a string must fully match
    separator: str = "|"  # arrays written as text: "a|b|c" (a JSON array is accepted too)
    default: str | None = None  # value used when the source has no such column

    def to_dict(self) -> dict[str, Any]:
        """Plain dict holding only what differs from the defaults (stable YAML)."""
        d: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.required:
            d["required"] = True
        if self.description:
            d["description"] = self.description
        if self.identity is not None:
            ident: dict[str, Any] = {"namespace": self.identity.namespace}
            if self.identity.primary:
                ident["primary"] = True
            d["identity"] = ident
        if self.labels:
            d["labels"] = list(self.labels)
        if self.values is not None:
            d["values"] = list(self.values)
        if self.minimum is not None:
            d["minimum"] = self.minimum
        if self.maximum is not None:
            d["maximum"] = self.maximum
        if self.type is FieldType.DECIMAL and self.scale != 2:
            d["scale"] = self.scale
        if self.pattern is not None:
            d["pattern"] = self.pattern
        if self.type is FieldType.ARRAY_STRING and self.separator != "|":
            d["separator"] = self.separator
        if self.default is not None:
            d["default"] = self.default
        return d


_FIELD_KEYS = {
    "name",
    "type",
    "required",
    "description",
    "identity",
    "labels",
    "values",
    "minimum",
    "maximum",
    "scale",
    "pattern",
    "separator",
    "default",
}


def _parse_field(data: Any, path: str, problems: list[Problem]) -> Field | None:
    if not isinstance(data, Mapping):
        problems.append(Problem(path, "a field must be a mapping"))
        return None
    for k in sorted(set(data) - _FIELD_KEYS):
        problems.append(Problem(f"{path}.{k}", "unknown key"))
    name = str(data.get("name", ""))
    if not _NAME_RE.match(name):
        problems.append(
            Problem(f"{path}.name", f"{name!r} is not a valid field name (a-z, 0-9, _)")
        )
    try:
        ftype = FieldType.parse(data.get("type", ""))
    except ValueError:
        allowed = ", ".join(t.value for t in FieldType)
        problems.append(Problem(f"{path}.type", f"unknown type {data.get('type')!r} ({allowed})"))
        return None
    identity = None
    raw_ident = data.get("identity")
    if raw_ident is not None:
        if isinstance(raw_ident, str):
            identity = IdentityMark(raw_ident)
        elif isinstance(raw_ident, Mapping) and "namespace" in raw_ident:
            identity = IdentityMark(str(raw_ident["namespace"]), bool(raw_ident.get("primary")))
        else:
            problems.append(Problem(f"{path}.identity", "needs a namespace"))
    labels_raw = data.get("labels") or []
    if isinstance(labels_raw, str):
        labels_raw = [labels_raw]
    labels = tuple(str(x) for x in labels_raw)
    values = None
    if data.get("values") is not None:
        if not isinstance(data["values"], list) or not data["values"]:
            problems.append(Problem(f"{path}.values", "must be a non-empty list"))
        else:
            values = tuple(str(x) for x in data["values"])

    def _num(key: str) -> float | None:
        v = data.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            problems.append(Problem(f"{path}.{key}", "must be a number"))
            return None
        return v

    scale = data.get("scale", 2)
    if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 18:
        problems.append(Problem(f"{path}.scale", "must be an integer between 0 and 18"))
        scale = 2
    return Field(
        name=name,
        type=ftype,
        required=bool(data.get("required", False)),
        description=str(data.get("description", "")),
        identity=identity,
        labels=labels,
        values=values,
        minimum=_num("minimum"),
        maximum=_num("maximum"),
        scale=scale,
        pattern=data.get("pattern"),
        separator=str(data.get("separator", "|")),
        default=None if data.get("default") is None else str(data["default"]),
    )


@dataclass(frozen=True)
class Schema:
    """A named set of typed fields of class ``profile`` or ``event``."""

    name: str
    cls: SchemaClass
    fields: tuple[Field, ...]
    description: str = ""
    version: int = field(default=1, compare=False)
    #: For event schemas: ``online`` or ``offline`` (the ``channel`` segments can filter on).
    channel: str | None = None

    # ---------------------------------------------------------------- access
    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        """Names of all fields in order."""
        return [f.name for f in self.fields]

    @property
    def identity_fields(self) -> list[Field]:
        """Fields marked as identities."""
        return [f for f in self.fields if f.identity is not None]

    @property
    def primary_identity(self) -> Field | None:
        """The field marked as the primary identity, if any."""
        for f in self.fields:
            if f.identity is not None and f.identity.primary:
                return f
        return None

    # ---------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """Plain dict; ``Schema.from_dict(s.to_dict()) == s``."""
        d: dict[str, Any] = {"name": self.name, "class": self.cls.value}
        if self.description:
            d["description"] = self.description
        if self.channel:
            d["channel"] = self.channel
        d["fields"] = [f.to_dict() for f in self.fields]
        return d

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(
        cls, data: Any, namespaces: Iterable[Namespace] | None = None, *, source: str = ""
    ) -> Schema:
        """Parse and validate a schema; raises :class:`ValidationError` with every problem."""
        what = f"schema {source}".strip() if source else "schema"
        if not isinstance(data, Mapping):
            raise ValidationError(what, [Problem("", "a schema must be a mapping")])
        problems: list[Problem] = []
        for k in sorted(set(data) - {"name", "class", "description", "channel", "fields"}):
            problems.append(Problem(k, "unknown key"))
        name = str(data.get("name", ""))
        if not _NAME_RE.match(name):
            problems.append(Problem("name", f"{name!r} is not a valid schema name (a-z, 0-9, _)"))
        what = f"schema {name!r}" + (f" ({source})" if source else "")
        try:
            scls = SchemaClass(data.get("class", ""))
        except ValueError:
            problems.append(
                Problem("class", f"must be 'profile' or 'event', not {data.get('class')!r}")
            )
            scls = SchemaClass.PROFILE
        raw_fields = data.get("fields")
        parsed: list[Field] = []
        if not isinstance(raw_fields, list) or not raw_fields:
            problems.append(Problem("fields", "a schema needs a non-empty list of fields"))
        else:
            for i, rf in enumerate(raw_fields):
                f = _parse_field(rf, f"fields[{i}]", problems)
                if f is not None:
                    parsed.append(f)
        channel = data.get("channel")
        if channel is not None and (scls is not SchemaClass.EVENT or channel not in CHANNELS):
            problems.append(
                Problem("channel", f"channel is for event schemas: one of {', '.join(CHANNELS)}")
            )
            channel = None
        schema = cls(
            name=name,
            cls=scls,
            fields=tuple(parsed),
            description=str(data.get("description", "")),
            channel=channel,
        )
        if raw_fields and len(parsed) == len(raw_fields):
            problems.extend(schema.problems(namespaces))
        if problems:
            raise ValidationError(what, problems)
        return schema

    @classmethod
    def from_yaml(cls, path: str | Path, namespaces: Iterable[Namespace] | None = None) -> Schema:
        """Load one schema from a YAML file."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(str(p), f"cannot read schema file: {e.strerror or e}") from e
        except yaml.YAMLError as e:
            raise InputError(str(p), f"not valid YAML: {e}") from e
        return cls.from_dict(data, namespaces, source=str(p))

    # ---------------------------------------------------------------- validation
    def problems(self, namespaces: Iterable[Namespace] | None = None) -> list[Problem]:
        """Every rule this schema breaks, with paths (empty when valid)."""
        ns = {n.name: n for n in (namespaces if namespaces is not None else DEFAULT_NAMESPACES)}
        out: list[Problem] = []
        seen: dict[str, int] = {}
        primaries = []
        for i, f in enumerate(self.fields):
            p = f"fields[{i}]"
            if f.name in seen:
                out.append(
                    Problem(
                        f"{p}.name", f"duplicate field {f.name!r} (also fields[{seen[f.name]}])"
                    )
                )
            seen.setdefault(f.name, i)
            if f.type is FieldType.ENUM and not f.values:
                out.append(Problem(f"{p}.values", "an enum needs its list of values"))
            if f.values is not None and f.type is not FieldType.ENUM:
                out.append(Problem(f"{p}.values", "only enum fields take values"))
            if (f.minimum is not None or f.maximum is not None) and f.type not in _NUMERIC:
                out.append(Problem(p, "minimum/maximum apply to integer and decimal fields only"))
            if f.minimum is not None and f.maximum is not None and f.minimum > f.maximum:
                out.append(Problem(p, "minimum is greater than maximum"))
            if f.pattern is not None:
                if f.type is not FieldType.STRING:
                    out.append(Problem(f"{p}.pattern", "only string fields take a pattern"))
                else:
                    try:
                        re.compile(f.pattern)
                    except re.error as e:
                        out.append(Problem(f"{p}.pattern", f"not a valid regular expression: {e}"))
            if (
                f.default is not None
                and f.type is FieldType.ENUM
                and f.default not in (f.values or ())
            ):
                out.append(Problem(f"{p}.default", f"{f.default!r} is not one of the enum values"))
            for j, lab in enumerate(f.labels):
                if lab not in KNOWN_LABELS and not _CUSTOM_LABEL_RE.match(lab):
                    out.append(Problem(f"{p}.labels[{j}]", f"{lab!r} is not a data-usage label"))
            if f.identity is not None:
                n = ns.get(f.identity.namespace)
                if n is None:
                    out.append(
                        Problem(
                            f"{p}.identity.namespace",
                            f"unknown namespace {f.identity.namespace!r} "
                            f"(known: {', '.join(sorted(ns))})",
                        )
                    )
                elif f.type not in (FieldType.STRING, FieldType.EMAIL, FieldType.PHONE):
                    out.append(
                        Problem(f"{p}.type", "an identity field must be string, email or phone")
                    )
                elif n.normalizer is Normalizer.EMAIL and f.type is FieldType.PHONE:
                    out.append(
                        Problem(f"{p}.type", "a phone field cannot hold the email namespace")
                    )
                elif n.normalizer is Normalizer.PHONE and f.type is FieldType.EMAIL:
                    out.append(
                        Problem(f"{p}.type", "an email field cannot hold the phone namespace")
                    )
                if f.identity.primary:
                    primaries.append(i)
        if len(primaries) > 1:
            out.append(
                Problem(f"fields[{primaries[1]}].identity.primary", "only one primary identity")
            )
        names = {f.name: f for f in self.fields}
        if self.cls is SchemaClass.EVENT:
            ts = names.get("timestamp")
            if ts is None or ts.type is not FieldType.TIMESTAMP or not ts.required:
                out.append(
                    Problem(
                        "fields",
                        "an event schema needs a required 'timestamp' field of type timestamp",
                    )
                )
            et = names.get("event_type")
            if et is None or et.type not in (FieldType.STRING, FieldType.ENUM) or not et.required:
                out.append(
                    Problem(
                        "fields",
                        "an event schema needs a required 'event_type' field (string or enum)",
                    )
                )
        else:
            ua = names.get("updated_at")
            if ua is None or ua.type is not FieldType.TIMESTAMP:
                out.append(
                    Problem(
                        "fields", "a profile schema needs an 'updated_at' field of type timestamp"
                    )
                )
            if not primaries:
                out.append(
                    Problem(
                        "fields",
                        "a profile schema needs a primary identity (identity.primary: true)",
                    )
                )
            elif not self.fields[primaries[0]].required:
                out.append(
                    Problem(
                        f"fields[{primaries[0]}].required", "the primary identity must be required"
                    )
                )
        return out

    def evolve_to(self, new: Schema) -> Schema:
        """Check that ``new`` is an allowed evolution of this schema and return it versioned.

        Allowed: new optional fields, new enum values, changed descriptions and labels.
        Refused (:class:`SchemaConflictError` naming the field): removing or retyping a
        field, making a field required, changing its identity marking, removing enum values,
        changing the class.
        """
        if new.cls is not self.cls:
            raise SchemaConflictError(
                self.name, "class", f"class cannot change from {self.cls} to {new.cls}"
            )
        newf = {f.name: f for f in new.fields}
        for old in self.fields:
            nf = newf.get(old.name)
            if nf is None:
                raise SchemaConflictError(self.name, old.name, "removing a field is not allowed")
            if nf.type is not old.type:
                raise SchemaConflictError(
                    self.name,
                    old.name,
                    f"retyping {old.type.value} -> {nf.type.value} is not allowed",
                )
            if nf.required and not old.required:
                raise SchemaConflictError(
                    self.name, old.name, "an existing field cannot become required"
                )
            if nf.identity != old.identity:
                raise SchemaConflictError(self.name, old.name, "the identity marking cannot change")
            if old.type is FieldType.DECIMAL and nf.scale != old.scale:
                raise SchemaConflictError(self.name, old.name, "the decimal scale cannot change")
            if old.values is not None and nf.values is not None:
                gone = [v for v in old.values if v not in nf.values]
                if gone:
                    raise SchemaConflictError(
                        self.name, old.name, f"enum values cannot be removed: {gone}"
                    )
        oldnames = set(self.field_names)
        for f in new.fields:
            if f.name not in oldnames and f.required:
                raise SchemaConflictError(
                    self.name, f.name, "a field added to an existing schema must be optional"
                )
        changed = new.to_dict() != self.to_dict()
        return replace(new, version=self.version + 1 if changed else self.version)


def load_schemas(
    paths: Iterable[str | Path], namespaces: Iterable[Namespace] | None = None
) -> list[Schema]:
    """Load schemas from YAML files or folders of ``*.yaml`` files (sorted by file name)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            files.append(p)
    nss = list(namespaces) if namespaces is not None else None
    return [Schema.from_yaml(f, nss) for f in files]


__all__ = [
    "KNOWN_LABELS",
    "SYSTEM_COLUMNS",
    "Field",
    "FieldType",
    "IdentityMark",
    "Schema",
    "SchemaClass",
    "load_schemas",
]
