"""Unified profiles: both merge policies, sources, late-arriving records, event history."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_identity import crm, pos, ts, web
from workbench import Workspace
from workbench.errors import ConfigError, NotFoundError
from workbench.profile.profiles import EVENT_KEYS


def loyalty(rows: list[dict[str, str]]) -> pd.DataFrame:
    cols = ["loyalty_id", "email", "tier", "points", "enrolled_at", "updated_at"]
    return pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows])


@pytest.fixture
def people(ws: Workspace) -> Workspace:
    ws.ingest(
        "crm_customers",
        crm(
            [
                {
                    "crm_id": "C1",
                    "email": "ana@example.com",
                    "phone": "2125550142",
                    "city": "Boston",
                    "loyalty_id": "L1",
                    "updated_at": ts(0),
                },
                {"crm_id": "C2", "email": "bob@example.com", "city": "Austin", "updated_at": ts(0)},
            ]
        ),
    )
    # a newer CRM record for C1 (new city, phone left empty) ...
    ws.ingest(
        "crm_customers",
        crm(
            [{"crm_id": "C1", "email": "ana@example.com", "city": "Chicago", "updated_at": ts(10)}]
        ),
    )
    # ... and a late-arriving stale one, ingested last but older
    ws.ingest(
        "crm_customers",
        crm([{"crm_id": "C1", "email": "ana@example.com", "city": "Denver", "updated_at": ts(5)}]),
    )
    ws.ingest(
        "loyalty_members",
        loyalty(
            [
                {
                    "loyalty_id": "L1",
                    "email": "ana.loyal@example.com",
                    "tier": "gold",
                    "points": "120",
                    "updated_at": ts(20),
                }
            ]
        ),
    )
    ws.ingest(
        "web_events",
        web(
            [
                ("login", "E1", "C1", 30),
                ("page_view", "E1", None, 31),
                ("page_view", "E9", None, 32),
            ]
        ),
    )
    ws.ingest(
        "pos_orders",
        pos(
            [
                {"order_id": "O1", "timestamp": ts(40), "loyalty_id": "L1"},
                {"order_id": "O2", "timestamp": ts(41)},
            ]
        ),
    )
    ws.identity.build()
    return ws


def test_profiles_need_a_graph(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="identity build"):
        ws.profiles.build()


def test_timestamp_policy_latest_non_null_wins(people: Workspace) -> None:
    st = people.profiles.build()
    assert st.policy == "timestamp"
    p = people.profiles.get("email:ana@example.com")
    assert p.attributes["city"] == "Chicago"  # the stale Denver record does not win
    assert p.attributes["phone"] == "+12125550142"  # newer record had no phone: non-null preferred
    assert p.attributes["tier"] == "gold" and p.sources["tier"] == "loyalty_members"
    assert p.attributes["email"] == "ana.loyal@example.com"  # loyalty record is the most recent
    assert p.sources["email"] == "loyalty_members" and p.sources["city"] == "crm_customers"


def test_dataset_precedence_policy(people: Workspace) -> None:
    people.settings.merge_policies["crm_first"] = {
        "type": "dataset_precedence",
        "datasets": ["crm_customers", "loyalty_members"],
    }
    st = people.profiles.build("crm_first")
    assert st.policy == "crm_first"
    p = people.profiles.get("crm_id:C1", policy="crm_first")
    assert p.attributes["email"] == "ana@example.com" and p.sources["email"] == "crm_customers"
    assert p.attributes["city"] == "Chicago"  # within a dataset, the latest record
    assert p.attributes["tier"] == "gold"  # only loyalty has it
    with pytest.raises(ConfigError, match="no merge policy named 'nope'"):
        people.profiles.build("nope")


def test_event_history_online_and_offline(people: Workspace) -> None:
    st = people.profiles.build()
    assert st.events == 5 - 1  # the anonymous order is not attributable
    assert st.events_not_attributable == 1
    p = people.profiles.get("loyalty_id:L1")
    kinds = sorted((e["dataset"], e["event_type"]) for e in p.events)
    assert kinds == [
        ("pos_orders", "purchase"),
        ("web_events", "login"),
        ("web_events", "page_view"),
    ]
    assert p.events[0]["dataset"] == "pos_orders"  # newest first
    ids = {(i["namespace"], i["value"]) for i in p.identities}
    assert {
        ("crm_id", "C1"),
        ("loyalty_id", "L1"),
        ("ecid", "E1"),
        ("email", "ana.loyal@example.com"),
    } <= ids
    # a cookie-only visitor is a profile too, with events and no attributes
    v = people.profiles.get("ecid:E9")
    assert v.attributes == {} and len(v.events) == 1


def test_every_cluster_is_a_profile(people: Workspace) -> None:
    people.profiles.build()
    n = people.profiles.table().count_rows()
    assert n == len(set(people.identity.identities().column("profile_id").to_pylist()))
    with pytest.raises(NotFoundError):
        people.profiles.get("crm_id:NOBODY")


# ---------------------------------------------------------------------- against a reference
def _owner(sch, row, nss, active):  # type: ignore[no-untyped-def]
    """The profile a row belongs to, by the documented rule, in plain Python: a record
    belongs to its primary identity's profile, an event to that of its highest-priority
    identity in the graph (active identities only)."""
    marked = [f for f in sch.identity_fields if f.name in row]
    if sch.primary_identity is not None and sch.primary_identity.name in row:
        marked = [sch.primary_identity]
    marked.sort(key=lambda f: (-nss[f.identity.namespace].priority, f.name))
    for f in marked:
        v = row[f.name]
        if v is not None and (f.identity.namespace, str(v)) in active:
            return active[(f.identity.namespace, str(v))]
    return None


def _reference(ws: Workspace, policy: dict) -> tuple[list[dict], dict[tuple, dict]]:  # type: ignore[type-arg]
    """Profile table and event history recomputed row by row from the lake and the graph."""
    from workbench.schema.model import SchemaClass

    nss = {n.name: n for n in ws.catalog.namespaces()}
    idt = ws.identity.identities().to_pylist()
    active = {(r["namespace"], r["value"]): r["profile_id"] for r in idt if r["status"] == "active"}
    order = list(policy.get("datasets") or [])
    rank = {d: len(order) - i for i, d in enumerate(order)}
    frags: dict[int, list[tuple[tuple, str, dict]]] = {}  # type: ignore[type-arg]
    events: dict[tuple, dict] = {}  # type: ignore[type-arg]
    attrs: set[str] = set()
    event_fields: list[str] = []
    rows_by_ds = {}
    for d in ws.catalog.list_datasets():
        if d.profile_enabled:
            sch = ws.catalog.get_schema(d.schema_name)
            rows_by_ds[d.name] = (sch, ws.datasets.snapshot(d.name).to_table().to_pylist())
    for sch, _ in rows_by_ds.values():
        if sch.cls is SchemaClass.PROFILE:
            attrs |= {f.name for f in sch.fields if f.name != "updated_at"}
        else:
            for f in sch.fields:
                skip = f.identity is not None or f.name in EVENT_KEYS
                if not skip and f.name not in event_fields:
                    event_fields.append(f.name)
    for name, (sch, rows) in rows_by_ds.items():
        for r in rows:
            pid = _owner(sch, r, nss, active)
            if pid is None:
                continue
            if sch.cls is SchemaClass.PROFILE:
                key = (r["updated_at"], r["_batch_id"], r["_row"])
                if policy["type"] == "dataset_precedence":
                    key = (rank.get(name, 0), *key)
                frags.setdefault(pid, []).append((key, name, r))
            else:
                events[(name, r["_batch_id"], r["_row"])] = {
                    "profile_id": pid,
                    "dataset": name,
                    "channel": sch.channel,
                    "timestamp": r["timestamp"],
                    "event_type": str(r["event_type"]),
                    **{f: r.get(f) for f in event_fields},
                    "_batch_id": r["_batch_id"],
                    "_row": r["_row"],
                }
    members: dict[int, list[dict]] = {}  # type: ignore[type-arg]
    for r in idt:
        members.setdefault(r["profile_id"], []).append(r)
    profiles = []
    for pid in sorted(members):
        fs = sorted(frags.get(pid, []), key=lambda x: x[0])
        row: dict = {"profile_id": pid}  # type: ignore[type-arg]
        sources = {}
        for a in sorted(attrs):
            won = [(name, r[a]) for _, name, r in fs if r.get(a) is not None]
            row[a] = won[-1][1] if won else None
            sources[a] = won[-1][0] if won else None
        row["sources"] = sources
        row["updated_at"] = max((r["updated_at"] for _, _, r in fs), default=None)
        row["records"] = len(fs)
        row["identity_count"] = len(members[pid])
        row["first_seen"] = min(m["first_seen"] for m in members[pid])
        row["last_seen"] = max(m["last_seen"] for m in members[pid])
        profiles.append(row)
    return profiles, events


@pytest.mark.parametrize(
    "policy",
    [
        {"type": "timestamp"},
        {"type": "dataset_precedence", "datasets": ["loyalty_members", "crm_customers"]},
    ],
    ids=["timestamp", "dataset_precedence"],
)
def test_profiles_and_event_history_match_a_reference(tmp_path, policy) -> None:  # type: ignore[no-untyped-def]
    """On a small sample brand, the built profile table and event history equal a plain
    Python recomputation of the documented rules (attribution, merge policy, history)."""
    import pyarrow.parquet as pq

    from tests.conftest import sample_brand_workspace
    from workbench.profile.profiles import EVENT_ROW_GROUP

    w, _ = sample_brand_workspace(tmp_path, persons=1_500, seed=5)
    w.settings.merge_policies["ref"] = policy
    st = w.profiles.build("ref")
    want_profiles, want_events = _reference(w, policy)

    got = w.profiles.table("ref").to_table().sort_by("profile_id").to_pylist()
    assert len(got) == len(want_profiles) == st.profiles
    for g, e in zip(got, want_profiles, strict=True):
        g = {**g, "sources": {k: v for k, v in (g["sources"] or {}).items() if v is not None}}
        e = {**e, "sources": {k: v for k, v in e["sources"].items() if v is not None}}
        assert g == e, g["profile_id"]
    assert st.profiles_with_attributes == sum(1 for p in want_profiles if p["records"])

    hist = w.profiles.events_table()
    table = hist.to_table()
    cols = table.column_names
    assert cols[:5] == list(EVENT_KEYS) and cols[-2:] == ["_batch_id", "_row"]
    rows = table.to_pylist()
    got_events = {(r["dataset"], r["_batch_id"], r["_row"]): r for r in rows}
    assert len(got_events) == len(rows) == st.events
    assert set(cols) == set(next(iter(want_events.values())))
    assert got_events == want_events
    total = sum(
        len(w.datasets.snapshot(n).to_table())
        for n in ("web_events", "pos_orders", "email_engagement")
    )
    assert st.events_not_attributable == total - len(want_events) > 0
    # one file per event dataset, each stored by event type, then time, in row groups of
    # EVENT_ROW_GROUP rows
    assert len(hist.files) == 3
    for f in hist.files:
        part = pq.read_table(f, columns=["dataset", "event_type", "timestamp"]).to_pylist()
        assert len({r["dataset"] for r in part}) == 1
        keys = [(r["event_type"], r["timestamp"]) for r in part]
        assert keys == sorted(keys)
        md = pq.read_metadata(f)
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        assert all(s == EVENT_ROW_GROUP for s in sizes[:-1]) and sizes[-1] <= EVENT_ROW_GROUP
    w.close()
