"""Delta Lake tables in the workspace: atomic appends, snapshots, time travel.

Writers commit through the Delta transaction log, so readers always see the last
committed version and a crash mid-write leaves nothing visible (orphan Parquet files
are not in the log). Every commit the workbench makes carries custom metadata
(``workbench.batch_id`` ...) so a crashed run can be reconciled from the log itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from workbench.errors import NotFoundError

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
        """A consistent Arrow dataset of one table version (the latest by default)."""
        return self.table(uri, version).to_pyarrow_dataset()

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


__all__ = ["Lake"]
