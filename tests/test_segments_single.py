"""The one-profile evaluator (:mod:`workbench.segments.single`) against the SQL engine.

The sample workspace, its hand-made edge profiles and the random-definition strategies are
those of :mod:`tests.test_segments_property` (imported, not copied): every profile evaluated
with the compiled predicate must give exactly the engine's member set, for random definitions,
the shipped segments and the hand-made boundary cases. :func:`next_change` is checked as a
property (the value is the same at every instant before it, and it changes there) and on
hand-made cases with their exact instants. A micro-benchmark prints the cost of a call.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.test_segments_property as prop
from workbench.segments import Compiler, SegmentDefinition, classify, load_folder, parse
from workbench.segments import single as single_mod
from workbench.segments.single import compile_predicate, next_change

#: the property tests' module-scoped sample workspace (2,000 persons plus edge profiles)
env = prop.env

AS_OF = prop.AS_OF
AS_OFS = prop.AS_OFS
CASE = prop.CASE
ORDERS = ("stored", "time", "reversed", "shuffled")
D = dt.timedelta(days=1)
H = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)


@dataclass
class Rows:
    """Every profile's attributes and events, as pyarrow's to_pylist gives them."""

    profiles: list[dict[str, Any]]
    events: dict[int, list[dict[str, Any]]]
    busy: list[int]  # profile ids with events close to the sample's as_of (for next_change)

    def ordered(self, pid: int, order: str) -> list[dict[str, Any]]:
        evs = self.events.get(pid, [])
        if order == "time":
            return sorted(evs, key=lambda e: e["timestamp"])
        if order == "reversed":
            return sorted(evs, key=lambda e: e["timestamp"], reverse=True)
        if order == "shuffled":
            out = list(evs)
            random.Random(pid).shuffle(out)
            return out
        return evs  # the event history's order: type, then time


@pytest.fixture(scope="module")
def rows(env: prop.Env) -> Rows:
    profiles = env.ws.profiles.table().to_table().to_pylist()
    events: dict[int, list[dict[str, Any]]] = {}
    for e in env.ws.profiles.events_table().to_table().to_pylist():
        events.setdefault(e["profile_id"], []).append(e)
    recent = AS_OF - 10 * D
    busy = sorted(
        pid
        for pid, evs in events.items()
        if sum(recent <= e["timestamp"] <= AS_OF + D for e in evs) >= 2
    )
    return Rows(profiles, events, busy)


def single_members(
    defn: SegmentDefinition,
    known: Mapping[str, SegmentDefinition],
    rows: Rows,
    as_of: dt.datetime,
    order: str = "stored",
) -> set[int]:
    pred = compile_predicate(defn, known)
    return {
        p["profile_id"]
        for p in rows.profiles
        if pred(p, rows.ordered(p["profile_id"], order), as_of)
    }


def check_same(
    env: prop.Env, rows: Rows, defn: SegmentDefinition, as_of: dt.datetime, order: str = "stored"
) -> int:
    """Assert the predicate selects exactly the engine's members; returns the size."""
    known = {**env.stored, defn.name: defn}
    _, want = prop.engine_members(env.ws, defn, as_of)
    got = single_members(defn, known, rows, as_of, order)
    if got != want:
        pytest.fail(
            f"single and engine disagree at as_of={as_of.isoformat()} (events {order})\n"
            f"only single: {sorted(got - want)[:8]}\nonly engine: {sorted(want - got)[:8]}\n"
            f"definition:\n{defn.to_yaml()}",
            pytrace=False,
        )
    return len(got)


_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


# ---------------------------------------------------------------------------- membership
def _random_definition(env: prop.Env, rows: Rows, data: st.DataObject) -> None:
    r = data.draw(prop.rule(env), label="rule")
    as_of = data.draw(st.sampled_from(AS_OFS), label="as_of")
    order = data.draw(st.sampled_from(ORDERS), label="order")
    defn = parse({"name": CASE, "rule": r})
    env.ws.segments.validate(defn, others=env.stored)
    check_same(env, rows, defn, as_of, order)


@settings(max_examples=40, **_SETTINGS)
@given(data=st.data())
def test_random_definitions_match_engine(env: prop.Env, rows: Rows, data: st.DataObject) -> None:
    _random_definition(env, rows, data)


@pytest.mark.slow
@settings(max_examples=400, **_SETTINGS)
@given(data=st.data())
def test_random_definitions_match_engine_many(
    env: prop.Env, rows: Rows, data: st.DataObject
) -> None:
    _random_definition(env, rows, data)


@settings(max_examples=15, **_SETTINGS)
@given(data=st.data())
def test_segments_of_segments_match_engine(env: prop.Env, rows: Rows, data: st.DataObject) -> None:
    """Unsaved definitions referring to each other (and to stored ones), inlined."""
    defs: dict[str, SegmentDefinition] = {}
    for i in range(data.draw(st.integers(2, 3), label="segments")):
        name = f"prop_m{i}"
        defs[name] = parse({"name": name, "rule": data.draw(prop.rule(env, 2, tuple(defs)))})
    as_of = data.draw(st.sampled_from(AS_OFS), label="as_of")
    env.ws.segments.validate(list(defs.values()), others=env.stored)
    known = {**env.stored, **defs}
    env.ws.segments.count(env.stored["prop_gold"], as_of)  # prepares the in-memory tables
    c = Compiler(
        known,
        as_of,
        env.catalog,
        events_table="__seg_events_mem",
        profiles_table="__seg_profiles_mem",
        dialect=env.ws.engine.dialect,
    )
    for name, d in defs.items():
        t = env.ws.engine.query(c.sql(c.members_query(name)))
        want = set(t.column("profile_id").to_pylist())
        got = single_members(d, known, rows, as_of, "time")
        text = "\n".join(x.to_yaml() for x in defs.values())
        assert got == want, (
            f"{name} at {as_of}: only single {sorted(got - want)[:8]}, only engine {sorted(want - got)[:8]}\n{text}"
        )


@pytest.mark.parametrize("name", [d.name for d in load_folder(prop.SEGMENTS_DIR)])
def test_shipped_segments_match_engine(env: prop.Env, rows: Rows, name: str) -> None:
    for as_of, order in ((AS_OF, "stored"), (AS_OFS[2], "shuffled"), (AS_OFS[1], "time")):
        check_same(env, rows, env.stored[name], as_of, order)


@pytest.mark.parametrize(("rule", "as_of", "expected"), prop.EDGE_EXPECTED)
def test_edge_cases_match_engine(
    env: prop.Env, rows: Rows, rule: dict[str, Any], as_of: dt.datetime, expected: set[str]
) -> None:
    """The hand-made boundary cases (windows, ties, then_within, leap days, wildcards)."""
    defn = parse({"name": CASE, "rule": rule})
    check_same(env, rows, defn, as_of, "reversed")
    got = single_members(defn, {**env.stored, CASE: defn}, rows, as_of)
    by_id = {v: k for k, v in env.edge.items()}
    assert {by_id[i] for i in got if i in by_id} == expected


@pytest.mark.parametrize(
    "as_of",
    [
        dt.datetime(2027, 2, 28, tzinfo=dt.UTC),
        dt.datetime(2027, 3, 1, 23, 59, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 29, 6, tzinfo=dt.UTC),
    ],
)
def test_date_functions_around_leap_days_match_engine(
    env: prop.Env, rows: Rows, as_of: dt.datetime
) -> None:
    for attribute in ("birth_date", "first_seen", "enrolled_at"):
        for r in (
            {"attribute": attribute, "fn": "days_until_anniversary", "op": "lte", "value": 3},
            {"attribute": attribute, "fn": "days_until_anniversary", "op": "eq", "value": 0},
            {"attribute": attribute, "fn": "age", "op": "between", "value": [2, 5]},
            {"attribute": attribute, "fn": "days_since", "op": "lt", "value": 400},
        ):
            check_same(env, rows, parse({"name": CASE, "rule": r}), as_of)


def test_mixed_days_and_instants_compare_each_at_its_grain(env: prop.Env, rows: Rows) -> None:
    """A timestamp attribute against calendar days and instants together: a day compares
    the field's UTC day, an instant the instant (``between`` an instant and a day runs
    through the end of that day). The engine, this evaluator and the oracle agree."""
    stamps = sorted(p["first_seen"] for p in rows.profiles if p["first_seen"] is not None)
    late = next(t for t in stamps if t.hour >= 1)  # after its UTC midnight
    day = late.date()
    instant = f"{late.isoformat()}"
    for op, value in (
        ("between", [f"{(day - 3 * D).isoformat()}T00:00:00Z", day.isoformat()]),
        ("between", ["3000d ago", day.isoformat()]),
        ("between", [day.isoformat(), f"{(day + 3 * D).isoformat()}T12:00:00Z"]),
        ("in", [day.isoformat(), instant]),
        ("not_in", [(day - D).isoformat(), instant]),
    ):
        defn = parse({"name": CASE, "rule": {"attribute": "first_seen", "op": op, "value": value}})
        check_same(env, rows, defn, AS_OF)
        prop.check_same(env, defn, AS_OF)
    # the profile seen later on the upper bound's day is in (not cut at that day's midnight)
    defn = parse(
        {
            "name": CASE,
            "rule": {
                "attribute": "first_seen",
                "op": "between",
                "value": ["3000d ago", day.isoformat()],
            },
        }
    )
    who = {p["profile_id"] for p in rows.profiles if p["first_seen"] == late}
    assert who <= prop.engine_members(env.ws, defn, AS_OF)[1]


# ---------------------------------------------------------------------------- next_change
def _instants(as_of: dt.datetime, nc: dt.datetime | None) -> list[dt.datetime]:
    """Instants at which the value must still be the value at as_of."""
    if nc is None:
        return [as_of + d for d in (US, H, D, 30 * D, 400 * D, 5000 * D)]
    span = nc - as_of
    return sorted({as_of, as_of + US, nc - US, as_of + span / 4, as_of + span / 2, nc - span / 9})


def _check_next_change(
    defn: SegmentDefinition,
    known: Mapping[str, SegmentDefinition],
    attrs: Mapping[str, Any],
    events: list[dict[str, Any]],
    as_of: dt.datetime,
) -> None:
    pred = compile_predicate(defn, known)
    v0 = pred(attrs, events, as_of)
    for with_attrs in (True, False):
        nc = next_change(defn, known, events, as_of, attributes=attrs if with_attrs else None)
        assert nc is None or nc > as_of
        for t in _instants(as_of, nc):
            if t >= as_of and pred(attrs, events, t) != v0:
                pytest.fail(
                    f"value changes at {t.isoformat()}, before next_change={nc} "
                    f"(as_of {as_of.isoformat()}, attributes given: {with_attrs}, "
                    f"profile {attrs['profile_id']})\n{defn.to_yaml()}",
                    pytrace=False,
                )
        if with_attrs and nc is not None:  # exact when the attributes are known
            assert pred(attrs, events, nc) != v0, (
                f"no change at next_change={nc} (profile {attrs['profile_id']})\n{defn.to_yaml()}"
            )


def _next_change_property(
    env: prop.Env, rows: Rows, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(single_mod, "_STEPS", 100_000)  # never answer early: check exactness
    r = data.draw(prop.rule(env, 2), label="rule")
    as_of = data.draw(st.sampled_from(AS_OFS), label="as_of")
    defn = parse({"name": CASE, "rule": r})
    env.ws.segments.validate(defn, others=env.stored)
    known = {**env.stored, CASE: defn}
    by_id = {p["profile_id"]: p for p in rows.profiles}
    pids = sorted(set(env.edge.values()))
    pids += data.draw(st.lists(st.sampled_from(rows.busy), min_size=6, max_size=6), label="busy")
    pids += data.draw(st.lists(st.sampled_from(sorted(by_id)), min_size=4, max_size=4))
    for pid in pids:
        _check_next_change(defn, known, by_id[pid], rows.ordered(pid, "shuffled"), as_of)


@settings(max_examples=25, **_SETTINGS)
@given(data=st.data())
def test_next_change_property(
    env: prop.Env, rows: Rows, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _next_change_property(env, rows, data, monkeypatch)


@pytest.mark.slow
@settings(max_examples=200, **_SETTINGS)
@given(data=st.data())
def test_next_change_property_many(
    env: prop.Env, rows: Rows, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _next_change_property(env, rows, data, monkeypatch)


@pytest.mark.parametrize("name", [d.name for d in load_folder(prop.SEGMENTS_DIR)])
def test_next_change_shipped_segments(env: prop.Env, rows: Rows, name: str) -> None:
    by_id = {p["profile_id"]: p for p in rows.profiles}
    for pid in [*sorted(set(env.edge.values())), *rows.busy[:: max(1, len(rows.busy) // 15)]]:
        _check_next_change(
            env.stored[name], env.stored, by_id[pid], rows.events.get(pid, []), AS_OF
        )


# ---------------------------------------------------------------------------- hand-made
T0 = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def _ev(event_type: str, at: dt.datetime, **fields: Any) -> dict[str, Any]:
    return {
        "profile_id": 1,
        "dataset": "web_events",
        "channel": "online",
        "timestamp": at,
        "event_type": event_type,
        **fields,
    }


def _defn(rule: dict[str, Any], name: str = "hand") -> SegmentDefinition:
    return parse({"name": name, "rule": rule})


SHIPPED = {d.name: d for d in load_folder(prop.SEGMENTS_DIR)}

HAND_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]], Any]] = [
    # (id, rule, attributes, events, expected next_change after T0: an instant or None)
    (
        "event 23h ago leaves a 24h window",
        {"events": {"type": "page_view", "within": "24h", "at_least": 1}},
        {},
        [_ev("page_view", T0 - 23 * H)],
        T0 + H,
    ),
    (
        "the latest of several events decides",
        {"events": {"type": "page_view", "within": "24h", "at_least": 1}},
        {},
        [_ev("page_view", T0 - 23 * H), _ev("page_view", T0 - 2 * H), _ev("login", T0 - H)],
        T0 + 22 * H,
    ),
    (
        "at least 2: the first of two leaving ends it",
        {"events": {"type": "page_view", "within": "24h", "at_least": 2}},
        {},
        [_ev("page_view", T0 - 2 * H), _ev("page_view", T0 - 20 * H)],
        T0 + 4 * H,
    ),
    (
        "a future-dated event enters",
        {"events": {"type": "purchase", "within": "1h", "at_least": 1}},
        {},
        [_ev("purchase", T0 + 90 * dt.timedelta(minutes=1))],
        T0 + 90 * dt.timedelta(minutes=1),
    ),
    (
        "between: the event enters 20 days after it happened",
        {"events": {"type": "purchase", "between": ["30d", "20d"], "at_least": 1}},
        {},
        [_ev("purchase", T0 - 10 * D)],
        T0 + 10 * D,
    ),
    (
        "all time, nothing ahead: never",
        {"events": {"type": "purchase", "at_least": 1}},
        {},
        [_ev("purchase", T0 - 100 * D)],
        None,
    ),
    (
        "absence ends when nothing is ahead: never",
        {"events": {"type": "purchase", "within": "30d", "absent": True}},
        {},
        [_ev("page_view", T0 - D)],
        None,
    ),
    (
        "cart abandoned 3h ago: in until the add leaves the 24h window",
        SHIPPED["cart_abandoners_24h"].to_dict()["rule"],
        {},
        [_ev("page_view", T0 - 4 * H), _ev("add_to_cart", T0 - 3 * H)],
        T0 + 21 * H,
    ),
    (
        "cart bought 30 minutes later: out, and time changes nothing",
        SHIPPED["cart_abandoners_24h"].to_dict()["rule"],
        {},
        [_ev("add_to_cart", T0 - 3 * H), _ev("purchase", T0 - 150 * dt.timedelta(minutes=1))],
        None,
    ),
    (
        "cart with a purchase dated 2h ahead: out when it happens",
        SHIPPED["cart_abandoners_24h"].to_dict()["rule"],
        {},
        [_ev("add_to_cart", T0 - 3 * H), _ev("purchase", T0 + 2 * H)],
        T0 + 2 * H,
    ),
    (
        "cart with a purchase past then_within: in until the add leaves the window",
        SHIPPED["cart_abandoners_24h"].to_dict()["rule"],
        {},
        [_ev("add_to_cart", T0 - 3 * H), _ev("purchase", T0 + 22 * H)],
        T0 + 21 * H,
    ),
    (
        "bought within 1h of the add: in until the add leaves the 7d window",
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1h",
                "within": "7d",
            }
        },
        {},
        [_ev("add_to_cart", T0 - 2 * D), _ev("purchase", T0 - 2 * D + H)],
        T0 + 5 * D,
    ),
    (
        "a filter on the event time relative to as_of",
        {
            "events": {
                "type": "page_view",
                "where": [{"field": "timestamp", "op": "gte", "value": "2h ago"}],
                "at_least": 1,
            }
        },
        {},
        [_ev("page_view", T0 - H)],
        T0 + H + US,
    ),
    (
        "joined 90 days ago (a date): out at the UTC midnight 91 days after",
        {"attribute": "enrolled_at", "op": "gte", "value": "90d ago"},
        {"enrolled_at": dt.date(2026, 10, 1)},
        [],
        dt.datetime(2026, 12, 31, tzinfo=dt.UTC),
    ),
    (
        "first seen in the last 30 days (a timestamp): out 30 days after",
        {"attribute": "first_seen", "op": "gt", "value": "30d ago"},
        {"first_seen": T0 - 10 * D + 5 * H},
        [],
        T0 + 20 * D + 5 * H,
    ),
    (
        "birthday in the next week: out the day after the birthday",
        SHIPPED["birthday_this_week"].to_dict()["rule"],
        {"birth_date": dt.date(1990, 12, 3), "consent_email": True},
        [],
        dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
    ),
    (
        "turns 18 on the birthday",
        {"attribute": "birth_date", "fn": "age", "op": "gte", "value": 18},
        {"birth_date": dt.date(2008, 12, 5)},
        [],
        dt.datetime(2026, 12, 5, tzinfo=dt.UTC),
    ),
    (
        "born on February 29: 18 on March 1 of a common year",
        {"attribute": "birth_date", "fn": "age", "op": "gte", "value": 18},
        {"birth_date": dt.date(2008, 2, 29)},
        [],
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    ),
    (
        "days since under 400",
        {"attribute": "enrolled_at", "fn": "days_since", "op": "lt", "value": 400},
        {"enrolled_at": dt.date(2025, 11, 1)},
        [],
        dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
    ),
    (
        "attributes only: never",
        {"attribute": "tier", "op": "in", "value": ["gold", "platinum"]},
        {"tier": "gold"},
        [],
        None,
    ),
    (
        "days until the anniversary at most 366: always, never changes",
        {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "lte", "value": 366},
        {"birth_date": dt.date(2000, 2, 29)},
        [],
        None,
    ),
]


@pytest.mark.parametrize(
    ("rule", "attrs", "events", "expected"),
    [c[1:] for c in HAND_CASES],
    ids=[c[0] for c in HAND_CASES],
)
def test_next_change_hand_made(
    rule: dict[str, Any], attrs: dict[str, Any], events: list[dict[str, Any]], expected: Any
) -> None:
    # February 29 births are checked from the start of February
    as_of = (
        T0
        if attrs.get("birth_date") != dt.date(2008, 2, 29)
        else dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    )
    defn = _defn(rule)
    known = {**SHIPPED, defn.name: defn}
    attrs = {"profile_id": 1, **attrs}
    got = next_change(defn, known, events, as_of, attributes=attrs)
    assert got == expected
    pred = compile_predicate(defn, known)
    v0 = pred(attrs, events, as_of)
    for t in _instants(as_of, got):
        assert pred(attrs, events, t) == v0
    if got is not None:
        assert pred(attrs, events, got) != v0
    # in any order, and without the attributes when the rule does not read them
    assert next_change(defn, known, events[::-1], as_of, attributes=attrs) == expected
    if "attribute" not in str(rule):
        assert next_change(defn, known, events, as_of) == expected


def test_next_change_without_attributes_is_conservative() -> None:
    known = dict(SHIPPED)
    # a date function: the next UTC midnight (its value can change only then)
    d = SHIPPED["birthday_this_week"]
    assert next_change(d, known, [], T0) == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    # a relative timestamp could move any instant
    r = _defn({"attribute": "first_seen", "op": "gt", "value": "30d ago"})
    assert next_change(r, {**known, r.name: r}, [], T0) == T0 + US
    # an attribute beside an event condition: the event's instant
    g = SHIPPED["active_gold_web_24h"]
    assert next_change(g, known, [_ev("page_view", T0 - 23 * H)], T0) == T0 + H


# ---------------------------------------------------------------------------- the interface
def test_predicate_interface() -> None:
    d = SHIPPED["active_gold_web_24h"]
    pred = compile_predicate(d, SHIPPED)
    attrs = {"tier": "gold"}
    evs = [_ev("page_view", T0 - 23 * H), _ev("page_view", T0 + 2 * H)]
    assert pred(attrs, evs, T0) is True
    assert pred(attrs, evs[::-1], T0) is True
    assert pred({"tier": "silver"}, evs, T0) is False
    assert pred({}, evs, T0) is False  # a missing attribute compares false
    assert pred(attrs, evs, T0 + H - US) is True
    assert pred(attrs, evs, T0 + H) is False  # the first left; the second is still ahead
    assert pred(attrs, evs, T0 + 2 * H) is True
    # naive as_of and naive event timestamps mean UTC
    assert pred(attrs, evs, T0.replace(tzinfo=None)) is True
    naive = [{**e, "timestamp": e["timestamp"].replace(tzinfo=None)} for e in evs]
    assert pred(attrs, naive, T0) is True
    assert pred(attrs, naive, T0 + 2 * D) is False
    east = dt.timezone(dt.timedelta(hours=5))
    assert pred(attrs, evs, T0.astimezone(east)) is True
    assert next_change(d, SHIPPED, naive, T0, attributes=attrs) == T0 + H
    assert next_change(d, SHIPPED, naive, T0 + H, attributes=attrs) == T0 + 2 * H


def test_decimals_and_literal_wildcards() -> None:
    from decimal import Decimal

    rule = {"events": {"type": "purchase", "sum": {"field": "amount", "op": "eq", "value": 30.3}}}
    d = _defn(rule)
    evs = [_ev("purchase", T0 - i * H, amount=Decimal("10.10")) for i in range(3)]
    assert compile_predicate(d, {})({}, evs, T0) is True
    avg = _defn(
        {"events": {"type": "purchase", "avg": {"field": "amount", "op": "eq", "value": 10.1}}}
    )
    assert compile_predicate(avg, {})({}, evs, T0) is True
    like = _defn({"attribute": "city", "op": "contains", "value": "_%"})
    p = compile_predicate(like, {})
    assert p({"city": "a_%b"}, [], T0) is True
    assert p({"city": "axxb"}, [], T0) is False


# ---------------------------------------------------------------------------- benchmark
def _bench(f: Callable[[], Any], n: int = 2000, repeat: int = 7) -> float:
    """Median microseconds per call."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            f()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def test_benchmark_streaming_segments(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the median cost of a predicate call (and of next_change) for the streaming
    sample segments on a profile with 20 events; no timing is asserted."""
    extra = _defn(
        {
            "all": [
                {"events": {"type": "add_to_cart", "within": "24h", "at_least": 1}},
                {"events": {"type": "purchase", "within": "24h", "absent": True}},
            ]
        },
        "carted_not_bought_24h",
    )
    known = {**SHIPPED, extra.name: extra}
    streaming = [n for n, d in sorted(known.items()) if classify(d, known).is_streaming]
    assert len(streaming) == 4
    types = ["page_view", "product_view", "page_view", "add_to_cart", "login"]
    # a member (recent web activity) and a non-member (the same 20 events, two days older)
    recent = [
        _ev(types[i % len(types)], T0 - (i * 60 + 7) * dt.timedelta(minutes=1), page="/p")
        for i in range(20)
    ]
    recent.sort(key=lambda e: e["timestamp"])
    old = [{**e, "timestamp": e["timestamp"] - 2 * D} for e in recent]
    gold = {"profile_id": 1, "tier": "gold", "email": "a@b.c", "consent_email": True}
    silver = {**gold, "tier": "silver"}
    lines = []
    for name in streaming:
        pred = compile_predicate(known[name], known)
        cells = []
        for attrs, evs in ((gold, recent), (silver, old)):
            us = _bench(lambda p=pred, a=attrs, e=evs: p(a, e, T0))
            nc = _bench(lambda n=name, e=evs: next_change(known[n], known, e, T0), n=200, repeat=5)
            cells.append(f"{us:6.2f} µs (next_change {nc:6.1f} µs)")
        lines.append(f"{name:22s} {pred(gold, recent, T0)!s:5s} {cells[0]}   out: {cells[1]}")
    with capsys.disabled():
        print("\nsingle-profile predicate, 20 events, median per call:\n  " + "\n  ".join(lines))
