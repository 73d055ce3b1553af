"""Reading sources (CSV, Parquet, JSON Lines, DataFrames) into Arrow with row numbers.

Every reader returns a :class:`SourceData`: the raw columns, the 1-based source row
number of each row (header not counted), the content hash that refuses duplicates, and
the rows that could not be parsed at all (kept, with their text, for the quarantine).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workbench.errors import InputError
from workbench.lake.sql import lit

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet", "jsonl", "dataframe")
_EXT = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
#: The column holding each row's 1-based source row number.
ROW_COLUMN = "__row"
#: A byte that cannot appear unescaped in a JSON text: splits JSON Lines into whole lines.
_NO_JSON_DELIM = "\x1f"


@dataclass
class Unparsable:
    """A source row that could not be parsed into columns."""

    row: int
    text: str
    reason: str


@dataclass
class SourceData:
    """What a reader produced."""

    name: str
    format: str
    table: pa.Table | None  # in memory (CSV, JSON Lines, DataFrames) ...
    rows: np.ndarray | None  # int64 source row numbers, aligned with ``table``
    content_hash: str
    unparsable: list[Unparsable] = field(default_factory=list)
    json_lines: bool = False  # table holds one ``__line`` column of raw JSON text
    scan_sql: str | None = None  # ... or scanned lazily by the engine (Parquet), with __row
    scan_schema: pa.Schema | None = None
    scan_rows: int = 0

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the source columns."""
        if self.table is not None:
            return self.table.schema
        assert self.scan_schema is not None
        return self.scan_schema

    @property
    def column_names(self) -> list[str]:
        """Source column names."""
        return [n for n in self.schema.names if n != ROW_COLUMN]

    @property
    def rows_read(self) -> int:
        """Every row the source holds, parsable or not."""
        n = self.table.num_rows if self.table is not None else self.scan_rows
        return n + len(self.unparsable)


def detect_format(path: Path, fmt: str | None) -> str:
    """The format from ``fmt`` or the file extension (``.csv.gz`` counts as csv)."""
    if fmt:
        f = fmt.lower().replace("json-lines", "jsonl").replace("ndjson", "jsonl")
        if f not in FORMATS:
            raise InputError(str(path), f"unknown format {fmt!r} (csv, parquet, jsonl)")
        return f
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXT:
        return _EXT[suffixes[-1]]
    raise InputError(str(path), "cannot tell the format from the file name; pass format=")


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_source(source: Any, fmt: str | None = None, delimiter: str = ",") -> SourceData:
    """Read a path or a DataFrame (pandas, polars, Arrow) into :class:`SourceData`."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InputError(str(path), "file not found")
        if not path.is_file():
            raise InputError(str(path), "not a file")
        f = detect_format(path, fmt)
        digest = file_hash(path)
        if f == "csv":
            return _read_csv(path, digest, delimiter)
        if f == "parquet":
            return _read_parquet(path, digest)
        return _read_jsonl(path, digest)
    return _read_frame(source)


def _read_csv(path: Path, digest: str, delimiter: str) -> SourceData:
    name = str(path)
    try:
        opener = _open_text(path)
        with opener as fh:
            header = next(csv.reader(fh, delimiter=delimiter), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(name, f"unreadable file: {e}") from e
    if not header:
        raise InputError(name, "empty file: no header row")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(name, f"bad header: duplicate column(s) {', '.join(dupes)}")
    bad: list[Any] = []

    def handler(row: Any) -> str:
        bad.append(row)
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=handler, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        table = read(True)
        if bad:  # row numbers of bad rows are only known to the single-threaded parser
            bad.clear()
            table = read(False)
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as e:
        raise InputError(name, f"unreadable file: {e}") from e
    table = table.rename_columns(header)
    unparsable = [
        Unparsable(
            row=int(b.number) - 1,
            text=str(b.text),
            reason=(
                f"unparsable row: expected {b.expected_columns} fields, found {b.actual_columns}"
            ),
        )
        for b in bad
    ]
    total = table.num_rows + len(unparsable)
    rows = np.arange(1, total + 1, dtype=np.int64)
    if unparsable:
        rows = np.setdiff1d(rows, np.array([u.row for u in unparsable], dtype=np.int64))
    return SourceData(name, "csv", table, rows, digest, unparsable)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return path.open("r", encoding="utf-8", newline="")  # type: ignore[return-value]


def _read_parquet(path: Path, digest: str) -> SourceData:
    """Parquet is not loaded: the engine scans it (with its row numbers) inside the query."""
    try:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        n = meta.metadata.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(str(path), f"unreadable Parquet file: {e}") from e
    if ROW_COLUMN in schema.names or "file_row_number" in schema.names:
        table = pq.read_table(path)  # reserved names: fall back to an in-memory read
        return SourceData(str(path), "parquet", table, np.arange(1, n + 1, dtype=np.int64), digest)
    scan = (
        f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {ROW_COLUMN} "
        f"FROM read_parquet({lit(str(path.resolve()))}, file_row_number = true)"
    )
    return SourceData(
        str(path), "parquet", None, None, digest, scan_sql=scan, scan_schema=schema, scan_rows=n
    )


def _read_jsonl(path: Path, digest: str) -> SourceData:
    """JSON Lines as raw text lines; the validator parses them in SQL (bad lines are kept)."""
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["__line"], block_size=16 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=_NO_JSON_DELIM, quote_char=False, escape_char=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={"__line": pa.string()}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as e:
        raise InputError(str(path), f"unreadable file: {e}") from e
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return SourceData(str(path), "jsonl", table, rows, digest, json_lines=True)


def _read_frame(frame: Any) -> SourceData:
    if isinstance(frame, pa.Table):
        table = frame
    elif hasattr(frame, "to_arrow") and not hasattr(frame, "to_records"):  # polars
        table = frame.to_arrow()
    else:
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - pandas is a dependency
            raise InputError("DataFrame", "pandas is required") from e
        if not isinstance(frame, pd.DataFrame):
            raise InputError(repr(type(frame)), "not a file path or a DataFrame")
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InputError("DataFrame", f"cannot convert to Arrow: {e}") from e
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return SourceData("DataFrame", "dataframe", table, rows, digest)


__all__ = [
    "FORMATS",
    "ROW_COLUMN",
    "SourceData",
    "Unparsable",
    "detect_format",
    "file_hash",
    "read_source",
]
