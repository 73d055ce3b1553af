"""``ws.segments``: define, validate, size, evaluate segments and keep their memberships.

    ws.segments.add("segments/")                       # every YAML definition of a folder
    ws.segments.count("high_value_loyalty", as_of=...) # exact size
    ws.segments.estimate(defn, as_of=...)              # from a sample, with a 95% interval
    run = ws.segments.run(as_of="2026-12-01T06:00Z")   # the batch segment job
    ws.segments.members("high_value_loyalty")          # current members (DataFrame)
    ws.segments.history("high_value_loyalty")          # daily size, realized, exited

The membership store is two Delta tables under ``lake/segments``:

* ``memberships`` — the current state: one row per (segment, profile) with ``status``
  (``realized`` entered in the last evaluation, ``existing`` still in, ``exited`` left),
  ``since`` (when the profile entered), ``exited_at``, ``updated_at`` (the ``as_of`` of the
  last evaluation) and ``run_id``. Each run commits one new version (time travel gives the
  state at any past run); exited rows are deleted ``membership_retention_days`` after exit.
* ``changes`` — append-only: every entry and exit with its run and ``as_of`` ("who entered
  since the last export" is one filter).

Per-run, per-segment figures go to the catalog (``segment_results``), so size over time is
a catalog query.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, write_deltalake

from workbench.catalog.store import SegmentInfo, SegmentRunInfo, jsonable
from workbench.errors import ConfigError, NotFoundError, Problem, ValidationError
from workbench.lake.sql import ident, lit
from workbench.segments.classify import Method, classify
from workbench.segments.compiler import Compiler, dependency_order
from workbench.segments.fields import FieldCatalog
from workbench.segments.model import SegmentDefinition, load, parse

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

MEMBERSHIPS = ("segments", "memberships")
CHANGES = ("segments", "changes")
MEMBER_STATUSES = ("realized", "existing")

MEMBERSHIP_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("profile_id", pa.int64()),
        ("status", pa.string()),
        ("since", pa.timestamp("us", tz="UTC")),
        ("exited_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.int64()),
    ]
)
CHANGE_SCHEMA = pa.schema(
    [
        ("run_id", pa.int64()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("segment", pa.string()),
        ("profile_id", pa.int64()),
        ("status", pa.string()),
    ]
)


def to_utc(value: dt.datetime | dt.date | str | None) -> dt.datetime:
    """An aware UTC datetime from a datetime, a date (midnight) or ISO text; None = now."""
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError as e:
            raise ConfigError(
                f"as_of {value!r} is not an ISO date/time (like 2026-12-01T06:00Z)"
            ) from e
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class Estimate:
    """A segment size estimated from a sample of profiles, with a 95% interval."""

    segment: str
    estimate: int
    low: int
    high: int
    standard_error: float
    sample_size: int
    sample_matches: int
    population: int
    exact: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)

    def __str__(self) -> str:
        if self.exact:
            return f"{self.estimate:,} (exact: the sample is every profile)"
        return f"~{self.estimate:,} (95% interval {self.low:,}–{self.high:,}; sample of {self.sample_size:,})"


@dataclass(frozen=True)
class SegmentResult:
    """One segment's figures in a run."""

    segment: str
    method: str
    size: int
    realized: int
    existing: int
    exited: int


@dataclass
class SegmentRun:
    """What one batch segment job did."""

    run_id: int
    as_of: dt.datetime
    results: list[SegmentResult]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per segment."""
        return pd.DataFrame([asdict(r) for r in self.results])


@dataclass
class _Prepared:
    key: tuple[Any, ...]
    population: int
    sample_size: int


_EVENTS_VIEW = "__seg_events_view"
_PROFILES_VIEW = "__seg_profiles_view"
_MEM_T = "__seg_events_mem"
_PROF_T = "__seg_profiles_mem"
_EV_S = "__seg_events_sample"
_PROF_S = "__seg_profiles_sample"


class Segments:
    """Segments of a workspace (``ws.segments``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._prepared: _Prepared | None = None

    # ------------------------------------------------------------------ definitions
    def fields(self) -> FieldCatalog:
        """Attributes, event fields and event types segments can use."""
        return FieldCatalog.from_workspace(self._ws)

    def definitions(self) -> dict[str, SegmentDefinition]:
        """Every segment in the catalog, parsed."""
        return {
            s.name: parse(s.definition, source=f"catalog segment {s.name}")
            for s in self._ws.catalog.list_segments()
        }

    def _as_definitions(self, source: Any) -> list[SegmentDefinition]:
        if isinstance(source, SegmentDefinition):
            return [source]
        if isinstance(source, Mapping):
            return [parse(source)]
        if isinstance(source, str | Path):
            p = Path(source)
            if p.is_dir():
                files = sorted(
                    f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json") and f.is_file()
                )
                return [load(f) for f in files]
            if p.exists():
                return [load(p)]
            raise NotFoundError(f"no segment file or folder {p}")
        if isinstance(source, Iterable):
            out: list[SegmentDefinition] = []
            for s in source:
                out.extend(self._as_definitions(s))
            return out
        raise ConfigError(f"cannot read segment definitions from {type(source).__name__}")

    def validate(
        self, source: Any, *, others: Mapping[str, SegmentDefinition] | None = None
    ) -> list[SegmentDefinition]:
        """Parse and check definitions against the workspace's fields and segments.

        Definitions given together may refer to each other; every problem is reported
        together in one :class:`ValidationError` (path inside the definition included).
        """
        defs = self._as_definitions(source)
        known = dict(others) if others is not None else self.definitions()
        for d in defs:
            known[d.name] = d
        cat = self.fields()
        for d in defs:
            problems = cat.check(d, set(known))
            if problems:
                raise ValidationError(f"segment {d.name!r}", problems)
        names = [d.name for d in defs]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValidationError("segments", [Problem("name", f"defined more than once: {dup}")])
        dependency_order(known, names)
        return defs

    def add(self, source: Any) -> list[tuple[SegmentInfo, str]]:
        """Validate and store definitions (a definition, dict, YAML/JSON file, folder or list);
        returns each with ``added`` / ``updated`` / ``unchanged``."""
        defs = self.validate(source)
        known = self.definitions()
        known.update({d.name: d for d in defs})
        out = []
        for name in dependency_order(known, [d.name for d in defs]):
            d = known[name]
            if d not in defs:
                continue
            m = classify(d, known)
            out.append(
                self._ws.catalog.put_segment(
                    d.name, jsonable(d.to_dict()), m.method, m.reason, d.description
                )
            )
        # a changed segment can change the method of segments that refer to it
        self._reclassify(known)
        return out

    def _reclassify(self, known: Mapping[str, SegmentDefinition]) -> None:
        for info in self._ws.catalog.list_segments():
            d = known.get(info.name)
            if d is None:
                continue
            m = classify(d, known)
            if (m.method, m.reason) != (info.method, info.reason):
                self._ws.catalog.put_segment(
                    info.name, info.definition, m.method, m.reason, info.description
                )

    def get(self, name: str) -> SegmentDefinition:
        """A stored definition."""
        return parse(self._ws.catalog.get_segment(name).definition)

    def info(self, name: str) -> SegmentInfo:
        """A stored segment's catalog record (version, method, reason)."""
        return self._ws.catalog.get_segment(name)

    def list(self) -> list[SegmentInfo]:
        """Every stored segment."""
        return self._ws.catalog.list_segments()

    def remove(self, name: str) -> None:
        """Delete a definition; refused while another segment refers to it."""
        users = [n for n, d in self.definitions().items() if name in d.references() and n != name]
        if users:
            raise ConfigError(f"segment {name!r} is used by {', '.join(sorted(users))}")
        self._ws.catalog.delete_segment(name)

    def method(self, source: Any) -> Method:
        """The evaluation method of a definition (stored or not) and why."""
        d = self._resolve(source)
        known = self.definitions()
        known[d.name] = d
        return classify(d, known)

    def _resolve(self, source: Any) -> SegmentDefinition:
        if isinstance(source, str) and not Path(source).suffix:
            return self.get(source)
        defs = self._as_definitions(source)
        if len(defs) != 1:
            raise ConfigError("expected one segment definition")
        return defs[0]

    def _compiler(
        self, d: SegmentDefinition, as_of: dt.datetime, events: str, profiles: str
    ) -> Compiler:
        known = self.definitions()
        known[d.name] = d
        return Compiler(
            known,
            as_of,
            self.fields(),
            events_table=events,
            profiles_table=profiles,
            dialect=self._ws.engine.dialect,
        )

    def sql(self, source: Any, as_of: Any = None, *, pretty: bool = True) -> str:
        """The SQL that selects a segment's members at ``as_of``."""
        d = self._resolve(source)
        c = self._compiler(d, to_utc(as_of), "events", "profiles")
        return c.sql(c.members_query(d.name), pretty=pretty)

    def show(self, name: str, as_of: Any = None) -> dict[str, Any]:
        """Definition, method and why, dependencies (in evaluation order), users, and SQL."""
        info = self.info(name)
        d = self.get(name)
        known = self.definitions()
        deps = [n for n in dependency_order(known, [name]) if n != name]
        users = sorted(n for n, x in known.items() if name in x.references())
        return {
            "name": name,
            "version": info.version,
            "description": d.description,
            "method": info.method,
            "reason": info.reason,
            "dependencies": deps,
            "used_by": users,
            "definition": d.to_dict(),
            "yaml": d.to_yaml(),
            "sql": self.sql(d, as_of),
        }

    # ------------------------------------------------------------------ sizing
    def _prepare(self) -> _Prepared:
        """Keep the events and profiles in engine memory (plus a fixed random sample of
        profiles with their events) for repeated counts and estimates; rebuilt when a new
        profile build lands."""
        ws = self._ws
        policy = ws.settings.default_merge_policy
        build = ws.catalog.last_build("profiles", mode=policy)
        key = (build.id if build else None, policy)
        if self._prepared is not None and self._prepared.key == key:
            return self._prepared
        eng = ws.engine
        t = time.perf_counter()
        ws.lake.register(eng, _EVENTS_VIEW, ws.profiles.events_uri())
        ws.lake.register(eng, _PROFILES_VIEW, ws.profiles.table_uri())
        try:
            # events ordered by type and time: a window or a type skips whole row groups
            eng.execute(
                f"CREATE OR REPLACE TABLE {_MEM_T} AS SELECT * FROM {_EVENTS_VIEW} "
                "ORDER BY event_type, timestamp"
            )
            eng.execute(f"CREATE OR REPLACE TABLE {_PROF_T} AS SELECT * FROM {_PROFILES_VIEW}")
        finally:
            eng.unregister(_EVENTS_VIEW)
            eng.unregister(_PROFILES_VIEW)
        population = int(eng.scalar(f"SELECT count(*) FROM {_PROF_T}"))
        n = min(population, ws.settings.estimate_sample_size)
        # a fixed pseudo-random sample: profiles ordered by a multiplicative hash of the id
        eng.execute(
            f"CREATE OR REPLACE TABLE {_PROF_S} AS SELECT * FROM {_PROF_T} "
            f"ORDER BY (profile_id * 2654435761) % 4294967296, profile_id LIMIT {lit(n)}"
        )
        eng.execute(
            f"CREATE OR REPLACE TABLE {_EV_S} AS SELECT e.* FROM {_MEM_T} AS e "
            f"SEMI JOIN {_PROF_S} AS p ON e.profile_id = p.profile_id ORDER BY event_type, timestamp"
        )
        self._prepared = _Prepared(key, population, n)
        log.info(
            "segment sizing ready: %s profiles, sample of %s (%.1fs)",
            population,
            n,
            time.perf_counter() - t,
        )
        return self._prepared

    def count(self, source: Any, as_of: Any = None) -> int:
        """The exact number of profiles in a segment at ``as_of`` (default: now)."""
        d = self._resolve(source)
        self._prepare()
        c = self._compiler(d, to_utc(as_of), _MEM_T, _PROF_T)
        return int(self._ws.engine.scalar(c.sql(c.count_query(d.name))))

    def estimate(self, source: Any, as_of: Any = None) -> Estimate:
        """The size estimated from a fixed random sample of profiles, with a 95% interval
        (Wilson, with the finite-population correction); exact when the sample is everyone."""
        t = time.perf_counter()
        d = self._resolve(source)
        prep = self._prepare()
        c = self._compiler(d, to_utc(as_of), _EV_S, _PROF_S)
        x = int(self._ws.engine.scalar(c.sql(c.count_query(d.name))))
        n, big_n = prep.sample_size, prep.population
        secs = time.perf_counter() - t
        if n >= big_n or n == 0:
            return Estimate(d.name, x, x, x, 0.0, n, x, big_n, True, round(secs, 4))
        return _wilson(d.name, x, n, big_n, secs)

    # ------------------------------------------------------------------ the batch job
    def run(
        self,
        as_of: Any,
        segments: list[str] | None = None,
        *,
        force: bool = False,
    ) -> SegmentRun:
        """Evaluate segments (default: all) and their dependencies over every profile at
        ``as_of``; write memberships (realized / existing / exited) and a run record."""
        ws = self._ws
        as_of = to_utc(as_of)
        known = self.definitions()
        if not known:
            raise NotFoundError("no segments defined: add some with workbench segment add")
        for n in segments or []:
            if n not in known:
                raise NotFoundError(f"no segment named {n!r}")
        order = dependency_order(known, sorted(segments) if segments else sorted(known))
        last = ws.catalog.list_segment_runs(status="success", limit=1)
        if last and as_of < last[0].as_of and not force:
            raise ConfigError(
                f"as_of {as_of.isoformat()} is before the last successful run's "
                f"({last[0].as_of.isoformat()}); statuses move forward in time (force=True to run anyway)"
            )
        run = ws.catalog.start_segment_run(as_of, order)
        t0 = time.perf_counter()
        try:
            with ws.lake.lock("segments"):
                results, timings, version = self._run(run.id, as_of, order, known)
        except BaseException as e:
            ws.catalog.finish_segment_run(run.id, status="failed", error=f"{type(e).__name__}: {e}")
            raise
        secs = time.perf_counter() - t0
        infos = {s.name: s for s in ws.catalog.list_segments()}
        rows = [
            {
                "segment": r.segment,
                "version": infos[r.segment].version,
                "method": r.method,
                "size": r.size,
                "realized": r.realized,
                "existing": r.existing,
                "exited": r.exited,
            }
            for r in results
        ]
        ws.catalog.finish_segment_run(
            run.id,
            rows,
            status="success",
            table_version=version,
            stats={"seconds": round(secs, 3), "timings": timings, "segments": len(order)},
        )
        log.info("segment run %s at %s: %s segments in %.2fs", run.id, as_of, len(order), secs)
        return SegmentRun(run.id, as_of, results, round(secs, 3), timings)

    def _run(
        self, run_id: int, as_of: dt.datetime, order: list[str], known: dict[str, SegmentDefinition]
    ) -> tuple[list[SegmentResult], dict[str, float], int]:
        ws = self._ws
        eng = ws.engine
        timings: dict[str, float] = {}
        t = time.perf_counter()
        views = [_EVENTS_VIEW, _PROFILES_VIEW]
        # the engine's own Parquet reader over each table version's files
        ws.lake.register(eng, _PROFILES_VIEW, ws.profiles.table_uri())
        try:
            ws.lake.register(eng, _EVENTS_VIEW, ws.profiles.events_uri())
        except NotFoundError:
            eng.register_sql(
                _EVENTS_VIEW,
                "SELECT CAST(NULL AS BIGINT) AS profile_id, CAST(NULL AS VARCHAR) AS event_type, "
                "CAST(NULL AS TIMESTAMPTZ) AS timestamp WHERE false",
            )
        mem_path = ws.lake.path(*MEMBERSHIPS)
        prev_exists = ws.lake.exists(mem_path)
        if prev_exists:
            ws.lake.register(eng, "__seg_prev", mem_path)
            views.append("__seg_prev")
        try:
            comp = Compiler(
                known,
                as_of,
                self.fields(),
                events_table=_EVENTS_VIEW,
                profiles_table=_PROFILES_VIEW,
                dialect=eng.dialect,
            )
            q = comp.sql(comp.query(order))
            eng.execute(f"CREATE OR REPLACE TEMP TABLE __seg_result AS {q}")
            timings["evaluate"] = time.perf_counter() - t
            t = time.perf_counter()
            # memberships are keyed by (segment number, profile id): integer joins
            names = (
                "SELECT * FROM (VALUES "
                + ", ".join(f"({lit(i)}, {lit(n)})" for i, n in enumerate(order))
                + ") AS t(idx, segment)"
            )
            new = " UNION ALL ".join(
                f"SELECT {lit(i)} AS idx, profile_id FROM __seg_result WHERE {ident(f's{i}')}"
                for i in range(len(order))
            )
            in_job = ", ".join(lit(n) for n in order)
            prev = (
                f"(SELECT nm.idx, x.profile_id, x.status, x.since, x.exited_at "
                f"FROM __seg_prev AS x JOIN ({names}) AS nm ON nm.segment = x.segment)"
                if prev_exists
                else "(SELECT CAST(NULL AS INTEGER) AS idx, CAST(NULL AS BIGINT) AS profile_id, CAST(NULL AS VARCHAR) AS status, "
                "CAST(NULL AS TIMESTAMPTZ) AS since, CAST(NULL AS TIMESTAMPTZ) AS exited_at WHERE false)"
            )
            a = lit(as_of)
            cutoff = lit(as_of - dt.timedelta(days=ws.settings.membership_retention_days))
            member = "o.status IN ('realized', 'existing')"
            eng.execute(f"""
                CREATE OR REPLACE TEMP TABLE __seg_merged AS
                WITH n AS ({new}), o AS {prev}
                SELECT coalesce(n.idx, o.idx) AS idx,
                       coalesce(n.profile_id, o.profile_id) AS profile_id,
                       CASE WHEN n.profile_id IS NOT NULL AND {member} THEN 'existing'
                            WHEN n.profile_id IS NOT NULL THEN 'realized'
                            ELSE 'exited' END AS status,
                       CASE WHEN n.profile_id IS NOT NULL AND {member} THEN o.since
                            WHEN n.profile_id IS NOT NULL THEN {a}
                            ELSE o.since END AS since,
                       CASE WHEN n.profile_id IS NOT NULL THEN CAST(NULL AS TIMESTAMPTZ)
                            WHEN {member} THEN {a}
                            ELSE o.exited_at END AS exited_at
                FROM n FULL OUTER JOIN o ON n.idx = o.idx AND n.profile_id = o.profile_id
                WHERE n.profile_id IS NOT NULL OR {member} OR o.exited_at > {cutoff}
            """)
            stats = eng.query(
                "SELECT idx, "
                "count(*) FILTER (WHERE status IN ('realized', 'existing')) AS size, "
                "count(*) FILTER (WHERE status = 'realized') AS realized, "
                "count(*) FILTER (WHERE status = 'existing') AS existing, "
                f"count(*) FILTER (WHERE status = 'exited' AND exited_at = {a}) AS exited "
                "FROM __seg_merged GROUP BY idx"
            ).to_pylist()
            changes = eng.query(
                f"SELECT CAST({lit(run_id)} AS BIGINT) AS run_id, {a} AS as_of, nm.segment, m.profile_id, "
                f"m.status FROM __seg_merged AS m JOIN ({names}) AS nm ON nm.idx = m.idx "
                f"WHERE m.status = 'realized' OR (m.status = 'exited' AND m.exited_at = {a})"
            ).cast(CHANGE_SCHEMA)
            keep_other = ""
            if prev_exists:  # memberships of segments not in this job stay as they are
                alive = ", ".join(lit(n) for n in known) or "NULL"
                keep_other = (
                    " UNION ALL SELECT segment, profile_id, status, since, exited_at, "
                    f"updated_at, run_id FROM __seg_prev WHERE segment NOT IN ({in_job}) "
                    f"AND segment IN ({alive})"
                )
            table = eng.query(
                f"SELECT nm.segment, m.profile_id, m.status, m.since, m.exited_at, "
                f"{a} AS updated_at, CAST({lit(run_id)} AS BIGINT) AS run_id "
                f"FROM __seg_merged AS m JOIN ({names}) AS nm ON nm.idx = m.idx{keep_other}"
            )
            timings["statuses"] = time.perf_counter() - t
        finally:
            for v in views:
                eng.unregister(v)
            eng.execute("DROP TABLE IF EXISTS __seg_result")
            eng.execute("DROP TABLE IF EXISTS __seg_merged")
        t = time.perf_counter()
        table = table.cast(MEMBERSHIP_SCHEMA)
        meta = {"workbench.run_id": str(run_id), "workbench.as_of": as_of.isoformat()}
        write_deltalake(
            mem_path,
            table,
            mode="overwrite",
            schema_mode="overwrite",
            commit_properties=CommitProperties(custom_metadata=meta),
        )
        version = ws.lake.version(mem_path)
        ws.catalog.record_version(
            "segments/memberships", version, "segment_run", table.num_rows, None
        )
        write_deltalake(
            ws.lake.path(*CHANGES),
            changes,
            mode="append",
            commit_properties=CommitProperties(custom_metadata=meta),
        )
        timings["write"] = time.perf_counter() - t
        by_idx = {s["idx"]: s for s in stats}
        results = []
        for i, n in enumerate(order):
            s = by_idx.get(i, {})
            m = classify(known[n], known)
            results.append(
                SegmentResult(
                    n,
                    m.method,
                    int(s.get("size", 0)),
                    int(s.get("realized", 0)),
                    int(s.get("existing", 0)),
                    int(s.get("exited", 0)),
                )
            )
        return results, {k: round(v, 3) for k, v in timings.items()}, version

    # ------------------------------------------------------------------ reading
    def runs(self, limit: int = 20) -> list[SegmentRunInfo]:
        """Recent segment jobs, newest first."""
        return self._ws.catalog.list_segment_runs(limit=limit)

    def _memberships(self, version: int | None = None) -> pads.Dataset | None:
        p = self._ws.lake.path(*MEMBERSHIPS)
        if not self._ws.lake.exists(p):
            return None
        return self._ws.lake.snapshot(p, version)

    def members(
        self, name: str, as_of: Any = None, *, include_exited: bool = False
    ) -> pd.DataFrame:
        """Members of a segment (``profile_id``, ``status``, ``since``): now, or as the last
        run at or before ``as_of`` left them."""
        self.info(name)
        version = None
        if as_of is not None:
            when = to_utc(as_of)
            runs = [
                r
                for r in self._ws.catalog.list_segment_runs(status="success", limit=10_000)
                if r.as_of <= when and name in r.segments
            ]
            if not runs:
                raise NotFoundError(f"no run of segment {name!r} at or before {when.isoformat()}")
            version = max(runs, key=lambda r: (r.as_of, r.id)).table_version
        ds = self._memberships(version)
        cols = ["profile_id", "status", "since", "exited_at"]
        if ds is None:
            return pd.DataFrame(columns=cols)
        flt = pads.field("segment") == name
        if not include_exited:
            flt = flt & pads.field("status").isin(list(MEMBER_STATUSES))
        t = ds.to_table(columns=cols, filter=flt).sort_by("profile_id")
        return t.to_pandas()

    def size(self, name: str) -> int:
        """Current number of members (from the membership store)."""
        ds = self._memberships()
        if ds is None:
            return 0
        return ds.count_rows(
            filter=(pads.field("segment") == name)
            & pads.field("status").isin(list(MEMBER_STATUSES))
        )

    def history(self, name: str) -> pd.DataFrame:
        """Per day (last run of the day): size, realized, existing, exited."""
        self.info(name)
        rows = self._ws.catalog.segment_results(name)
        cols = ["date", "as_of", "run_id", "size", "realized", "existing", "exited"]
        if not rows:
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame(rows)
        df["date"] = pd.to_datetime(df["as_of"], utc=True).dt.date
        daily = (
            df.sort_values(["as_of", "run_id"])
            .groupby("date", as_index=False)
            .agg(
                as_of=("as_of", "last"),
                run_id=("run_id", "last"),
                size=("size", "last"),
                realized=("realized", "sum"),
                existing=("existing", "last"),
                exited=("exited", "sum"),
            )
        )
        return daily[cols]

    def changes(self, name: str, *, after_run: int | None = None) -> pd.DataFrame:
        """Entries and exits of a segment (after a given run: "since the last export")."""
        p = self._ws.lake.path(*CHANGES)
        cols = ["run_id", "as_of", "profile_id", "status"]
        if not self._ws.lake.exists(p):
            return pd.DataFrame(columns=cols)
        flt = pads.field("segment") == name
        if after_run is not None:
            flt = flt & (pads.field("run_id") > after_run)
        return self._ws.lake.snapshot(p).to_table(columns=cols, filter=flt).to_pandas()

    def memberships_of(self, profile_id: int) -> list[dict[str, Any]]:
        """Every membership row of one profile (current and recently exited)."""
        ds = self._memberships()
        if ds is None:
            return []
        t = ds.to_table(
            columns=["segment", "status", "since", "exited_at", "updated_at"],
            filter=pads.field("profile_id") == profile_id,
        ).sort_by("segment")
        return t.to_pylist()


def _wilson(name: str, x: int, n: int, big_n: int, secs: float) -> Estimate:
    z = 1.959963984540054
    p = x / n
    fpc = math.sqrt((big_n - n) / (big_n - 1)) if big_n > 1 else 0.0
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom * fpc
    se = math.sqrt(p * (1 - p) / n) * fpc * big_n
    # what the sample proves: at least x members, at most everyone but the sampled non-members
    low = max(x, math.floor((center - half) * big_n))
    high = min(big_n - (n - x), math.ceil((center + half) * big_n))
    est = min(max(round(p * big_n), low), high)
    return Estimate(name, est, low, high, round(se, 2), n, x, big_n, False, round(secs, 4))


__all__ = ["Estimate", "SegmentResult", "SegmentRun", "Segments", "to_utc"]
