"""The numbers behind the dashboards and the small-count suppression, on the hand-made brand
(tests/test_segments.py): 6 profiles (C1..C5 and the anonymous cookie E9); email + email
consent: C1, C3, C5; phone + SMS consent: C1, C4; ads consent with an email or phone: C1,
C2, C5. ``viewers_3d`` has C1, C3 at 12-01 and C1, C2, C3 at 12-03 15:00."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tests.test_segments import _data
from workbench import dashboards as dash
from workbench.segments import attr, events, segment


@pytest.fixture(scope="module")
def dws(tmp_path_factory):  # type: ignore[no-untyped-def]
    from workbench import Workspace
    from workbench.sample.brand import register

    root = tmp_path_factory.mktemp("dash")
    ws = Workspace.create(root / "ws")
    register(ws)
    for name, df in _data().items():
        ws.ingest(name, df)
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(
        [
            segment("gold_or_platinum", attr("tier").isin(["gold", "platinum"])),
            segment("viewers_3d", events("page_view").within("3d")),
        ]
    )
    ws.segments.run("2026-12-01T00:00Z")
    ws.segments.run("2026-12-03T15:00Z")
    ws.activation.add(
        {
            "name": "drop", "type": "file", "connection": {"url": str(root / "out")},
            "segments": ["gold_or_platinum"], "consent": "none", "schedule": {"daily_at": "07:00"},
        }
    )  # fmt: skip
    ws.activation.run("drop", "2026-12-03T15:00Z")
    yield ws
    ws.close()


def test_suppression_of_small_counts() -> None:
    assert [dash.fmt_count(v, 10) for v in (0, 3, 9, 10, 1234, None)] == [
        "0",
        "<10",
        "<10",
        "10",
        "1,234",
        "–",
    ]
    assert dash.fmt_share(3, 6, 10) == "<10" and dash.fmt_share(30, 60, 10) == "50.0%"
    f = dash.suppress(pd.DataFrame({"n": [0, 5, 12]}), ["n"], 10)
    assert f["n"].isna().tolist() == [False, True, False]


def test_kpis_are_exact_and_suppressed_below_the_threshold(dws) -> None:  # type: ignore[no-untyped-def]
    kpis = dash.overview_kpis(dws)
    assert kpis["Profiles"] == "<10" and kpis["Reachable by email"] == "<10"
    dws.settings.min_count = 1
    try:
        kpis = dash.overview_kpis(dws)
        assert (kpis["Profiles"], kpis["Reachable by email"]) == ("6", "50.0%")
        assert (kpis["Reachable by SMS"], kpis["Reachable by ads"]) == ("33.3%", "50.0%")
        table = dash.segment_table_display(dws)
        rows = {r[0]: list(r[1:]) for r in table.itertuples(index=False)}
        assert rows["viewers_3d"][:3] == ["batch", "3", "+1"]
        assert rows["gold_or_platinum"][:3] == ["streaming", "2", "+0"]
    finally:
        dws.settings.min_count = 10
    table = dash.segment_table_display(dws)
    assert set(table.iloc[:, 2]) == {"<10"}


def test_activation_summary_and_next_delivery(dws) -> None:  # type: ignore[no-untyped-def]
    s = dash.activation_summary(dws, now=dt.datetime(2026, 12, 3, 16, tzinfo=dt.UTC))
    row = s.iloc[0].to_dict()
    assert (row["destination"], row["last_status"], row["eligible"], row["exported"]) == (
        "drop", "success", 2, 2,
    )  # fmt: skip
    assert row["next_delivery"] == "2026-12-04 07:00 UTC"  # the delivery, not the job's start


def test_health_kpis_and_pages_build(dws) -> None:  # type: ignore[no-untyped-def]
    k = dash.health_kpis(dws)
    assert (k["Batches"], k["Rows rejected"]) == ("5", "0")
    for build in (dash.audience_overview, dash.activation_status, dash.data_health):
        w = build(dws)
        assert "wb-dash" in w._dom_classes


def test_segment_detail_frames_are_suppressed(dws) -> None:  # type: ignore[no-untyped-def]
    d = dash.segment_detail(dws, "viewers_3d")
    assert set(d) == {"history", "composition", "overlap"}
    # two runs with 2 then 3 members: below the threshold, so hidden (NaN) in the charts
    assert len(d["history"]) == 2 and d["history"]["size"].isna().all()
    assert d["composition"]["members"].isna().all() and d["composition"]["share"].isna().all()
    assert d["overlap"]["segment"].tolist() == ["gold_or_platinum"]
    dws.settings.min_count = 1
    try:
        d = dash.segment_detail(dws, "viewers_3d")
        assert d["history"]["size"].tolist() == [2, 3]
        both = set(dws.segments.members("viewers_3d")["profile_id"]) & set(
            dws.segments.members("gold_or_platinum")["profile_id"]
        )
        assert d["overlap"]["members in both"].tolist() == [len(both)]
        assert set(d["composition"]["attribute"]) <= set(dash.COMPOSITION_ATTRIBUTES)
    finally:
        dws.settings.min_count = 10


def test_recent_activations_failures_and_dead_letters(dws) -> None:  # type: ignore[no-untyped-def]
    r = dash.recent_activations(dws)
    assert r[["destination", "segment", "status", "exported"]].values.tolist() == [
        ["drop", "gold_or_platinum", "success", 2]
    ]
    assert dash.dead_letter_summary(dws).empty
    assert dash.failed_jobs(dws).empty  # no job has run in this workspace


def test_data_health_tables_are_suppressed(dws) -> None:  # type: ignore[no-untyped-def]
    import ipywidgets

    page = dash.data_health(dws)
    html = {
        cls: w.value
        for w in _walk(page)
        if isinstance(w, ipywidgets.HTML)
        for cls in w._dom_classes
        if cls in {"wb-batches", "wb-reasons", "wb-links"}
    }
    assert set(html) == {"wb-batches", "wb-links", "wb-reasons"}
    assert "&lt;10" in html["wb-links"]  # a handful of links in this brand: all suppressed
    figures = [w for w in _walk(page) if isinstance(w, ipywidgets.Output)]
    assert len(figures) == 3  # batches, cluster sizes, job durations


def _walk(w):  # type: ignore[no-untyped-def]
    yield w
    for c in getattr(w, "children", ()):
        yield from _walk(c)
