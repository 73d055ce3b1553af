"""Segmentation against a small hand-made brand whose answers are worked out by hand.

Five CRM customers (C1..C5), three loyalty members, a few store orders, web events and
email engagement; one anonymous web visitor (cookie E9). ``as_of`` is 2026-12-01T00:00Z.
The expected sets in the tables below were computed by hand from the rows in ``_data``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workbench.errors import ConfigError, ValidationError
from workbench.segments import (
    BATCH,
    STREAMING,
    attr,
    classify,
    events,
    field,
    in_segment,
    parse,
    segment,
    sequence,
    step,
)
from workbench.segments.model import SegmentDefinition, load, load_folder

AS_OF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
ROOT = Path(__file__).parents[1]


def _ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _data() -> dict[str, pd.DataFrame]:
    crm = pd.DataFrame(
        {
            "crm_id": ["C1", "C2", "C3", "C4", "C5"],
            "email": ["ana@x.com", "bo@x.com", "cy@x.com", None, "ed@x.com"],
            "phone": ["+12025550101", None, "+12025550103", "+12025550104", None],
            "first_name": ["Ana", "Bo", "Cy", "Di", "Ed"],
            "last_name": ["A", "B", "C", "D", "E"],
            "birth_date": [
                dt.date(1996, 12, 3),  # 29, birthday in 2 days
                dt.date(1960, 1, 15),  # 66
                dt.date(2000, 2, 29),  # 26
                None,
                dt.date(1990, 11, 20),  # 36, birthday 11 days ago
            ],
            "city": ["New York", "Chicago", "new york", "Boston", None],
            "country": ["US"] * 5,
            "postal_code": ["10001", "60601", "10002", "02101", None],
            "loyalty_id": ["L1", "L2", None, "L4", None],
            "consent_email": [True, False, True, None, True],
            "consent_sms": [True, False, False, True, None],
            "consent_ads": [True, True, False, False, True],
            "updated_at": [_ts("2026-10-01")] * 5,
        }
    )
    loyalty = pd.DataFrame(
        {
            "loyalty_id": ["L1", "L2", "L4"],
            "email": ["ana@x.com", None, None],
            "tier": ["gold", "platinum", "bronze"],
            "points": [12000, 30000, 100],
            "enrolled_at": [dt.date(2026, 10, 1), dt.date(2020, 1, 1), dt.date(2026, 11, 20)],
            "updated_at": [_ts("2026-11-01")] * 3,
        }
    )
    pos = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5"],
            "timestamp": [
                _ts("2026-11-25T12:00"),
                _ts("2026-06-01T12:00"),
                _ts("2026-03-01T12:00"),
                _ts("2026-11-30T10:00"),
                _ts("2025-10-01T12:00"),
            ],
            "event_type": ["purchase"] * 5,
            "loyalty_id": ["L1", "L1", "L2", None, "L4"],
            "email": [None, None, None, "cy@x.com", None],
            "phone": [None] * 5,
            "store_id": ["S001", "S001", "S002", "S002", "S001"],
            "total": [200.0, 150.0, 500.0, 50.0, 80.0],
            "items": [2, 6, 1, 1, 3],
        }
    )
    web = pd.DataFrame(
        {
            "event_id": [f"W{i}" for i in range(1, 11)],
            "timestamp": [
                _ts("2026-11-30T20:00"),
                _ts("2026-11-30T20:05"),
                _ts("2026-11-30T20:10"),
                _ts("2026-11-30T21:00"),
                _ts("2026-11-30T21:30"),
                _ts("2026-11-27T10:00"),
                _ts("2026-11-28T10:00"),
                _ts("2026-11-29T10:00"),
                _ts("2026-11-15T10:00"),
                _ts("2026-12-02T00:00"),  # after as_of: never counts at as_of
            ],
            "event_type": [
                "page_view",
                "add_to_cart",
                "purchase",
                "add_to_cart",
                "page_view",
                "product_view",
                "product_view",
                "product_view",
                "page_view",
                "page_view",
            ],
            "ecid": ["E1", "E1", "E1", "E3", "E3", "E5", "E5", "E5", "E9", "E2"],
            "crm_id": ["C1", "C1", "C1", "C3", "C3", "C5", "C5", "C5", None, "C2"],
            "page": ["/", "/cart", "/checkout", "/cart", "/", "/p/a", "/p/b", "/p/c", "/", "/"],
            "sku": [None, "A", "A", "B", None, "A", "B", "C", None, None],
            "amount": [None, None, 120.0, None, None, None, None, None, None, None],
        }
    )
    email = pd.DataFrame(
        {
            "email": ["ana@x.com"] * 4 + ["bo@x.com"] * 2 + ["ed@x.com"],
            "timestamp": [
                _ts("2026-11-01T08:00"),
                _ts("2026-11-10T08:00"),
                _ts("2026-11-20T08:00"),
                _ts("2026-11-25T08:00"),
                _ts("2026-11-15T08:00"),
                _ts("2026-11-16T08:00"),
                _ts("2026-10-15T08:00"),
            ],
            "event_type": ["open", "open", "open", "click", "open", "unsubscribe", "open"],
            "campaign_id": ["K1", "K2", "K3", "K3", "K2", "K2", "K0"],
        }
    )
    return {
        "crm_customers": crm,
        "loyalty_members": loyalty,
        "pos_orders": pos,
        "web_events": web,
        "email_engagement": email,
    }


@pytest.fixture(scope="module")
def brand(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The hand-made brand, built once: (workspace, {label: profile_id})."""
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path_factory.mktemp("seg") / "ws")
    register(ws)
    for name, df in _data().items():
        r = ws.ingest(name, df)
        assert r.batch.rows_rejected == 0, ws.datasets.quarantine(name).to_pylist()
    ws.identity.build()
    ws.profiles.build()
    ids = {f"C{i}": ws.identity.lookup(f"crm_id:C{i}") for i in range(1, 6)}
    ids["E9"] = ws.identity.lookup("ecid:E9")
    assert len(set(ids.values())) == 6
    assert ws.profiles.table().count_rows() == 6
    ws.segments.add(segment("gold", attr("tier") == "gold"))
    yield ws, ids
    ws.close()


ALL = {"C1", "C2", "C3", "C4", "C5", "E9"}

# (rule, expected members) — worked out by hand from _data()
CASES: list[tuple[dict, set[str]]] = [
    # attributes: every operator
    ({"attribute": "tier", "op": "eq", "value": "gold"}, {"C1"}),
    ({"attribute": "tier", "op": "ne", "value": "gold"}, {"C2", "C4"}),
    ({"not": {"attribute": "tier", "op": "eq", "value": "gold"}}, ALL - {"C1"}),
    ({"attribute": "tier", "op": "in", "value": ["gold", "platinum"]}, {"C1", "C2"}),
    ({"attribute": "tier", "op": "not_in", "value": ["gold"]}, {"C2", "C4"}),
    ({"attribute": "city", "op": "contains", "value": "York"}, {"C1"}),
    (
        {"attribute": "city", "op": "contains", "value": "YORK", "case_insensitive": True},
        {"C1", "C3"},
    ),
    (
        {"attribute": "city", "op": "eq", "value": "NEW york", "case_insensitive": True},
        {"C1", "C3"},
    ),
    ({"attribute": "city", "op": "starts_with", "value": "Bo"}, {"C4"}),
    ({"attribute": "city", "op": "ends_with", "value": "ago"}, {"C2"}),
    ({"attribute": "points", "op": "gt", "value": 12000}, {"C2"}),
    ({"attribute": "points", "op": ">=", "value": 12000}, {"C1", "C2"}),
    ({"attribute": "points", "op": "lt", "value": 12000}, {"C4"}),
    ({"attribute": "points", "op": "lte", "value": 100}, {"C4"}),
    ({"attribute": "points", "op": "eq", "value": 100}, {"C4"}),
    ({"attribute": "points", "op": "between", "value": [100, 12000]}, {"C1", "C4"}),
    ({"attribute": "email", "op": "exists"}, {"C1", "C2", "C3", "C5"}),
    ({"attribute": "email", "op": "not_exists"}, {"C4", "E9"}),
    ({"attribute": "consent_email", "op": "eq", "value": True}, {"C1", "C3", "C5"}),
    ({"attribute": "consent_email", "op": "ne", "value": True}, {"C2"}),
    # dates relative to as_of
    ({"attribute": "birth_date", "fn": "age", "op": "between", "value": [25, 34]}, {"C1", "C3"}),
    ({"attribute": "birth_date", "fn": "age", "op": "gt", "value": 60}, {"C2"}),
    ({"attribute": "birth_date", "op": "gte", "value": "1995-01-01"}, {"C1", "C3"}),
    ({"attribute": "birth_date", "op": "lt", "value": "30d ago"}, {"C1", "C2", "C3", "C5"}),
    ({"attribute": "enrolled_at", "op": "gte", "value": "90d ago"}, {"C1", "C4"}),
    ({"attribute": "enrolled_at", "fn": "days_since", "op": "lte", "value": 15}, {"C4"}),
    (
        {
            "attribute": "birth_date",
            "fn": "days_until_anniversary",
            "op": "between",
            "value": [0, 6],
        },
        {"C1"},
    ),
    ({"attribute": "birth_date", "fn": "days_until_anniversary", "op": "eq", "value": 89}, {"C3"}),
    ({"attribute": "first_seen", "op": "lt", "value": "2099-01-01T00:00:00"}, ALL),
    # events: counts, windows, filters, aggregates, absence
    ({"events": {"type": "purchase"}}, {"C1", "C2", "C3", "C4"}),
    ({"events": {"type": "purchase", "absent": True}}, {"C5", "E9"}),
    ({"events": {"type": "purchase", "within": "30d", "at_least": 1}}, {"C1", "C3"}),
    (
        {
            "events": {
                "type": "purchase",
                "where": [{"field": "channel", "op": "eq", "value": "offline"}],
                "between": ["365d", "90d"],
            }
        },
        {"C1", "C2"},
    ),
    ({"events": {"type": "purchase", "since": "2026-06-01", "at_least": 2}}, {"C1"}),
    (
        {"events": {"type": "purchase", "sum": {"field": "total", "op": "gte", "value": 300}}},
        {"C1", "C2"},
    ),
    (
        {
            "events": {
                "type": "purchase",
                "within": "365d",
                "sum": {"field": "total", "op": "gte", "value": 300},
            }
        },
        {"C1", "C2"},
    ),
    (
        {"events": {"type": "purchase", "avg": {"field": "total", "op": "gt", "value": 100}}},
        {"C1", "C2"},
    ),
    ({"events": {"type": "purchase", "max": {"field": "items", "op": "gte", "value": 5}}}, {"C1"}),
    ({"events": {"type": "purchase", "min": {"field": "total", "op": "lt", "value": 60}}}, {"C3"}),
    (
        {
            "events": {
                "type": "purchase",
                "where": [{"field": "store_id", "op": "eq", "value": "S001"}],
                "at_least": 2,
            }
        },
        {"C1"},
    ),
    ({"events": {"within": "24h", "at_least": 1}}, {"C1", "C3"}),
    ({"events": {"type": "page_view", "at_most": 0}}, {"C2", "C4", "C5"}),
    ({"events": {"type": "page_view", "exactly": 1}}, {"C1", "C3", "E9"}),
    ({"events": {"type": "open", "within": "60d", "at_least": 3}}, {"C1"}),
    (
        {
            "events": {
                "type": "purchase",
                "where": [{"field": "channel", "op": "eq", "value": "online"}],
                "sum": {"field": "amount", "op": "between", "value": [100, 150]},
            }
        },
        {"C1"},
    ),
    (
        {
            "events": {
                "where": [{"field": "channel", "op": "eq", "value": "online"}],
                "within": "7d",
                "at_least": 4,
            }
        },
        {"C1"},
    ),
    (
        {
            "events": {
                "type": "product_view",
                "where": [{"field": "sku", "op": "in", "value": ["A", "C"]}],
                "at_least": 2,
            }
        },
        {"C5"},
    ),
    # sequences
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
                "within": "24h",
            }
        },
        {"C1"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
                "then_absent": True,
                "within": "24h",
            }
        },
        {"C3"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "page_view"},
                "then": {
                    "type": "add_to_cart",
                    "where": [{"field": "sku", "op": "eq", "value": "A"}],
                },
                "then_within": "10m",
            }
        },
        {"C1"},
    ),
    # segment references
    ({"in_segment": "gold"}, {"C1"}),
    ({"not_in_segment": "gold"}, ALL - {"C1"}),
    # boolean composition, nested
    (
        {
            "all": [
                {"attribute": "tier", "op": "in", "value": ["gold", "platinum"]},
                {"events": {"type": "purchase", "within": "30d"}},
            ]
        },
        {"C1"},
    ),
    (
        {
            "any": [
                {"attribute": "tier", "op": "eq", "value": "platinum"},
                {"attribute": "city", "op": "eq", "value": "new york", "case_insensitive": True},
            ]
        },
        {"C1", "C2", "C3"},
    ),
    (
        {
            "not": {
                "any": [
                    {"attribute": "tier", "op": "eq", "value": "platinum"},
                    {
                        "attribute": "city",
                        "op": "eq",
                        "value": "new york",
                        "case_insensitive": True,
                    },
                ]
            }
        },
        {"C4", "C5", "E9"},
    ),
    (
        {
            "all": [
                {
                    "any": [
                        {"attribute": "email", "op": "not_exists"},
                        {"attribute": "consent_email", "op": "ne", "value": True},
                    ]
                },
                {"not": {"attribute": "tier", "op": "eq", "value": "bronze"}},
            ]
        },
        {"C2", "E9"},
    ),
]


def _members(ws, d: SegmentDefinition, ids: dict[str, int]) -> set[str]:  # type: ignore[no-untyped-def]
    back = {v: k for k, v in ids.items()}
    c = ws.segments._compiler(d, AS_OF, "__seg_events_mem", "__seg_profiles_mem")
    got = ws.engine.query(c.sql(c.members_query(d.name))).column("profile_id").to_pylist()
    return {back[p] for p in got}


@pytest.mark.parametrize("rule,expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_every_condition_kind_matches_the_hand_computed_set(brand, rule, expected) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    d = parse({"name": "case", "rule": rule})
    ws.segments.validate(d)
    n = ws.segments.count(d, AS_OF)
    assert _members(ws, d, ids) == expected, d.to_yaml()
    assert n == len(expected)


def test_events_after_as_of_never_count(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    d = segment("late", events("page_view").within("3d"))
    assert ws.segments.count(d, AS_OF) == 2  # C1, C3
    later = AS_OF + dt.timedelta(days=1, hours=1)  # W10 (C2, Dec 2 00:00) now counts
    assert ws.segments.count(d, later) == 3


# ---------------------------------------------------------------------- batch job and statuses
def test_statuses_move_realized_existing_exited_and_history_is_kept(tmp_path) -> None:
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path / "ws")
    register(ws)
    for name, df in _data().items():
        ws.ingest(name, df)
    ws.identity.build()
    ws.profiles.build()
    ids = {f"C{i}": ws.identity.lookup(f"crm_id:C{i}") for i in range(1, 6)}
    back = {v: k for k, v in ids.items()}
    ws.segments.add(segment("viewers_3d", events("page_view").within("3d")))
    ws.segments.add(segment("gold", attr("tier") == "gold"))

    def state() -> dict[str, str]:
        df = ws.segments.members("viewers_3d", include_exited=True)
        return {back[p]: s for p, s in zip(df.profile_id, df.status, strict=True)}

    r1 = ws.segments.run("2026-12-01T00:00Z")
    assert state() == {"C1": "realized", "C3": "realized"}
    by = {r.segment: r for r in r1.results}
    assert (by["viewers_3d"].size, by["viewers_3d"].realized) == (2, 2)
    assert by["gold"].method == STREAMING and by["viewers_3d"].method == BATCH

    r2 = ws.segments.run("2026-12-03T15:00Z")
    assert state() == {"C1": "existing", "C3": "existing", "C2": "realized"}
    by = {r.segment: r for r in r2.results}
    assert (by["viewers_3d"].size, by["viewers_3d"].realized, by["viewers_3d"].existing) == (
        3,
        1,
        2,
    )
    assert (by["gold"].realized, by["gold"].existing) == (0, 1)

    r3 = ws.segments.run("2026-12-04T00:00Z")
    assert state() == {"C1": "exited", "C3": "exited", "C2": "existing"}
    assert {r.segment: r.exited for r in r3.results}["viewers_3d"] == 2
    since = ws.segments.members("viewers_3d")
    assert list(since.since) == [pd.Timestamp("2026-12-03T15:00Z")]  # C2 entered at run 2

    ws.segments.run("2026-12-05T00:00Z")
    assert state() == {"C1": "exited", "C3": "exited", "C2": "exited"}
    assert ws.segments.members("viewers_3d").empty

    # time travel: members as a past run left them
    past = ws.segments.members("viewers_3d", as_of="2026-12-03T20:00Z")
    assert {back[p] for p in past.profile_id} == {"C1", "C2", "C3"}
    with pytest.raises(Exception, match="no run"):
        ws.segments.members("viewers_3d", as_of="2026-11-01T00:00Z")

    # the change log answers "who entered since run 1"
    ch = ws.segments.changes("viewers_3d", after_run=r1.run_id)
    entered = {back[p] for p, s in zip(ch.profile_id, ch.status, strict=True) if s == "realized"}
    assert entered == {"C2"}

    hist = ws.segments.history("viewers_3d")
    assert list(hist["size"]) == [2, 3, 1, 0]
    assert list(hist["realized"]) == [2, 1, 0, 0]
    assert list(hist["exited"]) == [0, 0, 2, 1]

    # exited memberships are deleted after the retention period (30 days)
    ws.segments.run("2027-01-10T00:00Z")
    assert state() == {}

    # the profile shows its memberships
    ws.segments.run("2027-01-11T00:00Z")
    p = ws.profiles.by_id(ids["C1"])
    assert [(m["segment"], m["status"]) for m in p.memberships] == [("gold", "existing")]

    # statuses move forward in time
    with pytest.raises(ConfigError, match="before the last successful run"):
        ws.segments.run("2026-12-01T00:00Z")
    runs = ws.segments.runs()
    assert runs[0].status == "success" and runs[0].stats["segments"] == 2
    ws.close()


# ---------------------------------------------------------------------- definitions
def test_yaml_and_json_round_trip_exactly() -> None:
    defs = load_folder(ROOT / "segments")
    assert len(defs) >= 12
    for d in defs:
        again = parse(yaml.safe_load(d.to_yaml()))
        assert again == d
        assert again.to_yaml() == d.to_yaml()
        assert parse(json.loads(d.to_json())) == d


def test_fluent_api_builds_the_same_model_as_yaml() -> None:
    fluent = segment(
        "vip",
        attr("tier").isin(["gold", "platinum"])
        & (
            events("purchase").where(field("channel") == "offline").within("365d").sum("total")
            >= 300
        ),
        description="d",
    )
    yaml_def = parse(
        {
            "name": "vip",
            "description": "d",
            "rule": {
                "all": [
                    {"attribute": "tier", "op": "in", "value": ["gold", "platinum"]},
                    {
                        "events": {
                            "type": "purchase",
                            "where": [{"field": "channel", "op": "eq", "value": "offline"}],
                            "within": "365d",
                            "sum": {"field": "total", "op": "gte", "value": 300},
                        }
                    },
                ]
            },
        }
    )
    assert fluent == yaml_def
    seq = segment(
        "abandon",
        sequence(step("add_to_cart"), step("purchase"), "1d", then_absent=True, within="24h"),
    )
    assert seq.rule == load(ROOT / "segments" / "cart_abandoners_24h.yaml").rule
    neg = segment("x", ~(attr("tier") == "gold") | in_segment("y"))
    assert neg.to_dict()["rule"] == {
        "any": [{"not": {"attribute": "tier", "op": "eq", "value": "gold"}}, {"in_segment": "y"}]
    }


@pytest.mark.parametrize(
    "rule,path,message",
    [
        (
            {"attribute": "tierr", "op": "eq", "value": "gold"},
            "rule.attribute",
            "did you mean 'tier'",
        ),
        ({"attribute": "points", "op": "contains", "value": "1"}, "rule.op", "does not fit points"),
        ({"attribute": "tier", "op": "eq", "value": "golden"}, "rule.value", "not a value of tier"),
        ({"attribute": "points", "op": "gt", "value": "many"}, "rule.value", "is a number"),
        ({"attribute": "city", "op": "gt"}, "rule.value", "needs a value"),
        ({"attribute": "city", "op": "like", "value": "x"}, "rule.op", "unknown operator"),
        ({"attribute": "city", "fn": "age", "op": "gt", "value": 3}, "rule.fn", "needs a date"),
        (
            {
                "all": [
                    {"attribute": "tier", "op": "exists"},
                    {"attribute": "tier", "op": "exists"},
                    {
                        "events": {
                            "type": "purchase",
                            "where": [{"field": "amount", "op": "gt", "value": "x"}],
                        }
                    },
                ]
            },
            "rule.all[2].events.where[0].value",
            "is a number",
        ),
        (
            {
                "all": [
                    {"attribute": "tier", "op": "exists"},
                    {
                        "events": {
                            "type": "purchase",
                            "where": [{"field": "amout", "op": "gt", "value": 1}],
                        }
                    },
                ]
            },
            "rule.all[1].events.where[0].field",
            "unknown event field 'amout'",
        ),
        (
            {"events": {"type": "purchase", "within": "30 days"}},
            "rule.events.within",
            "not a duration",
        ),
        (
            {"events": {"type": "purchase", "between": ["30d", "90d"]}},
            "rule.events.between",
            "further back",
        ),
        ({"events": {"type": "purchace"}}, "rule.events.type", "unknown event type"),
        (
            {"events": {"type": "purchase", "sum": {"field": "store_id", "op": "gt", "value": 1}}},
            "rule.events.sum.field",
            "numeric",
        ),
        ({"in_segment": "nope"}, "rule.in_segment", "no segment named 'nope'"),
        (
            {
                "not": {
                    "sequence": {
                        "first": {"type": "add_to_cart"},
                        "then": {"type": "purchase"},
                        "then_within": "soon",
                    }
                }
            },
            "rule.not.sequence.then_within",
            "not a duration",
        ),
        ({"attribute": "tier", "events": {}}, "rule", "exactly one kind"),
    ],
)
def test_validation_errors_name_the_path(brand, rule, path, message) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    with pytest.raises(ValidationError) as e:
        ws.segments.validate({"name": "bad", "rule": rule})
    assert any(p.path == path and message in p.message for p in e.value.problems), e.value.problems


def test_cycles_are_refused_with_the_cycle_named(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    a = segment("cyc_a", in_segment("cyc_b") & (attr("tier") == "gold"))
    b = segment("cyc_b", in_segment("cyc_c"))
    c = segment("cyc_c", in_segment("cyc_a"))
    with pytest.raises(ValidationError, match="cyc_a -> cyc_b -> cyc_c -> cyc_a"):
        ws.segments.add([a, b, c])
    assert "cyc_a" not in {s.name for s in ws.segments.list()}


def test_dependencies_are_ordered_and_a_used_segment_cannot_be_removed(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    ws.segments.add(
        [segment("dep_top", in_segment("dep_mid")), segment("dep_mid", in_segment("gold"))]
    )
    info = ws.segments.show("dep_top", AS_OF)
    assert info["dependencies"] == ["gold", "dep_mid"]
    assert "SELECT" in info["sql"] and "'gold'" in info["sql"]
    with pytest.raises(ConfigError, match="used by dep_top"):
        ws.segments.remove("dep_mid")
    ws.segments.remove("dep_top")
    ws.segments.remove("dep_mid")


def test_values_reach_sql_only_as_literals(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    evil = "x'); DROP TABLE segments; --"
    d = segment("evil", attr("city") == evil)
    assert ws.segments.count(d, AS_OF) == 0
    assert "'x''); DROP TABLE segments; --'" in ws.segments.sql(d, AS_OF)
    assert ws.segments.count(segment("ok", attr("city") == "Chicago"), AS_OF) == 1


# ---------------------------------------------------------------------- classifier
@pytest.mark.parametrize(
    "rule,method,why",
    [
        (
            {"attribute": "tier", "op": "eq", "value": "gold"},
            STREAMING,
            "attribute conditions only",
        ),
        (
            {"events": {"type": "page_view", "within": "24h"}},
            STREAMING,
            "one event condition within 24 hours",
        ),
        (
            {
                "all": [
                    {"attribute": "tier", "op": "exists"},
                    {"events": {"type": "login", "within": "12h"}},
                ]
            },
            STREAMING,
            "with attribute conditions",
        ),
        (
            {
                "all": [
                    {"events": {"type": "add_to_cart", "within": "24h"}},
                    {"events": {"type": "purchase", "within": "24h", "absent": True}},
                ]
            },
            STREAMING,
            "2 event conditions within 24 hours",
        ),
        (
            {
                "sequence": {
                    "first": {"type": "add_to_cart"},
                    "then": {"type": "purchase"},
                    "then_within": "1d",
                    "then_absent": True,
                    "within": "24h",
                }
            },
            STREAMING,
            "time order",
        ),
        ({"in_segment": "gold"}, STREAMING, "streaming segments only"),
        ({"events": {"type": "page_view", "within": "7d"}}, BATCH, "window over 24 hours (7d)"),
        ({"events": {"type": "page_view"}}, BATCH, "no time window"),
        ({"events": {"type": "page_view", "since": "2026-01-01"}}, BATCH, "fixed start date"),
        (
            {"events": {"type": "purchase", "within": "24h", "absent": True}},
            BATCH,
            "absence of events on its own",
        ),
        (
            {
                "events": {
                    "type": "purchase",
                    "within": "24h",
                    "sum": {"field": "total", "op": "gt", "value": 1},
                }
            },
            BATCH,
            "sum of total",
        ),
        (
            {"events": {"type": "purchase", "within": "24h", "exactly": 2}},
            BATCH,
            "not an 'at least'",
        ),
        (
            {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "lte", "value": 7},
            BATCH,
            "depends on the clock",
        ),
        ({"attribute": "enrolled_at", "op": "gte", "value": "90d ago"}, BATCH, "relative to as_of"),
        (
            {"all": [{"in_segment": "gold"}, {"events": {"type": "login", "within": "1h"}}]},
            BATCH,
            "segment reference combined with an event",
        ),
        ({"in_segment": "hv"}, BATCH, "refers to batch segment 'hv'"),
        (
            {
                "sequence": {
                    "first": {"type": "add_to_cart"},
                    "then": {"type": "purchase"},
                    "then_within": "3d",
                    "within": "24h",
                }
            },
            BATCH,
            "over 24 hours",
        ),
    ],
)
def test_classifier_decides_the_method_and_says_why(rule, method, why) -> None:  # type: ignore[no-untyped-def]
    known = {
        "gold": parse({"name": "gold", "rule": {"attribute": "tier", "op": "eq", "value": "gold"}}),
        "hv": parse({"name": "hv", "rule": {"events": {"type": "purchase", "within": "365d"}}}),
    }
    m = classify(parse({"name": "x", "rule": rule}), known)
    assert m.method == method and why in m.reason, m


# ---------------------------------------------------------------------- sizing
def test_estimate_is_exact_when_the_sample_is_everyone(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    e = ws.segments.estimate(segment("p", events("purchase")), AS_OF)
    assert e.exact and e.estimate == e.low == e.high == 4


def test_sample_library_is_valid_and_every_segment_runs(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    defs = ws.segments.validate(ROOT / "segments")
    assert len(defs) >= 12
    methods = {classify(d, {x.name: x for x in defs}).method for d in defs}
    assert methods == {STREAMING, BATCH}


def test_aggregate_between_needs_low_then_high() -> None:
    with pytest.raises(
        ValidationError, match=r"rule.events.sum.value: between needs \[low, high\]"
    ):
        parse(
            {
                "name": "x",
                "rule": {"events": {"sum": {"field": "total", "op": "between", "value": [5, 1]}}},
            }
        )
