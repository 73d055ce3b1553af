"""The workspace: the one entry object (catalog + lake + engine) for notebooks, jobs, the CLI.

ws = Workspace.create("data/workspace")      # or Workspace.open(...)
ws.schemas.add("schemas/crm_customer.yaml")
ws.datasets.create("crm_customers", schema="crm_customer", profile_enabled=True)
ws.ingest("crm_customers", "crm_customers.csv")
ws.sql("select count(*) from crm_customers")
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from workbench.activation.service import Activation
from workbench.catalog.apikeys import ApiKeys
from workbench.catalog.store import BatchInfo, Catalog, DatasetInfo
from workbench.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    Problem,
    ValidationError,
)
from workbench.identity.graph import IdentityGraph
from workbench.ingest.batch import QUARANTINE_SCHEMA, Ingestor
from workbench.ingest.validate import arrow_schema
from workbench.jobs.runner import Jobs
from workbench.lake.delta import Lake
from workbench.lake.engine import DuckDBEngine, Engine
from workbench.profile.profiles import Profiles
from workbench.schema.model import Schema, load_schemas
from workbench.schema.namespaces import Namespace
from workbench.segments.service import Segments
from workbench.settings import SETTINGS_FILE, WorkspaceSettings

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Workspace:
    """A workspace: its settings, catalog, lake and engine, and one sub-object per area."""

    def __init__(self, path: Path, settings: WorkspaceSettings, catalog: Catalog) -> None:
        self.path = path
        self.settings = settings
        self.catalog = catalog
        self.lake = Lake(path / "lake")
        self._engine: Engine | None = None
        self.schemas = Schemas(self)
        self.datasets = Datasets(self)
        self.ingest = Ingestor(self)
        self.identity = IdentityGraph(self)
        self.profiles = Profiles(self)
        self.segments = Segments(self)
        self.activation = Activation(self)
        self.jobs = Jobs(self)
        self.apikeys = ApiKeys(self)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        settings: WorkspaceSettings | None = None,
        catalog_url: str | None = None,
        exist_ok: bool = False,
    ) -> Workspace:
        """Create a workspace folder with its catalog and lake (``exist_ok`` opens it instead)."""
        p = Path(path).expanduser().resolve()
        if (p / SETTINGS_FILE).exists():
            if exist_ok:
                return cls.open(p)
            raise AlreadyExistsError(f"{p} is already a workspace")
        if p.exists() and any(p.iterdir()):
            raise ConfigError(f"{p} exists and is not empty; choose an empty folder")
        s = settings or WorkspaceSettings(name=p.name)
        if catalog_url is not None:
            s.catalog_url = catalog_url
        p.mkdir(parents=True, exist_ok=True)
        for sub in ("lake", "runs", "exports"):
            (p / sub).mkdir(exist_ok=True)
        catalog = Catalog(s.resolved_catalog_url(p), lake_root=p / "lake")
        catalog.initialize()
        s.save(p)
        log.info("created workspace %s (catalog: %s)", p, catalog.backend)
        return cls(p, s, catalog)

    @classmethod
    def open(cls, path: str | Path) -> Workspace:
        """Open an existing workspace."""
        p = Path(path).expanduser().resolve()
        s = WorkspaceSettings.load(p)
        catalog = Catalog(s.resolved_catalog_url(p), lake_root=p / "lake")
        catalog.initialize()  # idempotent: creates tables added by newer versions
        catalog.check()
        return cls(p, s, catalog)

    def close(self) -> None:
        """Release the engine and the catalog connections."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self.catalog.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}, catalog={self.catalog.backend})"

    @property
    def engine(self) -> Engine:
        """The query engine (DuckDB in-process), started on first use."""
        if self._engine is None:
            self._engine = DuckDBEngine(threads=self.settings.threads or None)
        return self._engine

    # ------------------------------------------------------------------ namespaces
    def namespaces(self) -> list[Namespace]:
        """Identity namespaces, highest priority first."""
        return self.catalog.namespaces()

    def add_namespace(self, namespace: Namespace | dict[str, Any]) -> Namespace:
        """Register a custom identity namespace."""
        ns = namespace if isinstance(namespace, Namespace) else Namespace.from_dict(namespace)
        return self.catalog.add_namespace(ns)

    # ------------------------------------------------------------------ queries
    def sql(self, query: str) -> pa.Table:
        """Run SQL over the latest snapshot of every dataset (each dataset is a view)."""
        engine = self.engine
        names = []
        for d in self.catalog.list_datasets():
            if self.lake.exists(d.table_path):
                engine.register(d.name, self.lake.snapshot(d.table_path))
                names.append(d.name)
        try:
            return engine.query(query)
        finally:
            for n in names:
                engine.unregister(n)

    def batches(self, dataset: str | None = None, limit: int | None = None) -> list[BatchInfo]:
        """Ingestion batches, newest first."""
        return self.catalog.list_batches(dataset, limit=limit)


class Schemas:
    """Schemas of a workspace (``ws.schemas``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def add(self, schema: Schema | dict[str, Any] | str | Path) -> Schema:
        """Register a schema (object, dict or YAML path) or evolve a registered one.

        Adding optional fields is allowed; removing or retyping a field raises
        :class:`~workbench.errors.SchemaConflictError` naming the field.
        """
        return self.register(schema)[0]

    def register(self, schema: Schema | dict[str, Any] | str | Path) -> tuple[Schema, str]:
        """Like :meth:`add`, and say what happened: ``created``, ``evolved`` or ``unchanged``."""
        nss = self._ws.catalog.namespaces()
        if isinstance(schema, str | Path):
            sch = Schema.from_yaml(schema, nss)
        elif isinstance(schema, dict):
            sch = Schema.from_dict(schema, nss)
        else:
            sch = schema
        stored, action = self._ws.catalog.put_schema(sch)
        log.info("schema %s %s (version %d)", stored.name, action, stored.version)
        return stored, action

    def add_all(self, paths: Iterable[str | Path]) -> list[Schema]:
        """Register every schema in the given YAML files or folders."""
        return [self.add(s) for s in load_schemas(paths, self._ws.catalog.namespaces())]

    def get(self, name: str) -> Schema:
        """A schema by name (current version)."""
        return self._ws.catalog.get_schema(name)

    def list(self) -> list[Schema]:
        """All schemas."""
        return self._ws.catalog.list_schemas()

    def history(self, name: str) -> list[tuple[int, dt.datetime, dict[str, Any]]]:
        """Every version of a schema."""
        return self._ws.catalog.schema_history(name)


class Datasets:
    """Datasets of a workspace (``ws.datasets``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def create(
        self,
        name: str,
        schema: str,
        *,
        profile_enabled: bool = False,
        description: str = "",
        error_threshold: float | None = None,
        exist_ok: bool = False,
    ) -> DatasetInfo:
        """Create a dataset bound to a registered schema, stored as a Delta table."""
        ws = self._ws
        problems = []
        if not _NAME_RE.match(name):
            problems.append(Problem("name", f"{name!r} is not a valid dataset name (a-z, 0-9, _)"))
        if error_threshold is not None and not 0 <= error_threshold <= 1:
            problems.append(Problem("error_threshold", "must be between 0 and 1"))
        if problems:
            raise ValidationError(f"dataset {name!r}", problems)
        if exist_ok:
            try:
                existing = ws.catalog.get_dataset(name)
            except NotFoundError:
                pass
            else:
                if existing.schema_name != schema:
                    raise AlreadyExistsError(
                        f"dataset {name!r} exists with schema {existing.schema_name!r}, not {schema!r}"
                    )
                return existing
        sch = ws.catalog.get_schema(schema)
        info = DatasetInfo(
            name=name,
            schema_name=sch.name,
            profile_enabled=profile_enabled,
            table_path=ws.lake.path("datasets", name),
            quarantine_path=ws.lake.path("quarantine", name),
            description=description,
            error_threshold=error_threshold,
            created_at=dt.datetime.now(dt.UTC),
        )
        info = ws.catalog.add_dataset(info)
        version = ws.lake.create(info.table_path, arrow_schema(sch), name, description)
        ws.catalog.record_version(f"dataset/{name}", version, "create", 0, None)
        log.info("dataset %s created (schema %s)", name, sch.name)
        return info

    def get(self, name: str) -> DatasetInfo:
        """A dataset by name."""
        return self._ws.catalog.get_dataset(name)

    def list(self) -> list[DatasetInfo]:
        """All datasets."""
        return self._ws.catalog.list_datasets()

    def snapshot(self, name: str, version: int | None = None) -> pads.Dataset:
        """A consistent Arrow dataset of the table (latest, or ``version``)."""
        return self._ws.lake.snapshot(self.get(name).table_path, version)

    def to_arrow(self, name: str, version: int | None = None) -> pa.Table:
        """The whole table as Arrow."""
        return self.snapshot(name, version).to_table()

    def to_pandas(self, name: str, version: int | None = None) -> Any:
        """The whole table as a pandas DataFrame."""
        return self.to_arrow(name, version).to_pandas()

    def version(self, name: str) -> int:
        """The latest committed version of the dataset's table."""
        return self._ws.lake.version(self.get(name).table_path)

    def count(self, name: str) -> int:
        """Rows in the latest version."""
        return self.snapshot(name).count_rows()

    def quarantine(self, name: str, batch_id: int | None = None) -> pa.Table:
        """Rejected rows of a dataset (of one batch), with row, field, value and reason."""
        info = self.get(name)
        if not self._ws.lake.exists(info.quarantine_path):
            return QUARANTINE_SCHEMA.empty_table()
        ds = self._ws.lake.snapshot(info.quarantine_path)
        flt = None if batch_id is None else (pads.field("batch_id") == batch_id)
        return ds.to_table(filter=flt).sort_by([("batch_id", "ascending"), ("row", "ascending")])

    def quarantine_summary(self, name: str) -> pa.Table:
        """Rejections per field and reason, most frequent first."""
        q = self.quarantine(name)
        eng = self._ws.engine
        eng.register("__q", q)
        try:
            return eng.query(
                "SELECT field, reason, count(*) AS errors, count(DISTINCT (batch_id, row)) AS rows "
                "FROM __q GROUP BY ALL ORDER BY errors DESC, field"
            )
        finally:
            eng.unregister("__q")

    def preview(self, name: str, limit: int = 10) -> pa.Table:
        """The first ``limit`` rows of the latest version."""
        return self.snapshot(name).head(limit)


__all__ = ["Datasets", "Schemas", "Workspace"]
