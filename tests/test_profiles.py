"""Unified profiles: both merge policies, sources, late-arriving records, event history."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_identity import crm, pos, ts, web
from workbench import Workspace
from workbench.errors import ConfigError, NotFoundError


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
