"""Schemas: parsing, validation with paths, YAML round trip, evolution rules."""

from __future__ import annotations

import pytest

from workbench.errors import SchemaConflictError, ValidationError
from workbench.sample.brand import schema_dir
from workbench.schema.model import FieldType, Schema, SchemaClass, load_schemas

PROFILE = {
    "name": "person",
    "class": "profile",
    "fields": [
        {
            "name": "pid",
            "type": "string",
            "required": True,
            "identity": {"namespace": "crm_id", "primary": True},
        },
        {"name": "email", "type": "email", "identity": {"namespace": "email"}, "labels": ["I1"]},
        {"name": "tier", "type": "enum", "values": ["a", "b"]},
        {"name": "updated_at", "type": "timestamp", "required": True},
    ],
}


def test_every_field_type_parses() -> None:
    for t in FieldType:
        assert FieldType.parse(t.value) is t
    assert FieldType.parse("array[string]") is FieldType.ARRAY_STRING
    assert FieldType.parse("string[]") is FieldType.ARRAY_STRING
    with pytest.raises(ValueError):
        FieldType.parse("money")


def test_sample_schemas_round_trip_exactly() -> None:
    schemas = load_schemas([schema_dir()])
    assert {s.name for s in schemas} == {
        "crm_customer",
        "loyalty_member",
        "pos_order",
        "web_event",
        "email_engagement",
    }
    for s in schemas:
        again = Schema.from_dict(s.to_dict())
        assert again == s
        import yaml

        assert Schema.from_dict(yaml.safe_load(s.to_yaml())) == s


def test_all_problems_reported_with_paths() -> None:
    bad = {
        "name": "Bad Name",
        "class": "profile",
        "fields": [
            {"name": "pid", "type": "string", "identity": {"namespace": "nope", "primary": True}},
            {"name": "pid", "type": "string"},
            {"name": "tier", "type": "enum"},
            {"name": "x", "type": "money"},
            {"name": "y", "type": "string", "labels": ["bogus label"], "colour": "red"},
        ],
    }
    with pytest.raises(ValidationError) as ei:
        Schema.from_dict(bad)
    paths = {p.path for p in ei.value.problems}
    assert "name" in paths
    assert "fields[3].type" in paths
    assert "fields[4].colour" in paths
    msg = str(ei.value)
    assert "unknown type 'money'" in msg


def test_semantic_problems() -> None:
    d = {
        "name": "s",
        "class": "profile",
        "fields": [
            {"name": "pid", "type": "string", "identity": {"namespace": "nope", "primary": True}},
            {"name": "pid", "type": "string"},
            {"name": "tier", "type": "enum"},
            {"name": "n", "type": "string", "minimum": 3},
            {"name": "y", "type": "string", "labels": ["bogus"]},
        ],
    }
    with pytest.raises(ValidationError) as ei:
        Schema.from_dict(d)
    by_path = {p.path: p.message for p in ei.value.problems}
    assert "unknown namespace 'nope'" in by_path["fields[0].identity.namespace"]
    assert "duplicate field 'pid'" in by_path["fields[1].name"]
    assert "needs its list of values" in by_path["fields[2].values"]
    assert "minimum/maximum" in by_path["fields[3]"]
    assert "not a data-usage label" in by_path["fields[4].labels[0]"]
    assert any("updated_at" in m for m in by_path.values())
    assert any("primary identity must be required" in m for m in by_path.values())


def test_event_schema_needs_timestamp_and_event_type() -> None:
    with pytest.raises(ValidationError) as ei:
        Schema.from_dict(
            {"name": "e", "class": "event", "fields": [{"name": "a", "type": "string"}]}
        )
    msg = str(ei.value)
    assert "'timestamp'" in msg and "'event_type'" in msg
    ok = Schema.from_dict(
        {
            "name": "e",
            "class": "event",
            "fields": [
                {"name": "timestamp", "type": "timestamp", "required": True},
                {"name": "event_type", "type": "string", "required": True},
            ],
        }
    )
    assert ok.cls is SchemaClass.EVENT


def _evolve(change):  # type: ignore[no-untyped-def]
    old = Schema.from_dict(PROFILE)
    d = {**PROFILE, "fields": [dict(f) for f in PROFILE["fields"]]}
    change(d)
    return old.evolve_to(Schema.from_dict(d))


def test_adding_optional_field_is_allowed() -> None:
    new = _evolve(lambda d: d["fields"].append({"name": "city", "type": "string"}))
    assert new.version == 2
    assert "city" in new.field_names


def test_unchanged_keeps_version() -> None:
    assert _evolve(lambda d: None).version == 1


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d["fields"].pop(2), "tier", "removing"),
        (
            lambda d: d["fields"][2].update(type="string", values=None),
            "tier",
            "retyping enum -> string",
        ),
        (lambda d: d["fields"][1].update(required=True), "email", "cannot become required"),
        (
            lambda d: d["fields"].append({"name": "z", "type": "string", "required": True}),
            "z",
            "must be optional",
        ),
        (
            lambda d: d["fields"][1].update(identity={"namespace": "phone"}, type="string"),
            "email",
            "retyping",
        ),
        (lambda d: d["fields"][2].update(values=["a"]), "tier", "enum values cannot be removed"),
    ],
)
def test_conflicting_changes_are_refused_naming_the_field(change, field, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemaConflictError) as ei:
        _evolve(change)
    assert ei.value.field == field
    assert reason in str(ei.value)


def test_registering_conflict_through_workspace(empty_ws) -> None:  # type: ignore[no-untyped-def]
    empty_ws.schemas.add(PROFILE)
    d = {**PROFILE, "fields": [f for f in PROFILE["fields"] if f["name"] != "tier"]}
    with pytest.raises(SchemaConflictError, match="'tier'"):
        empty_ws.schemas.add(d)
    d2 = {**PROFILE, "fields": [*PROFILE["fields"], {"name": "city", "type": "string"}]}
    s = empty_ws.schemas.add(d2)
    assert s.version == 2
    assert [v for v, _, _ in empty_ws.schemas.history("person")] == [1, 2]
    assert empty_ws.schemas.get("person").version == 2


def test_custom_namespace_can_be_used_after_registration(empty_ws) -> None:  # type: ignore[no-untyped-def]
    d = {
        "name": "app",
        "class": "profile",
        "fields": [
            {
                "name": "aid",
                "type": "string",
                "required": True,
                "identity": {"namespace": "app_user", "primary": True},
            },
            {"name": "updated_at", "type": "timestamp"},
        ],
    }
    with pytest.raises(ValidationError, match="unknown namespace 'app_user'"):
        empty_ws.schemas.add(d)
    empty_ws.add_namespace(
        {"name": "app_user", "kind": "person", "normalizer": "trim", "unique": True, "priority": 95}
    )
    assert empty_ws.schemas.add(d).name == "app"
    assert "app_user" in [n.name for n in empty_ws.namespaces()]
