"""The segment builder driven through its Python API and its ipywidgets, on the hand-made
brand of ``test_segments`` (member sets worked out by hand there: ``tier in [gold, platinum]``
is {C1, C2}, ``tier not_in [gold, platinum]`` is {C4}, ``points >= 12000`` is {C1, C2}...)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.test_segments import AS_OF, _data
from workbench.errors import ValidationError
from workbench.segments import attr, segment
from workbench.segments.model import All, Attr, Events, InSegment, Not, load, parse
from workbench.widgets.segment_builder import SegmentBuilder

ROOT = Path(__file__).parents[1]
LIBRARY = sorted((ROOT / "segments").glob("*.yaml"))


@pytest.fixture(scope="module")
def brand(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The hand-made brand with a ``gold`` segment and the sample segment library."""
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path_factory.mktemp("widgets") / "ws")
    register(ws)
    for name, df in _data().items():
        r = ws.ingest(name, df)
        assert r.batch.rows_rejected == 0
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(segment("gold", attr("tier") == "gold"))
    ws.segments.add(ROOT / "segments")
    yield ws
    ws.close()


def _builder(ws: Any, **kw: Any) -> SegmentBuilder:
    return SegmentBuilder(ws, as_of=AS_OF, debounce_s=kw.pop("debounce_s", 0), **kw)


def _find(root: Any, cls: str) -> list[Any]:
    """Every widget under ``root`` with the CSS class ``cls``, depth first."""
    out = []
    stack = [root]
    while stack:
        w = stack.pop(0)
        if cls in getattr(w, "_dom_classes", ()):
            out.append(w)
        stack[0:0] = list(getattr(w, "children", ()))
    return out


def _one(root: Any, cls: str, i: int = 0) -> Any:
    found = _find(root, cls)
    assert len(found) > i, f"no widget .{cls} #{i}"
    return found[i]


# ---------------------------------------------------------------------- the Python API
def test_adding_conditions_builds_the_definition_and_sizes_it(brand) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    b = _builder(ws, name="gold_or_platinum")
    assert b.definition is None
    assert [p.path for p in b.errors] == ["rule"]
    assert b.refresh().count is None  # nothing to size, nothing raised
    assert b.add_attribute("tier", "in", ["gold", "platinum"]) == (0,)
    assert b.errors == []
    assert b.definition == parse(
        {
            "name": "gold_or_platinum",
            "rule": {"attribute": "tier", "op": "in", "value": ["gold", "platinum"]},
        }
    )
    size = b.refresh()
    assert size.count == 2 == ws.segments.count(b.definition, AS_OF)
    assert size.estimate is not None and size.estimate.estimate == 2
    assert str(size) == "2 profiles (exact)"
    # a second condition: the root becomes an all group
    assert b.add_event(types="purchase", within="30d") == (1,)
    d = b.definition
    assert d is not None and isinstance(d.rule, All)
    assert d.rule.items[1] == Events(types=("purchase",), window=d.rule.items[1].window)
    assert d.rule.items[1].window.within == "30d"
    assert b.size.count is None  # the size belongs to the previous rule
    assert b.refresh().count == 1 == ws.segments.count(d, AS_OF)  # C1
    # nested groups and references
    g = b.add_group("any")
    b.add_reference("gold", group=g)
    b.add_attribute("points", "gte", 30000, group=g)
    assert g == (2,)
    assert b.node((2, 1)) == Attr("points", "gte", 30000)
    assert b.definition is not None
    assert b.refresh().count == ws.segments.count(b.definition, AS_OF) == 1
    n = b.add_group("not", group=g)
    b.add_reference("gold", negate=True, group=n)
    rule = b.definition.rule  # type: ignore[union-attr]
    assert rule.items[2].items[2] == Not(InSegment("gold", negate=True))  # type: ignore[union-attr]
    b.remove((2,))
    b.remove((1,))
    assert b.definition is not None and b.definition.rule == Attr(
        "tier", "in", ("gold", "platinum")
    )
    b.update((0,), op="not_in")
    assert b.node((0,)) == Attr("tier", "not_in", ("gold", "platinum"))
    assert b.refresh().count == 1  # C4
    b.update((0,), field="points")  # a number: "not_in" still fits, the text values do not
    assert b.node((0,)) == Attr("points", "not_in", None)
    assert [(p.path, p.message) for p in b.errors] == [("rule.value", "not_in needs a value")]
    b.update((0,), field="consent_email")  # a boolean: not_in no longer fits
    assert b.node((0,)).op == "eq" and b.node((0,)).value is None  # type: ignore[union-attr]


def test_operators_are_filtered_by_the_fields_type(brand) -> None:  # type: ignore[no-untyped-def]
    b = _builder(brand)
    points = b.operators_for("points")
    assert {"gt", "gte", "lt", "lte", "between"} <= set(points)
    assert "contains" not in points
    city = b.operators_for("city")
    assert {"contains", "starts_with", "ends_with", "in"} <= set(city)
    assert "gt" not in city and "between" not in city
    assert b.operators_for("consent_email") == ("eq", "ne", "exists", "not_exists")
    assert "between" in b.operators_for("birth_date")
    assert "contains" not in b.operators_for("birth_date")
    assert "in" in b.operators_for("birth_date", fn="age")  # age is a number
    assert "gt" in b.operators_for("total", event=True)
    assert b.operators_for("channel", event=True)[0] == "eq"


def test_value_choices_are_enum_values_or_the_most_frequent_values(brand) -> None:  # type: ignore[no-untyped-def]
    b = _builder(brand)
    assert b.value_choices("tier") == ("bronze", "silver", "gold", "platinum")
    cities = b.value_choices("city")
    assert set(cities) == {"New York", "new york", "Chicago", "Boston"}  # nulls left out
    assert b.value_choices("points") == ()
    assert b.value_choices("channel", event=True) == ("online", "offline")
    assert b.value_choices("store_id", event=True) == ("S001", "S002")  # 3 then 2 orders


def test_invalid_input_is_reported_with_its_path_never_raised(brand) -> None:  # type: ignore[no-untyped-def]
    b = _builder(brand)
    b.add_attribute("tier", "eq", "gold")
    b.add_attribute("points", "gt", "abc")
    b.add_attribute("consent_email", "contains", "x")
    b.add_attribute("tierr", "eq", "gold")
    b.add_event(types="purchase", within="thirty days")
    b.add_reference("no_such_segment")
    errs = {p.path: p.message for p in b.errors}
    assert errs["rule.all[1].value"] == "points is a number; 'abc' is not"
    assert errs["rule.all[2].op"].startswith("contains does not fit consent_email")
    assert "did you mean 'tier'" in errs["rule.all[3].attribute"]
    assert "not a duration" in errs["rule.all[4].events.within"]
    assert b.definition is None
    assert b.method is None
    assert b.refresh().count is None
    assert b.sparkline.empty
    # problems belong to their rows
    assert [p.path for p in b.errors_at((1,))] == ["rule.all[1].value"]
    assert b.errors_at((0,)) == []
    with pytest.raises(ValidationError):
        b.save("unused")
    for _ in range(5):
        b.remove((1,))
    assert b.errors == [] and b.definition is not None
    b.add_reference("no_such_segment")
    assert {p.path for p in b.errors} == {"rule.all[1].in_segment"}
    b.remove((1,))
    b.name = "Not A Name"
    b._changed()
    assert [p.path for p in b.errors] == ["name"]
    g = b.add_group("not")
    b.name = "ok_name"
    b._changed()
    assert [(p.path, p.message) for p in b.errors] == [
        ("rule.all[1].not", "add the condition this group negates")
    ]
    b.add_attribute("tier", "eq", "gold", group=g)
    b.add_attribute("tier", "eq", "silver", group=g)
    assert [p.path for p in b.errors] == ["rule.all[1].not"]
    assert "not group holds one condition" in b.errors[0].message
    b.remove((1, 1))
    assert b.errors == []


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_every_library_segment_round_trips_through_the_builder(brand, path) -> None:  # type: ignore[no-untyped-def]
    original = load(path)
    b = _builder(brand)
    b.set_definition(load(path))
    assert b.errors == []
    assert b.definition == original
    assert b.yaml == original.to_yaml()
    # by file and by catalog name too
    b2 = _builder(brand)
    b2.set_definition(str(path))
    assert b2.definition == original
    b2.set_definition(original.name)
    assert b2.definition == original


def test_round_trip_keeps_single_conditions_and_explicit_groups(brand) -> None:  # type: ignore[no-untyped-def]
    b = _builder(brand)
    for rule in (
        {"attribute": "tier", "op": "eq", "value": "gold"},
        {"all": [{"attribute": "tier", "op": "eq", "value": "gold"}]},
        {"any": [{"in_segment": "gold"}, {"attribute": "points", "op": "gt", "value": 10}]},
        {"not": {"all": [{"in_segment": "gold"}, {"attribute": "city", "op": "exists"}]}},
        {
            "sequence": {
                "first": {"type": "add_to_cart"},
                "then": {"type": "purchase"},
                "then_within": "1d",
                "then_absent": True,
            }
        },
    ):
        d = parse({"name": "rt", "rule": rule})
        b.set_definition(d)
        assert b.definition == d, rule
        b.set_definition(d.to_dict())
        assert b.definition == d


def test_save_writes_yaml_and_adds_to_the_catalog(brand, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    b = _builder(ws, name="saved_from_builder")
    b.add_attribute("points", "between", [100, 12000])
    path = b.save(tmp_path / "segs")
    assert path == tmp_path / "segs" / "saved_from_builder.yaml"
    assert load(path) == b.definition
    assert ws.segments.get("saved_from_builder") == b.definition
    assert "saved_from_builder" in b.segment_names()
    assert ws.segments.count("saved_from_builder", AS_OF) == 2  # C1, C4
    # edit a stored segment and save it again: a new version
    b2 = _builder(ws)
    b2.set_definition("saved_from_builder")
    b2.update((0,), value=[0, 100])
    b2.save(tmp_path / "segs")
    assert ws.segments.get("saved_from_builder").rule == Attr("points", "between", (0, 100))
    assert ws.segments.info("saved_from_builder").version == 2
    ws.segments.remove("saved_from_builder")


def test_sparkline_has_30_daily_estimates_ending_at_as_of(brand) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    b = _builder(ws, name="recent_buyers")
    b.add_event(types="purchase", within="7d")
    s = b.sparkline
    assert len(s) == 30
    assert list(s.columns) == ["as_of", "estimate", "low", "high"]
    assert s["as_of"].iloc[-1] == AS_OF
    assert s["as_of"].iloc[0] == AS_OF - dt.timedelta(days=29)
    assert s["estimate"].iloc[-1] == ws.segments.count(b.definition, AS_OF) == 2  # C1, C3
    # 20 days earlier (Nov 11) the only purchase of the last 7 days was none
    assert s["estimate"].iloc[9] == ws.segments.count(b.definition, AS_OF - dt.timedelta(days=20))
    assert b.sparkline is s  # cached for the same rule
    assert b.sparkline_figure().data[0].y[-1] == 2


def test_method_and_reason_are_shown(brand) -> None:  # type: ignore[no-untyped-def]
    b = _builder(brand)
    b.add_attribute("tier", "eq", "gold")
    m = b.method
    assert m is not None and (m.method, m.reason) == ("streaming", "attribute conditions only")
    b.add_event(types="purchase", within="365d")
    m = b.method
    assert m is not None and m.method == "batch" and "365d" in m.reason
    w = b.widget
    assert "batch" in _one(w, "wb-method").value and "365d" in _one(w, "wb-method").value


# ---------------------------------------------------------------------- the widget
def test_changing_widgets_changes_the_definition_and_the_size_label(brand) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    b = _builder(ws, name="ui_built")
    w = b.widget
    assert b._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert "add a condition" in _one(w, "wb-problems").value
    _one(w, "wb-add-attribute").click()  # the first attribute row: tier in (no value yet)
    assert b.node((0,)) == Attr("tier", "in", None)
    assert "in needs a value" in _one(_one(w, "wb-attribute"), "wb-row-problems").value
    sel = _one(w, "wb-value")
    assert set(sel.options) >= {("gold", "gold"), ("platinum", "platinum")}
    sel.value = ("gold", "platinum")
    assert b.definition is not None
    assert b.definition.rule == Attr("tier", "in", ("gold", "platinum"))
    assert _one(w, "wb-size").value == "2 profiles (exact)"
    assert "tier" in _one(w, "wb-yaml").value and _one(w, "wb-problems").value == ""
    assert "streaming" in _one(w, "wb-method").value
    _one(w, "wb-op").value = "not_in"  # keeps the chosen values
    assert b.definition.rule == Attr("tier", "not_in", ("gold", "platinum"))
    assert _one(w, "wb-size").value == "1 profile (exact)"  # C4
    # a number field: the operators change, the value input becomes a number
    _one(w, "wb-field").value = "points"
    assert "contains" not in _one(w, "wb-op").options and "between" in _one(w, "wb-op").options
    _one(w, "wb-op").value = "gte"
    value = _one(w, "wb-value")
    assert type(value).__name__ == "FloatText"
    value.value = 12000
    assert b.definition.rule == Attr("points", "gte", 12000)
    assert _one(w, "wb-size").value == "2 profiles (exact)"  # C1, C2
    value.value = 12001
    assert _one(w, "wb-size").value == "1 profile (exact)"  # C2
    # a boolean field offers only eq / ne / exists / not_exists
    _one(w, "wb-field").value = "consent_email"
    assert tuple(_one(w, "wb-op").options) == ("eq", "ne", "exists", "not_exists")
    _one(w, "wb-value").value = True
    assert b.definition.rule == Attr("consent_email", "eq", True)
    assert _one(w, "wb-size").value == "3 profiles (exact)"  # C1, C3, C5
    # invalid input is shown inline, not raised
    _one(w, "wb-name").value = "Bad Name"
    assert (
        "name" in _one(w, "wb-problems").value
        and "not a valid segment name" in _one(w, "wb-problems").value
    )
    assert "problems" in _one(w, "wb-size").value
    _one(w, "wb-save").click()
    assert "not a valid segment name" in _one(w, "wb-problems").value
    _one(w, "wb-name").value = "ui_built"
    # an event row and a nested group
    _one(w, "wb-add-event").click()
    assert isinstance(b.node((1,)), Events)
    ev = _one(w, "wb-events")
    _one(ev, "wb-event-types").value = ("purchase",)
    assert b.node((1,)).types == ("purchase",)  # type: ignore[union-attr]
    assert b.refresh().count == ws.segments.count(b.definition, AS_OF)
    _one(w, "wb-add-group").click()
    group = _find(w, "wb-group")[-1]
    _one(group, "wb-add-segment").click()
    assert isinstance(b.node((2, 0)), InSegment)
    _one(group, "wb-remove").click()  # the group's own remove button
    assert len(b.root.items) == 2
    _one(_one(w, "wb-events"), "wb-remove").click()
    assert b.definition is not None and b.definition.rule == Attr("consent_email", "eq", True)


def test_loading_a_segment_fills_the_rows_and_edits_its_aggregate(brand) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    b = _builder(ws)
    w = b.widget
    _one(w, "wb-load").value = "high_value_loyalty"
    original = ws.segments.get("high_value_loyalty")
    assert b.definition == original
    assert _one(w, "wb-name").value == "high_value_loyalty"
    assert "high_value_loyalty" in _one(w, "wb-yaml").value
    assert _one(w, "wb-size").value == "2 profiles (exact)"  # C1, C2 (see test_segments)
    assert _one(w, "wb-agg-fn").value == "sum" and _one(w, "wb-agg-value").value == 300
    _one(w, "wb-agg-value").value = 400  # C1 spent 350 offline in the year: out
    assert b.definition.rule.items[1].aggregate.value == 400  # type: ignore[union-attr]
    assert _one(w, "wb-size").value == "1 profile (exact)"
    assert "batch" in _one(w, "wb-method").value
    _one(w, "wb-validate").click()
    assert "valid" in _one(w, "wb-status").value
    b.set_definition("gold")  # through the API: the header follows
    assert _one(w, "wb-name").value == "gold" and _one(w, "wb-load").value == "gold"
    assert _one(w, "wb-size").value == "1 profile (exact)"  # C1


def test_sizing_is_debounced_estimate_first_then_exact(brand, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ws = brand
    calls: list[str] = []
    count, estimate = ws.segments.count, ws.segments.estimate
    monkeypatch.setattr(
        ws.segments, "count", lambda *a, **k: calls.append("count") or count(*a, **k)
    )
    monkeypatch.setattr(
        ws.segments, "estimate", lambda *a, **k: calls.append("estimate") or estimate(*a, **k)
    )

    async def edit() -> tuple[str, str]:
        b = _builder(ws, debounce_s=0.05)
        w = b.widget
        b.add_attribute("points", "gte", 0)
        before = len(calls)
        for v in (100, 12000, 30000):  # three quick edits: sized once
            _one(w, "wb-value").value = v
        assert len(calls) == before
        await asyncio.sleep(0.5)
        return _one(w, "wb-size").value, calls[before:]

    label, sizing = asyncio.run(edit())
    assert label == "1 profile (exact)"  # C2
    assert sizing[:2] == ["estimate", "count"]  # then the sparkline's 30 estimates
    assert sizing.count("count") == 1 and len(sizing) == 32


def test_ipython_display_shows_the_widget(brand, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import IPython.display

    shown: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    b = _builder(brand)
    b._ipython_display_()
    assert shown == [b.widget]
