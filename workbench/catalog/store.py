"""The catalog: read and write the workspace's metadata through SQLAlchemy.

SQLite (a file inside the workspace) by default; any SQLAlchemy URL, such as
``postgresql+psycopg://user@host/db``, moves it to a shared server. Callers get plain
frozen dataclasses back, never live ORM objects, so nothing leaks a session.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from workbench.catalog.models import (
    CATALOG_VERSION,
    ActivationRow,
    AudienceSyncRow,
    Base,
    BatchRow,
    BuildRow,
    CatalogMeta,
    DatasetRow,
    DestinationRow,
    NamespaceRow,
    SchemaRow,
    SchemaVersionRow,
    SegmentResultRow,
    SegmentRow,
    SegmentRunRow,
    TableVersionRow,
    utcnow,
)
from workbench.errors import AlreadyExistsError, ConfigError, NotFoundError
from workbench.schema.model import Schema
from workbench.schema.namespaces import DEFAULT_NAMESPACES, Namespace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as recorded in the catalog."""

    name: str
    schema_name: str
    profile_enabled: bool
    table_path: str
    quarantine_path: str
    description: str
    error_threshold: float | None
    created_at: dt.datetime


@dataclass(frozen=True)
class BuildInfo:
    """An identity or profile build."""

    id: int
    kind: str
    mode: str
    status: str
    watermark: dict[str, Any]
    stats: dict[str, Any]
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


def _build_info(r: BuildRow) -> BuildInfo:
    return BuildInfo(
        r.id,
        r.kind,
        r.mode,
        r.status,
        dict(r.watermark or {}),
        dict(r.stats or {}),
        r.error,
        r.started_at,
        r.finished_at,
    )


@dataclass(frozen=True)
class BatchInfo:
    """One ingestion with its counts; ``rows_read == rows_accepted + rows_rejected``."""

    id: int
    dataset: str
    source: str
    format: str
    content_hash: str
    status: str
    forced: bool
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    errors_recorded: int
    error: str | None
    warnings: list[str] = field(default_factory=list)
    table_version: int | None = None
    quarantine_version: int | None = None
    schema_version: int = 1
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def duration_s(self) -> float | None:
        """Seconds the batch took, when finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as recorded in the catalog."""

    name: str
    version: int
    definition: dict[str, Any]
    description: str
    method: str
    reason: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class SegmentRunInfo:
    """A batch segment job as recorded in the catalog."""

    id: int
    as_of: dt.datetime
    status: str
    segments: list[str]
    stats: dict[str, Any]
    error: str | None
    table_version: int | None
    started_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ActivationInfo:
    """One activation as recorded in the catalog."""

    id: int
    destination: str
    segment: str
    as_of: dt.datetime
    mode: str
    status: str
    segment_run_id: int | None
    counts: dict[str, Any]
    files: list[dict[str, Any]]
    manifest: str | None
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def jsonable(value: Any) -> Any:
    """A copy of a definition that a JSON column stores (dates as ISO text, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _activation_info(r: ActivationRow) -> ActivationInfo:
    return ActivationInfo(
        r.id,
        r.destination,
        r.segment,
        r.as_of,
        r.mode,
        r.status,
        r.segment_run_id,
        dict(r.counts or {}),
        list(r.files or []),
        r.manifest,
        r.error,
        r.started_at,
        r.finished_at,
    )


@dataclass(frozen=True)
class AudienceSyncInfo:
    """A segment confirmed by an external audience manager (``audience_syncs``)."""

    destination: str
    segment: str
    remote_id: str
    segment_version: int
    confirmed_at: dt.datetime
    memberships_run_id: int | None
    updated_at: dt.datetime


def _audience_sync_info(r: AudienceSyncRow) -> AudienceSyncInfo:
    return AudienceSyncInfo(
        r.destination,
        r.segment,
        r.remote_id,
        r.segment_version,
        r.confirmed_at,
        r.memberships_run_id,
        r.updated_at,
    )


def _segment_info(r: SegmentRow) -> SegmentInfo:
    return SegmentInfo(
        r.name,
        r.version,
        dict(r.definition),
        r.description,
        r.method,
        r.reason,
        r.created_at,
        r.updated_at,
    )


def _segment_run_info(r: SegmentRunRow) -> SegmentRunInfo:
    return SegmentRunInfo(
        r.id,
        r.as_of,
        r.status,
        list(r.segments or []),
        dict(r.stats or {}),
        r.error,
        r.table_version,
        r.started_at,
        r.finished_at,
    )


#: The workspace lake's folders that hold dataset tables and their quarantines.
_LAKE_PARTS = ("datasets", "quarantine")


def _stored_path(path: str, root: Path | None) -> str:
    """A dataset location as the catalog keeps it: relative to the lake root when inside
    it, so a copied or moved workspace reads and writes its own tables."""
    if root is not None and os.path.isabs(path):
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return Path(rel).as_posix()
    return path


def _resolved_path(path: str, root: Path | None) -> str:
    """A stored dataset location made absolute against this workspace's lake root.

    Catalogs written before locations were relative hold absolute paths; one of the
    form ``…/lake/datasets/<name>`` (or ``quarantine``) is this workspace's own table,
    wherever the folder was when it was recorded (a copied or moved workspace)."""
    if root is None:
        return path
    if not os.path.isabs(path):
        return str(root / path)
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-3] == "lake" and parts[-2] in _LAKE_PARTS:
        return str(root / parts[-2] / parts[-1])
    return path


def _dataset_info(r: DatasetRow, root: Path | None = None) -> DatasetInfo:
    return DatasetInfo(
        name=r.name,
        schema_name=r.schema_name,
        profile_enabled=r.profile_enabled,
        table_path=_resolved_path(r.table_path, root),
        quarantine_path=_resolved_path(r.quarantine_path, root),
        description=r.description,
        error_threshold=r.error_threshold,
        created_at=r.created_at,
    )


def _batch_info(r: BatchRow) -> BatchInfo:
    return BatchInfo(
        id=r.id,
        dataset=r.dataset,
        source=r.source,
        format=r.format,
        content_hash=r.content_hash,
        status=r.status,
        forced=r.forced,
        rows_read=r.rows_read,
        rows_accepted=r.rows_accepted,
        rows_rejected=r.rows_rejected,
        errors_recorded=r.errors_recorded,
        error=r.error,
        warnings=list(r.warnings or []),
        table_version=r.table_version,
        quarantine_version=r.quarantine_version,
        schema_version=r.schema_version,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Catalog:
    """Transactional metadata: namespaces, schemas, datasets, batches, table versions."""

    def __init__(self, url: str, lake_root: str | Path | None = None) -> None:
        self.url = url
        #: the workspace's lake: dataset locations are stored relative to it
        self.lake_root = Path(lake_root).resolve() if lake_root is not None else None
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        except Exception as e:  # bad URL, missing driver
            raise ConfigError(f"cannot open catalog {self._safe_url()}: {e}") from e
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _safe_url(self) -> str:
        """The URL with any password hidden (secrets never reach logs)."""
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<catalog url>"

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``..."""
        return self.engine.dialect.name

    def initialize(self) -> None:
        """Create the tables (idempotent) and the built-in namespaces."""
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as e:
            raise ConfigError(f"cannot reach catalog {self._safe_url()}: {e.orig}") from e
        with self.session() as s:
            meta = s.get(CatalogMeta, "version")
            if meta is None:
                s.add(CatalogMeta(key="version", value=str(CATALOG_VERSION)))
            elif int(meta.value) < CATALOG_VERSION:  # create_all added the newer tables
                meta.value = str(CATALOG_VERSION)
            have = set(s.scalars(select(NamespaceRow.name)))
            for ns in DEFAULT_NAMESPACES:
                if ns.name not in have:
                    s.add(_ns_row(ns, builtin=True))

    def check(self) -> None:
        """Fail clearly when the catalog has not been initialized or is too new."""
        try:
            with self.session() as s:
                meta = s.get(CatalogMeta, "version")
        except OperationalError as e:
            raise ConfigError(f"catalog {self._safe_url()} is not usable: {e.orig}") from e
        if meta is None:
            raise ConfigError(f"catalog {self._safe_url()} is not initialized")
        if int(meta.value) > CATALOG_VERSION:
            raise ConfigError(
                f"catalog version {meta.value} is newer than this workbench ({CATALOG_VERSION})"
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except Exception:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ namespaces
    def namespaces(self) -> list[Namespace]:
        """All namespaces, highest priority first."""
        with self.session() as s:
            rows = s.scalars(
                select(NamespaceRow).order_by(NamespaceRow.priority.desc(), NamespaceRow.name)
            )
            return [_ns_from_row(r) for r in rows]

    def add_namespace(self, ns: Namespace) -> Namespace:
        """Register a custom namespace."""
        try:
            with self.session() as s:
                s.add(_ns_row(ns, builtin=False))
        except IntegrityError as e:
            raise AlreadyExistsError(f"namespace {ns.name!r} already exists") from e
        return ns

    # ------------------------------------------------------------------ schemas
    def get_schema(self, name: str) -> Schema:
        """The current version of a schema."""
        with self.session() as s:
            row = s.get(SchemaRow, name)
            if row is None:
                raise NotFoundError(f"no schema named {name!r}")
            sch = Schema.from_dict(row.definition, self.namespaces())
            return _with_version(sch, row.version)

    def list_schemas(self) -> list[Schema]:
        """Every schema, by name."""
        nss = self.namespaces()
        with self.session() as s:
            rows = list(s.scalars(select(SchemaRow).order_by(SchemaRow.name)))
            return [_with_version(Schema.from_dict(r.definition, nss), r.version) for r in rows]

    def schema_history(self, name: str) -> list[tuple[int, dt.datetime, dict[str, Any]]]:
        """(version, created_at, definition) for every version of a schema."""
        with self.session() as s:
            rows = s.scalars(
                select(SchemaVersionRow)
                .where(SchemaVersionRow.schema_name == name)
                .order_by(SchemaVersionRow.version)
            )
            return [(r.version, r.created_at, r.definition) for r in rows]

    def put_schema(self, schema: Schema) -> tuple[Schema, str]:
        """Register or evolve a schema.

        Returns:
            The schema with its version, and ``created``, ``evolved`` or ``unchanged``.
        """
        nss = self.namespaces()
        problems = schema.problems(nss)
        if problems:
            from workbench.errors import ValidationError

            raise ValidationError(f"schema {schema.name!r}", problems)
        with self.session() as s:
            row = s.get(SchemaRow, schema.name, with_for_update=True)
            if row is None:
                definition = schema.to_dict()
                s.add(
                    SchemaRow(
                        name=schema.name, cls=schema.cls.value, version=1, definition=definition
                    )
                )
                s.flush()
                s.add(SchemaVersionRow(schema_name=schema.name, version=1, definition=definition))
                return _with_version(schema, 1), "created"
            current = _with_version(Schema.from_dict(row.definition, nss), row.version)
            evolved = current.evolve_to(schema)  # raises SchemaConflictError
            if evolved.version == current.version:
                return current, "unchanged"
            row.definition = evolved.to_dict()
            row.version = evolved.version
            row.updated_at = utcnow()
            s.add(
                SchemaVersionRow(
                    schema_name=schema.name, version=evolved.version, definition=row.definition
                )
            )
            return evolved, "evolved"

    # ------------------------------------------------------------------ datasets
    def add_dataset(self, info: DatasetInfo) -> DatasetInfo:
        """Record a new dataset."""
        with self.session() as s:
            if s.get(SchemaRow, info.schema_name) is None:
                raise NotFoundError(f"no schema named {info.schema_name!r}")
            if s.get(DatasetRow, info.name) is not None:
                raise AlreadyExistsError(f"dataset {info.name!r} already exists")
            row = DatasetRow(
                name=info.name,
                schema_name=info.schema_name,
                profile_enabled=info.profile_enabled,
                table_path=_stored_path(info.table_path, self.lake_root),
                quarantine_path=_stored_path(info.quarantine_path, self.lake_root),
                description=info.description,
                error_threshold=info.error_threshold,
                created_at=info.created_at,
            )
            s.add(row)
            return _dataset_info(row, self.lake_root)

    def get_dataset(self, name: str) -> DatasetInfo:
        """A dataset by name."""
        with self.session() as s:
            row = s.get(DatasetRow, name)
            if row is None:
                raise NotFoundError(f"no dataset named {name!r}")
            return _dataset_info(row, self.lake_root)

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset, by name."""
        with self.session() as s:
            return [
                _dataset_info(r, self.lake_root)
                for r in s.scalars(select(DatasetRow).order_by(DatasetRow.name))
            ]

    # ------------------------------------------------------------------ batches
    def start_batch(
        self,
        dataset: str,
        source: str,
        fmt: str,
        content_hash: str,
        forced: bool,
        schema_version: int,
    ) -> BatchInfo:
        """Record a batch in state ``loading``."""
        with self.session() as s:
            row = BatchRow(
                dataset=dataset,
                source=source,
                format=fmt,
                content_hash=content_hash,
                status="loading",
                forced=forced,
                schema_version=schema_version,
                warnings=[],
            )
            s.add(row)
            s.flush()
            return _batch_info(row)

    def finish_batch(self, batch_id: int, **values: Any) -> BatchInfo:
        """Set a batch's final status and counts."""
        with self.session() as s:
            row = s.get(BatchRow, batch_id)
            if row is None:
                raise NotFoundError(f"no batch {batch_id}")
            for k, v in values.items():
                setattr(row, k, v)
            row.finished_at = values.get("finished_at") or utcnow()
            return _batch_info(row)

    def get_batch(self, batch_id: int) -> BatchInfo:
        """A batch by id."""
        with self.session() as s:
            row = s.get(BatchRow, batch_id)
            if row is None:
                raise NotFoundError(f"no batch {batch_id}")
            return _batch_info(row)

    def list_batches(
        self, dataset: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[BatchInfo]:
        """Batches, newest first."""
        q = select(BatchRow).order_by(BatchRow.id.desc())
        if dataset is not None:
            q = q.where(BatchRow.dataset == dataset)
        if status is not None:
            q = q.where(BatchRow.status == status)
        if limit is not None:
            q = q.limit(limit)
        with self.session() as s:
            return [_batch_info(r) for r in s.scalars(q)]

    def find_loaded(self, dataset: str, content_hash: str) -> BatchInfo | None:
        """The successful batch that already loaded this content into the dataset, if any."""
        q = (
            select(BatchRow)
            .where(BatchRow.dataset == dataset, BatchRow.content_hash == content_hash)
            .where(BatchRow.status == "success")
            .order_by(BatchRow.id)
            .limit(1)
        )
        with self.session() as s:
            row = s.scalars(q).first()
            return None if row is None else _batch_info(row)

    # ------------------------------------------------------------------ builds
    def start_build(self, kind: str, mode: str) -> BuildInfo:
        """Record a build as running."""
        with self.session() as s:
            row = BuildRow(kind=kind, mode=mode, status="running", watermark={}, stats={})
            s.add(row)
            s.flush()
            return _build_info(row)

    def finish_build(self, build_id: int, **values: Any) -> BuildInfo:
        """Set a build's status, watermark and figures."""
        with self.session() as s:
            row = s.get(BuildRow, build_id)
            if row is None:
                raise NotFoundError(f"no build {build_id}")
            for k, v in values.items():
                setattr(row, k, v)
            row.finished_at = utcnow()
            return _build_info(row)

    def last_build(
        self, kind: str, mode: str | None = None, status: str = "success"
    ) -> BuildInfo | None:
        """The latest build of a kind (and mode) with the given status."""
        q = select(BuildRow).where(BuildRow.kind == kind, BuildRow.status == status)
        if mode is not None:
            q = q.where(BuildRow.mode == mode)
        with self.session() as s:
            row = s.scalars(q.order_by(BuildRow.id.desc()).limit(1)).first()
            return None if row is None else _build_info(row)

    def list_builds(self, kind: str | None = None, limit: int = 50) -> list[BuildInfo]:
        """Builds, newest first."""
        q = select(BuildRow).order_by(BuildRow.id.desc()).limit(limit)
        if kind is not None:
            q = q.where(BuildRow.kind == kind)
        with self.session() as s:
            return [_build_info(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ segments
    def put_segment(
        self, name: str, definition: dict[str, Any], method: str, reason: str, description: str
    ) -> tuple[SegmentInfo, str]:
        """Add or update a segment; returns it and ``added`` / ``updated`` / ``unchanged``."""
        with self.session() as s:
            row = s.get(SegmentRow, name)
            if row is None:
                row = SegmentRow(
                    name=name,
                    version=1,
                    definition=definition,
                    description=description,
                    method=method,
                    reason=reason,
                )
                s.add(row)
                s.flush()
                return _segment_info(row), "added"
            if row.definition == definition and row.method == method and row.reason == reason:
                return _segment_info(row), "unchanged"
            if row.definition != definition:
                row.version += 1
            row.definition = definition
            row.description = description
            row.method = method
            row.reason = reason
            row.updated_at = utcnow()
            return _segment_info(row), "updated"

    def get_segment(self, name: str) -> SegmentInfo:
        """A segment by name."""
        with self.session() as s:
            row = s.get(SegmentRow, name)
            if row is None:
                raise NotFoundError(f"no segment named {name!r}")
            return _segment_info(row)

    def list_segments(self) -> list[SegmentInfo]:
        """All segments by name."""
        with self.session() as s:
            return [
                _segment_info(r) for r in s.scalars(select(SegmentRow).order_by(SegmentRow.name))
            ]

    def delete_segment(self, name: str) -> None:
        """Remove a segment definition (its history stays)."""
        with self.session() as s:
            row = s.get(SegmentRow, name)
            if row is None:
                raise NotFoundError(f"no segment named {name!r}")
            s.delete(row)

    def start_segment_run(self, as_of: dt.datetime, segments: list[str]) -> SegmentRunInfo:
        """Record a segment job as running."""
        with self.session() as s:
            row = SegmentRunRow(as_of=as_of, status="running", segments=segments, stats={})
            s.add(row)
            s.flush()
            return _segment_run_info(row)

    def finish_segment_run(
        self, run_id: int, results: list[dict[str, Any]] | None = None, **values: Any
    ) -> SegmentRunInfo:
        """Close a segment job (status, figures) and store its per-segment results."""
        with self.session() as s:
            row = s.get(SegmentRunRow, run_id)
            if row is None:
                raise NotFoundError(f"no segment run {run_id}")
            for k, v in values.items():
                setattr(row, k, v)
            row.finished_at = utcnow()
            for r in results or []:
                s.add(SegmentResultRow(run_id=run_id, as_of=row.as_of, **r))
            return _segment_run_info(row)

    def get_segment_run(self, run_id: int) -> SegmentRunInfo:
        """A segment job by id."""
        with self.session() as s:
            row = s.get(SegmentRunRow, run_id)
            if row is None:
                raise NotFoundError(f"no segment run {run_id}")
            return _segment_run_info(row)

    def list_segment_runs(self, status: str | None = None, limit: int = 50) -> list[SegmentRunInfo]:
        """Segment jobs, newest first."""
        q = select(SegmentRunRow).order_by(SegmentRunRow.id.desc()).limit(limit)
        if status is not None:
            q = q.where(SegmentRunRow.status == status)
        with self.session() as s:
            return [_segment_run_info(r) for r in s.scalars(q)]

    def segment_results(
        self, segment: str | None = None, run_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Per-segment figures of successful runs, oldest first."""
        q = (
            select(SegmentResultRow)
            .join(SegmentRunRow, SegmentRunRow.id == SegmentResultRow.run_id)
            .where(SegmentRunRow.status == "success")
            .order_by(SegmentResultRow.as_of, SegmentResultRow.run_id)
        )
        if segment is not None:
            q = q.where(SegmentResultRow.segment == segment)
        if run_id is not None:
            q = q.where(SegmentResultRow.run_id == run_id)
        cols = (
            "run_id",
            "segment",
            "as_of",
            "version",
            "method",
            "size",
            "realized",
            "existing",
            "exited",
        )
        with self.session() as s:
            return [{c: getattr(r, c) for c in cols} for r in s.scalars(q)]

    # ------------------------------------------------------------------ destinations
    def put_destination(self, name: str, type_: str, definition: dict[str, Any]) -> str:
        """Add or update a destination; returns ``added`` / ``updated`` / ``unchanged``."""
        with self.session() as s:
            row = s.get(DestinationRow, name)
            if row is None:
                s.add(DestinationRow(name=name, type=type_, definition=definition))
                return "added"
            if row.definition == definition:
                return "unchanged"
            row.definition = definition
            row.type = type_
            row.version += 1
            row.updated_at = utcnow()
            return "updated"

    def get_destination(self, name: str) -> dict[str, Any]:
        """A destination's stored definition."""
        with self.session() as s:
            row = s.get(DestinationRow, name)
            if row is None:
                raise NotFoundError(f"no destination named {name!r}")
            return dict(row.definition)

    def list_destinations(self) -> list[tuple[str, str, int, dict[str, Any]]]:
        """(name, type, version, definition) of every destination."""
        with self.session() as s:
            rows = s.scalars(select(DestinationRow).order_by(DestinationRow.name))
            return [(r.name, r.type, r.version, dict(r.definition)) for r in rows]

    def delete_destination(self, name: str) -> None:
        """Remove a destination (its activations stay)."""
        with self.session() as s:
            row = s.get(DestinationRow, name)
            if row is None:
                raise NotFoundError(f"no destination named {name!r}")
            s.delete(row)

    def start_activation(
        self, destination: str, segment: str, as_of: dt.datetime, mode: str, run_id: int | None
    ) -> int:
        """Record an activation as running; returns its id."""
        with self.session() as s:
            row = ActivationRow(
                destination=destination,
                segment=segment,
                as_of=as_of,
                mode=mode,
                status="running",
                segment_run_id=run_id,
                counts={},
                files=[],
            )
            s.add(row)
            s.flush()
            return row.id

    def finish_activation(self, activation_id: int, **values: Any) -> ActivationInfo:
        """Close an activation with its status, counts, files, manifest or error."""
        with self.session() as s:
            row = s.get(ActivationRow, activation_id)
            if row is None:
                raise NotFoundError(f"no activation {activation_id}")
            for k, v in values.items():
                setattr(row, k, v)
            row.finished_at = utcnow()
            return _activation_info(row)

    def list_activations(
        self,
        destination: str | None = None,
        segment: str | None = None,
        status: str | None = None,
        as_of: dt.datetime | None = None,
        limit: int = 50,
    ) -> list[ActivationInfo]:
        """Activations, newest first."""
        q = select(ActivationRow).order_by(ActivationRow.id.desc()).limit(limit)
        if destination is not None:
            q = q.where(ActivationRow.destination == destination)
        if segment is not None:
            q = q.where(ActivationRow.segment == segment)
        if status is not None:
            q = q.where(ActivationRow.status == status)
        if as_of is not None:
            q = q.where(ActivationRow.as_of == as_of)
        with self.session() as s:
            return [_activation_info(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ streaming deliveries
    def get_activation(self, activation_id: int) -> ActivationInfo:
        """One activation by id."""
        with self.session() as s:
            row = s.get(ActivationRow, activation_id)
            if row is None:
                raise NotFoundError(f"no activation {activation_id}")
            return _activation_info(row)

    def get_audience_sync(self, destination: str, segment: str) -> AudienceSyncInfo | None:
        """The confirmed sync of a segment with an audience manager, if any."""
        with self.session() as s:
            row = s.scalars(
                select(AudienceSyncRow).where(
                    AudienceSyncRow.destination == destination, AudienceSyncRow.segment == segment
                )
            ).first()
            return None if row is None else _audience_sync_info(row)

    def confirm_audience_sync(
        self, destination: str, segment: str, remote_id: str, segment_version: int
    ) -> AudienceSyncInfo:
        """Record that the audience manager confirmed a segment (version); a new remote id
        starts its membership history over (the next push sends every member)."""
        now = utcnow()
        with self.session() as s:
            row = s.scalars(
                select(AudienceSyncRow).where(
                    AudienceSyncRow.destination == destination, AudienceSyncRow.segment == segment
                )
            ).first()
            if row is None:
                row = AudienceSyncRow(destination=destination, segment=segment)
                s.add(row)
            if row.remote_id != remote_id:
                row.memberships_run_id = None
            row.remote_id = remote_id
            row.segment_version = segment_version
            row.confirmed_at = now
            row.updated_at = now
            s.flush()
            return _audience_sync_info(row)

    def set_audience_sync_run(self, destination: str, segment: str, run_id: int) -> None:
        """The segment run whose memberships the audience manager has now received."""
        with self.session() as s:
            row = s.scalars(
                select(AudienceSyncRow).where(
                    AudienceSyncRow.destination == destination, AudienceSyncRow.segment == segment
                )
            ).first()
            if row is None:
                raise NotFoundError(f"segment {segment!r} is not synced to {destination!r}")
            row.memberships_run_id = run_id
            row.updated_at = utcnow()

    def list_audience_syncs(self, destination: str | None = None) -> list[AudienceSyncInfo]:
        """Confirmed audience-manager syncs, by destination and segment."""
        q = select(AudienceSyncRow).order_by(AudienceSyncRow.destination, AudienceSyncRow.segment)
        if destination is not None:
            q = q.where(AudienceSyncRow.destination == destination)
        with self.session() as s:
            return [_audience_sync_info(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ table versions
    def record_version(
        self, table_name: str, version: int, operation: str, rows: int, batch_id: int | None
    ) -> None:
        """Remember what a lake commit holds."""
        with self.session() as s:
            exists = s.scalars(
                select(TableVersionRow).where(
                    TableVersionRow.table_name == table_name, TableVersionRow.version == version
                )
            ).first()
            if exists is None:
                s.add(
                    TableVersionRow(
                        table_name=table_name,
                        version=version,
                        operation=operation,
                        rows=rows,
                        batch_id=batch_id,
                    )
                )

    def table_versions(
        self, table_name: str
    ) -> list[tuple[int, str, int, int | None, dt.datetime]]:
        """(version, operation, rows, batch_id, committed_at) of a lake table, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(TableVersionRow)
                .where(TableVersionRow.table_name == table_name)
                .order_by(TableVersionRow.version)
            )
            return [(r.version, r.operation, r.rows, r.batch_id, r.committed_at) for r in rows]


def _ns_row(ns: Namespace, builtin: bool) -> NamespaceRow:
    return NamespaceRow(
        name=ns.name,
        kind=ns.kind.value,
        normalizer=ns.normalizer.value,
        unique=ns.unique,
        priority=ns.priority,
        description=ns.description,
        builtin=builtin,
    )


def _ns_from_row(r: NamespaceRow) -> Namespace:
    return Namespace.from_dict(
        {
            "name": r.name,
            "kind": r.kind,
            "normalizer": r.normalizer,
            "unique": r.unique,
            "priority": r.priority,
            "description": r.description,
        }
    )


def _with_version(schema: Schema, version: int) -> Schema:
    from dataclasses import replace

    return replace(schema, version=version)


__all__ = [
    "ActivationInfo",
    "AudienceSyncInfo",
    "BatchInfo",
    "BuildInfo",
    "Catalog",
    "DatasetInfo",
    "SegmentInfo",
    "SegmentRunInfo",
]
