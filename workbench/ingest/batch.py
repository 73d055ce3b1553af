"""Batch ingestion: read, validate, quarantine, commit atomically, record the batch.

The order of a batch, each step safe to crash in:

1. under the dataset's lock, reconcile any batch a crash left in ``loading``;
2. refuse content already loaded (same SHA-256) unless forced;
3. record the batch as ``loading`` in the catalog;
4. read and validate in one vectorized query; collect rejected rows;
5. append rejected rows to the quarantine table (kept even when the batch fails);
6. above the error threshold: mark the batch ``failed``, commit no data, raise;
7. append accepted rows to the dataset table in one Delta commit tagged with the batch id;
8. mark the batch ``success`` with its counts and table versions.

A crash before 7 leaves nothing visible; a crash between 7 and 8 is healed at the next
ingestion by finding the tagged commit in the Delta log (step 1).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from workbench.catalog.store import BatchInfo, DatasetInfo
from workbench.errors import BatchFailedError, DuplicateBatchError, InputError, WorkbenchError
from workbench.ingest.sources import ROW_COLUMN, SourceData, read_source
from workbench.ingest.validate import ROW, SRC, arrow_schema, compile_plan
from workbench.lake.delta import StagedWrite
from workbench.lake.pipe import pipe
from workbench.schema.model import Schema

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("batch_id", pa.int64(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("field", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record", pa.string()),
        pa.field("source", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def failpoint(name: str) -> None:
    """Crash here when ``WORKBENCH_FAILPOINT`` names this point (crash-safety tests).

    ``name`` raises an exception; ``name:exit`` ends the process at once, as a power cut
    would, with no clean-up.
    """
    spec = os.environ.get("WORKBENCH_FAILPOINT", "")
    if not spec:
        return
    point, _, how = spec.partition(":")
    if point != name:
        return
    if how == "exit":
        os._exit(137)
    raise WorkbenchError(f"failpoint {name} triggered")


@dataclass(frozen=True)
class IngestResult:
    """What one ingestion did; ``batch.rows_read == rows_accepted + rows_rejected``."""

    batch: BatchInfo
    quarantine_path: str
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.batch.rows_read / self.seconds if self.seconds > 0 else float("inf")


class Ingestor:
    """Loads files and DataFrames into datasets (``ws.ingest``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def __call__(self, dataset: str, source: Any, **kw: Any) -> IngestResult:
        """Shortcut for :meth:`file`."""
        return self.file(dataset, source, **kw)

    def file(
        self,
        dataset: str,
        source: Any,
        *,
        format: str | None = None,
        force: bool = False,
        mapping: dict[str, str] | None = None,
        error_threshold: float | None = None,
        delimiter: str = ",",
    ) -> IngestResult:
        """Ingest one file (CSV, Parquet, JSON Lines) or DataFrame into ``dataset``.

        Args:
            dataset: target dataset name.
            source: a path, or a pandas / polars / Arrow table.
            format: ``csv``, ``parquet`` or ``jsonl``; from the file extension by default.
            force: load content that was already loaded (same hash) again.
            mapping: source column -> field name, for columns named differently.
            error_threshold: share of rejected rows above which the batch fails
                (default: the dataset's, else the workspace's, else 5%).
            delimiter: CSV delimiter.

        Raises:
            InputError: the source cannot be read or lacks required columns.
            DuplicateBatchError: the same content was already loaded.
            BatchFailedError: too many rows were rejected; nothing was committed.
        """
        ws = self._ws
        t0 = time.perf_counter()
        info = ws.catalog.get_dataset(dataset)
        schema = ws.catalog.get_schema(info.schema_name)
        with ws.lake.lock(f"dataset-{dataset}"):
            self.reconcile(dataset)
            data = read_source(source, format, delimiter)
            prior = ws.catalog.find_loaded(dataset, data.content_hash)
            if prior is not None and not force:
                raise DuplicateBatchError(
                    f"{data.name}: this content was already loaded into {dataset!r} by batch "
                    f"{prior.id} ({prior.rows_accepted} rows); pass force=True (--force) to load it again"
                )
            col_map = _map_columns(schema, data, mapping or {})
            batch = ws.catalog.start_batch(
                dataset, data.name, data.format, data.content_hash, force, schema.version
            )
            try:
                return self._load(info, schema, data, col_map, batch, error_threshold, t0)
            except BatchFailedError:
                raise
            except BaseException as e:
                ws.catalog.finish_batch(batch.id, status="failed", error=f"{type(e).__name__}: {e}")
                raise

    # ------------------------------------------------------------------ steps
    def _load(
        self,
        info: DatasetInfo,
        schema: Schema,
        data: SourceData,
        col_map: tuple[dict[str, str], list[str]],
        batch: BatchInfo,
        error_threshold: float | None,
        t0: float,
    ) -> IngestResult:
        ws = self._ws
        engine = ws.engine
        region = ws.settings.default_region
        mapping, warnings = col_map
        started = batch.started_at or dt.datetime.now(dt.UTC)
        if data.table is not None:
            assert data.rows is not None
            src = data.table.append_column(ROW_COLUMN, pa.array(data.rows, pa.int64()))
            engine.register(SRC, src)
            src_schema = src.schema
        else:
            assert data.scan_sql is not None and data.scan_schema is not None
            engine.register_sql(SRC, data.scan_sql)
            src_schema = data.scan_schema.append(pa.field(ROW_COLUMN, pa.int64()))
        namespaces = {n.name: n for n in ws.catalog.namespaces()}
        plan = compile_plan(schema, namespaces, src_schema, mapping, data.json_lines)
        target = arrow_schema(schema)
        ws.lake.create(info.table_path, target, info.name)
        ws.lake.ensure_columns(info.table_path, target)
        staged = ws.lake.stage(info.table_path, target)
        rejected_parts: list[pa.RecordBatch] = []
        registered = [SRC]
        try:
            # one pass: validated rows stream into staged files, rejected rows are kept aside;
            # a writer thread encodes Parquet while the engine computes the next batches
            n_accepted = _pipeline(
                engine.stream(plan.check_sql(batch.id, started, region)),
                staged,
                target,
                rejected_parts,
            )
            rejected = (
                pa.Table.from_batches(rejected_parts)
                if rejected_parts
                else pa.table({"_row": pa.array([], pa.int64())})
            )
            quarantine = self._quarantine_rows(plan, rejected, data, batch, started, registered)
        except BaseException:
            staged.abort()
            raise
        finally:
            for name in registered:
                engine.unregister(name)
        rows_read = data.rows_read
        n_rejected = rejected.num_rows + len(data.unparsable)
        if (
            rows_read != n_accepted + n_rejected
        ):  # pragma: no cover - an invariant, not an input error
            staged.abort()
            raise WorkbenchError(
                f"counts do not add up: {rows_read} != {n_accepted} + {n_rejected}"
            )
        qpath = info.quarantine_path
        qversion = None
        if quarantine.num_rows:
            ws.lake.create(qpath, QUARANTINE_SCHEMA, f"quarantine_{info.name}")
            qversion = ws.lake.append(
                qpath, quarantine, {"batch_id": batch.id, "kind": "quarantine"}
            )
            ws.catalog.record_version(
                f"quarantine/{info.name}", qversion, "quarantine", quarantine.num_rows, batch.id
            )
        threshold = _threshold(error_threshold, info, ws.settings.error_threshold)
        share = n_rejected / rows_read if rows_read else 0.0
        counts = {
            "rows_read": rows_read,
            "rows_accepted": n_accepted,
            "rows_rejected": n_rejected,
            "errors_recorded": quarantine.num_rows,
            "quarantine_version": qversion,
            "warnings": warnings,
        }
        if share > threshold:
            staged.abort()
            msg = (
                f"{data.name}: {share:.1%} of rows rejected ({n_rejected} of {rows_read}), above the "
                f"{threshold:.1%} error threshold; nothing was committed to {info.name!r}. "
                f"Rejected rows: workbench quarantine {info.name} --batch {batch.id}"
            )
            done = ws.catalog.finish_batch(batch.id, status="failed", error=msg, **counts)
            log.warning(msg)
            raise BatchFailedError(msg, done)
        try:
            failpoint("ingest.before_commit")
        except BaseException:
            staged.abort()
            raise
        version = staged.commit(
            {
                "batch_id": batch.id,
                "rows_read": rows_read,
                "rows_accepted": n_accepted,
                "rows_rejected": n_rejected,
            }
        )
        ws.catalog.record_version(f"dataset/{info.name}", version, "append", n_accepted, batch.id)
        failpoint("ingest.after_commit")
        done = ws.catalog.finish_batch(batch.id, status="success", table_version=version, **counts)
        secs = time.perf_counter() - t0
        log.info(
            "batch %d into %s: read %d, accepted %d, rejected %d in %.2fs",
            batch.id,
            info.name,
            rows_read,
            n_accepted,
            n_rejected,
            secs,
        )
        return IngestResult(done, qpath, secs)

    def _quarantine_rows(
        self,
        plan: Any,
        rejected: pa.Table,
        data: SourceData,
        batch: BatchInfo,
        started: dt.datetime,
        registered: list[str],
    ) -> pa.Table:
        engine = self._ws.engine
        parts: list[pa.Table] = []
        if rejected.num_rows:
            reasons = [c for c in rejected.column_names if c.startswith("__r")]
            rej = rejected.select(reasons).append_column(ROW, rejected.column("_row"))
            engine.register("__rejected", rej)
            registered.append("__rejected")
            parts.append(engine.query(plan.quarantine_sql("__rejected")))
        if data.unparsable:
            parts.append(
                pa.table(
                    {
                        "row": pa.array([u.row for u in data.unparsable], pa.int64()),
                        "field": pa.nulls(len(data.unparsable), pa.string()),
                        "value": pa.array([u.text for u in data.unparsable], pa.string()),
                        "reason": pa.array([u.reason for u in data.unparsable], pa.string()),
                        "record": pa.array([u.text for u in data.unparsable], pa.string()),
                    }
                )
            )
        if not parts:
            return QUARANTINE_SCHEMA.empty_table()
        q = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
        n = q.num_rows
        q = q.append_column("batch_id", pa.array([batch.id] * n, pa.int64()))
        q = q.append_column("source", pa.array([data.name] * n, pa.string()))
        q = q.append_column("quarantined_at", pa.array([started] * n, pa.timestamp("us", tz="UTC")))
        return q.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)

    def reconcile(self, dataset: str) -> list[BatchInfo]:
        """Settle batches a crash left in ``loading``: success if their commit is in the log."""
        ws = self._ws
        info = ws.catalog.get_dataset(dataset)
        fixed = []
        for b in ws.catalog.list_batches(dataset, status="loading"):
            commit = ws.lake.find_commit(info.table_path, "batch_id", str(b.id))
            if commit is not None:
                rows = {
                    k: int(commit.get(f"workbench.{k}", 0))
                    for k in ("rows_read", "rows_accepted", "rows_rejected")
                }
                fixed.append(
                    ws.catalog.finish_batch(
                        b.id,
                        status="success",
                        table_version=int(commit["version"]),
                        warnings=[
                            "recovered after an interruption: the commit was found in the table log"
                        ],
                        **rows,
                    )
                )
                ws.catalog.record_version(
                    f"dataset/{dataset}",
                    int(commit["version"]),
                    "append",
                    rows["rows_accepted"],
                    b.id,
                )
            else:
                fixed.append(
                    ws.catalog.finish_batch(
                        b.id,
                        status="failed",
                        error="interrupted before its commit: no rows were committed",
                    )
                )
            log.warning("reconciled batch %d of %s -> %s", b.id, dataset, fixed[-1].status)
        return fixed


def _pipeline(
    batches: Iterator[pa.RecordBatch],
    staged: StagedWrite,
    target: pa.Schema,
    rejected_parts: list[pa.RecordBatch],
) -> int:
    """Split each checked batch into accepted rows (written) and rejected rows (kept).

    The engine produces batches on this thread; a second thread filters, casts and writes
    them (pyarrow releases the GIL), so computing and encoding overlap. Returns the number
    of accepted rows.
    """
    names = target.names

    def write(feed: Iterator[pa.RecordBatch]) -> int:
        accepted = 0
        for b in feed:
            ok = b.column("__ok")
            if ok.null_count == 0 and pc.all(ok).as_py():
                good = b.select(names)
            else:
                good = b.filter(ok).select(names)
                bad = b.filter(pc.invert(ok))
                keep = [c for c in bad.schema.names if c.startswith("__r") or c == "_row"]
                rejected_parts.append(bad.select(keep))
            accepted += good.num_rows
            staged.write(good.cast(target))
        return accepted

    return pipe(batches, write, name="ingest-writer")


def _threshold(explicit: float | None, info: DatasetInfo, default: float) -> float:
    for v in (explicit, info.error_threshold, default):
        if v is not None:
            if not 0 <= v <= 1:
                raise InputError(info.name, f"error threshold {v} must be between 0 and 1")
            return v
    return 0.05


def _map_columns(
    schema: Schema, data: SourceData, mapping: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Field -> source column. Missing required columns fail the whole batch up front."""
    if data.json_lines:  # keys are read per line; missing keys are per-row problems
        renamed = {v: k for k, v in mapping.items()}
        return {f.name: renamed.get(f.name, f.name) for f in schema.fields}, []
    cols = data.column_names
    unknown_map = sorted(set(mapping) - set(cols))
    if unknown_map:
        raise InputError(
            data.name, f"mapping names column(s) not in the source: {', '.join(unknown_map)}"
        )
    by_field: dict[str, str] = {}
    lower = {c.strip().lower(): c for c in cols}
    for col, fname in mapping.items():
        by_field[fname] = col
    warnings: list[str] = []
    for f in schema.fields:
        if f.name in by_field:
            continue
        if f.name in cols:
            by_field[f.name] = f.name
        elif f.name in lower:
            by_field[f.name] = lower[f.name]
    missing_required = [
        f.name for f in schema.fields if f.required and f.name not in by_field and f.default is None
    ]
    if missing_required:
        raise InputError(
            data.name,
            f"bad header: required column(s) missing: {', '.join(missing_required)} "
            f"(found: {', '.join(cols)})",
        )
    absent = [f.name for f in schema.fields if f.name not in by_field and f.default is None]
    if absent:
        warnings.append(f"optional column(s) not in the source, left empty: {', '.join(absent)}")
    used = set(by_field.values())
    ignored = [c for c in cols if c not in used]
    if ignored:
        warnings.append(
            f"column(s) not in schema {schema.name!r}, not loaded: {', '.join(ignored)}"
        )
    return by_field, warnings


__all__ = ["QUARANTINE_SCHEMA", "IngestResult", "Ingestor", "failpoint"]
