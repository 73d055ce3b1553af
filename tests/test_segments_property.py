"""The SQL segment engine against the pandas oracle (:mod:`workbench.segments.reference`).

One small sample workspace per module; hypothesis draws valid definitions from the field
catalog (values taken from the actual data so that conditions are rarely empty) and every
one must select exactly the same profiles in both evaluators. The shipped definitions in
``segments/`` are checked the same way, plus date functions around February 29.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import Workspace
from workbench.sample import DEFAULT_AS_OF, generate
from workbench.sample.brand import SAMPLE_DATASETS, register
from workbench.segments import (
    Compiler,
    FieldCatalog,
    SegmentDefinition,
    dependency_order,
    load_folder,
    parse,
    reference,
)

pytestmark = pytest.mark.slow

PERSONS = 2000
AS_OF = DEFAULT_AS_OF  # 2026-12-01T00:00Z, the sample manifest's as_of
AS_OFS = (
    AS_OF,
    AS_OF - dt.timedelta(hours=12),
    AS_OF - dt.timedelta(days=3, hours=17, minutes=30),
    AS_OF - dt.timedelta(days=7),
)
SEGMENTS_DIR = Path(__file__).parents[1] / "segments"
CASE = "prop_case"  # the name of every generated definition
# event fields a where filter may not use (windows are for time)
NO_FILTER = {"timestamp"}
NUMERIC_AGG_FIELDS = ("total", "items", "amount")
HELPERS: list[dict[str, Any]] = [
    {"name": "prop_gold", "rule": {"attribute": "tier", "op": "in", "value": ["gold", "platinum"]}},
    {
        "name": "prop_recent_buyer",
        "rule": {"events": {"type": "purchase", "within": "30d", "at_least": 1}},
    },
    {
        "name": "prop_gold_not_recent",
        "rule": {"all": [{"in_segment": "prop_gold"}, {"not_in_segment": "prop_recent_buyer"}]},
    },
]


# ---------------------------------------------------------------------------- edge data
# A few hand-made profiles, added to the sample, whose events sit exactly on the boundaries
# (window starts, as_of, then_within, equal timestamps) and whose attributes hit leap days,
# birthdays on as_of and LIKE wildcards. Their expected memberships are checked by hand.
D = dt.timedelta(days=1)
H = dt.timedelta(hours=1)
EDGE_WEB: list[tuple[str, str, str, dt.timedelta, str]] = [
    # event_id, ecid, event_type, time relative to AS_OF, amount
    ("X1a", "PROPX1", "add_to_cart", -2 * D, ""),
    ("X1b", "PROPX1", "purchase", -2 * D + H, "12.50"),  # exactly 1h after X1a
    ("X1c", "PROPX1", "page_view", -2 * D, ""),  # the same instant as X1a
    ("X2a", "PROPX2", "add_to_cart", -D, ""),  # exactly on the start of "within 1d"
    ("X2b", "PROPX2", "purchase", dt.timedelta(0), "20.00"),  # exactly at as_of, 1d after X2a
    ("X3a", "PROPX3", "page_view", -30 * D, ""),  # 2026-11-01T00:00Z: within 30d excludes it
    ("X3c", "PROPX3", "purchase", H, "99.99"),  # after as_of
    ("X3d", "PROPX3", "purchase", -10 * D, ""),  # no amount
    ("X4a", "PROPX4", "add_to_cart", -5 * D, ""),
    ("X4b", "PROPX4", "purchase", -5 * D, "5.00"),  # the same instant as X4a
    ("X5a", "PROPX5", "purchase", -3 * D, "10.10"),
    ("X5b", "PROPX5", "purchase", -2 * D - H, "10.10"),
    ("X5c", "PROPX5", "purchase", -D + dt.timedelta(seconds=1), "10.10"),
    ("X6a", "PROPX6", "add_to_cart", -H, ""),
    ("X6b", "PROPX6", "purchase", H, "1.00"),  # followed only after as_of
    ("X7a", "PROPX7", "page_view", -30 * D + dt.timedelta(microseconds=1), ""),
]
EDGE_CRM: list[tuple[str, str, str, str]] = [
    # crm_id, birth_date, city, last_name
    ("CPROP1", "2000-02-29", "A_B%C", "O'Neil\\x"),
    ("CPROP2", "1996-02-29", "Köln", "Zed"),
    ("CPROP3", "1990-12-01", "New York", "Birthday"),  # 36 on AS_OF, anniversary today
    ("CPROP4", "1990-12-02", "new york", "Tomorrow"),  # 35 on AS_OF, anniversary tomorrow
    ("CPROP5", "2026-12-02", "Boston", "Unborn"),  # a birth date after as_of
]


def edge_web_events() -> pd.DataFrame:
    """The hand-made web events (anonymous visitors, one ECID each)."""
    return pd.DataFrame(
        [
            {
                "event_id": eid,
                "timestamp": (AS_OF + delta).isoformat(),
                "event_type": et,
                "ecid": ecid,
                "crm_id": "",
                "page": "/prop",
                "sku": "",
                "amount": amount,
            }
            for eid, ecid, et, delta, amount in EDGE_WEB
        ]
    )


def edge_customers() -> pd.DataFrame:
    """The hand-made CRM customers."""
    return pd.DataFrame(
        [
            {
                "crm_id": cid,
                "birth_date": born,
                "city": city,
                "last_name": last,
                "country": "US",
                "consent_email": "true",
                "updated_at": "2026-06-01T00:00:00Z",
            }
            for cid, born, city, last in EDGE_CRM
        ]
    )


@dataclass
class Env:
    """The sample workspace with its frames and what the strategies draw from."""

    ws: Workspace
    profiles: pd.DataFrame
    events: pd.DataFrame
    catalog: FieldCatalog
    stored: dict[str, SegmentDefinition]
    samples: dict[str, list[Any]]  # attribute -> distinct non-missing values
    event_samples: dict[str, list[Any]]  # event field -> distinct non-missing values
    sums: dict[str, list[float]]  # numeric event field -> per-profile sums (all time)
    edge: dict[str, int]  # hand-made profile (X1.., C1..) -> profile id


def _distinct(s: pd.Series, limit: int = 400) -> list[Any]:
    vals = s.dropna()
    with contextlib.suppress(TypeError):  # unhashable (lists)
        vals = vals.drop_duplicates()
    return list(vals.iloc[:limit])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("segprop")
    sample = root / "sample"
    generate(sample, persons=PERSONS, seed=42, as_of=AS_OF)
    ws = Workspace.create(root / "ws")
    register(ws)
    for d in SAMPLE_DATASETS:
        for f in d.files:
            ws.ingest(d.name, sample / f)
    ws.ingest("crm_customers", edge_customers())
    ws.ingest("web_events", edge_web_events())
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(SEGMENTS_DIR)
    ws.segments.add([parse(h) for h in HELPERS])
    profiles = ws.profiles.table().to_table().to_pandas()
    events = ws.profiles.events_table().to_table().to_pandas()
    cat = ws.segments.fields()
    samples = {a: _distinct(profiles[a]) for a in cat.attributes if a in profiles.columns}
    event_samples = {f: _distinct(events[f]) for f in cat.events if f in events.columns}
    sums = {}
    for f in NUMERIC_AGG_FIELDS:
        v = pd.to_numeric(events[f], errors="coerce")
        per = v.groupby(events["profile_id"]).sum(min_count=1).dropna().round(6)
        sums[f] = sorted(set(per.tolist()))[:400]
    edge = {}
    for eid, ecid, *_ in EDGE_WEB:
        pid = events.loc[events["event_id"] == eid, "profile_id"]
        assert len(pid) == 1, f"edge event {eid} is not in the event history"
        edge[ecid.removeprefix("PROP")] = int(pid.iloc[0])
    for cid, *_ in EDGE_CRM:
        pid = profiles.loc[profiles["crm_id"] == cid, "profile_id"]
        assert len(pid) == 1, f"edge customer {cid} is not a profile"
        edge["C" + cid.removeprefix("CPROP")] = int(pid.iloc[0])
    stored = ws.segments.definitions()
    yield Env(ws, profiles, events, cat, stored, samples, event_samples, sums, edge)
    ws.close()


# ---------------------------------------------------------------------------- comparing
def engine_members(ws: Workspace, defn: SegmentDefinition, as_of: dt.datetime) -> tuple[int, set]:
    """The engine's count and member ids (count first: it prepares the in-memory tables)."""
    n = ws.segments.count(defn, as_of)
    c = ws.segments._compiler(defn, as_of, "__seg_events_mem", "__seg_profiles_mem")
    t = ws.engine.query(c.sql(c.members_query(defn.name)))
    return n, set(t.column("profile_id").to_pylist())


def check_same(env: Env, defn: SegmentDefinition, as_of: dt.datetime) -> int:
    """Assert engine and oracle agree on ``defn`` at ``as_of``; returns the size."""
    n, got = engine_members(env.ws, defn, as_of)
    known = {**env.stored, defn.name: defn}
    want = reference.evaluate(known, [defn.name], env.profiles, env.events, as_of)[defn.name]
    if n != len(got) or got != want:
        only_engine = sorted(got - want)[:8]
        only_oracle = sorted(want - got)[:8]
        pytest.fail(
            f"engine and oracle disagree at as_of={as_of.isoformat()}\n"
            f"engine count={n}, engine members={len(got)}, oracle members={len(want)}\n"
            f"only in engine: {only_engine}\nonly in oracle: {only_oracle}\n"
            f"definition:\n{defn.to_yaml()}",
            pytrace=False,
        )
    return n


# ---------------------------------------------------------------------------- strategies
def _recase(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["upper", "lower", "swap", "title", "same"]))
    return {
        "upper": text.upper(),
        "lower": text.lower(),
        "swap": text.swapcase(),
        "title": text.title(),
        "same": text,
    }[how]


@st.composite
def _text_piece(draw: st.DrawFn, pool: list[Any], op: str) -> str:
    """A value for contains / starts_with / ends_with: mostly a piece of a real value."""
    if pool and draw(st.integers(0, 9)) < 8:
        v = str(draw(st.sampled_from(pool)))
        if op == "starts_with":
            return v[: draw(st.integers(1, max(1, len(v))))]
        if op == "ends_with":
            return v[-draw(st.integers(1, max(1, len(v)))) :]
        i = draw(st.integers(0, max(0, len(v) - 1)))
        j = draw(st.integers(i + 1, max(i + 1, len(v))))
        return v[i:j]
    # wildcard and quote characters must be taken literally
    return draw(st.text(alphabet="ab_%.'@\\ eo", min_size=1, max_size=3))


@st.composite
def _string_cond(draw: st.DrawFn, info: Any, pool: list[Any]) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            [
                "eq",
                "ne",
                "in",
                "not_in",
                "contains",
                "starts_with",
                "ends_with",
                "exists",
                "not_exists",
            ]
        )
    )
    ci = draw(st.booleans())
    d: dict[str, Any] = {"op": op}
    if op in ("exists", "not_exists"):
        return d
    choices = list(info.values) if info.values else [str(v) for v in pool]
    if not choices:
        choices = ["x"]

    def one() -> str:
        if not info.values and draw(st.integers(0, 9)) == 0:
            return draw(st.text(alphabet="abcXY'_ ", min_size=1, max_size=4))
        v = draw(st.sampled_from(choices))
        return _recase(draw, v) if ci else v

    if op in ("contains", "starts_with", "ends_with"):
        v = draw(_text_piece([*choices], op))
        d["value"] = _recase(draw, v) if ci else v
    elif op in ("in", "not_in"):
        d["value"] = [one() for _ in range(draw(st.integers(1, 3)))]
    else:
        d["value"] = one()
    if ci:
        d["case_insensitive"] = True
    return d


def _num(v: Any) -> int | float:
    f = float(v)
    return int(f) if f.is_integer() else f


@st.composite
def _number_value(draw: st.DrawFn, pool: list[Any]) -> int | float:
    if pool and draw(st.integers(0, 9)) < 8:
        v = _num(draw(st.sampled_from(pool)))
        if draw(st.integers(0, 5)) == 0:
            v = _num(v + draw(st.sampled_from([-1, 1, 0.5, -0.25])))
        return v
    return draw(st.integers(-5, 40000))


@st.composite
def _number_cond(
    draw: st.DrawFn, pool: list[Any], ops: tuple[str, ...] | None = None, ordered: bool = True
) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            ops
            or (
                "eq",
                "ne",
                "in",
                "not_in",
                "gt",
                "gte",
                "lt",
                "lte",
                "between",
                "exists",
                "not_exists",
            )
        )
    )
    d: dict[str, Any] = {"op": op}
    if op in ("exists", "not_exists"):
        return d
    if op == "between":
        a, b = draw(_number_value(pool)), draw(_number_value(pool))
        # validation wants [low, high]
        d["value"] = [min(a, b), max(a, b)] if ordered else [a, b]
    elif op in ("in", "not_in"):
        d["value"] = [draw(_number_value(pool)) for _ in range(draw(st.integers(1, 3)))]
    else:
        d["value"] = draw(_number_value(pool))
    return d


def _to_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).date() if v.tzinfo else v.date()
    if isinstance(v, dt.date):
        return v
    return pd.Timestamp(v).date()


@st.composite
def _date_value(draw: st.DrawFn, kind: str, pool: list[Any]) -> Any:
    form = draw(st.integers(0, 9))
    if form <= 2:  # relative
        unit = draw(st.sampled_from(["d", "d", "w", "h", "m"]))
        span = {"d": 40000, "w": 5000, "h": 5000, "m": 100000}[unit]
        n = draw(st.integers(0, span))
        return f"{n}{unit} ago" if draw(st.integers(0, 4)) else f"in {n}{unit}"
    base = draw(st.sampled_from(pool)) if pool else AS_OF
    if form <= 5:  # a calendar date, as ISO text or a date object
        d = _to_date(base) + dt.timedelta(days=draw(st.sampled_from([0, 0, 0, -1, 1])))
        return d.isoformat() if draw(st.booleans()) else d
    if kind == "timestamp" and form <= 8:  # an exact instant from the data
        t = pd.Timestamp(base).tz_convert("UTC").to_pydatetime()
        shape = draw(st.integers(0, 3))
        if shape == 0:
            return t.isoformat()
        if shape == 1:
            return t.replace(tzinfo=None).isoformat()  # naive = UTC
        if shape == 2:
            return t.replace(tzinfo=None).isoformat(sep=" ")
        return t.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()
    # a timestamp at some time of the day
    d = _to_date(base)
    return f"{d.isoformat()}T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00Z"


@st.composite
def _date_cond(draw: st.DrawFn, kind: str, pool: list[Any]) -> dict[str, Any]:
    op = draw(
        st.sampled_from(("eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "not_exists"))
    )
    d: dict[str, Any] = {"op": op}
    if op in ("exists", "not_exists"):
        return d
    if op == "between":
        d["value"] = [draw(_date_value(kind, pool)), draw(_date_value(kind, pool))]
    else:
        d["value"] = draw(_date_value(kind, pool))
    return d


FN_POOLS = {
    "age": [*range(-1, 100)],
    "days_since": [0, 1, 2, 7, 30, 90, 180, 365, 400, 1000, 3000, 10000, 20000],
    "days_until_anniversary": [*range(0, 32), 100, 200, 300, 364, 365, 366],
}


@st.composite
def attribute_cond(draw: st.DrawFn, env: Env) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(env.samples)))
    info = env.catalog.attributes[name]
    pool = env.samples[name]
    kind = info.kind
    if kind in ("date", "timestamp") and draw(st.integers(0, 2)) == 0:
        fn = draw(st.sampled_from(sorted(FN_POOLS)))
        d = draw(_number_cond(FN_POOLS[fn]))
        return {"attribute": name, "fn": fn, **d}
    if kind == "string":
        d = draw(_string_cond(info, pool))
    elif kind == "number":
        d = draw(_number_cond(pool))
    elif kind == "boolean":
        op = draw(st.sampled_from(["eq", "ne", "exists", "not_exists"]))
        d = {"op": op}
        if op in ("eq", "ne"):
            d["value"] = draw(st.booleans())
    else:
        d = draw(_date_cond(kind, pool))
    return {"attribute": name, **d}


@st.composite
def event_filter(draw: st.DrawFn, env: Env) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(f for f in env.event_samples if f not in NO_FILTER)))
    info = env.catalog.events[name]
    pool = env.event_samples[name]
    d = draw(_number_cond(pool) if info.kind == "number" else _string_cond(info, pool))
    return {"field": name, **d}


_duration_units = st.sampled_from(["d", "d", "d", "h", "w", "m"])


@st.composite
def duration(draw: st.DrawFn, max_days: int = 400) -> str:
    unit = draw(_duration_units)
    per_day = {"d": 1, "h": 24, "w": 1 / 7, "m": 1440}[unit]
    return f"{draw(st.integers(0, max(1, int(max_days * per_day))))}{unit}"


@st.composite
def window(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "within", "between", "since"]))
    if kind == "within":
        return {"within": draw(duration())}
    if kind == "between":
        near = draw(st.integers(0, 90))
        far = near + draw(st.integers(1, 400))
        near_s = f"{near}d" if draw(st.booleans()) else f"{near * 24}h"
        far_s = f"{far}d" if draw(st.booleans()) else f"{far * 24}h"
        return {"between": [far_s, near_s]}
    if kind == "since":
        day = dt.date(2025, 10, 20) + dt.timedelta(days=draw(st.integers(0, 420)))
        form = draw(st.integers(0, 3))
        if form == 0:
            return {"since": day}
        if form == 1:
            return {"since": day.isoformat()}
        if form == 2:
            return {"since": f"{day.isoformat()}T22:15:00+05:00"}
        return {"since": f"{day.isoformat()}T{draw(st.integers(0, 23)):02d}:30:00"}
    return {}


def _types(draw: st.DrawFn, env: Env) -> list[str]:
    known = list(env.catalog.event_types or ())
    return draw(st.lists(st.sampled_from(known), min_size=0, max_size=2, unique=True))


@st.composite
def step(draw: st.DrawFn, env: Env) -> dict[str, Any]:
    d: dict[str, Any] = {}
    types = _types(draw, env)
    if types:
        d["type"] = types[0] if len(types) == 1 else types
    where = draw(st.lists(event_filter(env), max_size=2))
    if where:
        d["where"] = where
    return d


@st.composite
def events_cond(draw: st.DrawFn, env: Env) -> dict[str, Any]:
    e = draw(step(env))
    e.update(draw(window()))
    agg = draw(
        st.sampled_from(["at_least", "at_most", "exactly", "absent", "sum", "avg", "min", "max"])
    )
    if agg in ("at_least", "at_most", "exactly"):
        e[agg] = draw(st.integers(0, 5))
    elif agg == "absent":
        e["absent"] = True
    else:
        fld = draw(st.sampled_from(NUMERIC_AGG_FIELDS))
        pool = env.sums[fld] if agg == "sum" else env.event_samples[fld]
        cmp = draw(
            _number_cond([*pool, 0] if agg == "sum" else pool, ops=_AGG_OPS),
        )
        e[agg] = {"field": fld, **cmp}
    return {"events": e}


_AGG_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")


@st.composite
def sequence_cond(draw: st.DrawFn, env: Env) -> dict[str, Any]:
    s: dict[str, Any] = {
        "first": draw(step(env)),
        "then": draw(step(env)),
        "then_within": draw(duration(max_days=30)),
    }
    if draw(st.booleans()):
        s["then_absent"] = True
    s.update(draw(window()))
    return {"sequence": s}


@st.composite
def ref_cond(draw: st.DrawFn, env: Env, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    key = draw(st.sampled_from(["in_segment", "not_in_segment"]))
    return {key: draw(st.sampled_from([*extra, *extra, *sorted(env.stored)]))}


def leaf(env: Env, refs: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        attribute_cond(env),
        attribute_cond(env),
        events_cond(env),
        events_cond(env),
        sequence_cond(env),
        ref_cond(env, refs),
    )


def rule(env: Env, depth: int = 3, refs: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """Nested all / any / not over leaves, ``depth`` levels at most (``refs``: unsaved
    definitions that in_segment may also name)."""
    if depth == 0:
        return leaf(env, refs)
    inner = rule(env, depth - 1, refs)
    return st.one_of(
        leaf(env, refs),
        leaf(env, refs),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        inner.map(lambda x: {"not": x}),
    )


# ---------------------------------------------------------------------------- tests
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_engine_matches_oracle(env: Env, data: st.DataObject) -> None:
    r = data.draw(rule(env), label="rule")
    as_of = data.draw(st.sampled_from(AS_OFS), label="as_of")
    defn = parse({"name": CASE, "rule": r})
    env.ws.segments.validate(defn, others=env.stored)
    check_same(env, defn, as_of)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_one_query_for_many_segments_matches_oracle(env: Env, data: st.DataObject) -> None:
    """The batch job's form: one query, one flag column per segment, segments referring to
    each other (the shared event scan must keep each condition's flags apart)."""
    defs: dict[str, SegmentDefinition] = {}
    for i in range(data.draw(st.integers(2, 4), label="segments")):
        name = f"prop_m{i}"
        r = data.draw(rule(env, 2, tuple(defs)), label=name)
        defs[name] = parse({"name": name, "rule": r})
    as_of = data.draw(st.sampled_from(AS_OFS), label="as_of")
    env.ws.segments.validate(list(defs.values()), others=env.stored)
    known = {**env.stored, **defs}
    extra = data.draw(st.lists(st.sampled_from(sorted(env.stored)), max_size=3, unique=True))
    order = dependency_order(known, [*defs, *extra])
    env.ws.segments.count(next(iter(defs.values())), as_of)  # prepares the in-memory tables
    c = Compiler(
        known,
        as_of,
        env.catalog,
        events_table="__seg_events_mem",
        profiles_table="__seg_profiles_mem",
        dialect=env.ws.engine.dialect,
    )
    t = env.ws.engine.query(c.sql(c.query(order))).to_pandas()
    want = reference.evaluate(known, order, env.profiles, env.events, as_of)
    for i, name in enumerate(order):
        flags = t[f"s{i}"].fillna(False).astype(bool)
        got = set(t.loc[flags.to_numpy(), "profile_id"].astype(int))
        if got != want[name]:
            text = "\n".join(known[n].to_yaml() for n in order)
            pytest.fail(
                f"segment {name} at {as_of.isoformat()}: only in engine "
                f"{sorted(got - want[name])[:8]}, only in oracle {sorted(want[name] - got)[:8]}"
                f"\n{text}",
                pytrace=False,
            )


@pytest.mark.parametrize("name", [d.name for d in load_folder(SEGMENTS_DIR)])
def test_shipped_segments_match_oracle(env: Env, name: str) -> None:
    defn = env.stored[name]
    for as_of in (AS_OF, AS_OFS[2]):
        check_same(env, defn, as_of)


def test_shipped_segments_are_not_all_empty(env: Env) -> None:
    sizes = reference.evaluate(env.stored, sorted(env.stored), env.profiles, env.events, AS_OF)
    assert sum(1 for v in sizes.values() if v) >= len(sizes) // 2


@pytest.mark.parametrize(
    "as_of",
    [
        dt.datetime(2027, 2, 27, 12, tzinfo=dt.UTC),
        dt.datetime(2027, 2, 28, tzinfo=dt.UTC),
        dt.datetime(2027, 3, 1, 23, 59, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 28, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 29, 6, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    ],
)
@pytest.mark.parametrize("attribute", ["birth_date", "first_seen", "enrolled_at"])
def test_date_functions_around_leap_days(env: Env, attribute: str, as_of: dt.datetime) -> None:
    rules = [
        {"attribute": attribute, "fn": "days_until_anniversary", "op": "lte", "value": 3},
        {"attribute": attribute, "fn": "days_until_anniversary", "op": "eq", "value": 0},
        {"attribute": attribute, "fn": "days_until_anniversary", "op": "gte", "value": 362},
        {"attribute": attribute, "fn": "age", "op": "between", "value": [2, 5]},
        {"attribute": attribute, "fn": "days_since", "op": "lt", "value": 400},
    ]
    for r in rules:
        check_same(env, parse({"name": CASE, "rule": r}), as_of)


def test_first_seen_has_a_leap_day(env: Env) -> None:
    """The leap-day tests above mean something only if some date is a February 29."""
    d = pd.to_datetime(env.profiles["first_seen"], utc=True)
    assert ((d.dt.month == 2) & (d.dt.day == 29)).any()


ALL_EDGE = {"X1", "X2", "X3", "X4", "X5", "X6", "X7", "C1", "C2", "C3", "C4", "C5"}
EDGE_EXPECTED: list[tuple[dict[str, Any], dt.datetime, set[str]]] = [
    # (rule, as_of, the hand-made profiles that are members)
    ({"events": {"type": "add_to_cart", "within": "1d", "at_least": 1}}, AS_OF, {"X6"}),
    ({"events": {"type": "page_view", "within": "30d", "at_least": 1}}, AS_OF, {"X1", "X7"}),
    (
        {"events": {"type": "page_view", "since": "2026-11-01", "at_least": 1}},
        AS_OF,
        {"X1", "X3", "X7"},
    ),
    (
        {"events": {"type": "page_view", "between": ["30d", "2d"], "at_least": 1}},
        AS_OF,
        {"X1", "X7"},
    ),
    ({"events": {"type": "purchase", "within": "1d", "at_least": 1}}, AS_OF, {"X2", "X5"}),
    (
        {"events": {"type": "purchase", "within": "1d", "at_least": 1}},
        AS_OF - dt.timedelta(microseconds=1),
        {"X5"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1h",
            }
        },
        AS_OF,
        {"X1"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
            }
        },
        AS_OF,
        {"X1", "X2"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
            }
        },
        AS_OF - dt.timedelta(microseconds=1),
        {"X1"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
                "then_absent": True,
            }
        },
        AS_OF,
        {"X4", "X6"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "3d",
                "then_absent": True,
                "within": "1d",
            }
        },
        AS_OF,
        {"X6"},
    ),
    (
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "page_view"},
                "then_within": "1d",
            }
        },
        AS_OF,
        set(),
    ),
    (
        {"events": {"type": "purchase", "sum": {"field": "amount", "op": "eq", "value": 30.3}}},
        AS_OF,
        {"X5"},
    ),
    (
        {"events": {"type": "purchase", "avg": {"field": "amount", "op": "eq", "value": 10.1}}},
        AS_OF,
        {"X5"},
    ),
    (
        {
            "events": {
                "type": "purchase",
                "where": [{"field": "amount", "op": "not_exists"}],
                "at_least": 1,
            }
        },
        AS_OF,
        {"X3"},
    ),
    (
        {
            "events": {
                "type": "purchase",
                "where": [{"field": "amount", "op": "eq", "value": 99.99}],
                "at_least": 1,
            }
        },
        AS_OF,
        set(),
    ),
    (
        {"events": {"type": "purchase", "min": {"field": "amount", "op": "gte", "value": 0}}},
        AS_OF,
        {"X1", "X2", "X4", "X5"},
    ),
    (
        {
            "not": {
                "events": {
                    "type": "purchase",
                    "max": {"field": "amount", "op": "lt", "value": 1000},
                }
            }
        },
        AS_OF,
        {"X3", "X6", "X7", "C1", "C2", "C3", "C4", "C5"},
    ),
    (
        # a sum over events without the field is 0, like a sum over no events
        {"events": {"type": "purchase", "sum": {"field": "amount", "op": "eq", "value": 0}}},
        AS_OF,
        {"X3", "X6", "X7", "C1", "C2", "C3", "C4", "C5"},
    ),
    ({"attribute": "birth_date", "fn": "age", "op": "eq", "value": 36}, AS_OF, {"C3"}),
    ({"attribute": "birth_date", "fn": "age", "op": "eq", "value": 35}, AS_OF, {"C4"}),
    ({"attribute": "birth_date", "fn": "age", "op": "lt", "value": 0}, AS_OF, {"C5"}),
    ({"attribute": "birth_date", "fn": "days_since", "op": "eq", "value": -1}, AS_OF, {"C5"}),
    (
        {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "lte", "value": 1},
        AS_OF,
        {"C3", "C4", "C5"},
    ),
    (
        {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "eq", "value": 89},
        AS_OF,
        {"C1", "C2"},  # 2027-02-28
    ),
    (
        {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "eq", "value": 0},
        dt.datetime(2027, 2, 28, 23, tzinfo=dt.UTC),
        {"C1", "C2"},
    ),
    (
        {"attribute": "birth_date", "fn": "days_until_anniversary", "op": "eq", "value": 1},
        dt.datetime(2028, 2, 28, tzinfo=dt.UTC),
        {"C1", "C2"},
    ),
    (
        {"attribute": "birth_date", "fn": "age", "op": "eq", "value": 27},
        dt.datetime(2028, 2, 28, tzinfo=dt.UTC),
        {"C1"},  # 28 only on the 29th
    ),
    ({"attribute": "birth_date", "op": "eq", "value": "2000-02-29"}, AS_OF, {"C1"}),
    ({"attribute": "birth_date", "op": "gte", "value": "in 1d"}, AS_OF, {"C5"}),
    ({"attribute": "birth_date", "op": "gt", "value": "0d ago"}, AS_OF, {"C5"}),
    ({"attribute": "city", "op": "contains", "value": "_"}, AS_OF, {"C1"}),
    ({"attribute": "city", "op": "contains", "value": "%"}, AS_OF, {"C1"}),
    (
        {"attribute": "city", "op": "ends_with", "value": "b%c", "case_insensitive": True},
        AS_OF,
        {"C1"},
    ),
    ({"attribute": "city", "op": "eq", "value": "new york"}, AS_OF, {"C4"}),
    (
        {"attribute": "city", "op": "eq", "value": "NEW YORK", "case_insensitive": True},
        AS_OF,
        {"C3", "C4"},
    ),
    ({"attribute": "last_name", "op": "eq", "value": "O'Neil\\x"}, AS_OF, {"C1"}),
    ({"attribute": "last_name", "op": "starts_with", "value": "O'Neil\\"}, AS_OF, {"C1"}),
    ({"attribute": "tier", "op": "ne", "value": "gold"}, AS_OF, set()),
    ({"not": {"attribute": "tier", "op": "eq", "value": "gold"}}, AS_OF, ALL_EDGE),
]


@pytest.mark.parametrize(("rule", "as_of", "expected"), EDGE_EXPECTED)
def test_edge_cases(env: Env, rule: dict[str, Any], as_of: dt.datetime, expected: set[str]) -> None:
    """Boundaries checked by hand: the oracle must give the expected hand-made members,
    and the engine must agree with the oracle on every profile."""
    defn = parse({"name": CASE, "rule": rule})
    env.ws.segments.validate(defn, others=env.stored)
    known = {**env.stored, CASE: defn}
    got = reference.evaluate(known, [CASE], env.profiles, env.events, as_of)[CASE]
    by_id = {v: k for k, v in env.edge.items()}
    assert {by_id[i] for i in got if i in by_id} == expected, defn.to_yaml()
    check_same(env, defn, as_of)


def test_batch_run_matches_oracle(env: Env) -> None:
    """``ws.segments.run`` (the batch job, every stored segment in one query) leaves the
    oracle's members, at two successive times."""
    for as_of in (AS_OFS[3], AS_OF):
        env.ws.segments.run(as_of)
        want = reference.evaluate(env.stored, sorted(env.stored), env.profiles, env.events, as_of)
        for name in sorted(env.stored):
            got = set(env.ws.segments.members(name)["profile_id"].astype(int))
            assert got == want[name], (
                f"{name} at {as_of.isoformat()}: only in engine {sorted(got - want[name])[:8]}, "
                f"only in oracle {sorted(want[name] - got)[:8]}"
            )
