"""SQLAlchemy models of the catalog: the transactional metadata of a workspace."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Bumped when the catalog's tables change; stored in ``catalog_meta``.
#: Upgrades only add tables: :meth:`Catalog.initialize` creates the missing ones and bumps
#: the stored version (4 added ``api_keys``).
CATALOG_VERSION = 4


def utcnow() -> dt.datetime:
    """Current time, UTC, timezone-aware (catalog bookkeeping only, never segment logic)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalog models."""


class CatalogMeta(Base):
    """Key/value facts about the catalog itself (its version)."""

    __tablename__ = "catalog_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class NamespaceRow(Base):
    """An identity namespace."""

    __tablename__ = "namespaces"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    normalizer: Mapped[str] = mapped_column(String(16))
    unique: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    description: Mapped[str] = mapped_column(Text, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchemaRow(Base):
    """The current definition of a schema."""

    __tablename__ = "schemas"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    cls: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchemaVersionRow(Base):
    """Every version a schema has had (evolution history)."""

    __tablename__ = "schema_versions"
    __table_args__ = (UniqueConstraint("schema_name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schema_name: Mapped[str] = mapped_column(ForeignKey("schemas.name"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetRow(Base):
    """A stored table bound to a schema."""

    __tablename__ = "datasets"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    schema_name: Mapped[str] = mapped_column(ForeignKey("schemas.name"))
    profile_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    table_path: Mapped[str] = mapped_column(Text)
    quarantine_path: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    error_threshold: Mapped[float | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BatchRow(Base):
    """One ingestion of one file or DataFrame into a dataset."""

    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(ForeignKey("datasets.name"), index=True)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # loading | success | failed
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    errors_recorded: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    table_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    quarantine_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class TableVersionRow(Base):
    """A commit the workbench made to a lake table (what each Delta version holds)."""

    __tablename__ = "table_versions"
    __table_args__ = (UniqueConstraint("table_name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), default=None)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    committed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BuildRow(Base):
    """One identity-graph or profile build, with its watermark and figures."""

    __tablename__ = "builds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # identity | profiles
    mode: Mapped[str] = mapped_column(String(32))  # full | incremental | policy name
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | success | failed
    watermark: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class SegmentRow(Base):
    """The current definition of a segment, with its evaluation method and why."""

    __tablename__ = "segments"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[str] = mapped_column(String(16))  # streaming | batch
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentRunRow(Base):
    """One batch segment job: which segments, at which ``as_of``, how it went."""

    __tablename__ = "segment_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | success | failed
    segments: Mapped[list[str]] = mapped_column(JSON, default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    table_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class SegmentResultRow(Base):
    """One segment's figures in one run (the history of sizes, entries and exits)."""

    __tablename__ = "segment_results"
    __table_args__ = (UniqueConstraint("run_id", "segment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("segment_runs.id"), index=True)
    segment: Mapped[str] = mapped_column(String(63), index=True)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    method: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    realized: Mapped[int] = mapped_column(BigInteger, default=0)
    existing: Mapped[int] = mapped_column(BigInteger, default=0)
    exited: Mapped[int] = mapped_column(BigInteger, default=0)


class DestinationRow(Base):
    """A destination's definition (secrets are never stored: only where they come from)."""

    __tablename__ = "destinations"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActivationRow(Base):
    """One export of one segment to one destination at one ``as_of``."""

    __tablename__ = "activations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(63), index=True)
    segment: Mapped[str] = mapped_column(String(63), index=True)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    mode: Mapped[str] = mapped_column(String(16))  # full | incremental
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | success | failed
    segment_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    manifest: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class AudienceSyncRow(Base):
    """A segment shared with an external audience manager: the remote audience it confirmed,
    for which segment version, and the segment run whose memberships it last received."""

    __tablename__ = "audience_syncs"
    __table_args__ = (UniqueConstraint("destination", "segment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(63), index=True)
    segment: Mapped[str] = mapped_column(String(63))
    remote_id: Mapped[str] = mapped_column(String(255))
    segment_version: Mapped[int] = mapped_column(Integer)
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: None until the first membership push for this remote audience
    memberships_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = [
    "CATALOG_VERSION",
    "ActivationRow",
    "AudienceSyncRow",
    "Base",
    "BatchRow",
    "BuildRow",
    "CatalogMeta",
    "DatasetRow",
    "DestinationRow",
    "NamespaceRow",
    "SchemaRow",
    "SchemaVersionRow",
    "SegmentResultRow",
    "SegmentRow",
    "SegmentRunRow",
    "TableVersionRow",
    "UTCDateTime",
    "utcnow",
]


class JobRunRow(Base):
    """One run of a job notebook (papermill), with its parameters, slot and outcome."""

    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(63), index=True)
    #: the scheduled slot (ISO time) or "manual-<uuid>" for runs started by hand
    slot: Mapped[str] = mapped_column(String(160), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | success | failed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    output: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    failed_cell: Mapped[int | None] = mapped_column(Integer, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


__all__ += ["JobRunRow"]


class ApiKeyRow(Base):
    """An API key of the streaming service. Only the SHA-256 of the token is stored, with
    its first characters to tell keys apart in listings and logs; the token is shown once."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: dataset names the key may use; NULL: every dataset
    datasets: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


__all__ += ["ApiKeyRow"]
