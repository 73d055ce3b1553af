"""The identity graph: extract identities and links from the lake, cluster, keep ids stable.

    stats = ws.identity.build()                 # incremental when a graph exists
    ws.identity.lookup("email:Ana.Lima@Example.com")   # -> profile id
    ws.identity.explain("ecid:123", "crm_id:C00000001")

Stored in the lake (Delta, one new version per build, so earlier graphs stay readable):
``identity/identities`` (namespace, value, profile_id, first/last seen, status),
``identity/links`` (both ends, dataset and time of the latest evidence, kept or cut and
why) and ``identity/merges`` (retired profile id -> surviving id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import write_deltalake
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from workbench.errors import InputError, NotFoundError, WorkbenchError
from workbench.identity.cluster import KIND_DROP_ORDER, ClusterInput, cluster
from workbench.identity.stable import assign_profile_ids
from workbench.lake.delta import META_PREFIX
from workbench.lake.sql import ident, lit
from workbench.schema.model import SchemaClass
from workbench.schema.namespaces import Namespace
from workbench.schema.normalize import normalize_value

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Values that never become identities, in any namespace.
DEFAULT_BLOCKED: tuple[str, ...] = (
    "",
    "null",
    "none",
    "nil",
    "n/a",
    "na",
    "unknown",
    "anonymous",
    "invalid",
    "undefined",
    "0",
    "-1",
    "test",
    "test@test.com",
    "test@example.com",
    "none@none.com",
    "noemail@example.com",
    "no@email.com",
    "noreply@example.com",
)
#: Phones made of one repeated digit or zeros (``+10000000000``) never become identities.
BLOCKED_PHONE_PATTERN = (
    r"\+[0-9]{0,3}0{6,}|\+(?:" + "|".join(f"{d}{{8,}}" for d in "123456789") + ")"
)

IDENTITIES = ("identity", "identities")
#: The columns of a link (both ends, when and where it was seen).
LINK_COLUMNS = [
    "a_ns",
    "a_value",
    "b_ns",
    "b_value",
    "first_seen",
    "last_seen",
    "evidence",
    "dataset",
]
LINKS = ("identity", "links")
MERGES = ("identity", "merges")


@dataclass(frozen=True)
class IdentityBuildStats:
    """What one build did."""

    build_id: int
    mode: str
    identities: int
    links: int
    profiles: int
    largest_profile: int
    conflicting_components: int
    links_cut: int
    clusters_over_cap: int
    identities_dropped_by_cap: int
    new_profiles: int
    merged_profiles: int
    split_profiles: int
    max_profile_id: int
    rows_scanned: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    #: the build whose tables these are (an update with nothing to do keeps the last ones)
    graph_build_id: int = 0
    #: what the clustering depended on (namespaces, cap, blocked values): see ``build``
    settings_digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the catalog and JSON)."""
        return asdict(self)


def parse_identity(text: str) -> tuple[str, str]:
    """``namespace:value`` -> (namespace, value)."""
    ns, sep, value = text.partition(":")
    if not sep or not ns or not value:
        raise InputError(text, "an identity is written namespace:value, e.g. email:ana@example.com")
    return ns.strip(), value


class IdentityGraph:
    """The workspace's identity graph (``ws.identity``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    # ------------------------------------------------------------------ paths
    def _path(self, parts: tuple[str, str]) -> str:
        return self._ws.lake.path(*parts)

    def exists(self) -> bool:
        """Whether a graph has been built."""
        return self._ws.lake.exists(self._path(IDENTITIES))

    def identities(self, version: int | None = None) -> pa.Table:
        """The identities table (latest build, or a Delta ``version``)."""
        if not self.exists():
            raise NotFoundError("no identity graph yet: run workbench identity build")
        return self._ws.lake.snapshot(self._path(IDENTITIES), version).to_table()

    def links(self) -> pa.Table:
        """The links table of the latest build."""
        if not self.exists():
            raise NotFoundError("no identity graph yet: run workbench identity build")
        return self._ws.lake.snapshot(self._path(LINKS)).to_table()

    def merges(self) -> pa.Table:
        """Retired profile ids and the id that survived them."""
        p = self._path(MERGES)
        if not self._ws.lake.exists(p):
            return pa.table(
                {
                    "retired_profile_id": pa.array([], pa.int64()),
                    "profile_id": pa.array([], pa.int64()),
                }
            )
        return self._ws.lake.snapshot(p).to_table()

    # ------------------------------------------------------------------ extraction
    def _sources(self) -> list[tuple[str, str, list[tuple[str, Namespace]], str]]:
        """(dataset, table path, [(field, namespace)] by priority, time column)."""
        ws = self._ws
        nss = {n.name: n for n in ws.catalog.namespaces()}
        out = []
        for d in ws.catalog.list_datasets():
            if not d.profile_enabled or not ws.lake.exists(d.table_path):
                continue
            sch = ws.catalog.get_schema(d.schema_name)
            # a field added to the schema after the last batch is not a column of the table yet
            stored = set(ws.lake.table(d.table_path).schema().to_arrow().names)  # type: ignore[attr-defined]
            fields = [
                (f.name, nss[f.identity.namespace])
                for f in sch.identity_fields
                if f.identity.namespace in nss and f.name in stored
            ]
            if not fields:
                continue
            fields.sort(key=lambda x: (-x[1].priority, x[0]))
            tcol = "timestamp" if sch.cls is SchemaClass.EVENT else "updated_at"
            out.append((d.name, d.table_path, fields, tcol))
        return out

    def _blocked_sql(self, ns_expr: str, v_expr: str) -> str:
        extra = self._ws.settings.blocked_identities
        plain = [v.lower() for v in (*DEFAULT_BLOCKED, *(x for x in extra if ":" not in x))]
        scoped = [x for x in extra if ":" in x]
        items = ", ".join(lit(v) for v in sorted(set(plain)))
        # lower() maps code points one to one: a longer value cannot be a blocked one, and
        # the cheap length test spares lowering every long value (cookies, most emails)
        longest = max((len(v) for v in plain), default=0)
        cond = f"(length({v_expr}) <= {longest} AND lower({v_expr}) IN ({items}))"
        if scoped:
            cond += f" OR ({ns_expr} || ':' || {v_expr}) IN ({', '.join(lit(v) for v in scoped)})"
        cond += f" OR ({ns_expr} = 'phone' AND regexp_full_match({v_expr}, {lit(BLOCKED_PHONE_PATTERN)}))"
        return f"({cond})"

    def _row_identities_sql(
        self, view: str, fields: list[tuple[str, Namespace]], tcol: str, where: str
    ) -> str:
        """Per row: the list of its (namespace, value) identities, highest priority first."""
        structs = ", ".join(
            f"struct_pack(ns := {lit(ns.name)}, v := CAST({ident(f)} AS VARCHAR))"
            for f, ns in fields
        )
        keep = f"lambda x: x.v IS NOT NULL AND NOT {self._blocked_sql('x.ns', 'x.v')}"
        return (
            f"SELECT CAST({ident(tcol)} AS TIMESTAMPTZ) AS ts, "
            f"list_filter([{structs}], {keep}) AS ids FROM {view} {where}"
        )

    def _dataset_bits(self) -> dict[str, int]:
        """A stable bit per dataset (by creation order) for the ``dataset_mask`` of identities."""
        ds = sorted(self._ws.catalog.list_datasets(), key=lambda d: (d.created_at, d.name))
        if len(ds) > 62:
            raise WorkbenchError("more than 62 datasets: the identity dataset mask needs widening")
        return {d.name: 1 << i for i, d in enumerate(ds)}

    def _datasets_list_sql(self, mask: str) -> str:
        """SQL turning a dataset mask into the sorted list of dataset names."""
        arms = ", ".join(
            f"CASE WHEN ({mask} & {bit}) <> 0 THEN {lit(name)} END"
            for name, bit in sorted(self._dataset_bits().items())
        )
        return f"list_filter([{arms}], lambda x: x IS NOT NULL)"

    def _ns_rank(self) -> list[str]:
        """Namespace names in sorted order: a namespace's position is its sort rank, so
        ordering identities by (rank, value) is ordering them by (namespace, value)."""
        return sorted(n.name for n in self._ws.catalog.namespaces())

    def _observations_sql(
        self,
        sources: list[tuple[str, str, list[tuple[str, Namespace]], str, str]],
        ds_names: list[str],
        exact: bool,
    ) -> str:
        """One query over every source: identities and links, aggregated on integer keys.

        Each dataset is read once and first grouped on its raw identity fields (events
        repeat the same identities: 11.6 M rows are 4.1 M distinct tuples at 1M persons),
        with first/last time and row count (a materialized CTE). Per tuple: its identity
        fields minus blocked values, each with its key (``hash(namespace, value)``, or the
        exact ``namespace || chr(1) || value`` when ``exact``). A row links each identity
        to its highest-priority identity (a star: the same connectivity as every pair,
        fewer links). One ``GROUP BY`` over every (dataset, field) gives the identities
        (first and last seen, evidence = rows, dataset bits, the value), one over every link
        gives the links (an unordered pair of keys, first/last seen, evidence, dataset index
        of the latest evidence). The result is the identities (``is_link`` false) then the
        links.
        """
        nsr = {n: i for i, n in enumerate(self._ns_rank())}
        bits = self._dataset_bits()
        ctes, parts_i, parts_l = [], [], []
        for si, (name, view, fields, tcol, where) in enumerate(sources):
            raw = ", ".join(
                f"CAST({ident(f)} AS VARCHAR) AS r{k}" for k, (f, _) in enumerate(fields)
            )
            grp = ", ".join(f"r{k}" for k in range(len(fields)))
            tuples = (
                f"SELECT {grp}, min(ts) AS f, max(ts) AS l, count(*) AS n FROM (SELECT "
                f"CAST({ident(tcol)} AS TIMESTAMPTZ) AS ts, {raw} FROM {view} {where}) GROUP BY {grp}"
            )
            cleaned = ", ".join(
                f"CASE WHEN {self._blocked_sql(lit(ns.name), f'r{k}')} THEN NULL ELSE r{k} END AS i{k}"
                for k, (_, ns) in enumerate(fields)
            )
            keys = ", ".join(
                f"CASE WHEN i{k} IS NOT NULL THEN {_key_sql(lit(ns.name), f'i{k}', exact)} END AS h{k}"
                for k, (_, ns) in enumerate(fields)
            )
            ctes.append(
                f"s{si} AS MATERIALIZED (SELECT *, {keys} FROM (SELECT f, l, n, {cleaned} FROM ({tuples})))"
            )
            ds = ds_names.index(name)
            for k, (_, ns) in enumerate(fields):
                parts_i.append(
                    f"SELECT h{k} AS h, {nsr[ns.name]}::SMALLINT AS nsr, i{k} AS v, f, l, n, "
                    f"{bits[name]}::BIGINT AS m FROM s{si} WHERE h{k} IS NOT NULL"
                )
            for j in range(1, len(fields)):
                anchor = f"COALESCE({', '.join(f'h{k}' for k in range(j))})"
                parts_l.append(
                    f"SELECT {anchor} AS ha, h{j} AS hb, f, l, n, {ds}::SMALLINT AS ds "
                    f"FROM s{si} WHERE h{j} IS NOT NULL"
                )
        ktype = "VARCHAR" if exact else "UBIGINT"
        # two different identities under one hash key: a second, independent hash of the
        # value (shifted by a prefix byte) and the namespace then differs within the group
        # (string min/max would be exact, and cost a fifth of the query)
        check = "hash(chr(1) || v, nsr)"
        clash = "false" if exact else f"min({check}) <> max({check})"
        ids = (
            "SELECT false AS is_link, h AS x, NULL::" + ktype + " AS y, any_value(nsr) AS nsr, "
            "any_value(v) AS value, min(f) AS first_seen, max(l) AS last_seen, sum(n)::BIGINT AS evidence, "
            f"bit_or(m) AS dataset_mask, NULL::SMALLINT AS ds, {clash} AS clash "
            f"FROM ({' UNION ALL '.join(parts_i)}) GROUP BY h"
        )
        links = (
            "SELECT true, least(ha, hb), greatest(ha, hb), NULL, NULL, min(f), max(l), "
            "sum(n)::BIGINT, NULL, arg_max(ds, l), false "
            f"FROM ({' UNION ALL '.join(parts_l)}) WHERE ha IS NOT NULL AND ha <> hb GROUP BY 2, 3"
            if parts_l
            else None
        )
        body = ids if links is None else f"{ids} UNION ALL {links}"
        return f"WITH {', '.join(ctes)} {body}"

    def _extract(
        self, watermark: dict[str, int], ds_names: list[str], exact: bool
    ) -> tuple[pa.Table, pa.Table, int, dict[str, int]]:
        """New identity and link observations (aggregated, keyed) from batches after
        ``watermark``: see :meth:`_observations_sql` for the two tables' columns."""
        ws = self._ws
        eng = ws.engine
        new_mark: dict[str, int] = dict(watermark)
        rows = 0
        sources = []
        views = []
        try:
            for name, path, fields, tcol in self._sources():
                view = f"__id_src_{name}"
                ws.lake.register(eng, view, path)
                views.append(view)
                since = int(watermark.get(name, 0))
                where = f"WHERE _batch_id > {lit(since)}" if since else ""
                stat = eng.query(
                    f"SELECT max(_batch_id) AS top, count(*) AS n FROM {view} {where}"
                ).to_pylist()[0]
                if stat["top"] is not None:
                    new_mark[name] = max(int(stat["top"]), since)
                rows += int(stat["n"] or 0)
                if stat["n"]:
                    sources.append((name, view, fields, tcol, where))
            if not sources:
                return _empty_keyed_ids(exact), _empty_keyed_links(exact), 0, new_mark
            with _unordered(eng):
                res = eng.query(self._observations_sql(sources, ds_names, exact))
        finally:
            for v in views:
                eng.unregister(v)
        ids, links = _split_links(res)
        return ids, links, rows, new_mark

    def _stored_keyed(self, ds_names: list[str], exact: bool) -> tuple[pa.Table, pa.Table]:
        """The stored graph (latest version) as keyed identities and links."""
        ws = self._ws
        eng = ws.engine
        ranks = "[" + ", ".join(lit(n) for n in self._ns_rank()) + "]"
        dsl = "[" + ", ".join(lit(n) for n in ds_names) + "]"
        ws.lake.register(eng, "__old_i", self._path(IDENTITIES))
        ws.lake.register(eng, "__old_l", self._path(LINKS))
        try:
            ids = eng.query(
                f"SELECT {_key_sql('namespace', 'value', exact)} AS x, "
                f"(list_position({ranks}, namespace) - 1)::SMALLINT AS nsr, value, first_seen, "
                f"last_seen, evidence, dataset_mask, false AS clash FROM __old_i "
                f"WHERE list_position({ranks}, namespace) IS NOT NULL"
            )
            links = eng.query(
                f"SELECT least({_key_sql('a_ns', 'a_value', exact)}, {_key_sql('b_ns', 'b_value', exact)}) AS x, "
                f"greatest({_key_sql('a_ns', 'a_value', exact)}, {_key_sql('b_ns', 'b_value', exact)}) AS y, "
                f"first_seen, last_seen, evidence, (list_position({dsl}, dataset) - 1)::SMALLINT AS ds "
                "FROM __old_l"
            )
        finally:
            eng.unregister("__old_i")
            eng.unregister("__old_l")
        return ids, links

    def _link_datasets(self) -> list[str]:
        """Names a link's dataset index points into: every catalog dataset, plus any name
        the stored links still carry (a dataset since removed)."""
        names = sorted(d.name for d in self._ws.catalog.list_datasets())
        if self.exists():
            old = self._ws.lake.query(
                self._ws.engine,
                self._path(LINKS),
                "SELECT DISTINCT dataset FROM {t} WHERE dataset IS NOT NULL",
            )
            names += sorted(set(old.column("dataset").to_pylist()) - set(names))
        return names

    # ------------------------------------------------------------------ build
    def build(self, *, full: bool = False) -> IdentityBuildStats:
        """Build (or update) the graph and the stable profile ids.

        Incremental by default once a graph exists: only batches ingested since the last
        build are read; their identities and links are merged into the stored graph, which
        is then re-clustered (clustering all links is cheap; reading the lake is not). With
        no new rows and the same rules, the last build's graph is kept as it is.
        ``full=True`` re-reads everything.
        """
        ws = self._ws
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        last = ws.catalog.last_build("identity")
        incremental = bool(last) and not full and self.exists()
        build = ws.catalog.start_build("identity", "incremental" if incremental else "full")
        try:
            with ws.lake.lock("identity"):
                if incremental and last is not None and self._unchanged_since(last):
                    return self._keep_graph(build.id, last, t0)
                stats = self._build(
                    build.id,
                    last.watermark if (incremental and last) else {},
                    incremental,
                    timings,
                    t0,
                )
        except BaseException as e:
            ws.catalog.finish_build(build.id, status="failed", error=f"{type(e).__name__}: {e}")
            raise
        return stats

    def _keep_graph(self, build_id: int, last: Any, t0: float) -> IdentityBuildStats:
        """Record an update with nothing to do: the last build's graph and figures stand."""
        seconds = round(time.perf_counter() - t0, 3)
        stats = IdentityBuildStats(
            **{
                **last.stats,
                "build_id": build_id,
                "mode": "incremental",
                "new_profiles": 0,
                "merged_profiles": 0,
                "split_profiles": 0,
                "rows_scanned": 0,
                "seconds": seconds,
                "timings": {"unchanged": seconds},
            }
        )
        self._ws.catalog.finish_build(
            build_id, status="success", watermark=last.watermark, stats=stats.to_dict()
        )
        log.info("identity build %d: nothing new since build %d", build_id, last.id)
        return stats

    def _settings_digest(
        self, sources: list[tuple[str, str, list[tuple[str, Namespace]], str]]
    ) -> str:
        """What the graph depends on besides the data: namespaces (priority, uniqueness,
        kind, normalizer), the cap, blocked values, the default region and the sources
        (:meth:`_sources`) with their identity fields."""
        ws = self._ws
        rules = {
            "namespaces": sorted(
                (n.name, n.priority, n.unique, n.kind.value, str(n.normalizer))
                for n in ws.catalog.namespaces()
            ),
            "cap": ws.settings.identity_cap,
            "blocked": sorted(ws.settings.blocked_identities),
            "region": ws.settings.default_region,
            "datasets": sorted((name, [f for f, _ in fields]) for name, _, fields, _ in sources),
        }
        return hashlib.blake2b(repr(rules).encode(), digest_size=16).hexdigest()

    def _unchanged_since(self, last: Any) -> bool:
        """Whether the last build's graph is still current: no rows after its watermark in
        any source, the same rules, and the stored tables are the ones it stands for."""
        lake = self._ws.lake
        sources = self._sources()
        if last.stats.get("settings_digest") != self._settings_digest(sources):
            return False
        commits = lake.table(self._path(IDENTITIES)).history(1)
        graph = last.stats.get("graph_build_id") or last.id
        if not commits or str(commits[0].get(f"{META_PREFIX}build_id")) != str(graph):
            return False
        return not any(
            lake.query(
                self._ws.engine,
                path,
                f"SELECT 1 FROM {{t}} WHERE _batch_id > {lit(int(last.watermark.get(name, 0)))} LIMIT 1",
            ).num_rows
            for name, path, _, _ in sources
        )

    def _build(
        self,
        build_id: int,
        watermark: dict[str, int],
        incremental: bool,
        timings: dict[str, float],
        t0: float,
    ) -> IdentityBuildStats:
        ws = self._ws
        t = time.perf_counter()
        ds_names = self._link_datasets()
        # integer keys (a 64-bit hash of namespace and value); on the (astronomically rare)
        # hash collision, the same build runs again on exact string keys
        for exact in (False, True):
            got = self._keyed_graph(watermark, incremental, ds_names, exact, timings, t)
            if got is not None:
                break
            log.warning("identity key collision: rebuilding with exact string keys")
        assert got is not None
        ids_k, links_k, rows, mark = got

        # dense integer ids (ordered by namespace and key: deterministic), links as pairs
        t = time.perf_counter()
        ids, links_k, a, b, inp = self._index(ids_k, links_k)
        rank_names = pa.array(self._ns_rank(), pa.string())
        nsr = ids.column("nsr").to_numpy()
        names = rank_names.take(nsr)
        named = pa.table({"namespace": names, "value": ids.column("value")})
        timings["index"] = time.perf_counter() - t
        values = ids.column("value")

        def link_ends() -> dict[str, Any]:
            # a namespace from the few names by rank: a small gather, not one over the
            # identities' names
            return {
                "a_ns": rank_names.take(nsr[a]),
                "a_value": values.take(a),
                "b_ns": rank_names.take(nsr[b]),
                "b_value": values.take(b),
            }

        meta = {"build_id": build_id}
        # while the clustering runs (Python, one core) a second thread gathers the links'
        # ends and reads the previous profile ids (Arrow, no GIL); a third writes the
        # links while the stable ids are assigned and the identities written
        with (
            ThreadPoolExecutor(1, thread_name_prefix="identity") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="identity-write") as writer,
        ):
            ends = pool.submit(link_ends)
            digest = pool.submit(_identities_digest, rank_names, nsr, values)
            prev = pool.submit(lambda: self._previous_profile_ids(ids, digest.result()))
            t = time.perf_counter()
            res = cluster(inp, _Describe(named))  # type: ignore[arg-type]
            timings["cluster"] = time.perf_counter() - t
            t = time.perf_counter()
            link_cols = ends.result()
            nlinks = len(a)
            links_written = writer.submit(
                lambda: self._write(
                    LINKS, _links_table(link_cols, links_k, ds_names, res, nlinks), meta
                )
            )
            prev_pid = prev.result()
            timings["previous_ids_wait"] = time.perf_counter() - t

            # stable profile ids: keep, merge (older survives), split (largest part keeps it)
            t = time.perf_counter()
            last = ws.catalog.last_build("identity")
            max_prev = (
                int(last.stats.get("max_profile_id", 0) or 0) if last else 0
            )  # ids are never reused
            asg = assign_profile_ids(res.labels, prev_pid, max_prev)
            status = np.zeros(ids.num_rows, dtype=np.int32)
            status[res.dropped] = 1
            final = pa.table(
                {
                    "namespace": names,
                    "value": ids.column("value"),
                    "profile_id": pa.array(asg.profile_id, pa.int64()),
                    "first_seen": ids.column("first_seen"),
                    "last_seen": ids.column("last_seen"),
                    "evidence": ids.column("evidence"),
                    "dataset_mask": ids.column("dataset_mask"),
                    "status": pa.DictionaryArray.from_arrays(
                        pa.array(status), pa.array(["active", "dropped_by_cap"])
                    ).cast(pa.string()),
                }
            )
            merges = pa.table(
                {
                    "retired_profile_id": pa.array(asg.retired, pa.int64()),
                    "profile_id": pa.array(asg.survivor, pa.int64()),
                }
            )
            counts = {"new": asg.new, "split": asg.split}
            timings["stable_ids"] = time.perf_counter() - t

            # write: one new version of each table
            t = time.perf_counter()
            self._write(IDENTITIES, final, {**meta, "identities_digest": digest.result()})
            links_written.result()
        if merges.num_rows:
            m = merges.append_column("build_id", pa.array([build_id] * merges.num_rows, pa.int64()))
            m = m.append_column(
                "merged_at",
                pa.array([dt.datetime.now(dt.UTC)] * merges.num_rows, pa.timestamp("us", tz="UTC")),
            )
            write_deltalake(self._path(MERGES), m, mode="append", schema_mode="merge")
        timings["write"] = time.perf_counter() - t

        sizes = np.bincount(res.labels) if len(res.labels) else np.zeros(0, dtype=np.int64)
        sizes = sizes[sizes > 0]  # identities per profile (labels are non-negative)
        stats = IdentityBuildStats(
            build_id=build_id,
            mode="incremental" if incremental else "full",
            identities=final.num_rows,
            links=nlinks,
            profiles=len(sizes),
            largest_profile=int(sizes.max()) if len(sizes) else 0,
            conflicting_components=res.conflicting_components,
            links_cut=res.links_cut,
            clusters_over_cap=res.clusters_over_cap,
            identities_dropped_by_cap=len(res.dropped),
            new_profiles=int(counts["new"]),
            merged_profiles=merges.num_rows,
            split_profiles=int(counts["split"]),
            max_profile_id=max(max_prev, int(asg.profile_id.max()) if len(asg.profile_id) else 0),
            rows_scanned=rows,
            seconds=round(time.perf_counter() - t0, 3),
            timings={k: round(v, 3) for k, v in timings.items()},
            graph_build_id=build_id,
            settings_digest=self._settings_digest(self._sources()),
        )
        ws.catalog.finish_build(build_id, status="success", watermark=mark, stats=stats.to_dict())
        log.info("identity build %d: %s", build_id, stats)
        return stats

    def _keyed_graph(
        self,
        watermark: dict[str, int],
        incremental: bool,
        ds_names: list[str],
        exact: bool,
        timings: dict[str, float],
        t: float,
    ) -> tuple[pa.Table, pa.Table, int, dict[str, int]] | None:
        """Extract (and, incrementally, fold into the stored graph) the keyed identities and
        links; None when two different identities got the same hash key."""
        eng = self._ws.engine
        new_ids, new_links, rows, mark = self._extract(watermark, ds_names, exact)
        timings["extract"] = time.perf_counter() - t
        t = time.perf_counter()
        if incremental and self.exists():
            old_ids, old_links = self._stored_keyed(ds_names, exact)
            eng.register("__old_i", old_ids)
            eng.register("__new_i", new_ids)
            eng.register("__old_l", old_links)
            eng.register("__new_l", new_links)
            try:
                ids = eng.query(
                    "SELECT x, any_value(nsr) AS nsr, min(value) AS value, min(first_seen) AS first_seen, "
                    "max(last_seen) AS last_seen, sum(evidence)::BIGINT AS evidence, "
                    "bit_or(dataset_mask) AS dataset_mask, "
                    "bool_or(clash) OR min(value) <> max(value) OR min(nsr) <> max(nsr) AS clash "
                    "FROM (SELECT * FROM __old_i UNION ALL SELECT * FROM __new_i) GROUP BY x"
                )
                links = eng.query(
                    "SELECT x, y, min(first_seen) AS first_seen, max(last_seen) AS last_seen, "
                    "sum(evidence)::BIGINT AS evidence, arg_max(ds, last_seen) AS ds "
                    "FROM (SELECT * FROM __old_l UNION ALL SELECT * FROM __new_l) GROUP BY x, y"
                )
            finally:
                for n in ("__old_i", "__new_i", "__old_l", "__new_l"):
                    eng.unregister(n)
        else:
            ids, links = new_ids, new_links
        timings["merge"] = time.perf_counter() - t
        if not exact and pc.any(ids.column("clash")).as_py():
            return None
        return ids, links, rows, mark

    def _index(
        self, ids: pa.Table, links: pa.Table
    ) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray, ClusterInput]:
        """Dense integer ids, each link as a pair of them (the smaller first), and the arrays
        the clustering takes.

        Ids are ordered by namespace, then by the 64-bit key ``hash(namespace, value)``
        (then the value, which only matters on the exact-key rerun after a collision): a
        deterministic order that does not depend on how the build ran, and an integer sort
        (half the time of sorting the values themselves at 1M persons).

        ``ids``: key ``x``, namespace rank ``nsr``, ``value``, first/last seen, evidence,
        dataset mask; ``links``: keys ``x``, ``y``, first/last seen, evidence, ``ds``.
        The identities come back in id order, the links as given (less any whose end is
        in no catalog namespace), ``a``/``b`` aligned with them.
        """
        ws = self._ws
        eng = ws.engine
        nss = ws.catalog.namespaces()
        rank = self._ns_rank()
        ns_idx_of_rank = np.array([[n.name for n in nss].index(r) for r in rank], dtype=np.int32)
        exact = pa.types.is_string(ids.schema.field("x").type)
        names = "[" + ", ".join(lit(n) for n in rank) + "]"
        order = f"nsr, hash({names}[nsr + 1], value), value" if exact else "nsr, x"
        eng.register("__ids0", ids)
        try:
            ids = eng.query(
                "SELECT x, nsr, value, first_seen, last_seen, evidence, dataset_mask "
                f"FROM __ids0 ORDER BY {order}"
            )
        finally:
            eng.unregister("__ids0")
        ids = ids.append_column("iid", pa.array(np.arange(ids.num_rows, dtype=np.int64)))
        eng.register("__ids1", ids.select(["x", "iid"]))
        eng.register(
            "__links0",
            links.select(["x", "y"]).append_column(
                "k", pa.array(np.arange(links.num_rows, dtype=np.int64))
            ),
        )
        try:  # both ends in one join (one hash table of the identities), paired up after
            with _unordered(eng):
                ends = eng.query(
                    "SELECT l.k, l.side, p.iid FROM (SELECT k, 0::UTINYINT AS side, x AS key "
                    "FROM __links0 UNION ALL SELECT k, 1::UTINYINT, y FROM __links0) l "
                    "JOIN __ids1 p ON p.x = l.key"
                )
        finally:
            eng.unregister("__ids1")
            eng.unregister("__links0")
        pair = np.full((2, links.num_rows), -1, dtype=np.int64)
        pair[ends.column("side").to_numpy(), ends.column("k").to_numpy()] = ends.column(
            "iid"
        ).to_numpy()
        a, b = np.minimum(pair[0], pair[1]), np.maximum(pair[0], pair[1])
        if ends.num_rows < 2 * links.num_rows:  # an end in a namespace no longer in the catalog
            keep = a >= 0
            links, a, b = links.filter(pa.array(keep)), a[keep], b[keep]
        inp = ClusterInput(
            n=ids.num_rows,
            ns=ns_idx_of_rank[ids.column("nsr").to_numpy()],
            last_seen=_epoch_us(ids.column("last_seen")),
            a=a,
            b=b,
            link_seen=_epoch_us(links.column("last_seen")),
            ns_priority=np.array([n.priority for n in nss], dtype=np.int64),
            ns_unique=np.array([n.unique for n in nss], dtype=bool),
            ns_kind_rank=np.array([KIND_DROP_ORDER[n.kind.value] for n in nss], dtype=np.int64),
            cap=ws.settings.identity_cap,
        )
        return ids, links, a, b, inp

    def _previous_profile_ids(self, ids: pa.Table, digest: str) -> np.ndarray:
        """The profile id each identity (in id order) had in the stored graph, -1 if none
        (``digest``: :func:`_identities_digest` of ``ids``)."""
        prev = np.full(ids.num_rows, -1, dtype=np.int64)
        if not self.exists() or not ids.num_rows:
            return prev
        # the stored table is one file in id order: when it holds exactly these identities
        # (a rebuild, an update that added none: its commit carries the same digest), its
        # profile ids line up, and only they are read
        uri = self._path(IDENTITIES)
        snap = self._ws.lake.snapshot(uri)
        files = getattr(snap, "files", [])
        if len(files) == 1 and snap.count_rows() == ids.num_rows:
            last = self._ws.lake.table(uri).history(1)
            if last and last[0].get(f"{META_PREFIX}identities_digest") == digest:
                old = pq.read_table(files[0], columns=["profile_id"])
                return old.column("profile_id").to_numpy().astype(np.int64, copy=False)
        eng = self._ws.engine
        exact = pa.types.is_string(ids.schema.field("x").type)
        self._ws.lake.register(eng, "__prev", self._path(IDENTITIES))
        eng.register("__cur", ids.select(["x", "value", "iid"]))
        try:  # on the key, then the value (a hash key is not proof of equality)
            with _unordered(eng):
                got = eng.query(
                    "SELECT c.iid, p.profile_id FROM __cur c JOIN __prev p "
                    f"ON {_key_sql('p.namespace', 'p.value', exact)} = c.x AND p.value = c.value"
                )
        finally:
            eng.unregister("__prev")
            eng.unregister("__cur")
        prev[got.column("iid").to_numpy()] = got.column("profile_id").to_numpy()
        return prev

    def cluster_input(self) -> ClusterInput:
        """The latest graph's identities and links as clustering arrays (benchmarks, tests)."""
        ids, links = self._stored_keyed(self._link_datasets(), exact=True)
        return self._index(ids, links)[4]

    def _write(self, parts: tuple[str, str], table: pa.Table, meta: dict[str, Any]) -> None:
        """Replace a graph table with ``table`` (one new Delta version).

        Parquet written by pyarrow, dictionary-encoding only the few-valued text columns
        (namespaces, datasets, statuses): trying it on millions of distinct values is most
        of the writing time.
        """
        few = [
            c
            for c in ("namespace", "a_ns", "b_ns", "dataset", "status", "reason")
            if c in table.column_names
        ]
        lake = self._ws.lake
        uri = self._path(parts)
        f = lake.new_file(uri)
        try:
            pq.write_table(
                table, f, compression="snappy", use_dictionary=few, row_group_size=1 << 20
            )
            lake.overwrite_files(uri, [f], meta)
        except BaseException:
            Path(f).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ lookup and explain
    def normalize(self, identity: str) -> tuple[str, str]:
        """Parse ``ns:value`` and normalize the value with the namespace's normalizer."""
        ns_name, raw = parse_identity(identity)
        nss = {n.name: n for n in self._ws.catalog.namespaces()}
        if ns_name not in nss:
            raise NotFoundError(f"unknown namespace {ns_name!r} (known: {', '.join(sorted(nss))})")
        value = normalize_value(nss[ns_name].normalizer, raw, self._ws.settings.default_region)
        if value is None:
            raise InputError(identity, f"not a valid {ns_name} value")
        return ns_name, value

    def lookup(self, identity: str) -> int | None:
        """The profile id of an identity (``ns:value``), or None when unknown."""
        ns, value = self.normalize(identity)
        if not self.exists():
            raise NotFoundError("no identity graph yet: run workbench identity build")
        t = self._ws.lake.query(
            self._ws.engine,
            self._path(IDENTITIES),
            f"SELECT profile_id FROM {{t}} WHERE namespace = {lit(ns)} AND value = {lit(value)}",
        )
        return t.column("profile_id")[0].as_py() if t.num_rows else None

    def members(self, profile_id: int) -> pa.Table:
        """Every identity of a profile with first/last seen, the datasets it was seen in, status."""
        return self._ws.lake.query(
            self._ws.engine,
            self._path(IDENTITIES),
            f"SELECT *, {self._datasets_list_sql('dataset_mask')} AS datasets FROM {{t}} "
            f"WHERE profile_id = {lit(int(profile_id))} ORDER BY namespace, value",
        )

    def explain(self, identity: str, other: str | None = None) -> dict[str, Any]:
        """Why an identity is in its profile, and (with ``other``) why two identities are or
        are not together: the kept path between them, or the cut links and their reasons."""
        a = self.normalize(identity)
        pid = self.lookup(identity)
        if pid is None:
            raise NotFoundError(
                f"{identity} is not in the identity graph (blocked, never seen, or not yet built)"
            )
        eng = self._ws.engine
        eng.register("__l", self._ws.lake.snapshot(self._path(LINKS)))
        try:
            return self._explain(eng, a, pid, other)
        finally:
            eng.unregister("__l")
            eng.unregister("__f")

    def _explain(self, eng: Any, a: tuple[str, str], pid: int, other: str | None) -> dict[str, Any]:
        touching = eng.query(
            f"SELECT * FROM __l WHERE (a_ns = {lit(a[0])} AND a_value = {lit(a[1])}) "
            f"OR (b_ns = {lit(a[0])} AND b_value = {lit(a[1])}) ORDER BY status, last_seen DESC"
        ).to_pylist()
        out: dict[str, Any] = {
            "identity": f"{a[0]}:{a[1]}",
            "profile_id": pid,
            "profile_identities": self.members(pid).num_rows,
            "links": touching,
        }
        if other is None:
            return out
        b = self.normalize(other)
        pid_b = self.lookup(other)
        out["other"] = f"{b[0]}:{b[1]}"
        out["other_profile_id"] = pid_b
        out["together"] = pid_b == pid
        if pid_b is None:
            out["path"], out["cut_on_path"] = [], []
            out["why"] = (
                f"{out['other']} is not in the identity graph (never seen, blocked, or rejected at ingestion)"
            )
            return out
        path = _path(eng, a, b, kept_only=out["together"])
        out["path"] = path
        if not out["together"]:
            out["cut_on_path"] = [p for p in path if p["status"] != "kept"]
            if not path:
                out["why"] = "no evidence ever linked them, even through other identities"
            else:
                out["why"] = (
                    "; ".join(p["reason"] or p["status"] for p in out["cut_on_path"])
                    or "no kept path"
                )
        return out

    # ------------------------------------------------------------------ quality
    def evaluate(self, truth_dir: str | Path) -> dict[str, Any]:
        """Quality of the graph against ground truth (the sample generator's ``truth/``).

        ``truth_dir`` holds ``<file stem>.parquet`` (``row``, ``person_id``) per ingested file.
        Two views, both pairwise (precision, recall, F1):

        * ``identities`` (the bar): each identity's true person is the person of the rows it
          appears on. Identities seen on rows of several persons (a family's shared cookie
          or email: the traps) are ambiguous by nature; they are counted, and left out of the
          pairs. A true pair is two identities of one person that same-person evidence links
          (directly or through others): no one can link what no evidence links.
        * ``rows``: every row with a true person, attributed to a profile as segments see it.

        ``persons_fused`` counts profiles holding unambiguous identities of several persons
        (what the shared-device and shared-email traps would cause without the guardrails).
        """
        from workbench.profile.attribution import (
            IDENTITY_VIEW,
            register_identities,
            row_profiles_sql,
        )

        ws = self._ws
        eng = ws.engine
        truth = Path(truth_dir)
        if not truth.is_dir():
            raise InputError(str(truth), "no such folder")
        batches = []
        registered: list[str] = []
        for b in ws.catalog.list_batches(status="success"):
            tf = truth / f"{Path(b.source).stem}.parquet"
            if tf.exists():
                name = f"__truth_{b.id}"
                eng.register(name, pq.read_table(tf).select(["row", "person_id"]))
                registered.append(name)
                batches.append((b, name))
        if not batches:
            raise InputError(str(truth), "no truth file matches an ingested file")
        register_identities(ws)
        registered.append(IDENTITY_VIEW)
        obs_sql, rows_sql = [], []
        sources = {name: (fields, tcol) for name, _, fields, tcol in self._sources()}
        try:
            for ds_name, sql, view, path in row_profiles_sql(ws):
                eng.register(view, ws.lake.snapshot(path))
                registered.append(view)
                fields, tcol = sources[ds_name]
                per_row = self._row_identities_sql(view, fields, tcol, "").replace(
                    "AS ids FROM", "AS ids, _batch_id, _row FROM"
                )
                for b, tname in batches:
                    if b.dataset != ds_name:
                        continue
                    rows_sql.append(
                        f"SELECT r.profile_id, t.person_id FROM ({sql}) r JOIN {tname} t ON t.row = r._row "
                        f"WHERE r._batch_id = {lit(b.id)} AND t.person_id IS NOT NULL"
                    )
                    obs_sql.append(
                        f"SELECT i.ns AS namespace, i.v AS value, t.person_id FROM "
                        f"(SELECT unnest(ids) AS i, _row FROM ({per_row}) WHERE _batch_id = {lit(b.id)}) x "
                        f"JOIN {tname} t ON t.row = x._row WHERE t.person_id IS NOT NULL"
                    )
            eng.register_sql("__eval_rows", " UNION ALL ".join(rows_sql))
            registered.append("__eval_rows")
            row_m = eng.query(_EVAL_SQL.replace("__eval", "__eval_rows")).to_pylist()[0]
            person = eng.query(
                "SELECT i.namespace, i.value, i.profile_id, o.person_id, o.persons "
                f"FROM {IDENTITY_VIEW} i JOIN (SELECT namespace, value, min(person_id) AS person_id, "
                "count(DISTINCT person_id) AS persons FROM (" + " UNION ALL ".join(obs_sql) + ") "
                "GROUP BY ALL) o USING (namespace, value)"
            )
            ident_m = self._identity_quality(person)
        finally:
            for n in registered:
                eng.unregister(n)
        return {"identities": ident_m, "rows": _prf(row_m)}

    def _identity_quality(self, person: pa.Table) -> dict[str, Any]:
        """Pairwise quality over unambiguous identities against evidence-linkable truth."""
        eng = self._ws.engine
        eng.register("__ip", person)
        eng.register("__links_all", self.links())
        try:
            clean = eng.query(
                "SELECT namespace, value, profile_id, person_id, row_number() OVER () - 1 AS k "
                "FROM __ip WHERE persons = 1"
            )
            eng.register("__ipc", clean)
            same = eng.query(
                "SELECT x.k AS a, y.k AS b FROM __links_all l "
                "JOIN __ipc x ON x.namespace = l.a_ns AND x.value = l.a_value "
                "JOIN __ipc y ON y.namespace = l.b_ns AND y.value = l.b_value "
                "WHERE x.person_id = y.person_id"
            )
            n = clean.num_rows
            graph = coo_matrix(
                (
                    np.ones(same.num_rows, dtype=np.int8),
                    (same.column("a").to_numpy(), same.column("b").to_numpy()),
                ),
                shape=(n, n),
            )
            _, group = connected_components(graph, directed=False)
            eng.register(
                "__grp",
                pa.table({"k": np.arange(n, dtype=np.int64), "grp": group.astype(np.int64)}),
            )
            eng.register_sql(
                "__eval_ids",
                "SELECT c.profile_id, g.grp AS person_id FROM __ipc c JOIN __grp g USING (k)",
            )
            res = _prf(eng.query(_EVAL_SQL.replace("__eval", "__eval_ids")).to_pylist()[0])
            fused = eng.query(
                "SELECT count(*) AS profiles, coalesce(sum(p), 0) AS persons FROM "
                "(SELECT profile_id, count(DISTINCT person_id) AS p FROM __ipc GROUP BY 1) WHERE p > 1"
            ).to_pylist()[0]
            shared = eng.query("SELECT count(*) AS n FROM __ip WHERE persons > 1").to_pylist()[0][
                "n"
            ]
            # which kind of shared identity carried each fusion (a shared cookie = the device trap)
            via = eng.query(
                "WITH f AS (SELECT profile_id FROM __ipc GROUP BY 1 HAVING count(DISTINCT person_id) > 1) "
                "SELECT s.namespace, count(DISTINCT s.profile_id) AS n FROM __ip s JOIN f USING (profile_id) "
                "WHERE s.persons > 1 GROUP BY 1 ORDER BY 1"
            ).to_pylist()
        finally:
            for name in ("__ip", "__links_all", "__ipc", "__grp", "__eval_ids"):
                eng.unregister(name)
        res["identities_shared_by_persons"] = int(shared)
        res["profiles_fused"] = int(fused["profiles"])
        res["persons_fused"] = int(fused["persons"])
        res["profiles_fused_via"] = {r["namespace"]: int(r["n"]) for r in via}
        return res


def _prf(m: dict[str, Any]) -> dict[str, Any]:
    tp, pp, tpairs = int(m["tp"]), int(m["pred_pairs"]), int(m["true_pairs"])
    precision = tp / pp if pp else 1.0
    recall = tp / tpairs if tpairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "items": int(m["rows"]),
        "unattributed": int(m["unattributed"]),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "true_clusters": int(m["persons"]),
        "predicted_clusters": int(m["profiles"]),
        "true_clusters_split": int(m["persons_split"]),
        "predicted_clusters_mixed": int(m["profiles_fused"]),
    }


_EVAL_SQL = """
WITH r AS (
    SELECT coalesce(profile_id, -row_number() OVER ()) AS pid, profile_id IS NULL AS un, person_id FROM __eval
),
cell AS (SELECT pid, person_id, count(*) AS n FROM r GROUP BY ALL),
pp AS (SELECT pid, sum(n) AS n, count(*) AS persons FROM cell GROUP BY pid),
tp AS (SELECT person_id, sum(n) AS n, count(*) FILTER (WHERE pid > 0) AS profiles FROM cell GROUP BY person_id)
SELECT
    (SELECT count(*) FROM r) AS rows,
    (SELECT count(*) FILTER (WHERE un) FROM r) AS unattributed,
    (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM cell)::HUGEINT AS tp,
    (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM pp)::HUGEINT AS pred_pairs,
    (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM tp)::HUGEINT AS true_pairs,
    (SELECT count(*) FROM tp) AS persons,
    (SELECT count(*) FROM pp WHERE pid > 0) AS profiles,
    (SELECT count(*) FROM tp WHERE profiles > 1) AS persons_split,
    (SELECT count(*) FROM pp WHERE pid > 0 AND persons > 1) AS profiles_fused,
    (SELECT coalesce(sum(persons), 0) FROM pp WHERE pid > 0 AND persons > 1) AS persons_fused
"""


class _Describe:
    """``describe[i]`` -> ``namespace:value`` of identity i, without building a full list."""

    def __init__(self, ids: pa.Table) -> None:
        self._ns = ids.column("namespace")
        self._v = ids.column("value")

    def __getitem__(self, i: int) -> str:
        return f"{self._ns[i].as_py()}:{self._v[i].as_py()}"


def _epoch_us(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0).to_numpy()


@contextmanager
def _unordered(eng: Any) -> Iterator[None]:
    """Let DuckDB drop row order inside a query whose result order does not matter
    (aggregates, joins): fewer buffers and synchronization between its threads."""
    if eng.name != "duckdb":
        yield
        return
    eng.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        eng.execute("RESET preserve_insertion_order")


def _key_sql(ns: str, value: str, exact: bool) -> str:
    """SQL of an identity's key: a 64-bit hash of namespace and value, or (``exact``) the
    text ``namespace || chr(1) || value``."""
    return f"({ns} || chr(1) || {value})" if exact else f"hash({ns}, {value})"


def _identities_digest(
    rank_names: pa.Array, nsr: np.ndarray, values: pa.ChunkedArray | pa.Array
) -> str:
    """A digest of the identities in id order (namespace and value of each): two builds
    with the same digest hold the same identities in the same order (BLAKE2b: a
    cryptographic hash, unlike the 64-bit keys)."""
    h = hashlib.blake2b(digest_size=20)
    h.update("\x1f".join(rank_names.to_pylist()).encode())
    h.update(np.ascontiguousarray(nsr, dtype=np.int16).tobytes())
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(arr):
        wide = pa.types.is_large_string(arr.type)
        off = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)
        off = off[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
        h.update((off - off[0]).tobytes())
        h.update(memoryview(arr.buffers()[2])[int(off[0]) : int(off[-1])])
    return h.hexdigest()


def _links_table(
    ends: dict[str, Any], links_k: pa.Table, ds_names: list[str], res: Any, nlinks: int
) -> pa.Table:
    """The links table: both ends, evidence, the dataset of the latest evidence, and what
    the guardrails did (status, reason)."""
    status = pa.DictionaryArray.from_arrays(
        pa.array(res.link_status.astype(np.int32)),
        pa.array(["kept", "cut_unique_namespace", "cut_cap"]),
    ).cast(pa.string())
    cut_idx = np.array(sorted(res.cut_reason), dtype=np.int64)
    cut_mask = np.zeros(nlinks, dtype=bool)
    cut_mask[cut_idx] = True
    reasons = pc.replace_with_mask(
        pa.nulls(nlinks, pa.string()),
        pa.array(cut_mask),
        pa.array([res.cut_reason[int(i)] for i in cut_idx], pa.string()),
    )
    return pa.table(
        {
            **ends,
            "first_seen": links_k.column("first_seen"),
            "last_seen": links_k.column("last_seen"),
            "evidence": links_k.column("evidence"),
            "dataset": pa.array(ds_names, pa.string()).take(links_k.column("ds")),
            "status": status,
            "reason": reasons,
        }
    )


def _split_links(res: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The observations query's result: identities (``is_link`` false), then links."""
    is_link = res.column("is_link")
    n_ids = res.num_rows - int(pc.sum(is_link).as_py() or 0)
    head = res.slice(0, n_ids)
    if pc.any(head.column("is_link")).as_py():  # not in order: select instead of slicing
        ids_t, links_t = res.filter(pc.invert(is_link)), res.filter(is_link)
    else:
        ids_t, links_t = head, res.slice(n_ids)
    ids_t = ids_t.select(
        ["x", "nsr", "value", "first_seen", "last_seen", "evidence", "dataset_mask", "clash"]
    )
    links_t = links_t.select(["x", "y", "first_seen", "last_seen", "evidence", "ds"])
    return ids_t, links_t


def _empty_keyed_ids(exact: bool) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "x": pa.array([], pa.string() if exact else pa.uint64()),
            "nsr": pa.array([], pa.int16()),
            "value": pa.array([], pa.string()),
            "first_seen": pa.array([], ts),
            "last_seen": pa.array([], ts),
            "evidence": pa.array([], pa.int64()),
            "dataset_mask": pa.array([], pa.int64()),
            "clash": pa.array([], pa.bool_()),
        }
    )


def _empty_keyed_links(exact: bool) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    k = pa.string() if exact else pa.uint64()
    return pa.table(
        {
            "x": pa.array([], k),
            "y": pa.array([], k),
            "first_seen": pa.array([], ts),
            "last_seen": pa.array([], ts),
            "evidence": pa.array([], pa.int64()),
            "ds": pa.array([], pa.int16()),
        }
    )


def _path(
    eng: Any, a: tuple[str, str], b: tuple[str, str], kept_only: bool, max_hops: int = 8
) -> list[dict[str, Any]]:
    """Breadth-first path between two identities, expanding one neighbourhood per query
    over the registered ``__l`` links (never loading the whole graph into Python)."""
    cond = "AND status = 'kept'" if kept_only else ""
    prev: dict[tuple[str, str], tuple[tuple[str, str], dict[str, Any]] | None] = {a: None}
    frontier = [a]
    for _ in range(max_hops):
        if b in prev or not frontier:
            break
        eng.register(
            "__f", pa.table({"ns": [x[0] for x in frontier], "v": [x[1] for x in frontier]})
        )
        rows = eng.query(
            "SELECT l.* FROM __l l JOIN __f f ON (l.a_ns = f.ns AND l.a_value = f.v) "
            f"OR (l.b_ns = f.ns AND l.b_value = f.v) WHERE true {cond} LIMIT 10000"
        ).to_pylist()
        nxt = []
        for r in rows:
            x, y = (r["a_ns"], r["a_value"]), (r["b_ns"], r["b_value"])
            for u, w in ((x, y), (y, x)):
                if u in prev and w not in prev:
                    prev[w] = (u, r)
                    nxt.append(w)
        frontier = nxt
    if b not in prev:
        return []
    path = []
    node = b
    while (step := prev[node]) is not None:
        node, r = step
        path.append(r)
    return list(reversed(path))


__all__ = [
    "DEFAULT_BLOCKED",
    "IdentityBuildStats",
    "IdentityGraph",
    "parse_identity",
]
