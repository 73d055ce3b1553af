"""The validation compiler: a schema plus a source's columns become one SQL query.

The query types and normalizes every field and gives, per field, the reason a value is
refused (or NULL). It runs in one vectorized pass over all rows in DuckDB; no Python loop
touches every row. Values from the schema (enum values, patterns, bounds) reach SQL only
as literals built by :func:`workbench.lake.sql.lit`.

Phones are the one place Python helps: values the SQL fast path cannot normalize (a few
percent) reach ``phonenumbers`` through the vectorized ``wb_phone_e164`` UDF, cached.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import pyarrow as pa

from workbench.lake.sql import ident, lit
from workbench.schema.model import Field, FieldType, Schema
from workbench.schema.namespaces import Namespace, Normalizer
from workbench.schema.normalize import sql_email, sql_normalizer, sql_phone

log = logging.getLogger(__name__)

SRC = "__src"
ROW = "__row"
JSON_OK = "__json_ok"
JSON_OBJ = "__obj"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")

REASONS = {
    FieldType.INTEGER: "not an integer",
    FieldType.DECIMAL: "not a decimal number",
    FieldType.BOOLEAN: "not a boolean (true/false)",
    FieldType.DATE: "not a valid date (YYYY-MM-DD)",
    FieldType.TIMESTAMP: "not a valid timestamp (ISO 8601)",
    FieldType.EMAIL: "not a valid email address",
    FieldType.PHONE: "not a possible phone number",
    FieldType.ARRAY_STRING: "not an array of strings",
}


def arrow_type(f: Field) -> pa.DataType:
    """The Arrow (and Delta) type a field is stored as."""
    return {
        FieldType.INTEGER: pa.int64(),
        FieldType.DECIMAL: pa.decimal128(18, f.scale),
        FieldType.BOOLEAN: pa.bool_(),
        FieldType.DATE: pa.date32(),
        FieldType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        FieldType.ARRAY_STRING: pa.list_(pa.string()),
    }.get(f.type, pa.string())


def arrow_schema(schema: Schema) -> pa.Schema:
    """The stored table's Arrow schema: the fields, then the lineage columns."""
    cols = [pa.field(f.name, arrow_type(f), nullable=True) for f in schema.fields]
    cols += [
        pa.field("_batch_id", pa.int64(), nullable=False),
        pa.field("_row", pa.int64(), nullable=False),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
    return pa.schema(cols)


@dataclass
class FieldPlan:
    """How one field is read, cleaned, typed and checked."""

    field: Field
    column: str | None  # source column, None when absent
    raw: str  # SQL of the raw source value
    clean: str  # SQL: trimmed text / typed raw value, NULL when missing
    value: str = ""  # SQL: the typed, normalized value
    normalizer: Normalizer | None = None


@dataclass
class ValidationPlan:
    """The compiled validation of one batch."""

    fields: list[FieldPlan]
    json_lines: bool
    source_columns: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ SQL
    def _from(self) -> str:
        if not self.json_lines:
            return SRC
        is_obj = "coalesce(json_type(__j) = 'OBJECT', false)"
        shape = lit(_json_structure(self.fields))
        return (
            f"(SELECT {ROW}, __line, {is_obj} AS {JSON_OK}, "
            f"CASE WHEN {is_obj} THEN json_transform(__j, {shape}) END AS {JSON_OBJ} "
            f"FROM (SELECT {ROW}, __line, TRY_CAST(__line AS JSON) AS __j FROM {SRC}))"
        )

    def check_sql(self, batch_id: int, ingested_at: dt.datetime, region: str) -> str:
        """The query: typed values, one reason column per field, ``__ok`` and lineage."""
        inner_cols = [ROW]
        if self.json_lines:
            inner_cols.append(JSON_OK)
        for i, p in enumerate(self.fields):
            value = p.value
            if p.normalizer is Normalizer.PHONE:
                value = sql_phone(p.clean, region) if p.clean != "NULL" else "CAST(NULL AS VARCHAR)"
            inner_cols.append(f"{p.clean} AS __c{i}")
            inner_cols.append(f"{value} AS __v{i}")
        inner = f"SELECT {', '.join(inner_cols)} FROM {self._from()} AS s"
        outer = [f"__v{i} AS {ident(p.field.name)}" for i, p in enumerate(self.fields)]
        reasons = []
        for i, p in enumerate(self.fields):
            reasons.append(f"{self._reason(p, f'__c{i}', f'__v{i}')} AS __r{i}")
        if self.json_lines:
            reasons.append(
                f"CASE WHEN NOT {JSON_OK} THEN 'unparsable row: not a JSON object' END AS __rjson"
            )
        nreasons = len(self.fields) + (1 if self.json_lines else 0)
        names = [f"__r{i}" for i in range(len(self.fields))] + (
            ["__rjson"] if self.json_lines else []
        )
        ok = " AND ".join(f"{n} IS NULL" for n in names) if nreasons else "true"
        lineage = [
            f"CAST({lit(batch_id)} AS BIGINT) AS _batch_id",
            f"{ROW} AS _row",
            f"{lit(ingested_at)} AS _ingested_at",
        ]
        return (
            f"SELECT {', '.join(outer + lineage)}, {', '.join(reasons)}, {ok} AS __ok "
            f"FROM ({inner})"
        )

    def _reason(self, p: FieldPlan, c: str, v: str) -> str:
        f = p.field
        arms: list[str] = []
        if self.json_lines:
            arms.append(f"WHEN NOT {JSON_OK} THEN NULL")
        if f.required:
            arms.append(f"WHEN {c} IS NULL THEN 'required field is missing'")
        if p.column is None:
            return f"CASE {' '.join(arms)} END" if arms else "CAST(NULL AS VARCHAR)"
        if f.type is FieldType.ENUM:
            bad = f"not one of: {', '.join(f.values or ())}"
        elif p.normalizer is Normalizer.EMAIL:
            bad = REASONS[FieldType.EMAIL]
        elif p.normalizer is Normalizer.PHONE:
            bad = REASONS[FieldType.PHONE]
        elif p.normalizer is Normalizer.SHA256:
            bad = "not a SHA-256 hex digest"
        else:
            bad = REASONS.get(f.type, "not a valid value")
        arms.append(f"WHEN {c} IS NOT NULL AND {v} IS NULL THEN {lit(bad)}")
        if f.minimum is not None:
            arms.append(
                f"WHEN {v} < {lit(f.minimum)} THEN {lit(f'below the minimum {f.minimum:g}')}"
            )
        if f.maximum is not None:
            arms.append(
                f"WHEN {v} > {lit(f.maximum)} THEN {lit(f'above the maximum {f.maximum:g}')}"
            )
        if f.pattern is not None:
            arms.append(
                f"WHEN NOT regexp_full_match({v}, {lit(f.pattern)}) "
                f"THEN {lit('does not match the pattern ' + f.pattern)}"
            )
        return f"CASE {' '.join(arms)} END"

    def quarantine_sql(self, rejected: str) -> str:
        """One row per (rejected row, failing field) with the raw value and the whole record."""
        if self.json_lines:
            record = "s.__line"
        else:
            parts = ", ".join(f"{ident(c)} := s.{ident(c)}" for c in self.source_columns)
            record = f"CAST(to_json(struct_pack({parts})) AS VARCHAR)" if parts else "'{}'"
        selects = []
        for i, p in enumerate(self.fields):
            raw = f"CAST({p.raw} AS VARCHAR)" if p.column is not None else "CAST(NULL AS VARCHAR)"
            selects.append(
                f"SELECT r.{ROW} AS row, {lit(p.field.name)} AS field, {raw} AS value, "
                f"r.__r{i} AS reason, {record} AS record "
                f"FROM {rejected} AS r JOIN {SRC} AS s ON s.{ROW} = r.{ROW} WHERE r.__r{i} IS NOT NULL"
            )
        if self.json_lines:
            selects.append(
                f"SELECT r.{ROW} AS row, CAST(NULL AS VARCHAR) AS field, s.__line AS value, "
                f"r.__rjson AS reason, s.__line AS record "
                f"FROM {rejected} AS r JOIN {SRC} AS s ON s.{ROW} = r.{ROW} WHERE r.__rjson IS NOT NULL"
            )
        return " UNION ALL ".join(selects) + " ORDER BY row, field"


def _text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def compile_plan(
    schema: Schema,
    namespaces: dict[str, Namespace],
    source_schema: pa.Schema,
    mapping: dict[str, str],
    json_lines: bool,
) -> ValidationPlan:
    """Compile the validation of ``schema`` for a source with ``source_schema``.

    Args:
        schema: the dataset's schema.
        namespaces: known namespaces by name (for identity normalizers).
        source_schema: the Arrow schema of the registered source (``__src``).
        mapping: field name -> source column (fields absent from it are missing).
        json_lines: the source is raw JSON Lines text in a ``__line`` column.
    """
    plans: list[FieldPlan] = []
    for f in schema.fields:
        col = mapping.get(f.name)
        normalizer: Normalizer | None = None
        if f.identity is not None and f.identity.namespace in namespaces:
            normalizer = namespaces[f.identity.namespace].normalizer
        elif f.type is FieldType.EMAIL:
            normalizer = Normalizer.EMAIL
        elif f.type is FieldType.PHONE:
            normalizer = Normalizer.PHONE
        if col is None:
            if f.default is not None:  # a constant for every row, typed like source text
                clean = lit(f.default)
                p = FieldPlan(f, None, clean, clean, normalizer=normalizer)
                p.value = _value_sql(f, clean, True, normalizer, False)
            else:
                p = FieldPlan(f, None, "NULL", "NULL", normalizer=normalizer)
                p.value = f"CAST(NULL AS {_duck_type(f)})"
            plans.append(p)
            continue
        if json_lines:
            # raw: read back from the line (quarantine only); parsed: one parse per line
            raw = f"json_extract_string(s.__line, {lit('$.' + _json_key(col))})"
            parsed = f"struct_extract(s.{JSON_OBJ}, {lit(col)})"
            text = True
        else:
            raw = parsed = f"s.{ident(col)}"
            text = _text_type(source_schema.field(col).type)
        is_list = not json_lines and pa.types.is_list(source_schema.field(col).type)
        if text or f.type in (FieldType.STRING, FieldType.EMAIL, FieldType.PHONE, FieldType.ENUM):
            clean = f"NULLIF(trim(CAST({parsed} AS VARCHAR)), '')" if not is_list else parsed
        else:
            clean = parsed
        if json_lines:  # never parse a line that is not a JSON object
            if f.default is not None:
                clean = f"COALESCE({clean}, {lit(f.default)})"
            clean = f"CASE WHEN {JSON_OK} THEN {clean} END"
        p = FieldPlan(f, col, raw, clean, normalizer=normalizer)
        p.value = _value_sql(f, clean, text and not is_list, normalizer, is_list)
        plans.append(p)
    return ValidationPlan(plans, json_lines, [c for c in source_schema.names if c != ROW])


def _json_structure(plans: list[FieldPlan]) -> str:
    """The ``json_transform`` structure: every mapped key read as text."""
    return json.dumps({p.column: "VARCHAR" for p in plans if p.column is not None})


def _json_key(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _duck_type(f: Field) -> str:
    return {
        FieldType.INTEGER: "BIGINT",
        FieldType.DECIMAL: f"DECIMAL(18, {f.scale})",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.TIMESTAMP: "TIMESTAMPTZ",
        FieldType.ARRAY_STRING: "VARCHAR[]",
    }.get(f.type, "VARCHAR")


def _value_sql(
    f: Field, clean: str, text: bool, normalizer: Normalizer | None, is_list: bool
) -> str:
    if normalizer is Normalizer.PHONE:
        return "NULL"  # the region is known in check_sql, which builds the phone value
    if normalizer is Normalizer.EMAIL:
        return sql_email(clean)
    if normalizer is not None:
        return sql_normalizer(normalizer, clean)
    t = f.type
    if t is FieldType.ENUM:
        arms = " ".join(f"WHEN {lit(v.lower())} THEN {lit(v)}" for v in f.values or ())
        return f"CASE lower({clean}) {arms} END"
    if t is FieldType.BOOLEAN and text:
        yes = ", ".join(lit(v) for v in _TRUE)
        no = ", ".join(lit(v) for v in _FALSE)
        return f"CASE WHEN lower({clean}) IN ({yes}) THEN true WHEN lower({clean}) IN ({no}) THEN false END"
    if t is FieldType.ARRAY_STRING:
        if is_list:
            return f"TRY_CAST({clean} AS VARCHAR[])"
        sep = lit(f.separator)
        return (
            f"CASE WHEN starts_with({clean}, '[') THEN "
            f"(CASE WHEN json_valid({clean}) THEN TRY_CAST(CAST({clean} AS JSON) AS VARCHAR[]) END) "
            f"ELSE list_transform(string_split({clean}, {sep}), lambda x: trim(x)) END"
        )
    if t in (FieldType.STRING,):
        return clean
    return f"TRY_CAST({clean} AS {_duck_type(f)})"


__all__ = ["REASONS", "ValidationPlan", "arrow_schema", "arrow_type", "compile_plan"]
