"""Job notebooks run through papermill, recorded in the catalog (``ws.jobs``).

    run = ws.jobs.run("daily_segmentation", {"as_of": "2026-12-01T06:00Z"})
    run.status, run.output          # the executed notebook is the run's log

A job is a notebook in ``notebooks/jobs/`` with a cell tagged ``parameters`` (papermill's
convention) and a declared parameter list here. Before the kernel starts, parameters are
checked (unknown names, wrong types, and anything that looks like a secret are refused:
notebooks read secrets from the environment). Each run takes a lock on (job, slot), so two
runs of the same job and slot never overlap, also across processes; a slot that already
succeeded is not run again. A failing cell marks the run failed; papermill keeps the
executed notebook with the error shown at the top; the run records the failing cell and
the error, and is retried with backoff when the job allows it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from workbench.catalog.models import JobRunRow, utcnow
from workbench.errors import ConfigError, NotFoundError, Problem, ValidationError, WorkbenchError

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

_SECRET = re.compile(r"(password|passwd|secret|token|api_key|private_key|credential)", re.I)


class JobFailedError(WorkbenchError, RuntimeError):
    """A job run failed; the executed notebook (with the error at the top) is kept."""

    def __init__(self, message: str, run: JobRun) -> None:
        self.run = run
        super().__init__(message)


class JobLockedError(WorkbenchError, RuntimeError):
    """Another run of the same job and slot holds the lock."""


@dataclass(frozen=True)
class Param:
    """A declared job parameter."""

    name: str
    type: str  # str | datetime | int | bool | list | path
    required: bool = False
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class JobSpec:
    """A job: its notebook, parameters, timeout and retry policy."""

    name: str
    notebook: str
    params: tuple[Param, ...]
    description: str = ""
    timeout_s: int = 3600
    retries: int = 0
    backoff_s: float = 30.0


_WS = Param("workspace", "path", True, help="workspace folder")
JOBS: dict[str, JobSpec] = {
    "ingest": JobSpec(
        "ingest",
        "ingest.ipynb",
        (
            _WS,
            Param("dataset", "str", True, help="dataset to load into"),
            Param("files", "list", False, [], help="files to ingest"),
            Param("drop_folder", "path", False, "", help="or: ingest every new file of a folder"),
            Param("force", "bool", False, False, help="reload content already loaded"),
        ),
        "Ingest files (or a drop folder) into a dataset.",
        retries=1,
        backoff_s=5,
    ),
    "daily_segmentation": JobSpec(
        "daily_segmentation",
        "daily_segmentation.ipynb",
        (
            _WS,
            Param("as_of", "datetime", True, help="evaluation time"),
            Param("segments", "list", False, [], help="segments to run (empty: all)"),
            Param("rebuild", "bool", False, True, help="build identities and profiles first"),
        ),
        "Identity and profile builds, then the batch segment job.",
        retries=1,
        backoff_s=30,
    ),
    "export": JobSpec(
        "export",
        "export.ipynb",
        (
            _WS,
            Param("destination", "str", True, help="destination to export to"),
            Param("as_of", "datetime", True, help="delivery time"),
            Param("mode", "str", False, "", help="full | incremental (default: the destination's)"),
        ),
        "Export a destination's segments.",
        retries=2,
        backoff_s=30,
    ),
    "daily_pipeline": JobSpec(
        "daily_pipeline",
        "daily_pipeline.ipynb",
        (
            _WS,
            Param("as_of", "datetime", True, help="evaluation and delivery time"),
            Param("sample_dir", "path", False, "", help="files of the sample brand to ingest"),
            Param("destinations", "list", False, [], help="destinations (empty: all local ones)"),
        ),
        "Ingest -> identity -> profiles -> segmentation -> exports, in one notebook.",
    ),
}


@dataclass
class JobRun:
    """One run of a job as recorded in the catalog."""

    id: int
    job: str
    slot: str
    parameters: dict[str, Any]
    status: str
    attempts: int
    output: str | None
    error: str | None
    failed_cell: int | None
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish."""
        return (
            None
            if self.finished_at is None
            else (self.finished_at - self.started_at).total_seconds()
        )


def _info(r: JobRunRow) -> JobRun:
    return JobRun(
        r.id, r.job, r.slot, dict(r.parameters or {}), r.status, r.attempts, r.output, r.error,
        r.failed_cell, r.started_at, r.finished_at,
    )  # fmt: skip


def notebooks_dir() -> Path:
    """Where the job notebooks are: ``WORKBENCH_NOTEBOOKS`` or the project's notebooks/jobs."""
    env = os.environ.get("WORKBENCH_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks" / "jobs"


def validate_params(spec: JobSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Typed parameters for papermill (datetimes as ISO text, lists as lists); every problem
    is reported together, before any kernel starts."""
    problems: list[Problem] = []
    declared = {p.name: p for p in spec.params}
    out: dict[str, Any] = {}
    for k in params:
        if _SECRET.search(k):
            problems.append(
                Problem(
                    k,
                    "secrets are never job parameters: the notebook reads them from the environment",
                )
            )
        elif k not in declared:
            problems.append(Problem(k, f"unknown parameter (known: {', '.join(declared)})"))
    for p in spec.params:
        if p.name not in params:
            if p.required:
                problems.append(Problem(p.name, "required"))
            else:
                out[p.name] = p.default
            continue
        v = params[p.name]
        try:
            out[p.name] = _coerce(p, v)
        except (TypeError, ValueError) as e:
            problems.append(Problem(p.name, str(e)))
    if problems:
        raise ValidationError(f"parameters of job {spec.name!r}", problems)
    return out


def _coerce(p: Param, v: Any) -> Any:
    if p.type == "datetime":
        if isinstance(v, dt.datetime):
            t = v
        else:
            try:
                t = dt.datetime.fromisoformat(str(v).strip())
            except ValueError:
                raise ValueError(
                    f"{v!r} is not an ISO date/time (like 2026-12-01T06:00Z)"
                ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.astimezone(dt.UTC).isoformat()
    if p.type == "int":
        if isinstance(v, bool) or not (isinstance(v, int) or str(v).lstrip("-").isdigit()):
            raise ValueError(f"{v!r} is not a whole number")
        return int(v)
    if p.type == "bool":
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in ("true", "yes", "1", "y"):
            return True
        if s in ("false", "no", "0", "n"):
            return False
        raise ValueError(f"{v!r} is not true/false")
    if p.type == "list":
        if isinstance(v, list | tuple):
            return [str(x) for x in v]
        s = str(v).strip()
        return [x.strip() for x in s.split(",") if x.strip()] if s and s != "all" else []
    if p.type == "path":
        return str(Path(str(v)).expanduser().resolve()) if str(v) else ""
    if not isinstance(v, str | int | float):
        raise ValueError(f"{v!r} is not text")
    return str(v)


class Jobs:
    """Job notebooks of a workspace (``ws.jobs``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def spec(self, job: str) -> JobSpec:
        """A job's declaration."""
        if job not in JOBS:
            raise NotFoundError(f"no job named {job!r} (known: {', '.join(JOBS)})")
        return JOBS[job]

    @contextmanager
    def _lock(self, job: str, slot: str) -> Iterator[None]:
        d = self._ws.path / "runs" / ".locks"
        d.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(f"{job}|{slot}".encode()).hexdigest()[:16]
        fd = os.open(d / f"{job}-{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobLockedError(f"job {job!r} slot {slot} is already running") from None
            yield
        finally:
            os.close(fd)

    def succeeded(self, job: str, slot: str) -> JobRun | None:
        """The successful run of a job's slot, if any."""
        with self._ws.catalog.session() as s:
            row = s.scalars(
                select(JobRunRow)
                .where(JobRunRow.job == job, JobRunRow.slot == slot, JobRunRow.status == "success")
                .limit(1)
            ).first()
            return None if row is None else _info(row)

    def run(
        self,
        job: str,
        params: Mapping[str, Any] | None = None,
        *,
        slot: str | None = None,
        timeout_s: int | None = None,
        retries: int | None = None,
        backoff_s: float | None = None,
        notebooks: Path | None = None,
    ) -> JobRun:
        """Execute a job notebook with papermill and record the run.

        ``slot`` names a scheduled slot (a slot that already succeeded is returned, not
        re-run); runs started by hand get a slot of their own.
        """
        spec = self.spec(job)
        values = validate_params(spec, {"workspace": str(self._ws.path), **(params or {})})
        nb = (notebooks or notebooks_dir()) / spec.notebook
        if not nb.exists():
            raise ConfigError(f"job notebook {nb} not found (set WORKBENCH_NOTEBOOKS)")
        slot = slot or f"manual-{uuid.uuid4().hex[:12]}"
        with self._lock(job, slot):
            done = self.succeeded(job, slot)
            if done is not None:
                log.info("job %s slot %s already succeeded (run %s)", job, slot, done.id)
                return done
            return self._execute(spec, nb, values, slot, timeout_s, retries, backoff_s)

    def _execute(
        self,
        spec: JobSpec,
        nb: Path,
        values: dict[str, Any],
        slot: str,
        timeout_s: int | None,
        retries: int | None,
        backoff_s: float | None,
    ) -> JobRun:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        timeout = timeout_s if timeout_s is not None else spec.timeout_s
        tries = 1 + (retries if retries is not None else spec.retries)
        wait = backoff_s if backoff_s is not None else spec.backoff_s
        with self._ws.catalog.session() as s:
            row = JobRunRow(
                job=spec.name, slot=slot, parameters=values, status="running", attempts=0
            )
            s.add(row)
            s.flush()
            run_id = row.id
        outdir = self._ws.path / "runs" / spec.name
        outdir.mkdir(parents=True, exist_ok=True)
        error: str | None = None
        cell: int | None = None
        output = None
        for attempt in range(1, tries + 1):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            output = outdir / f"{stamp}_run{run_id}_try{attempt}.ipynb"
            self._update(run_id, attempts=attempt, output=str(output))
            log.info(
                "job %s run %s (slot %s) attempt %s -> %s", spec.name, run_id, slot, attempt, output
            )
            try:
                pm.execute_notebook(
                    str(nb),
                    str(output),
                    parameters=values,
                    kernel_name="python3",
                    execution_timeout=timeout,
                    progress_bar=False,
                    cwd=str(nb.parent),
                    report_mode=False,
                )
                return self._finish(run_id, "success", None, None)
            except PapermillExecutionError as e:
                error = f"{e.ename}: {e.evalue}"
                cell = int(e.cell_index)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                cell = None
            log.warning("job %s run %s attempt %s failed: %s", spec.name, run_id, attempt, error)
            if attempt < tries:
                time.sleep(wait * 2 ** (attempt - 1))
        run = self._finish(run_id, "failed", error, cell)
        raise JobFailedError(
            f"job {spec.name} failed (run {run_id}, cell {cell}): {error}; executed notebook: {output}",
            run,
        )

    def _update(self, run_id: int, **values: Any) -> None:
        with self._ws.catalog.session() as s:
            row = s.get(JobRunRow, run_id)
            if row is not None:
                for k, v in values.items():
                    setattr(row, k, v)

    def _finish(self, run_id: int, status: str, error: str | None, cell: int | None) -> JobRun:
        with self._ws.catalog.session() as s:
            row = s.get(JobRunRow, run_id)
            assert row is not None
            row.status = status
            row.error = error
            row.failed_cell = cell
            row.finished_at = utcnow()
            return _info(row)

    def list(self, job: str | None = None, limit: int = 50) -> list[JobRun]:
        """Job runs, newest first."""
        q = select(JobRunRow).order_by(JobRunRow.id.desc()).limit(limit)
        if job is not None:
            q = q.where(JobRunRow.job == job)
        with self._ws.catalog.session() as s:
            return [_info(r) for r in s.scalars(q)]

    def get(self, run_id: int) -> JobRun:
        """One job run."""
        with self._ws.catalog.session() as s:
            row = s.get(JobRunRow, run_id)
            if row is None:
                raise NotFoundError(f"no job run {run_id}")
            return _info(row)


__all__ = [
    "JOBS",
    "JobFailedError",
    "JobLockedError",
    "JobRun",
    "JobSpec",
    "Jobs",
    "Param",
    "validate_params",
]
