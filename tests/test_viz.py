"""workbench.viz (the numbers and figures of the analyst notebooks) and the profile explorer,
on the hand-made brand of tests/test_segments.py.

The brand (``_data()``) plus one web event W11 (2026-11-01, cookie E1 logged in as C2: a
shared family cookie) and one rejected CRM batch. Worked out by hand:

* identities: C1 {crm C1, ana@x.com, +12025550101, L1, E1} (5); C2 {C2, bo@x.com, L2, E2} (4);
  C3 {C3, cy@x.com, +12025550103, E3} (4); C4 {C4, +12025550104, L4} (3); C5 {C5, ed@x.com, E5}
  (3); E9 alone (1): 20 identities, 6 profiles.
* links (each row's identities to its highest-priority one): crm–email 4, crm–phone 3,
  crm–loyalty 3, crm–ecid 5 (E1–C1, E2–C2, E3–C3, E5–C5, E1–C2), loyalty–email 1 (L1–ana);
  E1–C2 is cut (two crm ids; E1–C1 has the newer evidence): 15 kept + 1 cut.
* segments run at 2026-12-01 then 2026-12-02T12:00: gold {C1}; loyal (has a tier) {C1, C2, C4};
  email_ok (consent_email) {C1, C3, C5}; ny (city contains "york", any case) {C1, C3};
  active_1d (a page view within 1 day): {C1, C3} on the 1st (W1, W5), {C2} on the 2nd (W10).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import pytest

from tests.test_segments import AS_OF, _data
from workbench.errors import BatchFailedError, NotFoundError
from workbench.segments import attr, events, segment
from workbench.viz import data, figures

AS_OF_2 = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
FOUR = ["gold", "loyal", "email_ok", "ny"]


@pytest.fixture(scope="module")
def brand(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The hand-made brand with segments run twice: (workspace, {label: profile_id})."""
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path_factory.mktemp("viz") / "ws")
    register(ws)
    frames = _data()
    w11 = {
        "event_id": "W11",
        "timestamp": pd.Timestamp("2026-11-01T10:00", tz="UTC"),
        "event_type": "page_view",
        "ecid": "E1",
        "crm_id": "C2",
        "page": "/",
    }
    frames["web_events"] = pd.concat([frames["web_events"], pd.DataFrame([w11])], ignore_index=True)
    for name, df in frames.items():
        assert ws.ingest(name, df).batch.rows_rejected == 0
    # a CRM batch whose rows are all rejected: 2 rows, 3 field errors, nothing committed
    bad = frames["crm_customers"].head(2).astype({"birth_date": "string"})
    bad["crm_id"] = ["C8", "C9"]
    bad["email"] = ["not-an-email", "also@bad"]
    bad["birth_date"] = ["not a date", "1990-01-01"]
    with pytest.raises(BatchFailedError):
        ws.ingest("crm_customers", bad)
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(segment("gold", attr("tier") == "gold"))
    ws.segments.add(segment("loyal", attr("tier").exists()))
    ws.segments.add(segment("email_ok", attr("consent_email") == True))  # noqa: E712
    ws.segments.add(
        {
            "name": "ny",
            "rule": {
                "attribute": "city",
                "op": "contains",
                "value": "york",
                "case_insensitive": True,
            },
        }
    )
    ws.segments.add(segment("active_1d", events("page_view").within("1d")))
    ws.segments.run(AS_OF)
    ws.segments.run(AS_OF_2)
    ids = {f"C{i}": ws.identity.lookup(f"crm_id:C{i}") for i in range(1, 6)}
    ids["E9"] = ws.identity.lookup("ecid:E9")
    assert len(set(ids.values())) == 6
    yield ws, ids
    ws.close()


def _rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


# ---------------------------------------------------------------------- datasets
def test_datasets_overview_counts_rows_and_quarantine(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    df = data.datasets_overview(ws)
    assert _rows(df, "dataset", "rows", "rejected_rows", "quarantine_errors") == [
        ("crm_customers", 5, 2, 3),
        ("email_engagement", 7, 0, 0),
        ("loyalty_members", 3, 0, 0),
        ("pos_orders", 5, 0, 0),
        ("web_events", 11, 0, 0),
    ]
    reasons = data.quarantine_reasons(ws)
    assert reasons["errors"].sum() == 3
    assert set(reasons["dataset"]) == {"crm_customers"}
    assert _rows(reasons, "dataset", "field", "reason", "errors", "rows") == [
        ("crm_customers", "email", "not a valid email address", 2, 2),
        ("crm_customers", "birth_date", "not a valid date (YYYY-MM-DD)", 1, 1),
    ]


def test_schema_fields_lists_identities_and_labels(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    f = data.schema_fields(ws, "crm_customer")
    row = f.set_index("field").loc["crm_id"]
    assert row["identity"] == "crm_id (primary)" and row["required"]
    assert set(data.schema_fields(ws)["schema"]) == {s.name for s in ws.schemas.list()}


# ---------------------------------------------------------------------- identity
def test_identity_stats(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    assert _rows(data.cluster_sizes(ws), "identities", "profiles") == [
        (1, 1),
        (3, 2),
        (4, 2),
        (5, 1),
    ]
    per_ns = data.identities_per_namespace(ws).set_index("namespace")
    assert per_ns.loc[
        ["crm_id", "loyalty_id", "email", "phone", "ecid"], "identities"
    ].tolist() == [
        5,
        3,
        4,
        3,
        5,
    ]
    assert per_ns.loc["email_sha256", "identities"] == 0  # registered, never seen
    links = data.links_by_status(ws)
    assert sorted(_rows(links, "status", "pair", "links")) == [
        ("cut_unique_namespace", "crm_id–ecid", 1),
        ("kept", "crm_id–ecid", 4),
        ("kept", "crm_id–email", 4),
        ("kept", "crm_id–loyalty_id", 3),
        ("kept", "crm_id–phone", 3),
        ("kept", "email–loyalty_id", 1),
    ]
    cut = data.cut_links(ws)
    assert _rows(cut, "a", "b", "status") == [("crm_id:C2", "ecid:E1", "cut_unique_namespace")]
    assert "crm_id:C1" in cut["reason"][0]
    stats = data.identity_build_stats(ws).set_index("metric")["value"]
    assert (stats["identities"], stats["links"], stats["profiles"], stats["links_cut"]) == (
        20,
        16,
        6,
        1,
    )


# ---------------------------------------------------------------------- one profile
def test_profile_graph_with_the_cut_link(brand) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    nodes, edges = data.profile_graph(ws, ids["C1"])
    assert _rows(nodes, "id", "in_profile") == [
        ("crm_id:C1", True),
        ("crm_id:C2", False),  # the far end of the cut link
        ("ecid:E1", True),
        ("email:ana@x.com", True),
        ("loyalty_id:L1", True),
        ("phone:+12025550101", True),
    ]
    assert sorted(_rows(edges, "source", "target", "status")) == [
        ("crm_id:C1", "ecid:E1", "kept"),
        ("crm_id:C1", "email:ana@x.com", "kept"),
        ("crm_id:C1", "loyalty_id:L1", "kept"),
        ("crm_id:C1", "phone:+12025550101", "kept"),
        ("crm_id:C2", "ecid:E1", "cut_unique_namespace"),
        ("email:ana@x.com", "loyalty_id:L1", "kept"),
    ]
    lone_nodes, lone_edges = data.profile_graph(ws, ids["E9"])
    assert lone_nodes["id"].tolist() == ["ecid:E9"] and lone_edges.empty


def test_profile_events_online_and_offline(brand) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    ev = data.profile_events(ws, ids["C1"])
    # web W1-W3, email x4 (online); store orders O1, O2 (offline)
    assert ev["channel"].value_counts().to_dict() == {"online": 7, "offline": 2}
    assert ev["timestamp"].is_monotonic_decreasing
    assert ev["event_type"].iloc[0] == "purchase" and ev["dataset"].iloc[0] == "web_events"
    assert len(data.profile_events(ws, ids["C1"], limit=3)) == 3
    assert "profile_id" not in ev.columns and "order_id" in ev.columns


def test_profile_memberships_and_attributes(brand) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    m = data.profile_memberships(ws, ids["C1"])
    assert _rows(m, "segment", "status") == [
        ("active_1d", "exited"),
        ("email_ok", "existing"),
        ("gold", "existing"),
        ("loyal", "existing"),
        ("ny", "existing"),
    ]
    assert (m["since"] == pd.Timestamp(AS_OF)).all()
    attrs = data.profile_attributes(ws.profiles.by_id(ids["C1"])).set_index("attribute")
    assert attrs.loc["tier"].tolist() == ["gold", "loyalty_members"]
    assert attrs.loc["city"].tolist() == ["New York", "crm_customers"]


# ---------------------------------------------------------------------- segments
def test_segment_sizes(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    s = data.segment_sizes(ws)
    assert _rows(s, "segment", "members", "realized", "existing", "exited") == [
        ("active_1d", 1, 1, 0, 2),
        ("email_ok", 3, 0, 3, 0),
        ("gold", 1, 0, 1, 0),
        ("loyal", 3, 0, 3, 0),
        ("ny", 2, 0, 2, 0),
    ]
    assert s.set_index("segment")["members"].to_dict() == {
        n: ws.segments.size(n) for n in s["segment"]
    }
    with pytest.raises(NotFoundError):
        data.segment_sizes(ws, ["no_such_segment"])


def test_overlap_matrix(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    m = data.overlap_matrix(ws, FOUR)
    assert list(m.index) == FOUR and list(m.columns) == FOUR
    assert m.to_numpy().tolist() == [
        [1, 1, 1, 1],
        [1, 3, 1, 1],
        [1, 1, 3, 2],
        [1, 1, 2, 2],
    ]
    # exited members are not members: active_1d (C2 now) shares nobody with ny (C1, C3)
    assert data.overlap_matrix(ws, ["active_1d", "ny"]).to_numpy().tolist() == [[1, 0], [0, 2]]


def test_intersections_exact(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    c = data.intersections(ws, FOUR)
    assert _rows(c, "segments", "degree", "profiles") == [
        (("loyal",), 1, 2),  # C2, C4
        (("email_ok",), 1, 1),  # C5
        (("email_ok", "ny"), 2, 1),  # C3
        (("gold", "loyal", "email_ok", "ny"), 4, 1),  # C1
    ]
    assert c["profiles"].sum() == 5  # every member once
    assert c.loc[2, ["gold", "loyal", "email_ok", "ny"]].tolist() == [False, False, True, True]


def test_size_history_entered_and_exited(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    h = data.size_history(ws, ["active_1d", "gold"])
    assert _rows(h, "segment", "run_id", "size", "realized", "existing", "exited") == [
        ("active_1d", 1, 2, 2, 0, 0),
        ("active_1d", 2, 1, 1, 0, 2),
        ("gold", 1, 1, 1, 0, 0),
        ("gold", 2, 1, 0, 1, 0),
    ]


def test_composition_by_attribute(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    c = data.composition(ws, ["loyal", "email_ok"], "tier")
    assert _rows(c, "segment", "value", "members") == [
        ("email_ok", "(missing)", 2),  # C3, C5 have no loyalty card
        ("email_ok", "gold", 1),
        ("loyal", "bronze", 1),
        ("loyal", "gold", 1),
        ("loyal", "platinum", 1),
    ]
    assert c.groupby("segment")["share"].sum().round(9).tolist() == [1.0, 1.0]
    # top=1 keeps the most frequent value apart ("New York" before "new york" by name)
    city = data.composition(ws, ["email_ok"], "city", top=1)
    assert sorted(_rows(city, "value", "members")) == [
        ("(missing)", 1),
        ("(other)", 1),
        ("New York", 1),
    ]
    with pytest.raises(NotFoundError):
        data.composition(ws, ["loyal"], "no_such_attribute")


def test_channel_mix(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    mix = data.channel_mix(ws, ["loyal", "email_ok"])
    got = {(r.segment, r.channels): r.members for r in mix.itertuples() if r.members}
    # loyal: C1 and C2 web + store, C4 store only; email_ok: C1, C3 both, C5 web + email only
    assert got == {
        ("loyal", "both"): 2,
        ("loyal", "offline only"): 1,
        ("email_ok", "both"): 2,
        ("email_ok", "online only"): 1,
    }
    # as of 2025-01-01 none of them had an event yet
    early = data.channel_mix(ws, ["loyal"], as_of="2025-01-01T00:00Z")
    assert early.set_index("channels")["members"].to_dict() == {
        "both": 0,
        "online only": 0,
        "offline only": 0,
        "no events": 3,
    }


def test_reachability(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    r = data.reachability(ws, FOUR)
    cols = (
        "segment",
        "members",
        "with_email",
        "with_phone",
        "with_email_or_phone",
        "with_hashed_identity",
        "consent_email",
        "consent_sms",
        "consent_ads",
    )
    assert _rows(r, *cols) == [
        ("gold", 1, 1, 1, 1, 0, 1, 1, 1),
        ("loyal", 3, 2, 2, 3, 0, 1, 2, 2),
        ("email_ok", 3, 3, 2, 3, 0, 3, 1, 2),
        ("ny", 2, 2, 2, 2, 0, 2, 1, 1),
    ]


def test_destination_reach_uses_the_activation_preview(brand, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    ws.activation.add(
        {
            "name": "esp_viz",
            "type": "email",
            "connection": {"url": str(tmp_path / "esp")},
            "segments": ["loyal"],
        }
    )
    try:
        d = data.destination_reach(ws, AS_OF_2, ["esp_viz"])
    finally:
        ws.activation.remove("esp_viz")
    # loyal = C1 (email, consent), C2 (email, no consent), C4 (no email)
    assert _rows(
        d,
        "destination",
        "segment",
        "eligible",
        "exported",
        "skipped_no_identity",
        "skipped_no_consent",
    ) == [("esp_viz", "loyal", 3, 1, 1, 1)]
    assert not list(tmp_path.glob("esp/*"))  # a preview writes nothing


# ---------------------------------------------------------------------- figures
def _traces(fig: go.Figure) -> list[tuple[str, str | None]]:
    assert isinstance(fig, go.Figure)
    fig.to_json()  # serializable as a notebook / dashboard would ship it
    return [(t.type, t.name) for t in fig.data]


def test_figures_build_with_their_traces(brand) -> None:  # type: ignore[no-untyped-def]
    ws, ids = brand
    assert _traces(figures.datasets(data.datasets_overview(ws))) == [
        ("bar", "rows"),
        ("bar", "rejected rows"),
    ]
    assert _traces(figures.quarantine_reasons(data.quarantine_reasons(ws))) == [
        ("bar", "crm_customers")
    ]
    assert _traces(figures.cluster_sizes(data.cluster_sizes(ws))) == [("bar", "profiles")]
    assert _traces(figures.namespaces(data.identities_per_namespace(ws))) == [
        ("bar", "identities"),
        ("bar", "profiles"),
    ]
    assert _traces(figures.links(data.links_by_status(ws))) == [
        ("bar", "cut_unique_namespace"),
        ("bar", "kept"),
    ]
    graph = figures.identity_graph(*data.profile_graph(ws, ids["C1"]))
    assert _traces(graph) == [
        ("scatter", "link: cut_unique_namespace"),
        ("scatter", "link: kept"),
        ("scatter", "crm_id"),
        ("scatter", "ecid"),
        ("scatter", "email"),
        ("scatter", "loyalty_id"),
        ("scatter", "phone"),
    ]
    assert list(graph.data[2].marker.symbol) == ["circle", "circle-open"]  # C1 ours, C2 not
    assert len(graph.data[1].x) == 5 * 3  # 5 kept links, each (start, end, gap)
    assert _traces(figures.event_timeline(data.profile_events(ws, ids["C1"]))) == [
        ("scatter", "offline"),
        ("scatter", "online"),
    ]
    assert _traces(figures.memberships(data.profile_memberships(ws, ids["C1"]))) == [
        ("scatter", "existing"),
        ("scatter", "exited"),
    ]


def test_segment_figures_build_with_their_traces(brand) -> None:  # type: ignore[no-untyped-def]
    ws, _ = brand
    assert _traces(figures.segment_sizes(data.segment_sizes(ws))) == [
        ("bar", "realized"),
        ("bar", "existing"),
    ]
    heat = figures.overlap(data.overlap_matrix(ws, FOUR))
    assert _traces(heat) == [("heatmap", None)] and list(heat.data[0].x) == FOUR
    up = figures.upset(data.intersections(ws, FOUR))
    assert _traces(up) == [
        ("bar", "profiles"),
        ("scatter", "not in"),
        ("scatter", "in"),
        ("scatter", "combination"),
    ]
    assert list(up.data[0].y) == [2, 1, 1, 1]
    assert len(up.data[2].x) == 1 + 1 + 2 + 4  # filled dots: one per (combination, segment)
    assert [t.name for t in figures.size_history(data.size_history(ws, ["gold"])).data] == [
        "gold",
        "gold: entered",
        "gold: exited",
    ]
    comp = figures.composition(data.composition(ws, ["loyal"], "tier"), "tier")
    assert [t.name for t in comp.data] == ["bronze", "gold", "platinum"]
    assert [t.name for t in figures.channel_mix(data.channel_mix(ws, ["loyal"])).data] == [
        "both",
        "online only",
        "offline only",
        "no events",
    ]
    reach = figures.reachability(data.reachability(ws, ["loyal"]))
    assert [t.name for t in reach.data][:3] == ["members", "with email", "with phone"]
    empty = pd.DataFrame(
        columns=[
            "destination",
            "segment",
            "exported",
            "skipped_no_identity",
            "skipped_no_consent",
            "blocked",
        ]
    )
    assert len(figures.destination_reach(empty).data) == 4


# ---------------------------------------------------------------------- profile explorer
def test_profile_explorer_search_by_any_identity(brand) -> None:  # type: ignore[no-untyped-def]
    from workbench.widgets import ProfileExplorer

    ws, ids = brand
    ex = ProfileExplorer(ws)
    p = ex.search("email:  ANA@X.com ")  # normalized first
    assert p is not None and p.profile_id == ids["C1"] and ex.profile is p and ex.error is None
    assert ex.text.value == "email:  ANA@X.com"
    assert set(ex.frames) == {"attributes", "nodes", "edges", "events", "memberships"}
    assert len(ex.frames["events"]) == 9 and len(ex.frames["memberships"]) == 5
    assert set(ex.figures) == {"graph", "timeline", "memberships"}
    assert f"profile {ids['C1']}" in ex.message.value
    assert ex.search("ecid:E9").profile_id == ids["E9"]  # an anonymous visitor
    assert ex.frames["attributes"].empty
    # typing in the box and pressing Enter searches too
    ex.text.value = "loyalty_id:L4"
    assert ex.profile is not None and ex.profile.profile_id == ids["C4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "namespace:value"),
        ("nonsense", "namespace:value"),
        ("fax:123", "unknown namespace 'fax'"),
        ("email:not-an-email", "not a valid email"),
        ("crm_id:C404", "no profile holds crm_id:C404"),
    ],
)
def test_profile_explorer_invalid_input_is_a_message(brand, text, message) -> None:  # type: ignore[no-untyped-def]
    from workbench.widgets import ProfileExplorer

    ws, _ = brand
    ex = ProfileExplorer(ws, identity="crm_id:C1")
    assert ex.profile is not None
    assert ex.search(text) is None
    assert ex.profile is None and message in ex.error
    assert "Traceback" not in ex.message.value
    assert ex.frames == {} and ex.figures == {}


def test_profile_explorer_unknown_profile_id_and_unexpected_errors(brand, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from workbench.widgets import ProfileExplorer

    ws, _ = brand
    ex = ProfileExplorer(ws)
    assert ex.open(999_999) is None and "no profile 999999" in ex.error

    def boom(_identity: str) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ws.identity, "lookup", boom)
    assert ex.search("crm_id:C1") is None
    assert ex.error == "unexpected error: RuntimeError: disk on fire"


# ---------------------------------------------------------------------- workbench lab
def test_workbench_lab_starts_jupyter_with_the_workspace(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from click.testing import CliRunner

    from workbench.cli import main

    calls = []

    def fake_call(cmd, env):  # type: ignore[no-untyped-def]
        calls.append((cmd, env["WORKBENCH_WORKSPACE"]))
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    r = CliRunner().invoke(
        main, ["lab", "-w", str(tmp_path / "ws"), "--no-browser", "--port", "8899"]
    )
    assert r.exit_code == 0, r.output
    ((cmd, workspace),) = calls
    assert cmd[1:] == [
        "-m",
        "jupyterlab",
        "--notebook-dir=notebooks",
        "--no-browser",
        "--port",
        "8899",
    ]
    assert workspace == str((tmp_path / "ws").resolve())
