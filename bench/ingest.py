"""Ingestion throughput: the workbench's vectorized batch ingestion vs. the pandas row-wise
validation an analyst would write, on the same files, in the same run.

    python -m bench ingest --persons 1000000
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import tempfile
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd
import phonenumbers

from bench.common import CACHE, Report, sample_dir
from workbench import Workspace
from workbench.sample.brand import SAMPLE_DATASETS, register
from workbench.schema.model import Field, FieldType, Schema
from workbench.schema.normalize import EMAIL_PATTERN

log = logging.getLogger(__name__)

_EMAIL = re.compile(EMAIL_PATTERN)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _check(f: Field, v: Any, region: str) -> tuple[Any, str | None]:
    """Row-wise validation of one value, the way a pandas user writes it."""
    if v is None or (isinstance(v, float) and v != v) or str(v).strip() == "":
        return None, ("required field is missing" if f.required and f.default is None else None)
    s = str(v).strip()
    t = f.type
    try:
        if t is FieldType.EMAIL:
            s = s.lower()
            return (s, None) if _EMAIL.fullmatch(s) else (None, "not a valid email address")
        if t is FieldType.PHONE:
            num = phonenumbers.parse(s, region)
            if not phonenumbers.is_possible_number(num):
                return None, "not a possible phone number"
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164), None
        if t is FieldType.INTEGER:
            x: Any = int(s)
        elif t is FieldType.DECIMAL:
            x = Decimal(s)
        elif t is FieldType.DATE:
            x = dt.date.fromisoformat(s)
        elif t is FieldType.TIMESTAMP:
            x = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        elif t is FieldType.BOOLEAN:
            if s.lower() not in _TRUE | _FALSE:
                return None, "not a boolean"
            x = s.lower() in _TRUE
        elif t is FieldType.ENUM:
            if s.lower() not in {e.lower() for e in f.values or ()}:
                return None, "not one of the values"
            x = s.lower()
        else:
            x = s
    except (ValueError, InvalidOperation, phonenumbers.NumberParseException):
        return None, f"not a valid {t.value}"
    if f.minimum is not None and x < f.minimum:
        return None, "below the minimum"
    if f.pattern is not None and not re.fullmatch(f.pattern, s):
        return None, "does not match the pattern"
    return x, None


def pandas_rowwise(
    path: Path, schema: Schema, out: Path, nrows: int, region: str = "US"
) -> tuple[int, float]:
    """read_csv/read_parquet/read_json + a Python loop per row + to_parquet. Returns (rows, s)."""
    t0 = time.perf_counter()
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=nrows)
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path).head(nrows)
    else:
        df = pd.read_json(path, lines=True, dtype=False, nrows=nrows)
    good: list[dict[str, Any]] = []
    bad: list[tuple[int, str, Any, str]] = []
    for i, row in enumerate(df.to_dict("records"), start=1):
        clean: dict[str, Any] = {}
        errors = []
        for f in schema.fields:
            v, err = _check(f, row.get(f.name, f.default), region)
            if err:
                errors.append((i, f.name, row.get(f.name), err))
            clean[f.name] = v
        if errors:
            bad.extend(errors)
        else:
            good.append(clean)
    pd.DataFrame(good).astype(str).to_parquet(out / f"{path.stem}.parquet")
    pd.DataFrame(bad, columns=["row", "field", "value", "reason"]).astype(str).to_parquet(
        out / f"{path.stem}_bad.parquet"
    )
    return len(df), time.perf_counter() - t0


def run(persons: int, baseline_rows: int = 200_000, seed: int = 42) -> Report:
    """Time every sample file through the workbench and through the pandas baseline."""
    d = sample_dir(persons, seed)
    rep = Report("ingest", {"persons": persons, "baseline_rows_per_file": baseline_rows})
    work = Path(tempfile.mkdtemp(prefix="wb-bench-", dir=CACHE))
    try:
        ws = Workspace.create(work / "ws")
        register(ws)
        for ds in SAMPLE_DATASETS:
            schema = ws.schemas.get(ds.schema)
            path = d / ds.files[0]
            t0 = time.perf_counter()
            r = ws.ingest(ds.name, path, error_threshold=1.0)
            wall = time.perf_counter() - t0
            b = r.batch
            n, secs = pandas_rowwise(path, schema, work, baseline_rows)
            ours = b.rows_read / wall
            base = n / secs
            rep.add(
                dataset=ds.name,
                kind=schema.cls.value,
                file=path.name,
                rows=b.rows_read,
                rejected=b.rows_rejected,
                seconds=round(wall, 2),
                rows_per_s=round(ours),
                pandas_rows=n,
                pandas_rows_per_s=round(base),
                speedup=round(ours / base, 1),
            )
        for kind in ("event", "profile"):
            sel = [r for r in rep.rows if r["kind"] == kind]
            rows = sum(r["rows"] for r in sel)
            secs = sum(r["seconds"] for r in sel)
            prows = sum(r["pandas_rows"] for r in sel)
            psecs = sum(r["pandas_rows"] / r["pandas_rows_per_s"] for r in sel)
            rep.add(
                dataset=f"all {kind} datasets",
                kind=kind,
                file="",
                rows=rows,
                rejected=sum(r["rejected"] for r in sel),
                seconds=round(secs, 2),
                rows_per_s=round(rows / secs),
                pandas_rows=prows,
                pandas_rows_per_s=round(prows / psecs),
                speedup=round((rows / secs) / (prows / psecs), 1),
            )
        ws.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rep
