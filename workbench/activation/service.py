"""``ws.activation``: destinations, previews and export runs.

    ws.activation.add("destinations/")                    # YAML definitions, checked
    ws.activation.preview("newsletter_email", "newsletter_engaged")
    ws.activation.run("newsletter_email", as_of="2026-12-01T06:00Z")
    ws.activation.status()

An export run, per mapped segment:

1. **who**: full mode — the members (realized + existing) as the last segment run at or
   before ``as_of`` left them; incremental — what changed since this destination's last
   successful activation of the segment (realized → ``add``, exited → ``remove``), from the
   membership change log; the first incremental export is a full backfill;
2. **checks**: governance (labels of the fields the segment uses against the destination's
   marketing action: a forbidden label blocks the whole segment), the required identity
   (missing → skipped), consent (per-channel attribute, ``y`` / ``n`` / ``unknown`` against the
   destination's policy → skipped); every count is recorded;
3. **rows**: identities normalized and written clear or SHA-256 hashed, mapped attributes
   renamed, all in one DuckDB query;
4. **files** (file destinations): written to a temporary name, renamed when complete, split
   into numbered parts above the row limit, then a manifest (files, rows, SHA-256 of each,
   ``as_of``, segment version); local folders, SFTP and S3 through fsspec. A destination never
   sees a half-written file; re-running the same (destination, segment, ``as_of``) reports
   the earlier delivery instead of delivering twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from workbench.activation.destinations import (
    MARKETING_ACTIONS,
    Destination,
    load,
    parse,
)
from workbench.catalog.store import ActivationInfo, jsonable
from workbench.errors import ConfigError, NotFoundError, Problem, ValidationError, WorkbenchError
from workbench.ingest.batch import failpoint
from workbench.lake.sql import ident, lit
from workbench.segments.model import Attr, Events, InSegment, Sequence, walk
from workbench.segments.service import CHANGES, MEMBERSHIPS, to_utc

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

_ROWS = "__act_rows"


@dataclass(frozen=True)
class Counts:
    """What happened to the members of one segment in one activation."""

    eligible: int = 0
    exported: int = 0
    added: int = 0
    removed: int = 0
    skipped_no_identity: int = 0
    skipped_no_consent: int = 0
    blocked: int = 0
    #: streaming destinations: changes whose batch went to the dead-letter table
    dead_lettered: int = 0


@dataclass
class Preview:
    """What an activation would do, before anything is sent."""

    destination: str
    segment: str
    counts: Counts
    blocked_by: list[str]
    rows: pd.DataFrame

    def __str__(self) -> str:
        c = self.counts
        return (
            f"{self.destination} <- {self.segment}: {c.eligible:,} eligible, {c.exported:,} to export, "
            f"{c.skipped_no_identity:,} without the identity, {c.skipped_no_consent:,} without consent, "
            f"{c.blocked:,} blocked by governance"
        )


@dataclass
class ActivationResult:
    """One segment delivered (or not) to one destination."""

    id: int
    destination: str
    segment: str
    as_of: dt.datetime
    mode: str
    status: str  # success | failed | already_delivered | blocked
    counts: Counts
    files: list[dict[str, Any]] = field(default_factory=list)
    manifest: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


#: Spellings of a consent attribute read as "yes" and as "no" (trimmed, lower-cased).
CONSENT_YES = ("true", "y", "yes", "1", "opt-in", "in")
CONSENT_NO = ("false", "n", "no", "0", "opt-out", "out")


def consent_sql(column: str) -> str:
    """``y`` / ``n`` / ``unknown`` from a consent attribute (booleans, y/n, yes/no, 1/0)."""
    v = f"lower(trim(CAST({ident(column)} AS VARCHAR)))"
    yes = ", ".join(lit(x) for x in CONSENT_YES)
    no = ", ".join(lit(x) for x in CONSENT_NO)
    return f"CASE WHEN {v} IN ({yes}) THEN 'y' WHEN {v} IN ({no}) THEN 'n' ELSE 'unknown' END"


def _encode_sql(source: str, encoding: str) -> str:
    c = ident(source)
    if encoding == "clear":
        return f"CAST({c} AS VARCHAR)"
    if encoding == "sha256_digits":  # E.164 without the '+'
        return f"sha256(replace(CAST({c} AS VARCHAR), '+', ''))"
    if source in ("email",) or source.endswith("email"):
        return f"sha256(lower(trim(CAST({c} AS VARCHAR))))"
    return f"sha256(CAST({c} AS VARCHAR))"


class Activation:
    """Destinations and exports of a workspace (``ws.activation``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    # ------------------------------------------------------------------ destinations
    def _as_destinations(self, source: Any) -> list[Destination]:
        if isinstance(source, Destination):
            return [source]
        if isinstance(source, Mapping):
            return [parse(source)]
        if isinstance(source, str | Path):
            p = Path(source)
            if p.is_dir():
                return [load(f) for f in sorted(p.iterdir()) if f.suffix in (".yaml", ".yml")]
            if p.exists():
                return [load(p)]
            raise NotFoundError(f"no destination file or folder {p}")
        if isinstance(source, Iterable):
            out: list[Destination] = []
            for s in source:
                out.extend(self._as_destinations(s))
            return out
        raise ConfigError(f"cannot read destinations from {type(source).__name__}")

    def labels(self) -> dict[str, set[str]]:
        """Data-usage labels of every profile attribute and event field, by field name."""
        out: dict[str, set[str]] = {}
        for d in self._ws.catalog.list_datasets():
            if not d.profile_enabled:
                continue
            for f in self._ws.catalog.get_schema(d.schema_name).fields:
                out.setdefault(f.name, set()).update(f.labels)
        return out

    def check(self, d: Destination) -> list[Problem]:
        """Configuration problems: unknown segments and attributes, and governance (a mapped
        field whose labels forbid the marketing action), each with its path."""
        problems: list[Problem] = []
        known = {s.name for s in self._ws.catalog.list_segments()}
        for i, s in enumerate(d.segments):
            if s not in known:
                problems.append(Problem(f"segments[{i}]", f"no segment named {s!r}"))
        attrs = self._ws.segments.fields().attributes
        for i, c in enumerate(d.identities):
            if c.source not in attrs:
                problems.append(
                    Problem(f"identities[{i}].source", f"no profile attribute {c.source!r}")
                )
        labels = self.labels()
        forbidden = MARKETING_ACTIONS[d.marketing_action]
        for src, _col in d.mapping:
            if src not in attrs:
                problems.append(Problem(f"mapping.{src}", f"no profile attribute {src!r}"))
                continue
            bad = sorted(labels.get(src, set()) & forbidden)
            if bad:
                problems.append(
                    Problem(
                        f"mapping.{src}",
                        f"field {src!r} is labelled {', '.join(bad)}, which forbids the "
                        f"marketing action {d.marketing_action!r}",
                    )
                )
        if d.consent.attribute is not None and d.consent.attribute not in attrs:
            problems.append(
                Problem("consent.attribute", f"no profile attribute {d.consent.attribute!r}")
            )
        return problems

    def add(self, source: Any) -> list[tuple[str, str]]:
        """Parse, check and store destinations; returns (name, added/updated/unchanged)."""
        dests = self._as_destinations(source)
        for d in dests:
            problems = self.check(d)
            if problems:
                raise ValidationError(f"destination {d.name!r}", problems)
        return [
            (d.name, self._ws.catalog.put_destination(d.name, d.type, jsonable(d.to_dict())))
            for d in dests
        ]

    def get(self, name: str) -> Destination:
        """A stored destination."""
        return parse(self._ws.catalog.get_destination(name), source=f"catalog destination {name}")

    def list(self) -> list[Destination]:
        """Every stored destination."""
        return [parse(d) for _, _, _, d in self._ws.catalog.list_destinations()]

    def remove(self, name: str) -> None:
        """Delete a destination (its activation history stays)."""
        self._ws.catalog.delete_destination(name)

    def _resolve(self, destination: str | Destination) -> Destination:
        return destination if isinstance(destination, Destination) else self.get(destination)

    # ------------------------------------------------------------------ governance
    def _segment_fields(self, name: str, seen: set[str] | None = None) -> set[str]:
        """Every attribute and event field a segment (with its references) uses."""
        seen = seen or set()
        if name in seen:
            return set()
        seen.add(name)
        d = self._ws.segments.get(name)
        out: set[str] = set()
        for c in walk(d.rule):
            if isinstance(c, Attr):
                out.add(c.field)
            elif isinstance(c, Events):
                out.update(f.field for f in c.where)
                if c.aggregate.field:
                    out.add(c.aggregate.field)
            elif isinstance(c, Sequence):
                out.update(f.field for f in (*c.first.where, *c.then.where))
            elif isinstance(c, InSegment):
                out |= self._segment_fields(c.segment, seen)
        return out

    def blocked_by(self, destination: str | Destination, segment: str) -> list[str]:
        """Why a segment may not go to a destination: ``field (label)`` for every field the
        segment uses whose labels forbid the destination's marketing action."""
        d = self._resolve(destination)
        labels = self.labels()
        forbidden = MARKETING_ACTIONS[d.marketing_action]
        out = []
        for f in sorted(self._segment_fields(segment)):
            bad = sorted(labels.get(f, set()) & forbidden)
            if bad:
                out.append(f"{f} ({', '.join(bad)})")
        return out

    # ------------------------------------------------------------------ rows
    def _segment_run(self, segment: str, as_of: dt.datetime) -> Any:
        runs = [
            r
            for r in self._ws.catalog.list_segment_runs(status="success", limit=10_000)
            if r.as_of <= as_of and segment in r.segments
        ]
        if not runs:
            raise NotFoundError(
                f"segment {segment!r} has not been evaluated at or before {as_of.isoformat()}: "
                "run workbench segment run first"
            )
        return max(runs, key=lambda r: (r.as_of, r.id))

    def _last_success(self, d: Destination, segment: str) -> ActivationInfo | None:
        done = self._ws.catalog.list_activations(d.name, segment, status="success", limit=1)
        return done[0] if done else None

    def _stage(self, d: Destination, segment: str, as_of: dt.datetime) -> tuple[Any, str]:
        """Build the candidate rows of one segment in the engine (table ``__act_rows``):
        profile_id, action, the destination's columns, ``__id_ok``, ``__consent``.
        Returns (the segment run used, the mode actually used)."""
        ws = self._ws
        eng = ws.engine
        run = self._segment_run(segment, as_of)
        mode = d.mode
        ws.lake.register(eng, "__act_mem", ws.lake.path(*MEMBERSHIPS), run.table_version)
        ws.lake.register(eng, "__act_prof", ws.profiles.table_uri())
        views = ["__act_mem", "__act_prof"]
        try:
            last = self._last_success(d, segment) if mode == "incremental" else None
            if mode == "incremental" and last is not None and last.segment_run_id is not None:
                ws.lake.register(eng, "__act_chg", ws.lake.path(*CHANGES))
                views.append("__act_chg")
                who = (
                    "SELECT profile_id, CASE WHEN arg_max(status, run_id) = 'exited' THEN 'remove' "
                    "ELSE 'add' END AS action FROM __act_chg "
                    f"WHERE segment = {lit(segment)} AND run_id > {lit(last.segment_run_id)} "
                    f"AND run_id <= {lit(run.id)} GROUP BY profile_id"
                )
            else:
                if mode == "incremental":
                    mode = "backfill"
                who = (
                    "SELECT profile_id, 'add' AS action FROM __act_mem "
                    f"WHERE segment = {lit(segment)} AND status IN ('realized', 'existing')"
                )
            cols = [
                f"{_encode_sql(c.source, c.encoding)} AS {ident(c.column)}" for c in d.identities
            ]
            cols += [f"CAST(p.{ident(src)} AS VARCHAR) AS {ident(col)}" for src, col in d.mapping]
            ids = [f"{ident(c.source)} IS NOT NULL" for c in d.identities]
            join = " OR " if d.require == "any" else " AND "
            id_ok = f"({join.join(ids)})" if ids else "true"
            consent = consent_sql(d.consent.attribute) if d.consent.attribute is not None else "'y'"
            eng.execute(
                f"CREATE OR REPLACE TEMP TABLE {_ROWS} AS "
                f"SELECT w.profile_id, w.action, {', '.join(cols) + ', ' if cols else ''}"
                f"{id_ok} AS __id_ok, {consent} AS __consent "
                f"FROM ({who}) AS w LEFT JOIN __act_prof AS p ON p.profile_id = w.profile_id"
            )
        finally:
            for v in views:
                eng.unregister(v)
        return run, mode

    def _counts(self, d: Destination, blocked: bool) -> Counts:
        allow = ", ".join(lit(a) for a in d.consent.allow)
        r = self._ws.engine.query(
            "SELECT count(*) AS eligible, "
            "count(*) FILTER (WHERE NOT __id_ok) AS no_id, "
            f"count(*) FILTER (WHERE __id_ok AND action = 'add' AND __consent NOT IN ({allow})) AS no_consent, "
            f"count(*) FILTER (WHERE __id_ok AND action = 'add' AND __consent IN ({allow})) AS added, "
            "count(*) FILTER (WHERE __id_ok AND action = 'remove') AS removed "
            f"FROM {_ROWS}"
        ).to_pylist()[0]
        if blocked:
            return Counts(eligible=r["eligible"], blocked=r["eligible"])
        return Counts(
            eligible=r["eligible"],
            exported=r["added"] + r["removed"],
            added=r["added"],
            removed=r["removed"],
            skipped_no_identity=r["no_id"],
            skipped_no_consent=r["no_consent"],
        )

    def _export_sql(self, d: Destination, incremental: bool) -> str:
        allow = ", ".join(lit(a) for a in d.consent.allow)
        cols = [ident(c.column) for c in d.identities] + [ident(c) for _, c in d.mapping]
        if incremental:
            cols.append("action")
        # removes need only the identity; adds also need consent
        return (
            f"SELECT {', '.join(cols)} FROM {_ROWS} WHERE __id_ok AND "
            f"(action = 'remove' OR __consent IN ({allow})) ORDER BY profile_id"
        )

    # ------------------------------------------------------------------ preview
    def preview(
        self, destination: str | Destination, segment: str, as_of: Any = None, rows: int = 10
    ) -> Preview:
        """Counts (eligible, to export, skipped by reason, blocked) and the first rows exactly
        as they would be written (hashed columns show hashes), before anything is sent."""
        d = self._resolve(destination)
        if segment not in d.segments:
            raise ConfigError(f"segment {segment!r} is not mapped to destination {d.name!r}")
        when = to_utc(as_of)
        blocked = self.blocked_by(d, segment)
        self._stage(d, segment, when)
        try:
            counts = self._counts(d, bool(blocked))
            sample = (
                self._ws.engine.query(
                    f"{self._export_sql(d, d.mode == 'incremental')} LIMIT {lit(int(rows))}"
                ).to_pandas()
                if not blocked
                else pd.DataFrame()
            )
        finally:
            self._ws.engine.execute(f"DROP TABLE IF EXISTS {_ROWS}")
        return Preview(d.name, segment, counts, blocked, sample)

    # ------------------------------------------------------------------ run
    def run(
        self,
        destination: str | Destination,
        as_of: Any,
        segments: list[str] | None = None,
    ) -> list[ActivationResult]:
        """Export each mapped segment (or the given ones) to the destination at ``as_of``."""
        d = self._resolve(destination)
        when = to_utc(as_of)
        names = list(d.segments) if segments is None else segments
        for s in names:
            if s not in d.segments:
                raise ConfigError(f"segment {s!r} is not mapped to destination {d.name!r}")
        if not d.kind.files:
            from workbench.activation.streaming import deliver

            return deliver(self._ws, d, when, names)
        return [self._run_one(d, s, when) for s in names]

    def _run_one(self, d: Destination, segment: str, as_of: dt.datetime) -> ActivationResult:
        ws = self._ws
        earlier = ws.catalog.list_activations(
            d.name, segment, status="success", as_of=as_of, limit=1
        )
        if earlier:
            e = earlier[0]
            log.info("activation %s/%s at %s already delivered (#%s)", d.name, segment, as_of, e.id)
            return ActivationResult(
                e.id, d.name, segment, as_of, e.mode, "already_delivered", Counts(**e.counts),
                e.files, e.manifest,
            )  # fmt: skip
        t0 = time.perf_counter()
        act_id = ws.catalog.start_activation(d.name, segment, as_of, d.mode, None)
        try:
            result = self._export(act_id, d, segment, as_of, t0)
        except BaseException as e:
            ws.catalog.finish_activation(act_id, status="failed", error=f"{type(e).__name__}: {e}")
            raise
        return result

    def _export(
        self, act_id: int, d: Destination, segment: str, as_of: dt.datetime, t0: float
    ) -> ActivationResult:
        ws = self._ws
        eng = ws.engine
        blocked = self.blocked_by(d, segment)
        run, mode = self._stage(d, segment, as_of)
        try:
            counts = self._counts(d, bool(blocked))
            if blocked:
                info = ws.catalog.finish_activation(
                    act_id,
                    status="blocked",
                    mode=mode,
                    segment_run_id=run.id,
                    counts=asdict(counts),
                    error="blocked by governance: " + "; ".join(blocked),
                )
                return ActivationResult(
                    act_id, d.name, segment, as_of, mode, "blocked", counts, error=info.error
                )
            files, manifest = self._write_files(d, segment, as_of, mode, counts, run, act_id)
        finally:
            eng.execute(f"DROP TABLE IF EXISTS {_ROWS}")
        secs = round(time.perf_counter() - t0, 3)
        ws.catalog.finish_activation(
            act_id,
            status="success",
            mode=mode,
            segment_run_id=run.id,
            counts=asdict(counts),
            files=files,
            manifest=manifest,
        )
        log.info(
            "activation %s: %s -> %s, %s rows in %s file(s), %.2fs",
            act_id, segment, d.name, counts.exported, len(files), secs,
        )  # fmt: skip
        return ActivationResult(
            act_id, d.name, segment, as_of, mode, "success", counts, files, manifest, None, secs
        )

    # ------------------------------------------------------------------ files
    def filesystem(self, d: Destination) -> tuple[Any, str]:
        """(fsspec filesystem, root path) of a file destination; secrets from env/files."""
        import fsspec

        url = d.url
        parsed = urlparse(url)
        opts: dict[str, Any] = {}
        if parsed.scheme in ("", "file"):
            root = Path(parsed.path if parsed.scheme == "file" else url)
            if not root.is_absolute():
                root = self._ws.path / root
            root.mkdir(parents=True, exist_ok=True)
            return fsspec.filesystem("file"), str(root)
        if parsed.scheme == "sftp":
            key = _secret(d, "key_file", path=True)
            opts = {"host": parsed.hostname, "port": parsed.port or 22}
            if parsed.username:
                opts["username"] = parsed.username
            if key:
                opts["key_filename"] = key
            opts["look_for_keys"] = False
            opts["allow_agent"] = False
            fs = fsspec.filesystem("sftp", **opts)
            root = parsed.path or "."
            fs.makedirs(root, exist_ok=True)
            return fs, root
        if parsed.scheme == "s3":
            try:
                import s3fs  # noqa: F401
            except ImportError as e:  # pragma: no cover - the dev extra installs it
                raise ConfigError(
                    "s3:// destinations need the s3 extra: pip install 'audience-workbench[s3]'"
                ) from e
            key = _secret(d, "access_key")
            secret = _secret(d, "secret_key")
            client: dict[str, Any] = {}
            if d.option("endpoint_url"):
                client["endpoint_url"] = d.option("endpoint_url")
            if d.option("region"):
                client["region_name"] = d.option("region")
            fs = fsspec.filesystem("s3", key=key, secret=secret, client_kwargs=client)
            return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
        raise ConfigError(f"destination {d.name!r}: unsupported URL scheme {parsed.scheme!r}")

    def _write_files(
        self,
        d: Destination,
        segment: str,
        as_of: dt.datetime,
        mode: str,
        counts: Counts,
        run: Any,
        act_id: int,
    ) -> tuple[list[dict[str, Any]], str]:
        ws = self._ws
        eng = ws.engine
        fs, root = self.filesystem(d)
        base = d.file_pattern.format(
            destination=d.name, segment=segment, as_of=as_of, ext=d.ext, mode=mode
        )
        stem = base[: -len(d.ext) - 1] if base.endswith("." + d.ext) else base
        n_rows = counts.exported
        parts = max(1, -(-n_rows // d.max_rows_per_file))
        query = self._export_sql(d, d.mode == "incremental")
        local_fs = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        # files are made in a staging folder: inside the destination folder when it is
        # local (the final step is a rename), in the workspace's exports/ otherwise
        where = Path(root) if local_fs else ws.path / "exports"
        where.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".act{act_id}-", dir=where))
        files: list[dict[str, Any]] = []
        try:
            local_parts = []
            for i in range(parts):
                name = f"{stem}.{d.ext}" if i == 0 else f"{stem}_{i + 1}.{d.ext}"
                local = staging / name
                q = query
                if parts > 1:
                    q = f"{query} LIMIT {lit(d.max_rows_per_file)} OFFSET {lit(i * d.max_rows_per_file)}"
                opts = {
                    "csv": "FORMAT csv, HEADER true",
                    "parquet": "FORMAT parquet, COMPRESSION zstd",
                    "jsonl": "FORMAT json",
                }[d.format]
                eng.execute(f"COPY ({q}) TO {lit(str(local))} ({opts})")
                digest, size = _sha256(local)
                rows = (
                    min(d.max_rows_per_file, n_rows - i * d.max_rows_per_file)
                    if parts > 1
                    else n_rows
                )
                files.append({"name": name, "rows": rows, "bytes": size, "sha256": digest})
                local_parts.append((local, name))
            # deliver: temporary name, then rename; the manifest last
            for local, name in local_parts:
                _deliver(fs, local, _join(root, name), local_fs)
            info = ws.segments.info(segment)
            manifest = {
                "activation_id": act_id,
                "destination": d.name,
                "destination_type": d.type,
                "segment": segment,
                "segment_version": info.version,
                "segment_run_id": run.id,
                "as_of": as_of.isoformat(),
                "mode": mode,
                "marketing_action": d.marketing_action,
                "counts": asdict(counts),
                "files": files,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            mname = f"{stem}.manifest.json"
            mlocal = staging / mname
            mlocal.write_text(json.dumps(manifest, indent=2))
            _deliver(fs, mlocal, _join(root, mname), local_fs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for f in files:
            f["path"] = _join(root, f["name"])
        return files, _join(root, mname)

    # ------------------------------------------------------------------ history
    def status(self, destination: str | None = None, limit: int = 50) -> list[ActivationInfo]:
        """Recent activations with counts and files, newest first."""
        return self._ws.catalog.list_activations(destination, limit=limit)


def _secret(d: Destination, key: str, *, path: bool = False) -> str | None:
    """A secret (or the path of a secret file) from ``<key>_env`` / ``<key>_file`` / ``<key>``
    (the latter only for paths such as ``key_file``); never logged."""
    env = d.option(f"{key}_env")
    if env:
        v = os.environ.get(str(env))
        if not v:
            raise ConfigError(f"destination {d.name!r}: environment variable {env} is not set")
        return v
    f = d.option(f"{key}_file")
    if f:
        if path:
            return str(f)
        try:
            return Path(str(f)).expanduser().read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"destination {d.name!r}: cannot read {key} from {f}: {e.strerror}"
            ) from e
    v = d.option(key)
    return str(v) if v is not None and path else None


def _sha256(p: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if root else name


def _deliver(fs: Any, local: Path, target: str, local_fs: bool = False) -> None:
    """Copy a finished local file to ``target`` under a temporary name, then rename it:
    a reader of the destination folder never sees a partial file. A local destination
    gets the finished file by a rename from its staging folder (same file system)."""
    if local_fs:
        failpoint("activation.before_rename")
        os.replace(local, target)
        return
    parent, _, name = target.rpartition("/")
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.tmp" if parent else f".{name}.tmp"
    fs.put_file(str(local), tmp)
    failpoint("activation.before_rename")
    try:
        fs.mv(tmp, target)
    except Exception as e:
        try:
            fs.rm(tmp)
        except Exception:
            log.warning("could not remove temporary file %s", tmp)
        raise WorkbenchError(f"could not rename {tmp} to {target}: {e}") from e


__all__ = ["Activation", "ActivationResult", "Counts", "Preview", "consent_sql"]
