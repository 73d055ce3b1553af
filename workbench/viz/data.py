"""The numbers behind the analyst plots, as pandas DataFrames.

Every function takes a :class:`~workbench.workspace.Workspace` and returns a DataFrame, so
notebooks, dashboards and tests share the same figures. Counts come from one vectorized query
each (DuckDB over the lake's Delta tables, or Arrow); the only Python loops run over a handful
of datasets, segments or destinations, never over rows.

    from workbench.viz import data
    data.datasets_overview(ws)                     # rows, rejected rows per dataset
    data.overlap_matrix(ws, ["gold", "email_ok"])  # members in both, per pair
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.dataset as pads

from workbench.activation.service import consent_sql
from workbench.errors import NotFoundError
from workbench.lake.sql import ident, lit
from workbench.schema.namespaces import NamespaceKind
from workbench.segments.service import MEMBER_STATUSES, MEMBERSHIPS

if TYPE_CHECKING:
    from workbench.workspace import Workspace

log = logging.getLogger(__name__)

#: Shown for a missing attribute value in compositions.
MISSING = "(missing)"
#: Consent attributes of the sample brand, per channel.
CONSENT_ATTRIBUTES = {"email": "consent_email", "sms": "consent_sms", "ads": "consent_ads"}


# ---------------------------------------------------------------------- helpers
@contextmanager
def _views(ws: Workspace, **tables: Any) -> Iterator[dict[str, str]]:
    """Register lake tables (URIs) or Arrow objects under unique view names; drop them after."""
    eng = ws.engine
    names: dict[str, str] = {}
    try:
        for key, src in tables.items():
            name = f"__viz_{key}_{uuid.uuid4().hex[:8]}"
            if isinstance(src, str):
                ws.lake.register(eng, name, src)
            else:
                eng.register(name, src)
            names[key] = name
        yield names
    finally:
        for name in names.values():
            eng.unregister(name)


def _query(ws: Workspace, sql: str) -> pd.DataFrame:
    return ws.engine.query(sql).to_pandas()


def _memberships_uri(ws: Workspace) -> str | None:
    p = ws.lake.path(*MEMBERSHIPS)
    return p if ws.lake.exists(p) else None


def _in_list(values: Sequence[str]) -> str:
    return ", ".join(lit(v) for v in values)


def _segment_names(ws: Workspace, segments: Sequence[str] | None) -> list[str]:
    """The requested segments (each must exist), or every stored segment."""
    if segments is None:
        return [s.name for s in ws.segments.list()]
    for name in segments:
        ws.segments.info(name)  # NotFoundError naming it
    return list(segments)


_MEMBER_FILTER = f"status IN ({_in_list(MEMBER_STATUSES)})"


# ---------------------------------------------------------------------- datasets
def datasets_overview(ws: Workspace) -> pd.DataFrame:
    """One row per dataset: schema, class, rows, rejected rows and quarantine entries.

    Args:
        ws: The workspace.

    Returns:
        Columns ``dataset``, ``schema``, ``profile_enabled``, ``rows`` (latest version),
        ``rejected_rows`` (distinct rejected source rows in the quarantine) and
        ``quarantine_errors`` (one per rejected field), sorted by dataset.
    """
    rows = []
    for d in ws.datasets.list():
        q = ws.datasets.quarantine(d.name)
        with _views(ws, q=q) as v:
            rejected, errors = (
                ws.engine.query(
                    f"SELECT count(DISTINCT (batch_id, row)) AS r, count(*) AS e FROM {v['q']}"
                )
                .to_pylist()[0]
                .values()
            )
        rows.append(
            {
                "dataset": d.name,
                "schema": d.schema_name,
                "profile_enabled": d.profile_enabled,
                "rows": ws.datasets.count(d.name) if ws.lake.exists(d.table_path) else 0,
                "rejected_rows": int(rejected),
                "quarantine_errors": int(errors),
            }
        )
    cols = ["dataset", "schema", "profile_enabled", "rows", "rejected_rows", "quarantine_errors"]
    return pd.DataFrame(rows, columns=cols).sort_values("dataset", ignore_index=True)


def quarantine_reasons(ws: Workspace) -> pd.DataFrame:
    """Rejections per dataset, field and reason, most frequent first.

    Args:
        ws: The workspace.

    Returns:
        Columns ``dataset``, ``field``, ``reason``, ``errors``, ``rows``.
    """
    frames = []
    for d in ws.datasets.list():
        s = ws.datasets.quarantine_summary(d.name).to_pandas()
        if len(s):
            s.insert(0, "dataset", d.name)
            frames.append(s)
    cols = ["dataset", "field", "reason", "errors", "rows"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)[cols]
    return out.sort_values(
        ["errors", "dataset", "field"], ascending=[False, True, True]
    ).reset_index(drop=True)


def schema_fields(ws: Workspace, schema: str | None = None) -> pd.DataFrame:
    """The schema browser: one row per field of every schema (or of one).

    Args:
        ws: The workspace.
        schema: Only this schema's fields.

    Returns:
        Columns ``schema``, ``class``, ``field``, ``type``, ``required``, ``identity``
        (namespace, with ``(primary)``), ``labels`` (comma-separated), ``description``.
    """
    schemas = [ws.schemas.get(schema)] if schema else ws.schemas.list()
    rows = [
        {
            "schema": s.name,
            "class": str(s.cls.value if hasattr(s.cls, "value") else s.cls),
            "field": f.name,
            "type": f.type.value,
            "required": f.required,
            "identity": ""
            if f.identity is None
            else f.identity.namespace + (" (primary)" if f.identity.primary else ""),
            "labels": ", ".join(f.labels),
            "description": f.description,
        }
        for s in schemas
        for f in s.fields
    ]
    cols = ["schema", "class", "field", "type", "required", "identity", "labels", "description"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------- identity
def _identity_uri(ws: Workspace, table: str) -> str:
    if not ws.identity.exists():
        raise NotFoundError("no identity graph yet: run workbench identity build")
    return ws.lake.path("identity", table)


def cluster_sizes(ws: Workspace) -> pd.DataFrame:
    """How many profiles have 1, 2, 3… identities (the cluster-size histogram).

    Args:
        ws: The workspace (its identity graph must be built).

    Returns:
        Columns ``identities`` (cluster size) and ``profiles``, by size.
    """
    with _views(ws, i=_identity_uri(ws, "identities")) as v:
        return _query(
            ws,
            f"SELECT n AS identities, count(*) AS profiles FROM "
            f"(SELECT profile_id, count(*) AS n FROM {v['i']} GROUP BY profile_id) "
            f"GROUP BY n ORDER BY n",
        )


def identities_per_namespace(ws: Workspace) -> pd.DataFrame:
    """Identities and the profiles holding them, per namespace (highest priority first).

    Args:
        ws: The workspace (its identity graph must be built).

    Returns:
        Columns ``namespace``, ``kind``, ``identities``, ``profiles``; every registered
        namespace appears, with zeros when the graph holds none.
    """
    nss = ws.namespaces()
    with _views(ws, i=_identity_uri(ws, "identities")) as v:
        counts = _query(
            ws,
            f"SELECT namespace, count(*) AS identities, count(DISTINCT profile_id) AS profiles "
            f"FROM {v['i']} GROUP BY namespace",
        )
    base = pd.DataFrame({"namespace": [n.name for n in nss], "kind": [n.kind.value for n in nss]})
    out = base.merge(counts, on="namespace", how="outer")
    out["kind"] = out["kind"].fillna("")
    out[["identities", "profiles"]] = out[["identities", "profiles"]].fillna(0).astype("int64")
    return out.reset_index(drop=True)


def links_by_status(ws: Workspace) -> pd.DataFrame:
    """Links kept and cut by the guardrails, per status and namespace pair.

    Args:
        ws: The workspace (its identity graph must be built).

    Returns:
        Columns ``status`` (``kept``, ``cut_unique_namespace``, ``cut_cap``…), ``pair``
        (``a_ns–b_ns``, the two namespaces sorted) and ``links``.
    """
    with _views(ws, l=_identity_uri(ws, "links")) as v:
        return _query(
            ws,
            f"SELECT status, least(a_ns, b_ns) || '–' || greatest(a_ns, b_ns) AS pair, "
            f"count(*) AS links FROM {v['l']} GROUP BY ALL ORDER BY status, links DESC, pair",
        )


def cut_links(ws: Workspace, limit: int | None = None) -> pd.DataFrame:
    """The links the guardrails cut, with the reason, newest evidence first.

    Args:
        ws: The workspace (its identity graph must be built).
        limit: At most this many rows.

    Returns:
        Columns ``a``, ``b`` (``ns:value``), ``status``, ``reason``, ``evidence``, ``last_seen``.
    """
    lim = "" if limit is None else f" LIMIT {int(limit)}"
    with _views(ws, l=_identity_uri(ws, "links")) as v:
        return _query(
            ws,
            f"SELECT a_ns || ':' || a_value AS a, b_ns || ':' || b_value AS b, status, reason, "
            f"evidence, last_seen FROM {v['l']} WHERE status <> 'kept' "
            f"ORDER BY last_seen DESC, a, b{lim}",
        )


def identity_build_stats(ws: Workspace) -> pd.DataFrame:
    """The last identity build's figures (identities, links, profiles, links cut…).

    Args:
        ws: The workspace.

    Returns:
        Columns ``metric`` and ``value`` (the integer figures; seconds and timings left out),
        empty when no build succeeded yet.
    """
    b = ws.catalog.last_build("identity")
    stats = (b.stats or {}) if b is not None else {}
    rows = [
        (k, v)
        for k, v in stats.items()
        if isinstance(v, int) and not isinstance(v, bool) and k != "build_id"
    ]
    return pd.DataFrame(rows, columns=["metric", "value"]).astype({"value": "int64"})


# ---------------------------------------------------------------------- one profile
def profile_attributes(profile: Any) -> pd.DataFrame:
    """A profile's attributes with the dataset each value came from.

    Args:
        profile: A :class:`~workbench.profile.profiles.Profile`.

    Returns:
        Columns ``attribute``, ``value`` (as text), ``source``, by attribute.
    """
    rows = [
        (k, "" if v is None else str(v), profile.sources.get(k, ""))
        for k, v in sorted(profile.attributes.items())
    ]
    return pd.DataFrame(rows, columns=["attribute", "value", "source"])


def profile_graph(ws: Workspace, profile_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The identity graph around one profile: its identities and every link touching them.

    Links cut by the guardrails are included, so the identities on their far side (in other
    profiles) appear too, with ``in_profile`` false.

    Args:
        ws: The workspace (its identity graph must be built).
        profile_id: The profile.

    Returns:
        ``(nodes, edges)``. Nodes: ``id`` (``ns:value``), ``namespace``, ``value``,
        ``profile_id``, ``in_profile``, ``evidence``, ``first_seen``, ``last_seen``, sorted by
        ``id``. Edges: ``source``, ``target`` (node ids), ``status``, ``reason``,
        ``evidence``, ``dataset``, ``last_seen``, sorted by source and target.
    """
    pid = lit(int(profile_id))
    with _views(ws, i=_identity_uri(ws, "identities"), l=_identity_uri(ws, "links")) as v:
        i, l_ = v["i"], v["l"]
        edges = _query(
            ws,
            f"WITH mine AS (SELECT namespace || ':' || value AS id FROM {i} "
            f"WHERE profile_id = {pid}), "
            f"l AS (SELECT a_ns || ':' || a_value AS source, b_ns || ':' || b_value AS target, "
            f"status, reason, evidence, dataset, last_seen FROM {l_}) "
            f"SELECT * FROM l WHERE source IN (SELECT id FROM mine) "
            f"OR target IN (SELECT id FROM mine) ORDER BY source, target",
        )
        ends = pd.DataFrame({"id": pd.concat([edges["source"], edges["target"]]).unique()})
        with _views(ws, e=ends) as e:
            nodes = _query(
                ws,
                f"SELECT namespace || ':' || value AS id, namespace, value, profile_id, "
                f"profile_id = {pid} AS in_profile, evidence, first_seen, last_seen "
                f"FROM {i} WHERE profile_id = {pid} "
                f"OR namespace || ':' || value IN (SELECT id FROM {e['e']}) ORDER BY id",
            )
    return nodes, edges


def profile_events(ws: Workspace, profile_id: int, limit: int | None = None) -> pd.DataFrame:
    """A profile's event history, online and offline together, newest first.

    Args:
        ws: The workspace (profiles must be built).
        profile_id: The profile.
        limit: At most this many (the newest) events.

    Returns:
        Columns ``timestamp``, ``channel``, ``event_type``, ``dataset`` and the event's own
        fields that are set for at least one of its rows.
    """
    t = ws.profiles.events_table().to_table(filter=pads.field("profile_id") == int(profile_id))
    t = t.sort_by([("timestamp", "descending"), ("dataset", "ascending")])
    if limit is not None:
        t = t.slice(0, limit)
    df = t.to_pandas()
    keys = ["timestamp", "channel", "event_type", "dataset"]
    rest = [
        c
        for c in df.columns
        if c not in keys and c not in ("profile_id", "_batch_id", "_row") and df[c].notna().any()
    ]
    return df[keys + rest].reset_index(drop=True)


def profile_memberships(ws: Workspace, profile_id: int) -> pd.DataFrame:
    """Segment memberships of one profile (current and recently exited).

    Args:
        ws: The workspace.
        profile_id: The profile.

    Returns:
        Columns ``segment``, ``status``, ``since``, ``exited_at``, ``updated_at``, by segment.
    """
    cols = ["segment", "status", "since", "exited_at", "updated_at"]
    return pd.DataFrame(ws.segments.memberships_of(int(profile_id)), columns=cols)


# ---------------------------------------------------------------------- segments
def segment_sizes(ws: Workspace, segments: Sequence[str] | None = None) -> pd.DataFrame:
    """Current members per segment, from the membership store (one grouped query).

    Args:
        ws: The workspace.
        segments: The segments (default: every stored segment).

    Returns:
        Columns ``segment``, ``method``, ``members``, ``realized``, ``existing``, ``exited``
        (exited rows still retained), in the order asked (or by name).
    """
    names = _segment_names(ws, segments)
    info = {s.name: s.method for s in ws.segments.list()}
    base = pd.DataFrame({"segment": names, "method": [info.get(n, "") for n in names]})
    cols = ["realized", "existing", "exited"]
    uri = _memberships_uri(ws)
    if uri is None or not names:
        counts = pd.DataFrame(columns=["segment", *cols])
    else:
        with _views(ws, m=uri) as v:
            counts = _query(
                ws,
                f"SELECT segment, count(*) FILTER (WHERE status = 'realized') AS realized, "
                f"count(*) FILTER (WHERE status = 'existing') AS existing, "
                f"count(*) FILTER (WHERE status = 'exited') AS exited "
                f"FROM {v['m']} WHERE segment IN ({_in_list(names)}) GROUP BY segment",
            )
    out = base.merge(counts, on="segment", how="left")
    out[cols] = out[cols].fillna(0).astype("int64")
    out.insert(2, "members", out["realized"] + out["existing"])
    return out


def overlap_matrix(ws: Workspace, segments: Sequence[str]) -> pd.DataFrame:
    """Members in both segments, for every pair (the diagonal is each segment's size).

    Args:
        ws: The workspace.
        segments: The segments to compare.

    Returns:
        A square DataFrame indexed and labelled by the segments, in the order given.
    """
    names = _segment_names(ws, segments)
    uri = _memberships_uri(ws)
    mat = pd.DataFrame(0, index=pd.Index(names, name="segment"), columns=names, dtype="int64")
    if uri is None or not names:
        return mat
    with _views(ws, m=uri) as v:
        pairs = _query(
            ws,
            f"WITH m AS (SELECT segment, profile_id FROM {v['m']} "
            f"WHERE {_MEMBER_FILTER} AND segment IN ({_in_list(names)})) "
            f"SELECT a.segment AS a, b.segment AS b, count(*) AS n "
            f"FROM m a JOIN m b USING (profile_id) GROUP BY ALL",
        )
    if len(pairs):
        wide = pairs.pivot(index="a", columns="b", values="n")
        mat = wide.reindex(index=names, columns=names).fillna(0).astype("int64")
        mat.index.name = "segment"
        mat.columns.name = None
    return mat


def intersections(ws: Workspace, segments: Sequence[str]) -> pd.DataFrame:
    """Exact intersections (UpSet): how many profiles are in exactly each combination.

    Args:
        ws: The workspace.
        segments: The segments to compare.

    Returns:
        Columns ``segments`` (tuple, in the order given), ``label`` (`` & ``-joined),
        ``degree`` (how many segments) and ``profiles``, largest first; one row per
        combination that has members, plus one boolean column per segment.
    """
    names = _segment_names(ws, segments)
    uri = _memberships_uri(ws)
    cols = ["segments", "label", "degree", "profiles", *names]
    if uri is None or not names:
        return pd.DataFrame(columns=cols)
    # one bit per segment (in the order given), summed per profile, then counted per pattern
    bits = " ".join(f"WHEN {lit(n)} THEN {1 << k}" for k, n in enumerate(names))
    with _views(ws, m=uri) as v:
        combos = _query(
            ws,
            f"SELECT mask, count(*) AS profiles FROM (SELECT profile_id, "
            f"bit_or(CASE segment {bits} END)::BIGINT AS mask FROM {v['m']} "
            f"WHERE {_MEMBER_FILTER} AND segment IN ({_in_list(names)}) GROUP BY profile_id) "
            f"GROUP BY mask",
        )
    for k, n in enumerate(names):
        combos[n] = (combos["mask"].to_numpy() >> k) & 1 == 1
    members = combos[names].to_numpy()
    combos["segments"] = [tuple(itertools.compress(names, row)) for row in members]
    combos["label"] = combos["segments"].map(" & ".join)
    combos["degree"] = members.sum(axis=1).astype("int64")
    combos = combos.sort_values(["profiles", "degree", "label"], ascending=[False, True, True])
    return combos[cols].reset_index(drop=True)


def size_history(ws: Workspace, segments: Sequence[str] | None = None) -> pd.DataFrame:
    """Size, entered (realized) and exited per day (last run of the day), per segment.

    Args:
        ws: The workspace.
        segments: The segments (default: every stored segment).

    Returns:
        Columns ``segment``, ``date``, ``as_of``, ``run_id``, ``size``, ``realized``,
        ``existing``, ``exited``.
    """
    frames = []
    for name in _segment_names(ws, segments):
        h = ws.segments.history(name)
        if len(h):
            h.insert(0, "segment", name)
            frames.append(h)
    cols = ["segment", "date", "as_of", "run_id", "size", "realized", "existing", "exited"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def composition(
    ws: Workspace,
    segments: Sequence[str],
    attribute: str,
    *,
    policy: str | None = None,
    top: int = 10,
) -> pd.DataFrame:
    """Members of each segment by the value of a profile attribute (tier, city…).

    Values beyond the ``top`` most frequent (over the segments together) are grouped as
    ``(other)``; a missing value is ``(missing)``.

    Args:
        ws: The workspace (profiles must be built).
        segments: The segments.
        attribute: A column of the profile table.
        policy: The merge policy (default: the workspace's).
        top: How many values to keep apart.

    Returns:
        Columns ``segment``, ``value``, ``members``, ``share`` (of the segment's members).
    """
    names = _segment_names(ws, segments)
    uri = _memberships_uri(ws)
    cols = ["segment", "value", "members", "share"]
    profiles = ws.profiles.table_uri(policy)
    if attribute not in ws.profiles.table(policy).schema.names:
        raise NotFoundError(f"no profile attribute {attribute!r}")
    if uri is None or not names:
        return pd.DataFrame(columns=cols)
    with _views(ws, m=uri, p=profiles) as v:
        return _query(
            ws,
            f"WITH x AS (SELECT m.segment, coalesce(CAST(p.{ident(attribute)} AS VARCHAR), "
            f"{lit(MISSING)}) AS value FROM {v['m']} m LEFT JOIN {v['p']} p USING (profile_id) "
            f"WHERE m.{_MEMBER_FILTER} AND m.segment IN ({_in_list(names)})), "
            f"ranked AS (SELECT value, row_number() OVER (ORDER BY count(*) DESC, value) AS r "
            f"FROM x WHERE value <> {lit(MISSING)} GROUP BY value), "
            f"g AS (SELECT x.segment, CASE WHEN r <= {int(top)} OR x.value = {lit(MISSING)} "
            f"THEN x.value ELSE '(other)' END AS value FROM x LEFT JOIN ranked USING (value)) "
            f"SELECT segment, value, count(*) AS members, "
            f"count(*) / sum(count(*)) OVER (PARTITION BY segment) AS share "
            f"FROM g GROUP BY segment, value ORDER BY segment, members DESC, value",
        )


def channel_mix(ws: Workspace, segments: Sequence[str], as_of: Any = None) -> pd.DataFrame:
    """Members of each segment by the channels of their events: online only, offline only,
    both, none.

    Args:
        ws: The workspace (profiles and the event history must be built).
        segments: The segments.
        as_of: Only events up to this time (default: all).

    Returns:
        Columns ``segment``, ``channels`` (``online only``, ``offline only``, ``both``,
        ``no events``) and ``members``, every combination present (zeros included).
    """
    from workbench.segments.service import to_utc

    names = _segment_names(ws, segments)
    uri = _memberships_uri(ws)
    kinds = ["both", "online only", "offline only", "no events"]
    grid = pd.DataFrame([(s, k) for s in names for k in kinds], columns=["segment", "channels"])
    if uri is None or not names:
        grid["members"] = 0
        return grid
    when = (
        "" if as_of is None else f"WHERE timestamp <= {lit(to_utc(as_of).isoformat())}::TIMESTAMPTZ"
    )
    with _views(ws, m=uri, e=ws.profiles.events_uri()) as v:
        counts = _query(
            ws,
            f"WITH c AS (SELECT profile_id, bool_or(channel = 'online') AS onl, "
            f"bool_or(channel = 'offline') AS offl FROM {v['e']} {when} GROUP BY profile_id) "
            f"SELECT m.segment, CASE WHEN onl AND offl THEN 'both' WHEN onl THEN 'online only' "
            f"WHEN offl THEN 'offline only' ELSE 'no events' END AS channels, count(*) AS members "
            f"FROM {v['m']} m LEFT JOIN c USING (profile_id) "
            f"WHERE m.{_MEMBER_FILTER} AND m.segment IN ({_in_list(names)}) GROUP BY ALL",
        )
    out = grid.merge(counts, on=["segment", "channels"], how="left")
    out["members"] = out["members"].fillna(0).astype("int64")
    return out


def reachability(
    ws: Workspace, segments: Sequence[str], *, policy: str | None = None
) -> pd.DataFrame:
    """How reachable each segment's members are, from their profile attributes and identities.

    Args:
        ws: The workspace (profiles must be built).
        segments: The segments.
        policy: The merge policy (default: the workspace's).

    Returns:
        One row per segment: ``members``, ``with_email``, ``with_phone``,
        ``with_email_or_phone`` (can be sent as clear or hashed email/phone),
        ``with_hashed_identity`` (an identity of a hashed namespace in the graph), and
        ``consent_<channel>`` (members whose consent attribute says yes) for each consent
        attribute the profiles have.
    """
    names = _segment_names(ws, segments)
    uri = _memberships_uri(ws)
    have = set(ws.profiles.table(policy).schema.names)
    hashed = [n.name for n in ws.namespaces() if n.kind == NamespaceKind.HASHED]
    consents = {ch: col for ch, col in CONSENT_ATTRIBUTES.items() if col in have}
    cols = ["members", "with_email", "with_phone", "with_email_or_phone", "with_hashed_identity"]
    cols += [f"consent_{ch}" for ch in consents]
    if uri is None or not names:
        return pd.DataFrame({"segment": names, **{c: 0 for c in cols}})

    def present(col: str) -> str:
        return f"{ident(col)} IS NOT NULL" if col in have else "FALSE"

    tables: dict[str, Any] = {"m": uri, "p": ws.profiles.table_uri(policy)}
    if hashed and ws.identity.exists():
        tables["i"] = _identity_uri(ws, "identities")
    with _views(ws, **tables) as v:
        # per profile: what it has (one row each), then one grouped count per segment
        flags = ", ".join(
            [
                f"{present('email')} AS e",
                f"{present('phone')} AS ph",
                *(f"{consent_sql(col)} = 'y' AS c_{ch}" for ch, col in consents.items()),
            ]
        )
        hashed_sql = (
            f"SELECT DISTINCT profile_id, TRUE AS h FROM {v['i']} "
            f"WHERE status = 'active' AND namespace IN ({_in_list(hashed)})"
            if "i" in v
            else "SELECT NULL::BIGINT AS profile_id, TRUE AS h WHERE FALSE"
        )
        consent_counts = "".join(
            f", count(*) FILTER (WHERE c_{ch}) AS consent_{ch}" for ch in consents
        )
        counts = _query(
            ws,
            f"WITH f AS (SELECT profile_id, {flags} FROM {v['p']}), h AS ({hashed_sql}) "
            f"SELECT m.segment, count(*) AS members, "
            f"count(*) FILTER (WHERE e) AS with_email, count(*) FILTER (WHERE ph) AS with_phone, "
            f"count(*) FILTER (WHERE e OR ph) AS with_email_or_phone, "
            f"count(*) FILTER (WHERE h.h) AS with_hashed_identity{consent_counts} "
            f"FROM {v['m']} m LEFT JOIN f USING (profile_id) LEFT JOIN h USING (profile_id) "
            f"WHERE m.{_MEMBER_FILTER} AND m.segment IN ({_in_list(names)}) GROUP BY m.segment",
        )
    out = pd.DataFrame({"segment": names}).merge(counts, on="segment", how="left")
    out[cols] = out[cols].fillna(0).astype("int64")
    return out[["segment", *cols]]


def destination_reach(
    ws: Workspace, as_of: Any = None, destinations: Sequence[str] | None = None
) -> pd.DataFrame:
    """What each destination would receive of each of its segments (activation preview counts).

    Args:
        ws: The workspace.
        as_of: Evaluation time (default: now).
        destinations: Destination names (default: every destination).

    Returns:
        Columns ``destination``, ``type``, ``segment``, ``eligible``, ``exported``,
        ``skipped_no_identity``, ``skipped_no_consent``, ``blocked``, ``blocked_by``.
    """
    dests = (
        ws.activation.list()
        if destinations is None
        else [ws.activation.get(n) for n in destinations]
    )
    rows = []
    for d in dests:
        for seg in d.segments:
            p = ws.activation.preview(d, seg, as_of, rows=0)
            c = p.counts
            rows.append(
                {
                    "destination": d.name,
                    "type": str(getattr(d.type, "value", d.type)),
                    "segment": seg,
                    "eligible": c.eligible,
                    "exported": c.exported,
                    "skipped_no_identity": c.skipped_no_identity,
                    "skipped_no_consent": c.skipped_no_consent,
                    "blocked": c.blocked,
                    "blocked_by": ", ".join(p.blocked_by),
                }
            )
    cols = [
        "destination",
        "type",
        "segment",
        "eligible",
        "exported",
        "skipped_no_identity",
        "skipped_no_consent",
        "blocked",
        "blocked_by",
    ]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------- dashboards
def profile_reach(ws: Workspace, *, policy: str | None = None) -> dict[str, int]:
    """Workspace-wide figures of the audience overview, in one query over the profiles.

    Args:
        ws: The workspace (profiles must be built).
        policy: The merge policy (default: the workspace's).

    Returns:
        ``profiles``; ``known_profiles`` (holding an identity of a person namespace: CRM id,
        email, phone, loyalty id…); ``known_identities`` (active person identities in the
        graph); ``email`` (an email and email consent), ``sms`` (a phone and SMS consent) and
        ``ads`` (an email or phone and ads consent): profiles reachable on each channel.
    """
    have = set(ws.profiles.table(policy).schema.names)

    def present(col: str) -> str:
        return f"{ident(col)} IS NOT NULL" if col in have else "FALSE"

    def consent(ch: str) -> str:
        col = CONSENT_ATTRIBUTES[ch]
        return f"{consent_sql(col)} = 'y'" if col in have else "FALSE"

    email, phone = present("email"), present("phone")
    with _views(ws, p=ws.profiles.table_uri(policy)) as v:
        out = _query(
            ws,
            f"SELECT count(*) AS profiles, "
            f"count(*) FILTER (WHERE {email} AND {consent('email')}) AS email, "
            f"count(*) FILTER (WHERE {phone} AND {consent('sms')}) AS sms, "
            f"count(*) FILTER (WHERE ({email} OR {phone}) AND {consent('ads')}) AS ads "
            f"FROM {v['p']}",
        ).iloc[0]
    res = {k: int(out[k]) for k in ("profiles", "email", "sms", "ads")}
    person = [n.name for n in ws.namespaces() if n.kind == NamespaceKind.PERSON]
    res["known_profiles"] = res["known_identities"] = 0
    if person and ws.identity.exists():
        with _views(ws, i=_identity_uri(ws, "identities")) as v:
            k = _query(
                ws,
                f"SELECT count(*) AS n, count(DISTINCT profile_id) AS p FROM {v['i']} "
                f"WHERE status = 'active' AND namespace IN ({_in_list(person)})",
            ).iloc[0]
        res["known_identities"], res["known_profiles"] = int(k["n"]), int(k["p"])
    return res


def batches(ws: Workspace, limit: int = 1000) -> pd.DataFrame:
    """Ingestion batches (newest last) with their counts.

    Args:
        ws: The workspace.
        limit: At most this many (the newest) batches.

    Returns:
        Columns ``batch_id``, ``dataset``, ``status``, ``started_at``, ``rows_read``,
        ``rows_accepted``, ``rows_rejected``, ``source``.
    """
    rows = [
        {
            "batch_id": b.id,
            "dataset": b.dataset,
            "status": b.status,
            "started_at": b.started_at,
            "rows_read": b.rows_read,
            "rows_accepted": b.rows_accepted,
            "rows_rejected": b.rows_rejected,
            "source": b.source,
        }
        for b in reversed(ws.catalog.list_batches(limit=limit))
    ]
    cols = ["batch_id", "dataset", "status", "started_at", "rows_read", "rows_accepted"]
    cols += ["rows_rejected", "source"]
    return pd.DataFrame(rows, columns=cols)


def job_runs(ws: Workspace, limit: int = 200) -> pd.DataFrame:
    """Job runs (newest last): duration, status, the executed notebook and the error.

    Args:
        ws: The workspace.
        limit: At most this many (the newest) runs.

    Returns:
        Columns ``run_id``, ``job``, ``slot``, ``status``, ``started_at``, ``duration_s``,
        ``output`` (the executed notebook), ``error``.
    """
    rows = [
        {
            "run_id": r.id,
            "job": r.job,
            "slot": r.slot,
            "status": r.status,
            "started_at": r.started_at,
            "duration_s": r.duration_s,
            "output": r.output or "",
            "error": r.error or "",
        }
        for r in reversed(ws.jobs.list(limit=limit))
    ]
    cols = ["run_id", "job", "slot", "status", "started_at", "duration_s", "output", "error"]
    return pd.DataFrame(rows, columns=cols)


__all__ = [
    "batches",
    "channel_mix",
    "cluster_sizes",
    "composition",
    "cut_links",
    "datasets_overview",
    "destination_reach",
    "identities_per_namespace",
    "identity_build_stats",
    "intersections",
    "job_runs",
    "links_by_status",
    "overlap_matrix",
    "profile_attributes",
    "profile_events",
    "profile_graph",
    "profile_memberships",
    "profile_reach",
    "quarantine_reasons",
    "reachability",
    "schema_fields",
    "segment_sizes",
    "size_history",
]
