"""Identity graph: clustering guardrails, normalization before linking, traps, stable ids,
incremental builds, lookup, explain, and quality against the generator's ground truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench import Workspace
from workbench.errors import InputError, NotFoundError
from workbench.identity.cluster import ClusterInput, cluster

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def ts(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat()


# ---------------------------------------------------------------------- the algorithm
def _inp(ns, links, seen=None, unique=(True, False), cap=50):  # type: ignore[no-untyped-def]
    a = np.array([x for x, _ in links], dtype=np.int64)
    b = np.array([y for _, y in links], dtype=np.int64)
    return ClusterInput(
        n=len(ns),
        ns=np.array(ns, dtype=np.int32),
        last_seen=np.arange(len(ns), dtype=np.int64),
        a=a,
        b=b,
        link_seen=np.array(seen if seen is not None else range(len(links)), dtype=np.int64),
        ns_priority=np.array([100, 20], dtype=np.int64),  # 0 = crm_id, 1 = cookie
        ns_unique=np.array(unique, dtype=bool),
        ns_kind_rank=np.array([3, 0], dtype=np.int64),
        cap=cap,
    )


def test_shared_cookie_goes_to_the_newest_login_and_never_fuses() -> None:
    # identities: 0 = C1, 1 = C2 (crm), 2 = E (shared cookie); C2 logged in more recently
    res = cluster(
        _inp([0, 0, 1], [(0, 2), (1, 2)], seen=[10, 20]), ["crm_id:C1", "crm_id:C2", "ecid:E"]
    )
    assert res.labels[0] != res.labels[1]
    assert res.labels[2] == res.labels[1]
    assert list(res.link_status) == [1, 0]
    assert "crm_id:C1" in res.cut_reason[0] and "crm_id:C2" in res.cut_reason[0]
    assert res.conflicting_components == 1


def test_without_the_unique_rule_the_family_is_fused() -> None:
    res = cluster(_inp([0, 0, 1], [(0, 2), (1, 2)], unique=(False, False)))
    assert len(set(res.labels.tolist())) == 1  # the guardrail is what keeps them apart
    assert res.links_cut == 0


def test_cap_drops_oldest_cookies_first() -> None:
    ns = [0] + [1] * 10  # one person, ten cookies (cookie k last seen at time k+1)
    res = cluster(_inp(ns, [(0, k) for k in range(1, 11)], cap=5))
    assert res.clusters_over_cap == 1
    assert sorted(res.dropped.tolist()) == [1, 2, 3, 4, 5, 6]  # the six oldest cookies
    kept = [i for i in range(11) if res.labels[i] == res.labels[0]]
    assert kept == [0, 7, 8, 9, 10]


def test_clustering_is_deterministic_under_permutation() -> None:
    rng = np.random.default_rng(1)
    n = 400
    ns = rng.integers(0, 2, n).tolist()
    links = [(int(x), int(y)) for x, y in rng.integers(0, n, (600, 2)) if x != y]
    seen = rng.integers(0, 1000, len(links)).tolist()
    r1 = cluster(_inp(ns, links, seen))
    perm = rng.permutation(len(links))
    r2 = cluster(_inp(ns, [links[i] for i in perm], [seen[i] for i in perm]))

    def part(labels):  # type: ignore[no-untyped-def]
        groups: dict[int, list[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            groups.setdefault(lab, []).append(i)
        return sorted(groups.values())

    assert part(r1.labels) == part(r2.labels)
    # and no cluster ever holds two crm ids
    for g in part(r1.labels):
        assert sum(1 for i in g if ns[i] == 0) <= 1


# ---------------------------------------------------------------------- through a workspace
CRM_COLS = [
    "crm_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "city",
    "country",
    "postal_code",
    "loyalty_id",
    "consent_email",
    "consent_sms",
    "consent_ads",
    "updated_at",
]


def crm(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c, "") for c in CRM_COLS} for r in rows])


def web(rows: list[tuple[str, str, str | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "event_id": f"E{i}",
                "timestamp": ts(h),
                "event_type": et,
                "ecid": ecid,
                "crm_id": cid,
                "page": "/",
            }
            for i, (et, ecid, cid, h) in enumerate(rows)
        ]
    )


def pos(rows: list[dict[str, str]]) -> pd.DataFrame:
    cols = ["order_id", "timestamp", "loyalty_id", "email", "phone", "store_id", "total", "items"]
    return pd.DataFrame(
        [
            {c: r.get(c, "") for c in cols} | {"store_id": "S001", "total": "10.00", "items": "1"}
            for r in rows
        ]
    )


@pytest.fixture
def family(ws: Workspace) -> Workspace:
    ingest_family(ws)
    ws.identity.build()
    return ws


def ingest_family(ws: Workspace) -> None:
    """The family's CRM records, web sessions and store orders (the traps' data)."""
    ws.ingest(
        "crm_customers",
        crm(
            [
                {
                    "crm_id": "C1",
                    "email": " Ana.Lima@Example.com ",
                    "phone": "(212) 555-0142",
                    "loyalty_id": "L1",
                    "first_name": "Ana",
                    "updated_at": ts(0),
                },
                {
                    "crm_id": "C2",
                    "email": "bob.lima@example.com",
                    "phone": "212.555.0199",
                    "first_name": "Bob",
                    "updated_at": ts(0),
                },
                {"crm_id": "C3", "email": "test@test.com", "first_name": "Cy", "updated_at": ts(0)},
                {"crm_id": "C4", "email": "TEST@test.com", "first_name": "Di", "updated_at": ts(0)},
                {
                    "crm_id": "C5",
                    "email": "the.limas@example.net",
                    "first_name": "Ed",
                    "updated_at": ts(1),
                },
                {
                    "crm_id": "C6",
                    "email": "the.limas@example.net",
                    "first_name": "Flo",
                    "updated_at": ts(2),
                },
            ]
        ),
    )
    ws.ingest(
        "web_events",
        web(
            [
                ("login", "SHARED", "C1", 5),
                ("page_view", "SHARED", None, 6),
                ("login", "SHARED", "C2", 9),  # Bob logged in last on the family laptop
                ("page_view", "ANON", None, 3),
                ("login", "PHONE1", "C1", 4),
            ]
        ),
    )
    ws.ingest(
        "pos_orders",
        pos(
            [
                {"order_id": "O1", "timestamp": ts(7), "email": "ANA.LIMA@example.com "},
                {"order_id": "O2", "timestamp": ts(8), "phone": "+1 212 555 0142"},
                {"order_id": "O3", "timestamp": ts(8)},
            ]
        ),
    )


def test_normalization_before_linking(family: Workspace) -> None:
    pid = family.identity.lookup("crm_id:C1")
    for ident in [
        "email:ana.lima@example.com",
        "email:  ANA.Lima@Example.COM",
        "phone:2125550142",
        "phone:+1 (212) 555-0142",
        "loyalty_id:L1",
        "ecid:PHONE1",
    ]:
        assert family.identity.lookup(ident) == pid, ident
    members = {(r["namespace"], r["value"]) for r in family.identity.members(pid).to_pylist()}
    assert ("email", "ana.lima@example.com") in members and ("phone", "+12125550142") in members


def test_shared_device_does_not_fuse_and_explain_says_why(family: Workspace) -> None:
    c1, c2 = family.identity.lookup("crm_id:C1"), family.identity.lookup("crm_id:C2")
    assert c1 != c2
    assert family.identity.lookup("ecid:SHARED") == c2  # the last authenticated person
    e = family.identity.explain("crm_id:C1", "crm_id:C2")
    assert e["together"] is False
    assert any(r["status"] == "cut_unique_namespace" for r in e["path"])
    assert "crm_id:C1" in e["why"] and "crm_id:C2" in e["why"]
    same = family.identity.explain("crm_id:C1", "phone:212-555-0142")
    assert same["together"] is True and len(same["path"]) == 1


def test_shared_email_does_not_fuse(family: Workspace) -> None:
    assert family.identity.lookup("crm_id:C5") != family.identity.lookup("crm_id:C6")
    assert family.identity.lookup("email:the.limas@example.net") == family.identity.lookup(
        "crm_id:C6"
    )  # newer record


def test_blocked_values_never_become_identities(family: Workspace) -> None:
    assert family.identity.lookup("crm_id:C3") != family.identity.lookup("crm_id:C4")
    assert family.identity.lookup("email:test@test.com") is None
    ids = family.identity.identities()
    assert "test@test.com" not in ids.column("value").to_pylist()


def test_custom_blocked_value_from_settings(ws: Workspace) -> None:
    ws.settings.blocked_identities = ["email:shared@corp.com"]
    ws.ingest(
        "crm_customers",
        crm(
            [
                {"crm_id": "X1", "email": "shared@corp.com", "updated_at": ts(0)},
                {"crm_id": "X2", "email": "Shared@Corp.com", "updated_at": ts(0)},
            ]
        ),
    )
    ws.identity.build()
    assert ws.identity.lookup("email:shared@corp.com") is None


def test_lookup_errors(family: Workspace) -> None:
    with pytest.raises(InputError, match="namespace:value"):
        family.identity.lookup("ana@example.com")
    with pytest.raises(NotFoundError, match="unknown namespace 'mail'"):
        family.identity.lookup("mail:ana@example.com")
    with pytest.raises(InputError, match="not a valid email"):
        family.identity.lookup("email:not-an-email")
    assert family.identity.lookup("crm_id:NOBODY") is None


def test_build_stats(family: Workspace) -> None:
    last = family.catalog.last_build("identity")
    assert (
        last is not None
        and last.stats["links_cut"] >= 2
        and last.stats["conflicting_components"] >= 2
    )


def test_incremental_build_keeps_ids_and_merges_with_the_older_surviving(family: Workspace) -> None:
    before = {r["value"]: r["profile_id"] for r in family.identity.identities().to_pylist()}
    anon = before["ANON"]
    c1 = before["C1"]
    # Ana logs in on the anonymous cookie: the two profiles merge, the older id survives
    family.ingest("web_events", web([("login", "ANON", "C1", 30)]).assign(event_id="E-new"))
    st = family.identity.build()
    assert st.mode == "incremental" and st.rows_scanned == 1
    after = {r["value"]: r["profile_id"] for r in family.identity.identities().to_pylist()}
    assert after["ANON"] == after["C1"] == min(anon, c1)
    assert st.merged_profiles == 1
    m = family.identity.merges().to_pylist()
    assert {(r["retired_profile_id"], r["profile_id"]) for r in m} == {
        (max(anon, c1), min(anon, c1))
    }
    unaffected = [v for v in before if v not in ("ANON", "C1") and before[v] not in (anon, c1)]
    assert all(after[v] == before[v] for v in unaffected)
    # a full rebuild converges to the same assignment
    family.identity.build(full=True)
    again = {r["value"]: r["profile_id"] for r in family.identity.identities().to_pylist()}
    assert again == after


def test_update_with_nothing_new_keeps_the_graph(family: Workspace) -> None:
    """An incremental build with no new rows and the same rules changes nothing (and
    rewrites nothing); new rows, or a changed rule, make it rebuild."""
    uri = family.lake.path("identity", "identities")
    version = family.lake.version(uri)
    first = family.catalog.last_build("identity")
    assert first is not None
    for _ in range(2):
        st = family.identity.build()
        assert st.mode == "incremental" and "unchanged" in st.timings and st.rows_scanned == 0
        assert (st.identities, st.links, st.profiles) == (
            first.stats["identities"],
            first.stats["links"],
            first.stats["profiles"],
        )
        assert family.lake.version(uri) == version
    family.settings.identity_cap = 3  # a rule changed: cluster again
    st = family.identity.build()
    assert "unchanged" not in st.timings and family.lake.version(uri) == version + 1
    family.ingest("web_events", web([("page_view", "NEW", None, 40)]).assign(event_id="E-n"))
    st = family.identity.build()
    assert "unchanged" not in st.timings and st.rows_scanned == 1
    assert family.identity.lookup("ecid:NEW") is not None


def test_split_gives_the_smaller_part_a_new_id(ws: Workspace) -> None:
    ws.ingest(
        "pos_orders",
        pos([{"order_id": "P1", "timestamp": ts(1), "loyalty_id": "L7", "email": "x@example.com"}]),
    )
    ws.identity.build()
    old = ws.identity.lookup("loyalty_id:L7")
    assert ws.identity.lookup("email:x@example.com") == old
    # a newer order ties the same email to another card: the email follows the newer evidence
    ws.ingest(
        "pos_orders",
        pos([{"order_id": "P2", "timestamp": ts(5), "loyalty_id": "L8", "email": "x@example.com"}]),
    )
    st = ws.identity.build()
    l7, l8 = ws.identity.lookup("loyalty_id:L7"), ws.identity.lookup("loyalty_id:L8")
    assert l7 != l8 and ws.identity.lookup("email:x@example.com") == l8
    assert old in (l7, l8)
    assert st.split_profiles + st.new_profiles >= 1


def test_rebuild_with_as_many_but_other_identities_keeps_ids(family: Workspace) -> None:
    """A rebuild reads the previous ids by position only when the stored table holds the
    same identities in the same order (its digest): one identity fewer and one more is
    the same count, not the same table."""
    before = {
        (r["namespace"], r["value"]): r["profile_id"]
        for r in family.identity.identities().to_pylist()
    }
    family.settings.blocked_identities = ["email:the.limas@example.net"]
    family.ingest(
        "crm_customers", crm([{"crm_id": "C9", "first_name": "Gus", "updated_at": ts(3)}])
    )
    st = family.identity.build(full=True)
    after = {
        (r["namespace"], r["value"]): r["profile_id"]
        for r in family.identity.identities().to_pylist()
    }
    assert len(after) == len(before) == st.identities
    assert set(before) - set(after) == {("email", "the.limas@example.net")}
    assert set(after) - set(before) == {("crm_id", "C9")}
    assert all(after[k] == before[k] for k in after if k in before)
    assert after[("crm_id", "C9")] > max(before.values())
    # and a rebuild of the same identities (the positional read) changes nothing
    family.identity.build(full=True)
    assert {
        (r["namespace"], r["value"]): r["profile_id"]
        for r in family.identity.identities().to_pylist()
    } == after


# ---------------------------------------------------------------------- key collisions
def _force_collision(
    monkeypatch: pytest.MonkeyPatch, a: tuple[str, str], b: tuple[str, str]
) -> None:
    """Give identity ``b`` the 64-bit key of identity ``a`` wherever the build computes a
    hash key (a forced collision); exact string keys stay as they are."""
    from workbench.identity import graph
    from workbench.lake.sql import lit

    real = graph._key_sql

    def key(ns: str, value: str, exact: bool) -> str:
        if exact:
            return real(ns, value, exact)
        hit = f"({ns} = {lit(b[0])} AND {value} = {lit(b[1])})"
        return (
            f"hash(CASE WHEN {hit} THEN {lit(a[0])} ELSE {ns} END, "
            f"CASE WHEN {hit} THEN {lit(a[1])} ELSE {value} END)"
        )

    monkeypatch.setattr(graph, "_key_sql", key)


def _graph_state(ws: Workspace) -> dict[str, object]:
    """Everything a build leaves behind that must not depend on its keys."""
    links = ws.identity.links().to_pylist()
    merges = [
        {k: v for k, v in r.items() if k != "merged_at"} for r in ws.identity.merges().to_pylist()
    ]
    last = ws.catalog.last_build("identity")
    assert last is not None
    stats = {k: v for k, v in last.stats.items() if k not in ("seconds", "timings")}
    return {
        "identities": ws.identity.identities().to_pylist(),  # (namespace, value) order
        "links": sorted(links, key=lambda r: (r["a_ns"], r["a_value"], r["b_ns"], r["b_value"])),
        "merges": sorted(merges, key=lambda r: r["retired_profile_id"]),
        "stats": stats,
    }


def _profile_state(ws: Workspace) -> dict[str, object]:
    ws.profiles.build()
    return {
        "profiles": ws.profiles.table().to_table().sort_by("profile_id").to_pylist(),
        "events": ws.profiles.events_table().to_table().to_pylist(),
    }


# a store order whose loyalty card number is also a crm_id, with a new email
EXTRA_ORDER = {
    "order_id": "O4",
    "timestamp": ts(12),
    "loyalty_id": "C2",
    "email": "new.buyer@example.com",
}


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("crm_id", "C1"), ("email", "bob.lima@example.com")),  # two people, one key
        (("crm_id", "C2"), ("loyalty_id", "C2")),  # one value in two namespaces
        (("crm_id", "C1"), ("email", "new.buyer@example.com")),  # a stored and a new identity
    ],
    ids=["two-people", "same-value", "stored-vs-new"],
)
def test_key_collision_falls_back_to_exact_keys(  # type: ignore[no-untyped-def]
    ws: Workspace, tmp_path, monkeypatch, caplog, a, b, incremental
) -> None:
    from workbench.identity import graph
    from workbench.lake.sql import lit
    from workbench.sample.brand import register

    ref = Workspace.create(tmp_path / "ref")
    register(ref)
    states = []
    for w, collide in ((ref, False), (ws, True)):
        if collide:
            _force_collision(monkeypatch, a, b)
            k = [graph._key_sql(lit(x), lit(y), False) for x, y in (a, b)]
            assert w.engine.scalar(f"SELECT {k[0]} = {k[1]}")  # the keys do collide
        ingest_family(w)
        if incremental:
            w.identity.build()
        w.ingest("pos_orders", pos([EXTRA_ORDER]))
        caplog.clear()
        st = w.identity.build()
        assert st.mode == ("incremental" if incremental else "full")
        assert ("identity key collision" in caplog.text) is collide
        states.append({**_graph_state(w), **_profile_state(w)})
    ref.close()
    got, want = states[1], states[0]
    for part in want:
        assert got[part] == want[part], part
    # and the colliding identities are still two identities, in their own right
    values = {(r["namespace"], r["value"]) for r in got["identities"]}  # type: ignore[attr-defined]
    assert a in values and b in values


@pytest.mark.slow
def test_quality_on_the_sample(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    from tests.conftest import sample_brand_workspace

    w, d = sample_brand_workspace(tmp_path, persons=10_000, seed=11)
    m = w.identity.evaluate(d / "truth")
    q = m["identities"]
    assert q["precision"] >= 0.99 and q["recall"] >= 0.99, q
    assert q["persons_fused"] == 0 and q["profiles_fused"] == 0
    assert q["profiles_fused_via"].get("ecid", 0) == 0
    assert m["rows"]["precision"] >= 0.99
    # the shared-device trap: no household's two customers end up in one profile
    persons = pq.read_table(d / "truth" / "persons.parquet").to_pandas().set_index("person_id")
    h = pq.read_table(d / "truth" / "households.parquet").to_pandas()
    checked = 0
    for r in h[h.trap == "shared_device"].itertuples():
        a = w.identity.lookup(f"crm_id:{persons.loc[r.person_id_a].crm_id}")
        b = w.identity.lookup(f"crm_id:{persons.loc[r.person_id_b].crm_id}")
        if a is not None and b is not None:
            checked += 1
            assert a != b
    assert checked > 20
    w.close()


def test_cap_through_the_workspace(ws: Workspace) -> None:
    ws.settings.identity_cap = 10
    # one customer seen on 14 cookies: the 5 oldest go (cap 10 = crm_id + 9 cookies)
    ws.ingest("web_events", web([("login", f"K{k:02d}", "C9", float(k)) for k in range(14)]))
    st = ws.identity.build()
    assert st.clusters_over_cap == 1 and st.identities_dropped_by_cap == 5
    pid = ws.identity.lookup("crm_id:C9")
    members = ws.identity.members(pid).to_pylist()
    assert len(members) == 10
    assert {m["value"] for m in members if m["namespace"] == "ecid"} == {
        f"K{k:02d}" for k in range(5, 14)
    }
    dropped = [r for r in ws.identity.identities().to_pylist() if r["status"] == "dropped_by_cap"]
    assert sorted(r["value"] for r in dropped) == [f"K{k:02d}" for k in range(5)]
    assert all(r["profile_id"] != pid for r in dropped)
    e = ws.identity.explain("ecid:K00")
    assert any(r["status"] == "cut_cap" and "cap of 10" in (r["reason"] or "") for r in e["links"])
