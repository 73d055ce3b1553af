"""Unified profiles: attributes merged from every profile dataset by a merge policy, and
each profile's event history (online and offline together).

    ws.profiles.build()                       # the default policy (settings)
    ws.profiles.build("crm_first")            # another named policy, its own table
    p = ws.profiles.get("email:Ana.Lima@Example.com")
    p.attributes, p.sources, p.identities, p.events

Merge policies (``merge_policies`` in ``workbench.yaml``):

* ``timestamp``: per attribute, the non-null value of the most recently updated record
  (``updated_at``; ties broken by the later batch, then the later row);
* ``dataset_precedence``: per attribute, the non-null value from the first dataset in the
  policy's ordered list that has one (within a dataset, the latest record).

Event datasets are appended, never merged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import CommitProperties, write_deltalake

from workbench.errors import ConfigError, NotFoundError
from workbench.lake.sql import ident, lit
from workbench.profile.attribution import IDENTITY_VIEW, register_identities, row_profiles_sql
from workbench.schema.model import SchemaClass

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

EVENTS = ("profiles", "events")
#: Columns every event row has in the unified event history.
EVENT_KEYS = ("profile_id", "dataset", "channel", "timestamp", "event_type")
#: Rows per Parquet row group of the event history (finer pruning by statistics).
EVENT_ROW_GROUP = 1 << 17


@dataclass(frozen=True)
class ProfileBuildStats:
    """What one profile build did."""

    build_id: int
    policy: str
    profiles: int
    profiles_with_attributes: int
    attributes: int
    events: int
    events_not_attributable: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


@dataclass
class Profile:
    """One unified profile, as the explorer and ``profile show`` present it."""

    profile_id: int
    attributes: dict[str, Any]
    sources: dict[str, str]
    identities: list[dict[str, Any]]
    events: list[dict[str, Any]]
    memberships: list[dict[str, Any]] = field(default_factory=list)
    policy: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-friendly apart from timestamps)."""
        return asdict(self)


class Profiles:
    """Unified profiles of a workspace (``ws.profiles``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def _table_path(self, policy: str) -> str:
        return self._ws.lake.path("profiles", f"attributes_{policy}")

    def _policy(self, name: str | None) -> tuple[str, dict[str, Any]]:
        s = self._ws.settings
        name = name or s.default_merge_policy
        if name not in s.merge_policies:
            raise ConfigError(
                f"no merge policy named {name!r} (known: {', '.join(sorted(s.merge_policies))})"
            )
        return name, s.merge_policies[name]

    # ------------------------------------------------------------------ build
    def build(self, policy: str | None = None, *, events: bool = True) -> ProfileBuildStats:
        """Materialize the profile table for a merge policy (and the event history)."""
        ws = self._ws
        if not ws.identity.exists():
            raise NotFoundError("no identity graph yet: run workbench identity build first")
        name, pol = self._policy(policy)
        build = ws.catalog.start_build("profiles", name)
        t0 = time.perf_counter()
        try:
            with ws.lake.lock("profiles"):
                stats = self._build(build.id, name, pol, events, t0)
        except BaseException as e:
            ws.catalog.finish_build(build.id, status="failed", error=f"{type(e).__name__}: {e}")
            raise
        ws.catalog.finish_build(build.id, status="success", stats=stats.to_dict())
        return stats

    def _build(
        self, build_id: int, name: str, pol: dict[str, Any], events: bool, t0: float
    ) -> ProfileBuildStats:
        ws = self._ws
        eng = ws.engine
        timings: dict[str, float] = {}
        register_identities(ws)
        views = [IDENTITY_VIEW]
        profile_parts, event_parts = [], []
        attrs: dict[str, str] = {}  # attribute -> DuckDB type (VARCHAR on conflicts)
        classes = {d.name: ws.catalog.get_schema(d.schema_name) for d in ws.catalog.list_datasets()}
        try:
            for ds, sql, view, path in row_profiles_sql(ws):
                ws.lake.register(eng, view, path)
                views.append(view)
                sch = classes[ds]
                if sch.cls is SchemaClass.PROFILE:
                    # fields added to the schema since the last batch are not columns yet
                    stored = set(ws.lake.table(path).schema().to_arrow().names)  # type: ignore[attr-defined]
                    present = [
                        f.name for f in sch.fields if f.name != "updated_at" and f.name in stored
                    ]
                    for f in present:
                        typ = _duck_type_of(eng, view, f)
                        attrs[f] = typ if attrs.get(f, typ) == typ else "VARCHAR"
                    profile_parts.append((ds, sql, present))
                else:
                    event_parts.append((ds, sql, view))
            t = time.perf_counter()
            table = self._build_attributes(profile_parts, pol, attrs)
            n_attr_profiles = int(pc.sum(pc.greater(table.column("records"), 0)).as_py() or 0)
            timings["attributes"] = time.perf_counter() - t
            # the profile table is written while the engine builds the event history
            with ThreadPoolExecutor(1, thread_name_prefix="profile-write") as pool:
                written = pool.submit(self._write_attributes, build_id, name, table)
                n_events = n_unattributed = 0
                if events:
                    t = time.perf_counter()
                    n_events, n_unattributed = self._build_events(build_id, event_parts, classes)
                    timings["events"] = time.perf_counter() - t
                t = time.perf_counter()
                written.result()
                timings["attributes_write_wait"] = time.perf_counter() - t
        finally:
            for v in views:
                eng.unregister(v)
        profiles = ws.lake.snapshot(self._table_path(name)).count_rows()
        return ProfileBuildStats(
            build_id=build_id,
            policy=name,
            profiles=profiles,
            profiles_with_attributes=n_attr_profiles,
            attributes=len(attrs),
            events=n_events,
            events_not_attributable=n_unattributed,
            seconds=round(time.perf_counter() - t0, 3),
            timings={k: round(v, 3) for k, v in timings.items()},
        )

    def _build_attributes(
        self,
        parts: list[tuple[str, str, list[str]]],
        pol: dict[str, Any],
        attrs: dict[str, str],
    ) -> pa.Table:
        """The profile table of a merge policy (one row per profile)."""
        eng = self._ws.engine
        names = sorted(attrs)
        selects = []
        for ds, sql, fields in parts:
            cols = [
                f"CAST({ident(a)} AS {attrs[a]}) AS {ident(a)}"
                if a in fields
                else f"CAST(NULL AS {attrs[a]}) AS {ident(a)}"
                for a in names
            ]
            selects.append(
                f"SELECT profile_id, {lit(ds)} AS __ds, {lit(len(selects))} AS __dsi, "
                f"updated_at AS __ts, _batch_id AS __b, _row AS __r, "
                f"{', '.join(cols)} FROM ({sql}) WHERE profile_id IS NOT NULL"
            )
        if pol["type"] == "dataset_precedence":
            order = list(pol.get("datasets") or [])
            rank = " ".join(f"WHEN {lit(d)} THEN {len(order) - i}" for i, d in enumerate(order))
            sort = f"CASE __ds {rank} ELSE 0 END, __ts, __b, __r"
        else:
            sort = "__ts, __b, __r"
        ds_names = [ds for ds, _, _ in parts]
        ids_sql = (
            f"SELECT profile_id, count(*) AS identity_count, min(first_seen) AS first_seen, "
            f"max(last_seen) AS last_seen FROM {IDENTITY_VIEW} GROUP BY profile_id"
        )
        if not selects:
            table = eng.query(
                f"SELECT profile_id, NULL::TIMESTAMPTZ AS updated_at, 0::BIGINT AS records, "
                f"identity_count, first_seen, last_seen FROM ({ids_sql})"
            )
        else:
            # the fragments in policy order (the last one is the strongest): each attribute's
            # winner is then the largest position among its non-null fragments, an integer
            # max per attribute; the values and their datasets are gathered by position
            frags = eng.query(
                f"SELECT profile_id, __dsi, __ts, {', '.join(ident(a) for a in names)} "
                f"FROM ({' UNION ALL '.join(selects)}) ORDER BY {sort}"
            )
            pos = pa.array(np.arange(frags.num_rows, dtype=np.int64))
            eng.register(
                "__frags",
                pa.table(
                    {
                        "profile_id": frags.column("profile_id"),
                        "__ts": frags.column("__ts"),
                        "__pos": pos,
                        "__dsi": frags.column("__dsi"),
                        **{f"__n{k}": pc.is_valid(frags.column(a)) for k, a in enumerate(names)},
                    }
                ),
            )
            # a winner is position * 64 + dataset index: its value by position, its dataset
            # (the ``sources`` struct) straight from the low bits
            wins = ", ".join(
                f"max(CASE WHEN __n{k} THEN __pos * 64 + __dsi END) AS __w{k}"
                for k in range(len(names))
            )
            ds_list = "[" + ", ".join(lit(d) for d in ds_names) + "]"
            entries = ", ".join(
                f"{ident(a)} := {ds_list}[m.__w{k} % 64 + 1]" for k, a in enumerate(names)
            )
            try:
                table = eng.query(
                    f"WITH m AS (SELECT profile_id{', ' + wins if wins else ''}, max(__ts) AS updated_at, "
                    f"count(*) AS records FROM __frags GROUP BY profile_id), ids AS ({ids_sql}) "
                    f"SELECT ids.profile_id, {''.join(f'm.__w{k} // 64 AS __w{k}, ' for k in range(len(names)))}"
                    + (f"struct_pack({entries}) AS sources, " if names else "")
                    + "m.updated_at, coalesce(m.records, 0) AS records, ids.identity_count, "
                    "ids.first_seen, ids.last_seen FROM ids LEFT JOIN m USING (profile_id)"
                )
            finally:
                eng.unregister("__frags")

            def gather(k: int) -> pa.ChunkedArray:
                return pc.take(frags.column(names[k]), table.column(f"__w{k}"))

            with ThreadPoolExecutor(2, thread_name_prefix="profile-gather") as pool:
                values = list(pool.map(gather, range(len(names))))
            cols: dict[str, Any] = {"profile_id": table.column("profile_id")}
            cols.update(zip(names, values, strict=True))
            rest = ("sources",) if names else ()
            for c in (*rest, "updated_at", "records", "identity_count", "first_seen", "last_seen"):
                cols[c] = table.column(c)
            table = pa.table(cols)
        return table

    def _write_attributes(self, build_id: int, name: str, table: pa.Table) -> None:
        props = CommitProperties(
            custom_metadata={"workbench.build_id": str(build_id), "workbench.policy": name}
        )
        write_deltalake(
            self._table_path(name),
            table,
            mode="overwrite",
            schema_mode="overwrite",
            commit_properties=props,
        )

    def _build_events(
        self, build_id: int, parts: list[tuple[str, str, str]], classes: dict[str, Any]
    ) -> tuple[int, int]:
        """Stream every event with its profile into the event history, in one pass; rows
        with no known identity are counted (not attributable) and left out."""
        eng = self._ws.engine
        if not parts:
            return 0, 0
        # the history holds who, when, what and the event's own fields (not its identities:
        # they live in the graph), plus where the full row lives (dataset, batch, row)
        fields: dict[str, str] = {}
        own: dict[str, set[str]] = {}  # per dataset, the history fields its table has
        for ds, _, _ in parts:
            stored = set(
                self._ws.lake.table(self._ws.datasets.get(ds).table_path).schema().to_arrow().names
            )  # type: ignore[attr-defined]
            own[ds] = stored
            for f in classes[ds].fields:
                if f.identity is not None or f.name in EVENT_KEYS or f.name not in stored:
                    continue
                typ = _duck_type_of(eng, f"__rows_{ds}", f.name)
                fields[f.name] = typ if fields.get(f.name, typ) == typ else "VARCHAR"
        total = sum(
            int(eng.scalar(f"SELECT count(*) FROM {ident(view)}") or 0)
            for view in {view for _, _, view in parts}
        )
        # one file per dataset, each stored ordered by event type, then time: a segment
        # condition on a type (and a window) reads only the row groups of that type (and
        # time), from Parquet statistics. Each dataset sorts only its own columns (the
        # others' are added as typed NULLs after the sort: a third less to move at 1M
        # persons than one sort of the union). The engine writes the Parquet itself (sort
        # and encoding on every core, no Arrow round trip); the files become the table's
        # new version in one commit.
        uri = self._ws.lake.path(*EVENTS)
        files: list[str] = []
        try:
            for ds, sql, _ in parts:
                have = [n for n in fields if n in own[ds]]
                inner = ", ".join(
                    ["profile_id", "CAST(timestamp AS TIMESTAMPTZ) AS timestamp"]
                    + ["CAST(event_type AS VARCHAR) AS event_type"]
                    + [f"CAST({ident(n)} AS {fields[n]}) AS {ident(n)}" for n in have]
                    + ["_batch_id", "_row"]
                )
                out_cols = ", ".join(
                    ["profile_id", f"CAST({lit(ds)} AS VARCHAR) AS dataset"]
                    + [f"CAST({lit(classes[ds].channel)} AS VARCHAR) AS channel"]
                    + ["timestamp", "event_type"]
                    + [
                        ident(n) if n in have else f"CAST(NULL AS {t}) AS {ident(n)}"
                        for n, t in fields.items()
                    ]
                    + ["_batch_id", "_row"]
                )
                f = self._ws.lake.new_file(uri)
                files.append(f)
                eng.execute(
                    f"COPY (SELECT {out_cols} FROM (SELECT {inner} FROM ({sql}) "
                    f"WHERE profile_id IS NOT NULL ORDER BY event_type, timestamp)) TO {lit(f)} "
                    f"(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE {EVENT_ROW_GROUP})"
                )
            self._ws.lake.overwrite_files(uri, files, {"build_id": build_id})
        except BaseException:
            for f in files:
                with contextlib.suppress(OSError):
                    os.remove(f)
            raise
        kept = sum(int(pq.read_metadata(f).num_rows) for f in files)
        return kept, total - kept

    def _event_details(self, index: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The full rows of a few indexed events, read back from their datasets."""
        out = []
        by_ds: dict[str, list[dict[str, Any]]] = {}
        for e in index:
            by_ds.setdefault(e["dataset"], []).append(e)
        rows: dict[tuple[str, int, int], dict[str, Any]] = {}
        for ds, evs in by_ds.items():
            snap = self._ws.datasets.snapshot(ds)
            flt = None
            for e in evs:
                f = (pads.field("_batch_id") == e["_batch_id"]) & (pads.field("_row") == e["_row"])
                flt = f if flt is None else flt | f
            for r in snap.to_table(filter=flt).to_pylist():
                rows[(ds, r["_batch_id"], r["_row"])] = r
        for e in index:
            full = rows.get((e["dataset"], e["_batch_id"], e["_row"]), {})
            merged = {
                "dataset": e["dataset"],
                **full,
                "timestamp": e["timestamp"],
                "event_type": e["event_type"],
            }
            out.append({k: v for k, v in merged.items() if v is not None and k != "_ingested_at"})
        return out

    # ------------------------------------------------------------------ read
    def table(self, policy: str | None = None) -> pads.Dataset:
        """The profile table of a policy (the default policy by default)."""
        name, _ = self._policy(policy)
        p = self._table_path(name)
        if not self._ws.lake.exists(p):
            raise NotFoundError(
                f"no profiles built for policy {name!r}: run workbench profile build"
            )
        return self._ws.lake.snapshot(p)

    def table_uri(self, policy: str | None = None) -> str:
        """Where the profile table of a policy lives (it must have been built)."""
        name, _ = self._policy(policy)
        p = self._table_path(name)
        if not self._ws.lake.exists(p):
            raise NotFoundError(
                f"no profiles built for policy {name!r}: run workbench profile build"
            )
        return p

    def events_uri(self) -> str:
        """Where the event history lives (it must have been built)."""
        p = self._ws.lake.path(*EVENTS)
        if not self._ws.lake.exists(p):
            raise NotFoundError("no event history built: run workbench profile build")
        return p

    def events_table(self) -> pads.Dataset:
        """The unified event history of every profile."""
        p = self._ws.lake.path(*EVENTS)
        if not self._ws.lake.exists(p):
            raise NotFoundError("no event history built: run workbench profile build")
        return self._ws.lake.snapshot(p)

    def get(self, identity: str, *, policy: str | None = None, events: int = 20) -> Profile:
        """The unified profile of any identity (``ns:value``; the value is normalized first)."""
        ws = self._ws
        pid = ws.identity.lookup(identity)
        if pid is None:
            raise NotFoundError(f"no profile for {identity}")
        return self.by_id(pid, policy=policy, events=events)

    def by_id(self, profile_id: int, *, policy: str | None = None, events: int = 20) -> Profile:
        """A unified profile by id."""
        name, _ = self._policy(policy)
        eng = self._ws.engine
        pid = lit(int(profile_id))
        row = self._ws.lake.query(
            eng, self.table_uri(name), f"SELECT * FROM {{t}} WHERE profile_id = {pid}"
        ).to_pylist()
        if not row:
            raise NotFoundError(f"no profile {profile_id} in the {name!r} profiles (rebuild them?)")
        r = row[0]
        sources = {k: v for k, v in (r.pop("sources", None) or {}).items() if v is not None}
        skip = {"profile_id", "updated_at", "records", "identity_count", "first_seen", "last_seen"}
        attributes = {k: v for k, v in r.items() if k not in skip and v is not None}
        idents = self._ws.identity.members(profile_id).to_pylist()
        evs: list[dict[str, Any]] = []
        if events and self._ws.lake.exists(self._ws.lake.path(*EVENTS)):
            t = self._ws.lake.query(
                eng,
                self.events_uri(),
                f"SELECT * FROM {{t}} WHERE profile_id = {pid} "
                f"ORDER BY timestamp DESC, dataset LIMIT {int(events)}",
            )
            evs = self._event_details(t.to_pylist())
        memberships = self._ws.segments.memberships_of(profile_id)
        return Profile(profile_id, attributes, sources, idents, evs, memberships, name)


def _duck_type_of(eng: Any, view: str, column: str) -> str:
    t = (
        eng.query(f"SELECT typeof({ident(column)}) AS t FROM {view} LIMIT 1")
        .column("t")
        .to_pylist()
    )
    return t[0] if t else "VARCHAR"


__all__ = ["Profile", "ProfileBuildStats", "Profiles"]
