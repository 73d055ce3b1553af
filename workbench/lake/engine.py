"""The engine interface: a few hooks, DuckDB by default.

Core methods are final and shared; a backend fills in the hooks (execute, fetch Arrow,
register a table). Errors are re-raised as :class:`EngineError` with the failing SQL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, final

import duckdb
import pyarrow as pa

from workbench.errors import EngineError
from workbench.lake.sql import ident, lit

log = logging.getLogger(__name__)


class Engine(ABC):
    """A query engine the workbench runs its SQL on."""

    name: str = "abstract"
    dialect: str = "duckdb"

    @final
    def query(self, sql: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""
        try:
            return self._fetch_arrow(sql)
        except Exception as e:
            raise EngineError(f"{self.name} query failed: {e}", sql) from e

    @final
    def execute(self, sql: str) -> None:
        """Run a statement with no result."""
        try:
            self._execute(sql)
        except Exception as e:
            raise EngineError(f"{self.name} statement failed: {e}", sql) from e

    @final
    def scalar(self, sql: str) -> Any:
        """Run a query and return the first column of its first row."""
        t = self.query(sql)
        return t.column(0)[0].as_py() if t.num_rows else None

    @abstractmethod
    def _execute(self, sql: str) -> None: ...

    @abstractmethod
    def _fetch_arrow(self, sql: str) -> pa.Table: ...

    @abstractmethod
    def stream(self, sql: str, batch_size: int = 1 << 17) -> Iterator[pa.RecordBatch]:
        """Run a query and yield its result in Arrow record batches."""

    @abstractmethod
    def register(self, name: str, data: Any) -> None:
        """Make an Arrow table / dataset / DataFrame queryable under ``name``."""

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Forget a registered name."""

    @abstractmethod
    def register_sql(self, name: str, sql: str) -> None:
        """Make the result of a query (e.g. a file scan) queryable under ``name``, lazily."""

    def register_parquet(self, name: str, files: list[str], fallback: Any = None) -> None:
        """Make Parquet files (a lake table version's file list) queryable under ``name``.

        The default registers ``fallback`` (an Arrow dataset of the same files); engines
        with a native Parquet reader scan the files themselves (projection, row-group
        pruning by statistics, parallel decoding).
        """
        self.register(name, fallback)

    @abstractmethod
    def close(self) -> None:
        """Release resources."""


class DuckDBEngine(Engine):
    """DuckDB in-process; built-in extensions only (nothing is downloaded at run time)."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self._con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        self._lock = threading.RLock()
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(
            "SET enable_progress_bar = false"
        )  # no progress bars in logs and notebooks
        n = threads or int(os.environ.get("WORKBENCH_THREADS", "0")) or os.cpu_count() or 2
        self._con.execute(f"SET threads = {int(n)}")
        if memory_limit:
            self._con.execute(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'")
        self._register_functions()
        # close the connection before the interpreter tears down (also when the workspace is
        # never closed): destroying DuckDB during shutdown, beside pyarrow's and Delta's
        # thread pools, aborts the process ("terminate called without an active exception")
        self._finalizer = weakref.finalize(self, _close_quietly, self._con)

    def _register_functions(self) -> None:
        """The workbench's own SQL functions (vectorized Arrow UDFs)."""
        from workbench.schema.normalize import phone_udf

        self._con.create_function(
            "wb_phone_e164",
            phone_udf,
            ["VARCHAR", "VARCHAR"],
            "VARCHAR",
            type="arrow",
            null_handling="special",
            side_effects=False,
        )

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The raw DuckDB connection (for the engine layer and tests)."""
        return self._con

    def _execute(self, sql: str) -> None:
        with self._lock:
            self._con.execute(sql)

    def _fetch_arrow(self, sql: str) -> pa.Table:
        with self._lock:
            rel = self._con.sql(sql)
            if rel is None:  # a statement without a result
                return pa.table({})
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    def stream(self, sql: str, batch_size: int = 1 << 17) -> Iterator[pa.RecordBatch]:
        """Run a query and yield its result in Arrow record batches (bounded memory)."""
        with self._lock:
            try:
                reader = self._con.sql(sql).to_arrow_reader(batch_size)
            except Exception as e:
                raise EngineError(f"{self.name} query failed: {e}", sql) from e
            try:
                yield from reader
            except duckdb.Error as e:
                raise EngineError(f"{self.name} query failed: {e}", sql) from e

    def register(self, name: str, data: Any) -> None:
        with self._lock:
            self._con.register(name, data)

    def register_sql(self, name: str, sql: str) -> None:
        self.execute(f"CREATE OR REPLACE TEMP VIEW {ident(name)} AS {sql}")

    def register_parquet(self, name: str, files: list[str], fallback: Any = None) -> None:
        if not files:  # an empty table version: nothing for read_parquet to infer from
            self.register(name, fallback)
            return
        paths = ", ".join(lit(f) for f in files)
        self.register_sql(name, f"SELECT * FROM read_parquet([{paths}], union_by_name = true)")

    def unregister(self, name: str) -> None:
        with self._lock, contextlib.suppress(duckdb.Error):
            self._con.execute(f"DROP VIEW IF EXISTS {ident(name)}")
        with self._lock, contextlib.suppress(duckdb.Error):  # unknown name: nothing to forget
            self._con.unregister(name)

    def close(self) -> None:
        self._finalizer.detach()
        with self._lock:
            self._con.close()


def _close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(Exception):
        con.close()


__all__ = ["DuckDBEngine", "Engine"]
