"""Clustering identities into persons, with guardrails, deterministically.

Two passes:

1. A vectorized connected-components pass (``scipy.sparse.csgraph``) over every link.
   Components that break no guardrail (at most one value per unique namespace, at most
   ``cap`` identities) are final: that is nearly all of them.
2. The conflicting components only go through a sequential, constraint-aware pass: their
   links are taken strongest first (higher priority of the weaker endpoint's namespace,
   then the newer evidence) and a link is cut when it would put two values of a unique
   namespace in one cluster. Every cut is recorded with its reason, for ``explain``.

Then clusters still above the cap lose their oldest identities, cookies first, then
devices, then the rest (the reference platform's rule), counted and recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

log = logging.getLogger(__name__)

#: Which kinds of identity go first when a cluster is over the cap.
KIND_DROP_ORDER = {"cookie": 0, "device": 1, "hashed": 2, "person": 3}


@dataclass
class ClusterInput:
    """Identities (0..n-1) and links between them, as arrays."""

    n: int
    ns: np.ndarray  # int32 namespace index per identity
    last_seen: np.ndarray  # int64 (epoch microseconds) per identity
    a: np.ndarray  # int64 link endpoint
    b: np.ndarray  # int64 link endpoint
    link_seen: np.ndarray  # int64 latest evidence per link
    ns_priority: np.ndarray  # int per namespace index
    ns_unique: np.ndarray  # bool per namespace index
    ns_kind_rank: np.ndarray  # int per namespace index (KIND_DROP_ORDER)
    cap: int = 50


@dataclass
class ClusterResult:
    """Cluster label per identity and what the guardrails did."""

    labels: np.ndarray  # int64 per identity (a representative identity index)
    link_status: np.ndarray  # int8 per link: 0 kept, 1 cut (unique), 2 cut (cap)
    cut_reason: dict[int, str] = field(default_factory=dict)  # link index -> reason
    dropped: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )  # identities cut by the cap
    components: int = 0
    conflicting_components: int = 0
    clusters_over_cap: int = 0

    @property
    def links_cut(self) -> int:
        """Links the guardrails cut."""
        return int((self.link_status != 0).sum())


def cluster(inp: ClusterInput, describe: list[str] | None = None) -> ClusterResult:
    """Cluster identities; ``describe[i]`` (``ns:value``) makes cut reasons readable."""
    n = inp.n
    status = np.zeros(len(inp.a), dtype=np.int8)
    if n == 0:
        return ClusterResult(np.zeros(0, dtype=np.int64), status)
    graph = coo_matrix((np.ones(len(inp.a), dtype=np.int8), (inp.a, inp.b)), shape=(n, n)).tocsr()
    ncomp, comp = connected_components(graph, directed=False)
    comp = comp.astype(np.int64)

    # conflicts: a component holding two values of a unique namespace (O(n) counting)
    bad = np.zeros(ncomp, dtype=bool)
    for k in np.flatnonzero(inp.ns_unique):
        bad |= np.bincount(comp[inp.ns == k], minlength=ncomp) > 1
    bad_comps = np.flatnonzero(bad)
    # scipy numbers components in the order of their smallest identity, so these labels are
    # already canonical (deterministic for a given identity order)
    labels = comp.copy()
    reasons: dict[int, str] = {}
    if len(bad_comps):
        _constrained_pass(inp, comp, bad_comps, labels, status, reasons, describe)

    dropped, over = _apply_cap(inp, labels)
    if len(dropped):
        labels[dropped] = dropped  # each dropped identity stands alone
        dset = np.zeros(n, dtype=bool)
        dset[dropped] = True
        cap_cut = (dset[inp.a] | dset[inp.b]) & (status == 0)
        status[cap_cut] = 2
        for i in np.flatnonzero(cap_cut)[:100_000]:
            reasons[int(i)] = (
                f"cut by the cap of {inp.cap} identities per profile (oldest cookies/devices dropped first)"
            )
    return ClusterResult(
        labels=labels,
        link_status=status,
        cut_reason=reasons,
        dropped=dropped,
        components=int(ncomp),
        conflicting_components=len(bad_comps),
        clusters_over_cap=over,
    )


def _constrained_pass(
    inp: ClusterInput,
    comp: np.ndarray,
    bad_comps: np.ndarray,
    labels: np.ndarray,
    status: np.ndarray,
    reasons: dict[int, str],
    describe: list[str] | None,
) -> None:
    """Union-find over the links of conflicting components only, strongest link first."""
    in_bad = np.zeros(comp.max() + 1, dtype=bool)
    in_bad[bad_comps] = True
    link_idx = np.flatnonzero(in_bad[comp[inp.a]])
    pa_ = inp.ns_priority[inp.ns[inp.a[link_idx]]]
    pb_ = inp.ns_priority[inp.ns[inp.b[link_idx]]]
    strength = np.minimum(pa_, pb_)
    # strongest first: priority desc, newer evidence first, then a stable tie-break
    order = np.lexsort((inp.b[link_idx], inp.a[link_idx], -inp.link_seen[link_idx], -strength))
    link_idx = link_idx[order]

    nodes = np.unique(np.concatenate([inp.a[link_idx], inp.b[link_idx]]))
    # compact local ids and plain Python lists: this loop only sees conflicting components
    la = np.searchsorted(nodes, inp.a[link_idx]).tolist()
    lb = np.searchsorted(nodes, inp.b[link_idx]).tolist()
    node_ns = inp.ns[nodes]
    node_unique = inp.ns_unique[node_ns].tolist()
    node_ns_l = node_ns.tolist()
    parent = list(range(len(nodes)))
    uvals: list[dict[int, int] | None] = [
        {node_ns_l[x]: x} if node_unique[x] else None for x in range(len(nodes))
    ]

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for li, x, y in zip(link_idx.tolist(), la, lb, strict=True):
        ra, rb = find(x), find(y)
        if ra == rb:
            continue
        ua, ub = uvals[ra], uvals[rb]
        if ua is not None and ub is not None:
            clash = next((k for k in ua if k in ub and ua[k] != ub[k]), None)
            if clash is not None:
                status[li] = 1
                if describe is not None:
                    reasons[li] = (
                        f"would put {describe[int(nodes[ua[clash]])]} and {describe[int(nodes[ub[clash]])]} "
                        f"in one profile (unique namespace); stronger or newer links kept them apart"
                    )
                else:
                    reasons[li] = "would join two values of a unique namespace"
                continue
            if len(ua) < len(ub):
                ra, rb, ua, ub = rb, ra, ub, ua
            ua.update(ub)
            uvals[rb] = None
        elif ub is not None:
            ra, rb = rb, ra
        parent[rb] = ra
    # re-clustered labels: past every component label, named by the cluster's smallest identity
    offset = int(comp.max()) + 1
    roots = [find(x) for x in range(len(nodes))]
    smallest: dict[int, int] = {}
    for x, r in enumerate(roots):  # nodes are sorted, so the first seen per root is the smallest
        smallest.setdefault(r, x)
    labels[nodes] = offset + nodes[np.array([smallest[r] for r in roots], dtype=np.int64)]


def _apply_cap(inp: ClusterInput, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Identities to drop from clusters above the cap, and how many clusters were above it."""
    counts = np.bincount(labels)
    over = counts > inp.cap
    if not over.any():
        return np.zeros(0, dtype=np.int64), 0
    members = np.flatnonzero(over[labels])
    # within each over-cap cluster: cookies first, then devices, ..., oldest first
    kind = inp.ns_kind_rank[inp.ns[members]]
    order = np.lexsort((members, inp.last_seen[members], kind, labels[members]))
    members = members[order]
    lab = labels[members]
    starts = np.r_[0, np.flatnonzero(np.diff(lab)) + 1]
    pos = np.arange(len(members)) - np.repeat(starts, np.diff(np.r_[starts, len(members)]))
    excess = counts[labels[members]] - inp.cap
    dropped = members[pos < excess]
    log.warning(
        "%d clusters above the cap of %d: %d identities dropped",
        int(over.sum()),
        inp.cap,
        len(dropped),
    )
    return np.sort(dropped), int(over.sum())


__all__ = ["KIND_DROP_ORDER", "ClusterInput", "ClusterResult", "cluster"]
