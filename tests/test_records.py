"""Items of the streaming API: the same verdicts, reasons and values as batch ingestion of
the same rows as JSON Lines, and commits that are ordinary ingestion batches."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from workbench import Workspace
from workbench.errors import InputError, NotFoundError, WorkbenchError
from workbench.ingest.records import (
    MAX_EVENT_BYTES,
    MAX_RECORD_BYTES,
    NOT_AN_OBJECT,
    ItemValidator,
    _Undecided,
    append_records,
    validate_items,
    validator,
)
from workbench.ingest.validate import arrow_schema
from workbench.schema.model import SYSTEM_COLUMNS

PROBE = {
    "name": "probe",
    "class": "profile",
    "fields": [
        {"name": "id", "type": "string", "required": True,
         "identity": {"namespace": "crm_id", "primary": True}},
        {"name": "email", "type": "email", "identity": {"namespace": "email"}},
        {"name": "phone", "type": "phone", "identity": {"namespace": "phone"}},
        {"name": "hash", "type": "string", "identity": {"namespace": "email_sha256"}},
        {"name": "handle", "type": "string", "identity": {"namespace": "handle"}},
        {"name": "dev", "type": "string", "identity": {"namespace": "device_id"}},
        {"name": "n", "type": "integer", "minimum": 0, "maximum": 100},
        {"name": "price", "type": "decimal", "minimum": 0},
        {"name": "whole", "type": "decimal", "scale": 0},
        {"name": "flag", "type": "boolean"},
        {"name": "born", "type": "date"},
        {"name": "seen", "type": "timestamp"},
        {"name": "kind", "type": "enum", "values": ["Gold", "silver"]},
        {"name": "code", "type": "string", "pattern": "[A-Z]{2}[0-9]?"},
        {"name": "tags", "type": "array<string>"},
        {"name": "tags2", "type": "array<string>", "separator": ","},
        {"name": "src", "type": "string", "default": "web"},
        {"name": "level", "type": "enum", "values": ["low", "high"], "default": "low"},
        {"name": "note", "type": "string"},
        {"name": "updated_at", "type": "timestamp", "required": True},
    ],
}  # fmt: skip

BASE = {"id": "P", "updated_at": "2026-10-01T10:00:00Z"}
HEX = "a" * 64
# every rule and the shapes around it, one field at a time (everything else valid)
VARIANTS: dict[str, list[Any]] = {
    "id": ["C1", " C2 ", "", "   ", None, 123, True, {"a": 1}],
    "email": ["Ana@Example.com", " ana@example.com ", "not-an-email", "a@b", "ana@exam_ple.com",
              "ANA.LIMA+x@EXAMPLE.CO.UK", "\u212aelvin@example.com", "ａna@example.com", 42, "",
              "a b@example.com"],
    "phone": ["(212) 555-0142", "+1 212 555 0142", "212-555-0199", "+44 20 7946 0958", "555",
              "abc", "+33 1 23 45 67 89", "0044 20 7946 0958", 2125550142, "212\t555 0142",
              "1-212-555-0142", "+1 (212) 555-0142 ext. 9"],
    "hash": [HEX, HEX.upper(), HEX[:-1], "g" * 64, " " + HEX + " ", "\u212a" + HEX[1:]],
    "handle": ["MiXeD", " X ", "İstanbul", "Straße", "\u212aelvin", 7],
    "dev": [" d1 ", "\td1", "D1", "d1\n", 5.5],
    "n": [0, 5, 100, 101, -1, "7", " 8 ", "+9", "-0", "0042", "42.0", "42.5", "1e3", "0x10",
          "1_000", "abc", "", " ", True, 3.0, 2.5, 9223372036854775807, 9223372036854775808,
          "9223372036854775808", 1e20, [1], {"a": 1}, "١٢", "5 "],
    "price": ["19.99", 19.99, "1.005", "-1.005", "-0.001", "0", 0, "12345678901234567.5",
              "1234567890123456.5", "9999999999999999.995", "1e2", ".5", "5.", "abc", 1e-5, 1e16,
              0.1, "NaN", "inf", True, "+3.14159", "00.10"],
    "whole": ["2.5", "3.5", "-2.5", "123456789012345678", "1234567890123456789", 7.49, "7.5"],
    "flag": [True, False, "true", "T", "yes", "Y", "1", "0", "no", "N", "FALSE", "maybe", 1, 0,
             2, "İ", "tRuE", " yes "],
    "born": ["1990-02-03", "1990-2-3", "1990-02-30", "19900203", "1990-02-03T10:00:00Z",
             "infinity", "abc", 19900203, "0000-01-01", " 1990-02-03 ", "2024-02-29"],
    "seen": ["2026-10-01T10:00:00Z", "2026-10-01 10:00:00", "2026-10-01T10:00", "2026-10-01",
             "2026-10-01T10:00:00.123Z", "2026-10-01T10:00:00.1234567Z",
             "2026-10-01T10:00:00+02:00", "2026-10-01T10:00:00+0200", "2026-10-01T10:00:00+02",
             "2026-10-01T10:00:00-05:30", "2026-10-01T24:00:00Z", "2026-10-01T10:00:60Z",
             "2026-02-30T00:00:00Z", "2026-10-01t10:00:00z", "2026-10-01T10:00:00 UTC",
             "infinity", "abc", "", 1700000000, "2026-10-01T10:00:00+25:00", "2026-10-01Z",
             "0001-01-01T00:30:00+01:00", "2026-10-01T10:00:00.5+05:45"],
    "kind": ["Gold", "gold", "GOLD", " silver ", "SILVER", "bronze", "", "GÖLD", 1, True],
    "code": ["AB", "AB1", "ab", "ABC", "A", "ÄB", 12, "AB12", " CD "],
    "tags": [["a", "b"], "a|b| c ", '["x", " y "]', [], [1, 2], ["a", None], "a||b", "[broken",
             "", [" a "], {"a": 1}, "solo", [["n"]]],
    "tags2": ["a, b", "a|b", ["z"]],
    "src": ["app", "", "  ", None],
    "level": ["HIGH", "mid", ""],
    "note": ["x", {"k": [1, 2]}, [1, "a"], 1.5, 1e25, -0.0, 0.0, 12345678901234567890, "  padded  ",
             "tab\t", 0.0001, 123456789012345.6, 1e-7, 2**70, False, "ünïcödé", "a\u0000b"],
    "updated_at": ["", None, "2026-10-01T10:00:00Z", "yesterday"],
}  # fmt: skip


def _probe_items() -> list[Any]:
    items: list[Any] = []
    for name, values in VARIANTS.items():
        for v in values:
            items.append({**BASE, "id": f"{name}{len(items)}", name: v})
    # several errors at once, unknown and differently-cased keys, missing keys, not objects
    items.append({"id": "", "n": "x", "email": "bad", "kind": "no", "updated_at": "bad"})
    items.append({**BASE, "id": "extra", "Email": "A@B.com", "extra": [1, {"x": None}]})
    items.append({**BASE, "id": "nothing_else"})
    items.append({})
    items.extend([[1, 2], "text", 42, None, True])
    return items


@pytest.fixture
def pws(empty_ws: Workspace) -> Workspace:
    empty_ws.add_namespace({"name": "handle", "kind": "person", "normalizer": "lower"})
    empty_ws.schemas.add(PROBE)
    empty_ws.datasets.create("probe", "probe", profile_enabled=True)
    return empty_ws


def _assert_same_rows(got: pa.Table, want: pa.Table, index: list[int], items: list[Any]) -> None:
    assert got.schema == want.schema
    for name in got.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if not a.equals(b):
            bad = [k for k in range(len(a)) if not a[k].equals(b[k])]
            k = bad[0]
            raise AssertionError(f"{name}: {a[k]} != {b[k]} for item {items[index[k]]!r}")


def test_items_get_the_verdicts_reasons_and_values_of_batch_ingestion(
    pws: Workspace, tmp_path: Path
) -> None:
    items = _probe_items()
    lines = [json.dumps(it) for it in items]
    src = tmp_path / "probe.jsonl"
    src.write_text("\n".join(lines) + "\n")
    b = pws.ingest("probe", src, error_threshold=1.0).batch
    assert b.rows_read == len(items)

    # the batch verdict, keyed by item index (JSON Lines rows are 1-based line numbers)
    q = pws.datasets.quarantine("probe", b.id).to_pylist()
    batch_errors: dict[int, set[tuple[str | None, str]]] = {}
    for r in q:
        batch_errors.setdefault(r["row"] - 1, set()).add((r["field"], r["reason"]))
    stored = pws.datasets.to_arrow("probe").sort_by("_row")
    batch_index = [r - 1 for r in stored.column("_row").to_pylist()]

    res = validate_items(pws, "probe", [json.loads(x) for x in lines])
    stream_errors: dict[int, set[tuple[str | None, str]]] = {}
    for e in res.errors:
        stream_errors.setdefault(e.index, set()).add((e.field, e.reason))
        assert e.path == f"items[{e.index}]" + (f".{e.field}" if e.field else "")

    assert res.accepted_index == batch_index
    assert stream_errors == batch_errors
    _assert_same_rows(res.table, stored.select(res.table.column_names), batch_index, items)
    assert res.table.schema == pa.schema(
        [f for f in arrow_schema(pws.schemas.get("probe")) if f.name not in SYSTEM_COLUMNS]
    )
    # both paths were exercised: most items by the fast path, the odd shapes by the batch plan
    v = validator(pws, "probe")
    assert 0 < v.oracle_items < len(items) / 2
    assert len(batch_index) > 100 and len(batch_errors) > 50
    assert res.warnings == ["key(s) not in schema 'probe', not loaded: Email, extra"]


def test_fast_path_alone_agrees_with_the_batch_plan(pws: Workspace) -> None:
    """Items the Python rules decide get the same result when the batch plan decides them."""
    items = [it for it in _probe_items() if isinstance(it, dict)]
    v = validator(pws, "probe")
    fast: list[int] = []
    for i, it in enumerate(items):
        try:
            for chk in v._checks:
                chk.check(it.get(chk.field.name))
        except _Undecided:
            continue
        fast.append(i)
    assert len(fast) > 150
    errors: dict[int, list[Any]] = {}
    by_plan, plan_index = v._decide(items, fast, errors)
    res = v.validate([items[i] for i in fast])
    assert [fast[k] for k in res.accepted_index] == plan_index
    _assert_same_rows(res.table, by_plan, plan_index, items)
    plan_errs = {(i, e.field, e.reason) for i, es in errors.items() for e in es}
    fast_errs = {(fast[e.index], e.field, e.reason) for e in res.errors}
    assert plan_errs == fast_errs


def test_errors_name_item_field_and_reason(ws: Workspace) -> None:
    items = [
        {"event_id": "e1", "timestamp": "2026-10-01T10:00:00Z", "event_type": "LOGIN", "ecid": "E1"},
        {"event_id": "e2", "timestamp": "2026-13-01", "event_type": "dance", "ecid": " "},
        "not an object",
        {"event_id": "e4", "timestamp": "2026-10-01T10:00:00Z", "event_type": "purchase",
         "ecid": "E4", "amount": -5},
    ]  # fmt: skip
    res = validate_items(ws, "web_events", items)
    assert res.accepted_index == [0]
    assert res.rejected_index == [1, 2, 3]
    assert [(e.path, e.reason) for e in res.errors] == [
        ("items[1].timestamp", "not a valid timestamp (ISO 8601)"),
        (
            "items[1].event_type",
            "not one of: page_view, product_view, add_to_cart, purchase, login",
        ),
        ("items[1].ecid", "required field is missing"),
        ("items[2]", NOT_AN_OBJECT),
        ("items[3].amount", "below the minimum 0"),
    ]
    row = res.table.to_pylist()[0]
    assert row["event_type"] == "login"
    assert row["timestamp"] == dt.datetime(2026, 10, 1, 10, tzinfo=dt.UTC)
    assert not res.ok and validate_items(ws, "web_events", items[:1]).ok
    empty = validate_items(ws, "web_events", [])
    assert empty.table.num_rows == 0 and empty.errors == []
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        validate_items(ws, "nope", items)


def test_size_limits_of_events_and_records(ws: Workspace) -> None:
    ev = {"event_id": "e", "timestamp": "2026-10-01T10:00:00Z", "event_type": "login", "ecid": "E"}
    ok = {**ev, "page": "x" * (MAX_EVENT_BYTES - len(json.dumps({**ev, "page": ""})) + 3)}
    big = {**ev, "page": "x" * MAX_EVENT_BYTES}
    res = validate_items(ws, "web_events", [ok, big])
    assert res.accepted_index == [0]
    (err,) = res.errors
    assert err.path == "items[1]" and "above the 10 KB limit of an event" in err.reason
    rec = {"crm_id": "C1", "updated_at": "2026-10-01T10:00:00Z"}
    res = validate_items(
        ws,
        "crm_customers",
        [{**rec, "city": "x" * MAX_EVENT_BYTES}, {**rec, "city": "é" * (MAX_RECORD_BYTES // 2)}],
    )
    assert res.accepted_index == [0]
    assert "above the 100 KB limit of a record" in res.errors[0].reason


def test_validator_follows_schema_evolution(ws: Workspace) -> None:
    item = {"event_id": "e", "timestamp": "2026-10-01T10:00:00Z", "event_type": "login",
            "ecid": "E", "referrer": "news"}  # fmt: skip
    v1 = validator(ws, "web_events")
    assert validator(ws, "web_events") is v1  # cached
    assert "referrer" not in validate_items(ws, "web_events", [item]).table.column_names
    s = ws.schemas.get("web_event")
    ws.schemas.add(
        {**s.to_dict(), "fields": [*(f.to_dict() for f in s.fields), {"name": "referrer", "type": "string"}]}
    )  # fmt: skip
    v2 = validator(ws, "web_events", max_age=0)
    assert v2 is not v1 and v2.schema.version == 2
    assert v2.validate([item]).table.column("referrer").to_pylist() == ["news"]
    assert isinstance(v2, ItemValidator)


def test_append_records_is_an_ingestion_batch(ws: Workspace, tmp_path: Path) -> None:
    items = [
        {"event_id": f"e{i}", "timestamp": f"2026-10-01T10:00:0{i}Z", "event_type": "page_view",
         "ecid": f"E{i}", "crm_id": "C1" if i == 1 else None, "amount": "1.5"}
        for i in range(3)
    ]  # fmt: skip
    res = validate_items(ws, "web_events", items)
    before = ws.datasets.version("web_events")
    b = append_records(ws, "web_events", res.table, source="stream:web_events")
    assert (b.status, b.source, b.format) == ("success", "stream:web_events", "stream")
    assert (b.rows_read, b.rows_accepted, b.rows_rejected) == (3, 3, 0)
    assert b.table_version == before + 1 == ws.datasets.version("web_events")
    assert ws.datasets.count("web_events") == 3
    assert ws.batches("web_events")[0].id == b.id
    assert ws.catalog.table_versions("dataset/web_events")[-1][:4] == (
        b.table_version,
        "append",
        3,
        b.id,
    )
    rows = sorted(ws.datasets.to_arrow("web_events").to_pylist(), key=lambda r: r["_row"])
    assert [(r["_batch_id"], r["_row"]) for r in rows] == [(b.id, 1), (b.id, 2), (b.id, 3)]
    assert rows[0]["_ingested_at"] == b.started_at
    assert rows[0]["amount"] == Decimal("1.50")
    # a file batch after it, then the identity graph sees the streamed rows like any batch
    src = tmp_path / "ev.jsonl"
    src.write_text(json.dumps({**items[0], "event_id": "f1", "ecid": "E9"}) + "\n")
    ws.ingest("web_events", src)
    assert ws.datasets.count("web_events") == 4
    ws.identity.build()
    assert (
        ws.sql(f"select count(*) from web_events where _batch_id = {b.id}").column(0)[0].as_py()
        == 3
    )
    # a subset of the columns is fine (the others are null); unknown ones and no rows are not
    b2 = append_records(
        ws,
        "web_events",
        res.table.select(["event_id", "timestamp", "event_type", "ecid"]),
        source="s",
    )
    assert b2.rows_accepted == 3 and ws.datasets.count("web_events") == 7
    with pytest.raises(InputError, match="not in schema"):
        append_records(
            ws, "web_events", res.table.append_column("x", pa.array([1, 2, 3])), source="s"
        )
    with pytest.raises(InputError, match="no rows"):
        append_records(ws, "web_events", res.table.slice(0, 0), source="s")
    with pytest.raises(NotFoundError):
        append_records(ws, "nope", res.table, source="s")


def test_append_records_crash_before_and_after_commit(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        {"event_id": "e", "timestamp": "2026-10-01T10:00:00Z", "event_type": "login", "ecid": "E"}
    ]
    table = validate_items(ws, "web_events", items).table
    monkeypatch.setenv("WORKBENCH_FAILPOINT", "stream.before_commit")
    with pytest.raises(WorkbenchError, match="failpoint"):
        append_records(ws, "web_events", table, source="stream:web_events")
    failed = ws.batches("web_events")[0]
    assert failed.status == "failed" and ws.datasets.count("web_events") == 0
    monkeypatch.setenv("WORKBENCH_FAILPOINT", "stream.after_commit")
    with pytest.raises(WorkbenchError, match="failpoint"):
        append_records(ws, "web_events", table, source="stream:web_events")
    assert ws.batches("web_events")[0].status == "loading"  # committed, not yet recorded
    monkeypatch.delenv("WORKBENCH_FAILPOINT")
    b = append_records(ws, "web_events", table, source="stream:web_events")
    statuses = [x.status for x in ws.batches("web_events")]
    assert statuses == ["success", "success", "failed"]  # the interrupted one was reconciled
    assert ws.datasets.count("web_events") == 2 and b.rows_accepted == 1
    assert os.environ.get("WORKBENCH_FAILPOINT") is None
