"""Identity and profile builds at scale, and the clustering step against networkx and
splink on the same links, in the same run.

    python -m bench identity --persons 1000000
"""

from __future__ import annotations

import gc
import logging
import resource
import time
from typing import Any

import numpy as np
import pyarrow as pa

from bench.common import Report, peak_rss_mb
from bench.common_ws import ingested_workspace, snapshot_workspace
from workbench import Workspace
from workbench.identity.cluster import ClusterInput, cluster

log = logging.getLogger(__name__)


def _networkx(inp: ClusterInput) -> tuple[float, int]:
    import networkx as nx

    t0 = time.perf_counter()
    g = nx.Graph()
    g.add_nodes_from(range(inp.n))
    g.add_edges_from(zip(inp.a.tolist(), inp.b.tolist(), strict=True))
    n = sum(1 for _ in nx.connected_components(g))
    return time.perf_counter() - t0, n


def _splink(inp: ClusterInput) -> tuple[float, int]:
    from splink import DuckDBAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    nodes = pa.table({"unique_id": np.arange(inp.n, dtype=np.int64)})
    edges = pa.table({"unique_id_l": inp.a, "unique_id_r": inp.b})
    db = DuckDBAPI()
    t0 = time.perf_counter()
    res = cluster_pairwise_predictions_at_threshold(
        nodes.to_pandas(), edges.to_pandas(), db, node_id_column_name="unique_id"
    )
    n = int(res.as_duckdbpyrelation().aggregate("count(DISTINCT cluster_id)").fetchall()[0][0])
    return time.perf_counter() - t0, n


def run(persons: int, seed: int = 42, baselines: bool = True) -> Report:
    """Identity build, profile build, and the clustering step against the baselines."""
    path = ingested_workspace(persons, seed)
    rep = Report("identity", {"persons": persons})
    ws = Workspace.open(path)
    c0 = _cpu_s()
    st = ws.identity.build(full=True)
    rep.add(
        step="identity build (read, link, cluster, write)",
        seconds=st.seconds,
        cpu_s=round(_cpu_s() - c0, 1),
        detail=st.timings,
        identities=st.identities,
        links=st.links,
        profiles=st.profiles,
        links_cut=st.links_cut,
        bar="<= 10 s",
    )
    c0 = _cpu_s()
    ps = ws.profiles.build()
    rep.add(
        step="profile build (merge policy + event history)",
        seconds=ps.seconds,
        cpu_s=round(_cpu_s() - c0, 1),
        detail=ps.timings,
        profiles=ps.profiles,
        events=ps.events,
        bar="<= 10 s",
    )
    rep.add(step="peak memory so far (MB)", seconds=None, detail=round(peak_rss_mb()))
    inp = ws.identity.cluster_input()
    gc.collect()
    t0 = time.perf_counter()
    res = cluster(inp)
    ours = time.perf_counter() - t0
    rep.add(
        step="clustering: workbench (components + guardrails)",
        seconds=round(ours, 2),
        detail=f"{len(np.unique(res.labels)):,} clusters, {res.links_cut:,} links cut",
        links=len(inp.a),
    )
    if baselines:
        secs, n = _splink(inp)
        rep.add(
            step="clustering: splink cluster_pairwise_predictions_at_threshold (DuckDB)",
            seconds=round(secs, 2),
            detail=f"{n:,} clusters (no guardrails)",
            speedup=round(secs / ours, 1),
        )
        gc.collect()
        secs, n = _networkx(inp)
        rep.add(
            step="clustering: networkx connected_components",
            seconds=round(secs, 2),
            detail=f"{n:,} clusters (no guardrails)",
            speedup=round(secs / ours, 1),
        )
    d = ingested_sample_truth(persons, seed)
    q = ws.identity.evaluate(d)
    rep.add(step="quality vs ground truth (identities)", seconds=None, detail=_q(q["identities"]))
    rep.add(step="quality vs ground truth (rows)", seconds=None, detail=_q(q["rows"]))
    ws.close()
    _incremental(rep, path)
    return rep


def _incremental(rep: Report, path: Any, events: int = 10_000) -> None:
    """An incremental identity build after a small web-events batch, on a copy of the
    workspace (hard-linked data files): ``events`` rows of the table again, with new event
    ids and one in ten on a new cookie; then the same build with nothing new."""
    import shutil

    from bench.common import CACHE

    copy = CACHE / "ws-incremental-tmp"
    snapshot_workspace(path, copy)
    try:
        ws = Workspace.open(copy)
        t = ws.datasets.snapshot("web_events").to_table().slice(0, events)
        df = t.drop_columns([c for c in t.column_names if c.startswith("_")]).to_pandas()
        df["event_id"] = df["event_id"] + "-inc"
        moved = df.index % 10 == 0
        df.loc[moved, "ecid"] = df.loc[moved, "ecid"].str[::-1]
        ws.ingest("web_events", df)
        for label in (f"after a {events:,}-event batch", "with nothing new"):
            st = ws.identity.build()
            rep.add(
                step=f"identity build, incremental, {label}",
                seconds=st.seconds,
                detail=st.timings,
                identities=st.identities,
                profiles=st.profiles,
            )
        ws.close()
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _cpu_s() -> float:
    """CPU seconds of this process so far, every thread (on a shared machine the wall time
    of a build depends on the neighbours; its CPU time much less)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingested_sample_truth(persons: int, seed: int) -> Any:
    from bench.common import sample_dir

    return sample_dir(persons, seed) / "truth"


def _q(m: dict[str, Any]) -> str:
    keys = (
        "precision",
        "recall",
        "f1",
        "persons_fused",
        "profiles_fused",
        "profiles_fused_via",
        "true_clusters_split",
    )
    return ", ".join(f"{k}={m[k]}" for k in keys if k in m)
