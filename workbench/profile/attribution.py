"""Which profile each row of a profile-enabled dataset belongs to.

A record of a profile dataset belongs to the profile of its primary identity. An event goes
to the profile of its highest-priority identity that is in the graph (a web event with a
crm_id goes to that customer even when its cookie went elsewhere). Rows with
no known identity (anonymous orders) get no profile and are counted as not attributable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from workbench.lake.sql import ident, lit

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: The view of the identities table the attribution SQL joins (registered by the caller).
IDENTITY_VIEW = "__identities"


def row_profiles_sql(ws: Workspace) -> Iterator[tuple[str, str, str, str]]:
    """For each profile-enabled dataset: (dataset, SQL of its rows plus ``profile_id``,
    name of the view the SQL reads, table path to register under that name).

    The SQL also reads :data:`IDENTITY_VIEW`, which the caller registers first (see
    :func:`register_identities`).
    """
    for name, path, fields, _ in ws.identity._sources():
        view = f"__rows_{name}"
        sch = ws.catalog.get_schema(ws.catalog.get_dataset(name).schema_name)
        primary = sch.primary_identity
        if primary is not None:  # a record belongs to the entity of its primary identity
            fields = [(f, ns) for f, ns in fields if f == primary.name] or fields
        joins, picks = [], []
        for k, (f, ns) in enumerate(fields):  # highest priority first
            side = (
                f"(SELECT value, profile_id FROM {IDENTITY_VIEW} "
                f"WHERE namespace = {lit(ns.name)} AND status = 'active')"
            )
            joins.append(f"LEFT JOIN {side} AS i{k} ON i{k}.value = CAST(d.{ident(f)} AS VARCHAR)")
            picks.append(f"i{k}.profile_id")
        pid = f"COALESCE({', '.join(picks)})" if len(picks) > 1 else picks[0]
        yield (
            name,
            f"SELECT d.*, {pid} AS profile_id FROM {view} AS d {' '.join(joins)}",
            view,
            path,
        )


def register_identities(ws: Workspace) -> None:
    """Register the latest identities table as :data:`IDENTITY_VIEW`."""
    ws.lake.register(ws.engine, IDENTITY_VIEW, ws.lake.path("identity", "identities"))


__all__ = ["IDENTITY_VIEW", "register_identities", "row_profiles_sql"]
