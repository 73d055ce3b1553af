"""Delta Lake tables in the workspace: atomic appends, snapshots, time travel.

Writers commit through the Delta transaction log, so readers always see the last
committed version and a crash mid-write leaves nothing visible (orphan Parquet files
are not in the log). Every commit the workbench makes carries custom metadata
(``workbench.batch_id`` ...) so a crashed run can be reconciled from the log itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from workbench.errors import NotFoundError
from workbench.lake.pipe import pipe

log = logging.getLogger(__name__)

META_PREFIX = "workbench."


class Lake:
    """The workspace's table storage (a folder of Delta tables)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, *parts: str) -> str:
        """Location of a table under the lake root."""
        return str(self.root.joinpath(*parts))

    @staticmethod
    def exists(uri: str) -> bool:
        """Whether a Delta table is at ``uri``."""
        return DeltaTable.is_deltatable(uri)

    def create(self, uri: str, schema: pa.Schema, name: str, description: str = "") -> int:
        """Create an empty table with the given Arrow schema (no-op when it exists)."""
        if self.exists(uri):
            return self.version(uri)
        Path(uri).mkdir(parents=True, exist_ok=True)
        write_deltalake(uri, schema.empty_table(), mode="error", name=name, description=description)
        return 0

    def append(self, uri: str, table: pa.Table, metadata: Mapping[str, Any] | None = None) -> int:
        """Append rows in one atomic commit; returns the new table version."""
        props = CommitProperties(
            custom_metadata={f"{META_PREFIX}{k}": str(v) for k, v in (metadata or {}).items()}
        )
        write_deltalake(uri, table, mode="append", schema_mode="merge", commit_properties=props)
        return self.version(uri)

    @staticmethod
    def table(uri: str, version: int | None = None) -> DeltaTable:
        """The Delta table at ``uri`` (at ``version`` for time travel)."""
        try:
            return DeltaTable(uri, version=version)
        except TableNotFoundError as e:
            raise NotFoundError(f"no lake table at {uri}") from e

    def snapshot(self, uri: str, version: int | None = None) -> pads.Dataset:
        """A consistent Arrow dataset of one table version (the latest by default).

        Local, unpartitioned tables (the workbench's own) are read with pyarrow's own file
        system over the version's file list: deltalake's filesystem bridge can abort the
        interpreter at exit after a filtered scan ("terminate called without an active
        exception"). Files written before a column was added read it as nulls.
        """
        table = self.table(uri, version)
        local = "://" not in uri or uri.startswith("file://")
        if local and not table.metadata().partition_columns:
            schema = pa.schema(table.schema().to_arrow())
            return pads.dataset(table.file_uris(), schema=schema, format="parquet")
        return table.to_pyarrow_dataset()

    def register(self, engine: Any, name: str, uri: str, version: int | None = None) -> None:
        """Make one version of a table queryable in an engine under ``name`` (the engine's
        native Parquet reader over the version's files when the table is local)."""
        ds = self.snapshot(uri, version)
        local = "://" not in uri or uri.startswith("file://")
        files = list(ds.files) if local and isinstance(ds, pads.FileSystemDataset) else []
        if files:
            # a column of the table's schema that no file holds yet (added by a schema
            # evolution, no batch since) must still read as nulls: the Arrow dataset does that
            have: set[str] = set()
            for frag in ds.get_fragments():
                have.update(frag.physical_schema.names)
            if set(ds.schema.names) <= have:
                engine.register_parquet(name, files, ds)
                return
        engine.register(name, ds)

    def query(self, engine: Any, uri: str, sql: str) -> pa.Table:
        """Run ``sql`` against the latest version of one table, which it names ``{t}``.

        The engine's own reader fetches the other columns only for the rows that pass
        a filter: a point query (one profile, one identity) stays fast on big tables.
        """
        name = f"__q_{uuid.uuid4().hex[:12]}"
        self.register(engine, name, uri)
        try:
            return engine.query(sql.replace("{t}", name))
        finally:
            engine.unregister(name)

    def version(self, uri: str) -> int:
        """The latest committed version."""
        return self.table(uri).version()

    def history(self, uri: str) -> list[dict[str, Any]]:
        """Commits, newest first, with their custom metadata."""
        return self.table(uri).history()

    def find_commit(self, uri: str, key: str, value: str) -> dict[str, Any] | None:
        """The commit whose custom metadata ``workbench.<key>`` equals ``value``, if any."""
        if not self.exists(uri):
            return None
        for commit in self.history(uri):
            if str(commit.get(f"{META_PREFIX}{key}")) == value:
                return commit
        return None

    def ensure_columns(self, uri: str, schema: pa.Schema) -> list[str]:
        """Add the columns of ``schema`` the table lacks (schema evolution); returns their names."""
        from deltalake import Schema as DeltaSchema

        table = self.table(uri)
        have = set(table.schema().to_arrow().names)  # type: ignore[attr-defined]
        missing = [f for f in schema if f.name not in have]
        if missing:
            fields = DeltaSchema.from_arrow(pa.schema(missing)).fields
            table.alter.add_columns(fields)
            log.info("table %s: added columns %s", uri, [f.name for f in missing])
        return [f.name for f in missing]

    def overwrite_stream(
        self,
        uri: str,
        batches: Iterator[pa.RecordBatch],
        schema: pa.Schema,
        metadata: Mapping[str, Any] | None = None,
        row_group_rows: int | None = None,
    ) -> int:
        """Replace a table's content with a stream of batches, in one commit.

        The batches are pulled on this thread (an engine stream must stay on the thread
        that started it) and handed to the Delta writer running on another.
        ``row_group_rows`` sets smaller Parquet row groups (finer pruning by statistics
        for a table written in a useful order).
        """
        props = CommitProperties(
            custom_metadata={f"{META_PREFIX}{k}": str(v) for k, v in (metadata or {}).items()}
        )

        def write(feed: Iterator[pa.RecordBatch]) -> None:
            reader = pa.RecordBatchReader.from_batches(schema, feed)
            props_w = (
                WriterProperties(max_row_group_size=row_group_rows) if row_group_rows else None
            )
            write_deltalake(
                uri,
                reader,
                mode="overwrite",
                schema_mode="overwrite",
                commit_properties=props,
                writer_properties=props_w,
            )

        pipe(batches, write, name="delta-writer")
        return self.version(uri)

    def new_file(self, uri: str) -> str:
        """A fresh data-file name in a table's folder (the folder is created), for a writer
        (e.g. the engine's own Parquet writer) whose files :meth:`overwrite_files` commits."""
        Path(uri).mkdir(parents=True, exist_ok=True)
        return os.path.join(uri, f"part-{uuid.uuid4().hex}.parquet")

    def overwrite_files(
        self, uri: str, files: list[str], metadata: Mapping[str, Any] | None = None
    ) -> int:
        """Replace a table's content (and schema) with Parquet files already written in its
        folder, in one commit; returns the new table version.

        Until the commit no reader sees the files; a crash leaves unreferenced files only.
        The schema is the first file's (every column nullable, as the Delta writer makes it).
        """
        from deltalake.transaction import AddAction

        first = pq.read_schema(files[0])
        schema = pa.schema([f.with_nullable(True) for f in first])
        now = int(time.time() * 1000)
        actions = []
        for f in files:
            rows = pq.read_metadata(f).num_rows
            actions.append(
                AddAction(
                    path=os.path.relpath(f, uri),
                    size=os.path.getsize(f),
                    partition_values={},
                    modification_time=now,
                    data_change=True,
                    stats=json.dumps({"numRecords": rows}),
                )
            )
        props = CommitProperties(
            custom_metadata={f"{META_PREFIX}{k}": str(v) for k, v in (metadata or {}).items()}
        )
        if not self.exists(uri):
            DeltaTable.create(uri, schema, mode="ignore")
        table = DeltaTable(uri)
        table.create_write_transaction(actions, "overwrite", schema, commit_properties=props)
        table.update_incremental()
        return table.version()

    def stage(self, uri: str, schema: pa.Schema, rows_per_file: int = 4_000_000) -> StagedWrite:
        """Start writing data files for one append that becomes visible only on ``commit``."""
        return StagedWrite(uri, schema, rows_per_file)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive cross-process lock (one writer per table at a time)."""
        d = self.root / "_locks"
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class StagedWrite:
    """Parquet files written into a table's folder, then added in one Delta commit.

    Until :meth:`commit` the files are not in the transaction log, so no reader sees them;
    :meth:`abort` (or a crash) leaves at most unreferenced files, which a vacuum removes.
    Writing batch by batch keeps memory bounded whatever the input size.
    """

    def __init__(self, uri: str, schema: pa.Schema, rows_per_file: int) -> None:
        self.uri = uri
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.rows = 0
        self._files: list[tuple[str, int]] = []  # (relative path, rows)
        self._writer: pq.ParquetWriter | None = None
        self._current: str | None = None
        self._current_rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows (already in the table's schema)."""
        if batch.num_rows == 0:
            return
        if self._writer is None:
            self._current = f"part-{uuid.uuid4().hex}.zstd.parquet"
            self._writer = pq.ParquetWriter(
                os.path.join(self.uri, self._current),
                self.schema,
                compression="zstd",
                compression_level=1,
                write_statistics=True,
            )
            self._current_rows = 0
        if isinstance(batch, pa.RecordBatch):
            self._writer.write_batch(batch, row_group_size=1 << 20)
        else:
            self._writer.write_table(batch, row_group_size=1 << 20)
        self._current_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._current_rows >= self.rows_per_file:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None and self._current is not None:
            self._writer.close()
            self._files.append((self._current, self._current_rows))
        self._writer = None
        self._current = None

    def commit(self, metadata: Mapping[str, Any] | None = None) -> int:
        """Add every written file in one commit; returns the new table version."""
        from deltalake.transaction import AddAction

        self._close_file()
        now = int(time.time() * 1000)
        actions = [
            AddAction(
                path=path,
                size=os.path.getsize(os.path.join(self.uri, path)),
                partition_values={},
                modification_time=now,
                data_change=True,
                stats=json.dumps({"numRecords": rows}),
            )
            for path, rows in self._files
        ]
        props = CommitProperties(
            custom_metadata={f"{META_PREFIX}{k}": str(v) for k, v in (metadata or {}).items()}
        )
        table = DeltaTable(self.uri)
        table.create_write_transaction(actions, "append", self.schema, commit_properties=props)
        table.update_incremental()
        return table.version()

    def abort(self) -> None:
        """Delete the files written so far (nothing was committed)."""
        self._close_file()
        for path, _ in self._files:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.uri, path))
        self._files.clear()


__all__ = ["Lake", "StagedWrite"]
