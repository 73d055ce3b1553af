"""The identity room: namespaces, graph building, clustering with guardrails, lookup."""

from workbench.identity.cluster import ClusterInput, ClusterResult, cluster
from workbench.identity.graph import (
    DEFAULT_BLOCKED,
    IdentityBuildStats,
    IdentityGraph,
    parse_identity,
)

__all__ = [
    "DEFAULT_BLOCKED",
    "ClusterInput",
    "ClusterResult",
    "IdentityBuildStats",
    "IdentityGraph",
    "cluster",
    "parse_identity",
]
