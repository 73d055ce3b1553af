"""JSON items sent to the streaming API: validated with batch ingestion's rules, then
committed to the dataset's table as ingestion batches.

An item is what one line of a JSON Lines file is to batch ingestion, and it gets the same
verdict: batch ingestion reads every key of a line as text (``json_transform`` to
``VARCHAR``: ``42`` -> ``'42'``, ``true`` -> ``'true'``, arrays and objects as JSON text),
trims it and types it with the compiled plan of :mod:`workbench.ingest.validate`. Running
that plan in DuckDB costs milliseconds per request, so :class:`ItemValidator` applies the
same rules in Python for the shapes whose outcome is certain (plain integers and decimals,
ISO dates and timestamps, ASCII text for enums, booleans, emails, hashes, phones through
the same ``phonenumbers`` function as the batch plan's slow path). Anything else (``1e3``
for an integer, ``2026-1-5``, a nested object in a string field, non-ASCII text where
case folding matters...) sends the item to the batch plan itself, run in DuckDB; so an
item is accepted or refused exactly as a JSON Lines row would be, with the same reasons.
``tests/test_records.py`` feeds the same rows through both paths.

Beyond the batch rules, an item is refused when its JSON text is larger than the
reference platform's limits: an event 10 KB, a record 100 KB. Keys that are not fields of
the schema are ignored, as batch ingestion of JSON Lines ignores them (they are listed in
:attr:`ItemsResult.warnings`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from workbench.catalog.store import BatchInfo
from workbench.errors import InputError
from workbench.ingest.batch import failpoint
from workbench.ingest.validate import (
    _FALSE,
    _TRUE,
    REASONS,
    ROW,
    SRC,
    arrow_schema,
    arrow_type,
    compile_plan,
)
from workbench.schema.model import SYSTEM_COLUMNS, Field, FieldType, Schema, SchemaClass
from workbench.schema.namespaces import Namespace, Normalizer
from workbench.schema.normalize import EMAIL_PATTERN, SHA256_PATTERN, phone_e164

if TYPE_CHECKING:
    from workbench.lake.engine import DuckDBEngine
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: The largest event, as JSON text (UTF-8 bytes, compact separators).
MAX_EVENT_BYTES = 10 * 1024
#: The largest record of a profile dataset.
MAX_RECORD_BYTES = 100 * 1024
#: Batch ingestion's reason for a JSON Lines row that is not an object.
NOT_AN_OBJECT = "unparsable row: not a JSON object"
REQUIRED_MISSING = "required field is missing"


@dataclass(frozen=True)
class ItemError:
    """Why one item (or one of its fields) was refused.

    ``path`` is ``items[3].email`` for a field, ``items[3]`` for the whole item;
    ``field`` is the field name (None for the whole item).
    """

    index: int
    path: str
    reason: str
    field: str | None = None


@dataclass
class ItemsResult:
    """The verdict on a list of items.

    ``table`` holds the accepted rows in item order, with the dataset's columns and types
    as batch ingestion stores them (without the lineage columns ``_batch_id``, ``_row``,
    ``_ingested_at``, which :func:`append_records` adds); ``accepted_index[k]`` is the
    item index of row ``k``. ``errors`` lists every refused field of every refused item,
    in item order.
    """

    table: pa.Table
    errors: list[ItemError]
    accepted_index: list[int]
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected_index(self) -> list[int]:
        """Indexes of the refused items, ascending."""
        return sorted({e.index for e in self.errors})

    @property
    def ok(self) -> bool:
        """Every item was accepted."""
        return not self.errors


class _Undecided(Exception):
    """The fast path cannot be sure of a value's verdict: the batch plan decides."""


_UNDECIDED = _Undecided()

# --------------------------------------------------------------------------- fast path
_INT_RE = re.compile(r"[+-]?[0-9]+")
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DIGIT_RE = re.compile(r"[0-9]")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_SHA_RE = re.compile(SHA256_PATTERN)
_INT64 = (-(2**63), 2**63 - 1)
_BOOLS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}


def _text(v: Any) -> str | None:
    """The text batch ingestion reads for a JSON value (``json_transform`` to VARCHAR)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if -(2**63) <= v < 2**64:  # what the JSON reader keeps as an integer
            return str(v)
        raise _UNDECIDED
    if isinstance(v, float):
        # DuckDB writes doubles back like Python's repr in this range (checked in tests)
        if v == 0 or 1e-4 <= abs(v) < 1e16:
            return repr(v)
        raise _UNDECIDED
    raise _UNDECIDED  # arrays, objects (JSON text whose rendering is DuckDB's)


def _to_int(t: str) -> int | None:
    if _INT_RE.fullmatch(t):
        n = int(t)
        return n if _INT64[0] <= n <= _INT64[1] else None
    if not _DIGIT_RE.search(t):
        return None
    raise _UNDECIDED  # 42.0, 1e3, 0x10, 1_000: DuckDB's cast decides


def _decimal(scale: int) -> Callable[[str], Decimal | None]:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (18 - scale)

    def conv(t: str) -> Decimal | None:
        if _DEC_RE.fullmatch(t):
            try:
                q = Decimal(t).quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                raise _UNDECIDED from None
            if abs(q) >= limit:
                raise _UNDECIDED
            return q
        if not _DIGIT_RE.search(t):
            return None
        raise _UNDECIDED

    return conv


def _to_bool(t: str) -> bool | None:
    if not t.isascii():
        raise _UNDECIDED
    return _BOOLS.get(t.lower())


def _to_date(t: str) -> dt.date | None:
    m = _DATE_RE.fullmatch(t)
    if m is None:
        raise _UNDECIDED
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise _UNDECIDED from None


_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_MIN_US = (dt.date(1, 1, 2).toordinal() - _EPOCH_DAY) * 86_400_000_000
_MAX_US = (dt.date(9999, 12, 31).toordinal() - _EPOCH_DAY) * 86_400_000_000


def _to_timestamp(t: str) -> int | None:
    """Microseconds since the epoch, UTC (Arrow builds them far faster than datetimes)."""
    m = _TS_RE.fullmatch(t)
    if m is None:
        raise _UNDECIDED
    y, mo, d, h, mi, s, frac, tz = m.groups()
    hh, mm, ss = int(h or 0), int(mi or 0), int(s or 0)
    if hh > 23 or mm > 59 or ss > 59:
        raise _UNDECIDED  # 24:00 and leap seconds: DuckDB decides
    offset = 0
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:] or 0)
        if oh > 15 or om > 59:
            raise _UNDECIDED
        offset = (oh * 3600 + om * 60) * (-1 if tz[0] == "-" else 1)
    try:
        day = dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH_DAY
    except ValueError:
        raise _UNDECIDED from None
    us = int(frac.ljust(6, "0")) if frac else 0
    value = (day * 86_400 + hh * 3600 + mm * 60 + ss - offset) * 1_000_000 + us
    if not _MIN_US <= value <= _MAX_US:
        raise _UNDECIDED
    return value


def _lowered(check: re.Pattern[str] | None) -> Callable[[str], str | None]:
    def conv(t: str) -> str | None:
        if not t.isascii():
            raise _UNDECIDED  # Unicode case folding: DuckDB's lower() decides
        low = t.lower()
        return low if check is None or check.fullmatch(low) else None

    return conv


def _phone(region: str) -> Callable[[str], str | None]:
    def conv(t: str) -> str | None:
        if not (t.isascii() and t.isprintable()):
            raise _UNDECIDED
        return phone_e164(t, region)

    return conv


def _enum(values: Sequence[str]) -> Callable[[str], str | None]:
    canon = {v.lower(): v for v in values}

    def conv(t: str) -> str | None:
        if not t.isascii():
            raise _UNDECIDED
        return canon.get(t.lower())

    return conv


def _identity(t: str) -> str:
    return t


def _size_bound(item: dict[str, Any]) -> int:
    """An upper bound of the item's JSON size in bytes (a character is at most 6 bytes,
    as an escape), cheap to compute for flat items; nested values count as unbounded."""
    n = 2
    for k, v in item.items():
        n += 6 * len(k) + 4
        if isinstance(v, str):
            n += 6 * len(v) + 2
        elif v is None or isinstance(v, bool | float) or (isinstance(v, int) and abs(v) < 10**30):
            n += 32
        else:
            return 1 << 62
    return n


@dataclass
class _FieldCheck:
    """One field's rules, as the batch plan applies them (the arms of its CASE)."""

    field: Field
    convert: Callable[[str], Any]
    bad: str  # the reason when the value does not convert
    pattern: re.Pattern[str] | None = None
    undecided_pattern: bool = False

    def check(self, raw: Any) -> tuple[Any, str | None]:
        f = self.field
        if f.type is FieldType.ARRAY_STRING and isinstance(raw, list):
            clean: Any = raw
            if not all(x is None or isinstance(x, str) for x in raw):
                raise _UNDECIDED
            value: Any = list(raw)
        else:
            text = _text(raw)
            clean = None if text is None else (text.strip(" ") or None)
            if clean is None and f.default is not None:
                clean = f.default
            if clean is None:
                return None, (REQUIRED_MISSING if f.required else None)
            value = self.convert(clean)
        if value is None:
            return None, self.bad
        if f.minimum is not None and value < f.minimum:
            return None, f"below the minimum {f.minimum:g}"
        if f.maximum is not None and value > f.maximum:
            return None, f"above the maximum {f.maximum:g}"
        if f.pattern is not None:
            if self.undecided_pattern or not value.isascii():
                raise _UNDECIDED
            assert self.pattern is not None
            if not self.pattern.fullmatch(value):
                return None, f"does not match the pattern {f.pattern}"
        return value, None


def _array(separator: str) -> Callable[[str], list[str] | None]:
    def conv(t: str) -> list[str] | None:
        if t.startswith("[") or not separator:
            raise _UNDECIDED  # JSON array text: DuckDB's JSON cast decides
        return [x.strip(" ") for x in t.split(separator)]

    return conv


def _field_check(f: Field, normalizer: Normalizer | None, region: str) -> _FieldCheck:
    """The Python form of :func:`workbench.ingest.validate.compile_plan` for one field."""
    if f.type is FieldType.ENUM:
        conv: Callable[[str], Any] = _enum(f.values or ())
        bad = f"not one of: {', '.join(f.values or ())}"
    elif normalizer is Normalizer.EMAIL:
        conv, bad = _lowered(_EMAIL_RE), REASONS[FieldType.EMAIL]
    elif normalizer is Normalizer.PHONE:
        conv, bad = _phone(region), REASONS[FieldType.PHONE]
    elif normalizer is Normalizer.SHA256:
        conv, bad = _lowered(_SHA_RE), "not a SHA-256 hex digest"
    elif normalizer is Normalizer.LOWER:
        conv, bad = _lowered(None), REASONS.get(f.type, "not a valid value")
    else:
        bad = REASONS.get(f.type, "not a valid value")
        conv = {
            FieldType.INTEGER: _to_int,
            FieldType.DECIMAL: _decimal(f.scale),
            FieldType.BOOLEAN: _to_bool,
            FieldType.DATE: _to_date,
            FieldType.TIMESTAMP: _to_timestamp,
            FieldType.ARRAY_STRING: _array(f.separator),
        }.get(f.type, _identity)
    chk = _FieldCheck(f, conv, bad)
    if f.pattern is not None:
        try:
            chk.pattern = re.compile(f.pattern, re.ASCII)
        except re.error:
            chk.undecided_pattern = True  # RE2-only syntax: DuckDB decides
    return chk


# --------------------------------------------------------------------------- the batch plan
_ORACLE_LOCK = threading.Lock()
_ORACLE: DuckDBEngine | None = None


def _oracle_engine() -> DuckDBEngine:
    """A DuckDB engine of its own (configured like the workspace's) for the batch plan."""
    global _ORACLE
    if _ORACLE is None:
        from workbench.lake.engine import DuckDBEngine

        _ORACLE = DuckDBEngine(threads=1)
    return _ORACLE


class ItemValidator:
    """Validates items for one dataset at one schema version (see the module docstring)."""

    def __init__(
        self, dataset: str, schema: Schema, namespaces: Sequence[Namespace], region: str
    ) -> None:
        self.dataset = dataset
        self.schema = schema
        self.region = region
        self.max_bytes = MAX_EVENT_BYTES if schema.cls is SchemaClass.EVENT else MAX_RECORD_BYTES
        nss = {n.name: n for n in namespaces}
        self._checks: list[_FieldCheck] = []
        for f in schema.fields:
            normalizer: Normalizer | None = None
            if f.identity is not None and f.identity.namespace in nss:
                normalizer = nss[f.identity.namespace].normalizer
            elif f.type is FieldType.EMAIL:
                normalizer = Normalizer.EMAIL
            elif f.type is FieldType.PHONE:
                normalizer = Normalizer.PHONE
            self._checks.append(_field_check(f, normalizer, region))
        self._names = schema.field_names
        self._known = frozenset(self._names)
        target = arrow_schema(schema)
        self.arrow_schema = pa.schema([target.field(n) for n in self._names])
        self._types = [arrow_type(f) for f in schema.fields]
        src = pa.schema([pa.field("__line", pa.string()), pa.field(ROW, pa.int64())])
        plan = compile_plan(schema, nss, src, {n: n for n in self._names}, True)
        self._plan_sql = plan.check_sql(0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), region)
        self.oracle_items = 0  # items the batch plan decided (for tests and metrics)

    def validate(self, items: Sequence[Any]) -> ItemsResult:
        """Validate ``items`` (parsed JSON values); see :class:`ItemsResult`."""
        rows: dict[int, list[Any]] = {}
        errors: dict[int, list[ItemError]] = {}
        undecided: list[int] = []
        unknown: set[str] = set()
        checks = self._checks
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors[i] = [ItemError(i, f"items[{i}]", NOT_AN_OBJECT)]
                continue
            bound = _size_bound(item)
            size = (
                len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode())
                if bound > self.max_bytes
                else 0
            )
            if size > self.max_bytes:
                what = "an event" if self.schema.cls is SchemaClass.EVENT else "a record"
                errors[i] = [
                    ItemError(
                        i,
                        f"items[{i}]",
                        f"too large: {size:,} bytes, above the {self.max_bytes // 1024} KB "
                        f"limit of {what}",
                    )
                ]
                continue
            if not self._known.issuperset(item):
                unknown.update(k for k in item if k not in self._known)
            values: list[Any] = []
            errs: list[ItemError] = []
            try:
                for chk in checks:
                    value, reason = chk.check(item.get(chk.field.name))
                    if reason is not None:
                        name = chk.field.name
                        errs.append(ItemError(i, f"items[{i}].{name}", reason, name))
                    values.append(value)
            except _Undecided:
                undecided.append(i)
                continue
            if errs:
                errors[i] = errs
            else:
                rows[i] = values
        accepted = sorted(rows)
        cols = [[rows[i][k] for i in accepted] for k in range(len(self._names))]
        table = pa.Table.from_arrays(
            [pa.array(c, t) for c, t in zip(cols, self._types, strict=True)],
            schema=self.arrow_schema,
        )
        if undecided:
            more, more_index = self._decide(items, undecided, errors)
            if more_index:  # merge in item order; values stay Arrow (DuckDB may hold
                # values Python cannot, such as the 'infinity' date)
                table = pa.concat_tables([table, more])
                order = sorted(range(table.num_rows), key=[*accepted, *more_index].__getitem__)
                table = table.take(pa.array(order, pa.int64()))
                accepted = sorted([*accepted, *more_index])
        warnings = []
        if unknown:
            warnings.append(
                f"key(s) not in schema {self.schema.name!r}, not loaded: "
                f"{', '.join(sorted(unknown))}"
            )
        return ItemsResult(
            table, [e for i in sorted(errors) for e in errors[i]], accepted, warnings
        )

    def _decide(
        self, items: Sequence[Any], indexes: list[int], errors: dict[int, list[ItemError]]
    ) -> tuple[pa.Table, list[int]]:
        """Run the batch plan itself (DuckDB) on the items the fast path left; returns the
        accepted rows (Arrow) and their item indexes, and adds the refused items' errors."""
        src = pa.table(
            {
                "__line": pa.array([json.dumps(items[i]) for i in indexes], pa.string()),
                ROW: pa.array(indexes, pa.int64()),
            }
        )
        with _ORACLE_LOCK:
            engine = _oracle_engine()
            engine.register(SRC, src)
            try:
                out = engine.query(self._plan_sql)
            finally:
                engine.unregister(SRC)
        self.oracle_items += len(indexes)
        n = len(self._names)
        reasons = out.select([f"__r{k}" for k in range(n)] + ["__rjson"]).to_pylist()
        ok: list[int] = []
        accepted: list[int] = []
        for pos, (i, rs) in enumerate(zip(out.column("_row").to_pylist(), reasons, strict=True)):
            errs = []
            if rs["__rjson"] is not None:
                errs.append(ItemError(i, f"items[{i}]", rs["__rjson"]))
            for k, name in enumerate(self._names):
                r = rs[f"__r{k}"]
                if r is not None:
                    errs.append(ItemError(i, f"items[{i}].{name}", r, name))
            if errs:
                errors[i] = errs
            else:
                ok.append(pos)
                accepted.append(i)
        table = out.select(self._names).take(pa.array(ok, pa.int64())).cast(self.arrow_schema)
        return table, accepted


# --------------------------------------------------------------------------- public API
_CACHE_LOCK = threading.Lock()
_CACHE: weakref.WeakKeyDictionary[Workspace, dict[str, tuple[float, ItemValidator]]] = (
    weakref.WeakKeyDictionary()
)


def validator(ws: Workspace, dataset: str, *, max_age: float = 5.0) -> ItemValidator:
    """The validator of a dataset, cached per workspace; the catalog is read again (and
    the validator rebuilt when the schema evolved) when it is older than ``max_age`` s.

    Raises:
        NotFoundError: no such dataset.
    """
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(ws, {}).get(dataset)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    info = ws.catalog.get_dataset(dataset)
    schema = ws.catalog.get_schema(info.schema_name)
    if hit is not None and hit[1].schema.version == schema.version and hit[1].schema == schema:
        v = hit[1]
    else:
        v = ItemValidator(dataset, schema, ws.catalog.namespaces(), ws.settings.default_region)
    with _CACHE_LOCK:
        _CACHE.setdefault(ws, {})[dataset] = (now, v)
    return v


def validate_items(ws: Workspace, dataset: str, items: Sequence[Any]) -> ItemsResult:
    """Validate JSON items for ``dataset`` with batch ingestion's rules.

    Each item must be a JSON object (a dict) no larger than 10 KB (events) or 100 KB
    (records). Accepted rows come back typed and normalized exactly as batch ingestion
    would store them; refused items come back with one :class:`ItemError` per failing
    field (``items[3].email: not a valid email address``).

    Raises:
        NotFoundError: no such dataset.
    """
    return validator(ws, dataset).validate(items)


def append_records(
    ws: Workspace, dataset: str, table: pa.Table, *, source: str, format: str = "stream"
) -> BatchInfo:
    """Commit validated rows (``ItemsResult.table``, or several concatenated) to the
    dataset's table as one ingestion batch.

    Like a batch ingestion: under the dataset's lock, batches a crash left ``loading`` are
    reconciled first; the batch is recorded (``source`` e.g. ``stream:web_events``), the
    rows get the lineage columns (``_batch_id``, ``_row`` 1..n, ``_ingested_at``) and are
    appended in one Delta commit tagged with the batch id, then the batch is marked
    ``success`` (read = accepted = the rows). Identity, profile and segment builds see
    the rows like any other batch.

    Raises:
        NotFoundError: no such dataset.
        InputError: no rows, or columns that are not fields of the dataset's schema.
    """
    info = ws.catalog.get_dataset(dataset)
    schema = ws.catalog.get_schema(info.schema_name)
    target = arrow_schema(schema)
    fields = [n for n in target.names if n not in SYSTEM_COLUMNS]
    extra = [c for c in table.column_names if c not in fields]
    if extra:
        raise InputError(source, f"column(s) not in schema {schema.name!r}: {', '.join(extra)}")
    n = table.num_rows
    if n == 0:
        raise InputError(source, "no rows to append")
    cols = [
        table.column(c).cast(target.field(c).type)
        if c in table.column_names
        else pa.nulls(n, target.field(c).type)
        for c in fields
    ]
    sink = pa.BufferOutputStream()
    data = pa.Table.from_arrays(cols, schema=pa.schema([target.field(c) for c in fields]))
    with pa.ipc.new_stream(sink, data.schema) as w:
        w.write_table(data)
    content_hash = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    with ws.lake.lock(f"dataset-{dataset}"):
        ws.ingest.reconcile(dataset)
        batch = ws.catalog.start_batch(dataset, source, format, content_hash, False, schema.version)
        version: int | None = None
        try:
            started = batch.started_at or dt.datetime.now(dt.UTC)
            full = pa.Table.from_arrays(
                [
                    *cols,
                    pa.array([batch.id] * n, pa.int64()),
                    pa.array(range(1, n + 1), pa.int64()),
                    pa.array([started] * n, pa.timestamp("us", tz="UTC")),
                ],
                schema=target,
            )
            ws.lake.create(info.table_path, target, info.name)
            ws.lake.ensure_columns(info.table_path, target)
            failpoint("stream.before_commit")
            version = ws.lake.append(
                info.table_path,
                full,
                {"batch_id": batch.id, "rows_read": n, "rows_accepted": n, "rows_rejected": 0},
            )
            ws.catalog.record_version(f"dataset/{info.name}", version, "append", n, batch.id)
            failpoint("stream.after_commit")
        except BaseException as e:
            if version is None:  # committed: left ``loading``, the next reconcile settles it
                ws.catalog.finish_batch(batch.id, status="failed", error=f"{type(e).__name__}: {e}")
            raise
        done = ws.catalog.finish_batch(
            batch.id,
            status="success",
            table_version=version,
            rows_read=n,
            rows_accepted=n,
            rows_rejected=0,
            errors_recorded=0,
            warnings=[],
        )
    log.info("batch %d into %s from %s: %d rows", batch.id, dataset, source, n)
    return done


__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_RECORD_BYTES",
    "NOT_AN_OBJECT",
    "ItemError",
    "ItemValidator",
    "ItemsResult",
    "append_records",
    "validate_items",
    "validator",
]
