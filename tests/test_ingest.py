"""Batch ingestion: every field type, every format, counts, quarantine, atomicity, duplicates."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench import Workspace
from workbench.errors import BatchFailedError, DuplicateBatchError, InputError, WorkbenchError

ALLTYPES = {
    "name": "alltypes",
    "class": "profile",
    "fields": [
        {
            "name": "id",
            "type": "string",
            "required": True,
            "identity": {"namespace": "crm_id", "primary": True},
        },
        {"name": "s", "type": "string", "pattern": "[A-Z]+"},
        {"name": "i", "type": "integer", "minimum": 0, "maximum": 100},
        {"name": "d", "type": "decimal", "minimum": 0},
        {"name": "b", "type": "boolean"},
        {"name": "dt", "type": "date"},
        {"name": "ts", "type": "timestamp"},
        {"name": "e", "type": "enum", "values": ["red", "green"]},
        {"name": "em", "type": "email", "identity": {"namespace": "email"}},
        {"name": "ph", "type": "phone", "identity": {"namespace": "phone"}},
        {"name": "arr", "type": "array<string>"},
        {"name": "updated_at", "type": "timestamp", "required": True},
    ],
}
COLS = [f["name"] for f in ALLTYPES["fields"]]
GOOD = {
    "id": "id1",
    "s": "ABC",
    "i": "5",
    "d": "12.5",
    "b": "yes",
    "dt": "2020-01-02",
    "ts": "2020-01-02T03:04:05Z",
    "e": "RED",
    "em": " A@B.com ",
    "ph": "(212) 555-0142",
    "arr": "a|b",
    "updated_at": "2026-01-01T00:00:00Z",
}
# (row overrides, field that must fail, reason fragment)
BAD = [
    ({"i": "x"}, "i", "not an integer"),
    ({"i": "-1"}, "i", "below the minimum 0"),
    ({"d": "abc"}, "d", "not a decimal number"),
    ({"b": "maybe"}, "b", "not a boolean"),
    ({"dt": "2023-02-30"}, "dt", "not a valid date"),
    ({"ts": "yesterday"}, "ts", "not a valid timestamp"),
    ({"e": "blue"}, "e", "not one of: red, green"),
    ({"em": "bad@"}, "em", "not a valid email address"),
    ({"ph": "12345"}, "ph", "not a possible phone number"),
    ({"arr": '["x", 1'}, "arr", "not an array of strings"),
    ({"s": "abc"}, "s", "does not match the pattern"),
    ({"id": ""}, "id", "required field is missing"),
    ({"i": "101"}, "i", "above the maximum 100"),
    ({"updated_at": "  "}, "updated_at", "required field is missing"),
]
GOOD2 = {**GOOD, "id": "id2", "arr": '["x", "y"]', "ph": "+44 20 7946 0958", "b": "0", "e": "green"}


def rows_all() -> list[dict[str, str]]:
    rows = [dict(GOOD)]
    for k, (over, _, _) in enumerate(BAD):
        rows.append({**GOOD, "id": f"bad{k}", **over})
    rows.append(dict(GOOD2))
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], cols: list[str] = COLS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def tws(empty_ws: Workspace) -> Workspace:
    empty_ws.schemas.add(ALLTYPES)
    empty_ws.datasets.create("things", "alltypes", profile_enabled=True)
    return empty_ws


def test_every_field_type_valid_and_invalid(tws: Workspace, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "things.csv", rows_all())
    r = tws.ingest("things", src, error_threshold=1.0)
    b = r.batch
    assert b.status == "success"
    assert b.rows_read == len(BAD) + 2
    assert b.rows_accepted == 2
    assert b.rows_rejected == len(BAD)
    assert b.rows_read == b.rows_accepted + b.rows_rejected

    t = tws.datasets.to_arrow("things").sort_by("id").to_pylist()
    one, two = t
    assert one["id"] == "id1"
    assert one["s"] == "ABC"
    assert one["i"] == 5
    assert one["d"] == Decimal("12.50")
    assert one["b"] is True
    assert one["dt"] == dt.date(2020, 1, 2)
    assert one["ts"] == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert one["e"] == "red"  # case-insensitive match, stored as declared
    assert one["em"] == "a@b.com"
    assert one["ph"] == "+12125550142"
    assert one["arr"] == ["a", "b"]
    assert one["_batch_id"] == b.id and one["_row"] == 1
    assert two["arr"] == ["x", "y"] and two["ph"] == "+442079460958" and two["b"] is False
    assert two["_row"] == len(BAD) + 2

    q = tws.datasets.quarantine("things", b.id).to_pylist()
    assert len(q) == len(BAD) == b.errors_recorded
    for k, (over, fld, reason) in enumerate(BAD):
        entry = q[k]
        assert entry["row"] == k + 2, entry
        assert entry["field"] == fld
        assert reason in entry["reason"]
        raw = over[fld]
        assert entry["value"] == (raw if raw.strip() else raw or None) or entry["value"] is None
        record = json.loads(entry["record"])
        assert record["id"] == (f"bad{k}" if fld != "id" else None) or record["id"] == ""
        assert entry["source"] == str(src)


def test_row_with_several_errors_is_one_rejected_row(tws: Workspace, tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "x.csv", [GOOD, {**GOOD, "id": "z", "i": "x", "dt": "nope", "em": "@"}]
    )
    b = tws.ingest("things", src, error_threshold=1.0).batch
    assert (b.rows_read, b.rows_accepted, b.rows_rejected, b.errors_recorded) == (2, 1, 1, 3)
    fields = sorted(r["field"] for r in tws.datasets.quarantine("things").to_pylist())
    assert fields == ["dt", "em", "i"]


def _good_frame() -> pd.DataFrame:
    return pd.DataFrame([GOOD, GOOD2])


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "pandas", "arrow", "typed_parquet"])
def test_each_format_gives_the_same_rows(tws: Workspace, tmp_path: Path, fmt: str) -> None:
    df = _good_frame()
    if fmt == "csv":
        src: object = write_csv(tmp_path / "a.csv", df.to_dict("records"))
    elif fmt == "parquet":
        src = tmp_path / "a.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), src)
    elif fmt == "jsonl":
        src = tmp_path / "a.jsonl"
        Path(src).write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")
    elif fmt == "pandas":
        src = df
    elif fmt == "arrow":
        src = pa.Table.from_pandas(df, preserve_index=False)
    else:  # native types instead of text
        typed = pa.table(
            {
                "id": ["id1", "id2"],
                "s": ["ABC", "ABC"],
                "i": pa.array([5, 5], pa.int32()),
                "d": [12.5, 12.5],
                "b": [True, False],
                "dt": [dt.date(2020, 1, 2)] * 2,
                "ts": pa.array([dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * 2),
                "e": ["RED", "green"],
                "em": [" A@B.com ", " A@B.com "],
                "ph": ["(212) 555-0142", "+44 20 7946 0958"],
                "arr": [["a", "b"], ["x", "y"]],
                "updated_at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 2),
            }
        )
        src = tmp_path / "typed.parquet"
        pq.write_table(typed, src)
    b = tws.ingest("things", src).batch
    assert (b.rows_read, b.rows_accepted, b.rows_rejected) == (2, 2, 0)
    got = (
        tws.datasets.to_arrow("things")
        .sort_by("id")
        .drop_columns(["_batch_id", "_row", "_ingested_at"])
    )
    got = got.to_pylist()
    assert got[0]["ph"] == "+12125550142" and got[1]["ph"] == "+442079460958"
    assert got[0]["em"] == "a@b.com" and got[0]["e"] == "red" and got[1]["e"] == "green"
    assert got[0]["arr"] == ["a", "b"] and got[1]["arr"] == ["x", "y"]
    assert got[0]["d"] == Decimal("12.50") and got[0]["i"] == 5
    assert got[0]["ts"] == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_jsonl_bad_lines_are_kept(tws: Workspace, tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        "[1, 2]",
        json.dumps({**GOOD, "id": "id9", "i": "x"}),
        json.dumps(GOOD2),
    ]
    src = tmp_path / "b.jsonl"
    src.write_text("\n".join(lines) + "\n")
    b = tws.ingest("things", src, error_threshold=1.0).batch
    assert (b.rows_read, b.rows_accepted, b.rows_rejected) == (5, 2, 3)
    q = tws.datasets.quarantine("things").to_pylist()
    assert [(r["row"], r["field"]) for r in q] == [(2, None), (3, None), (4, "i")]
    assert q[0]["value"] == "{not json" and "not a JSON object" in q[0]["reason"]


def test_unparsable_csv_rows_keep_their_row_numbers(tws: Workspace, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", [GOOD, GOOD2, {**GOOD, "id": "id3"}])
    text = src.read_text().splitlines()
    text.insert(2, "only,three,fields")  # becomes data row 2
    src.write_text("\n".join(text) + "\n")
    b = tws.ingest("things", src, error_threshold=1.0).batch
    assert (b.rows_read, b.rows_accepted, b.rows_rejected) == (4, 3, 1)
    rows = sorted(r["_row"] for r in tws.datasets.to_arrow("things").to_pylist())
    assert rows == [1, 3, 4]
    q = tws.datasets.quarantine("things").to_pylist()
    assert q[0]["row"] == 2 and q[0]["value"] == "only,three,fields"
    assert "expected 12 fields, found 3" in q[0]["reason"]


def test_missing_required_column_fails_whole_file_naming_it(tws: Workspace, tmp_path: Path) -> None:
    cols = [c for c in COLS if c != "updated_at"]
    src = write_csv(tmp_path / "nohdr.csv", [{k: GOOD[k] for k in cols}], cols)
    with pytest.raises(InputError) as ei:
        tws.ingest("things", src)
    assert "nohdr.csv" in str(ei.value) and "updated_at" in str(ei.value)
    assert tws.batches("things") == []


def test_unreadable_and_missing_files(tws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        tws.ingest("things", tmp_path / "nope.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: unreadable Parquet"):
        tws.ingest("things", broken)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty file"):
        tws.ingest("things", empty)
    with pytest.raises(InputError, match="cannot tell the format"):
        tws.ingest(
            "things", tmp_path / "nope.xyz" if (tmp_path / "nope.xyz").touch() is None else None
        )


def test_headers_are_matched_case_insensitively_and_extra_columns_reported(
    tws: Workspace, tmp_path: Path
) -> None:
    cols = [c.upper() for c in COLS] + ["junk"]
    row = {c.upper(): v for c, v in GOOD.items()} | {"junk": "x"}
    src = write_csv(tmp_path / "upper.csv", [row], cols)
    b = tws.ingest("things", src).batch
    assert b.rows_accepted == 1
    assert any("junk" in w for w in b.warnings)


def test_mapping_renames_columns(tws: Workspace, tmp_path: Path) -> None:
    cols = ["customer_id" if c == "id" else c for c in COLS]
    row = {("customer_id" if k == "id" else k): v for k, v in GOOD.items()}
    src = write_csv(tmp_path / "m.csv", [row], cols)
    b = tws.ingest("things", src, mapping={"customer_id": "id"}).batch
    assert b.rows_accepted == 1
    assert tws.datasets.to_arrow("things").column("id").to_pylist() == ["id1"]


def test_error_threshold_fails_batch_and_commits_nothing(tws: Workspace, tmp_path: Path) -> None:
    rows = [{**GOOD, "id": f"g{i}"} for i in range(18)] + [
        {**GOOD, "id": "b1", "i": "x"},
        {**GOOD, "id": "b2", "i": "y"},
    ]
    src = write_csv(tmp_path / "t.csv", rows)  # 10% rejected > 5%
    v0 = tws.datasets.version("things")
    with pytest.raises(BatchFailedError) as ei:
        tws.ingest("things", src)
    assert "10.0% of rows rejected (2 of 20)" in str(ei.value)
    assert "nothing was committed" in str(ei.value)
    assert tws.datasets.version("things") == v0
    assert tws.datasets.count("things") == 0
    b = tws.batches("things")[0]
    assert b.status == "failed" and b.rows_rejected == 2 and b.rows_accepted == 18
    assert tws.datasets.quarantine("things", b.id).num_rows == 2  # still inspectable
    # a higher threshold for this batch lets it through; the failed batch does not count as loaded
    ok = tws.ingest("things", src, error_threshold=0.2).batch
    assert ok.status == "success" and tws.datasets.count("things") == 18


def test_dataset_threshold_overrides_workspace(empty_ws: Workspace, tmp_path: Path) -> None:
    empty_ws.schemas.add(ALLTYPES)
    empty_ws.datasets.create("lenient", "alltypes", error_threshold=0.5)
    src = write_csv(tmp_path / "t.csv", [GOOD, {**GOOD, "id": "b", "i": "x"}, GOOD2])
    assert empty_ws.ingest("lenient", src).batch.rows_rejected == 1


def test_same_content_is_refused_unless_forced(tws: Workspace, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "d.csv", [GOOD])
    first = tws.ingest("things", src).batch
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(src.read_bytes())
    with pytest.raises(DuplicateBatchError, match=f"batch {first.id}"):
        tws.ingest("things", copy)
    assert tws.datasets.count("things") == 1
    forced = tws.ingest("things", copy, force=True).batch
    assert forced.forced and tws.datasets.count("things") == 2
    tws.ingest("things", _good_frame())  # DataFrames are hashed by content too
    with pytest.raises(DuplicateBatchError):
        tws.ingest("things", _good_frame())


def test_failure_before_commit_leaves_nothing_visible(
    tws: Workspace, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "a.csv", [GOOD, GOOD2])
    monkeypatch.setenv("WORKBENCH_FAILPOINT", "ingest.before_commit")
    with pytest.raises(WorkbenchError, match="failpoint"):
        tws.ingest("things", src)
    assert tws.datasets.count("things") == 0
    assert tws.batches("things")[0].status == "failed"
    monkeypatch.delenv("WORKBENCH_FAILPOINT")
    b = tws.ingest("things", src).batch
    assert b.status == "success" and tws.datasets.count("things") == 2


_CRASH = textwrap.dedent(
    """
    import sys
    from workbench import Workspace
    ws = Workspace.open(sys.argv[1])
    ws.ingest("things", sys.argv[2], error_threshold=0.5)
    """
)


@pytest.mark.parametrize(
    ("point", "committed"), [("ingest.before_commit", False), ("ingest.after_commit", True)]
)
def test_process_killed_mid_batch_is_reconciled(
    tws: Workspace, tmp_path: Path, point: str, committed: bool
) -> None:
    src = write_csv(tmp_path / "a.csv", [GOOD, GOOD2, {**GOOD, "id": "bad", "i": "x"}])
    env = {**os.environ, "WORKBENCH_FAILPOINT": f"{point}:exit"}
    p = subprocess.run(
        [sys.executable, "-c", _CRASH, str(tws.path), str(src)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 137, p.stderr
    assert tws.batches("things")[0].status == "loading"  # the crash left it there
    assert tws.datasets.count("things") == (2 if committed else 0)
    fixed = tws.ingest.reconcile("things")
    assert [b.status for b in fixed] == ["success" if committed else "failed"]
    if committed:
        b = fixed[0]
        assert (b.rows_read, b.rows_accepted, b.rows_rejected) == (3, 2, 1)
        with pytest.raises(DuplicateBatchError):  # converged: the file counts as loaded
            tws.ingest("things", src)
    else:
        b = tws.ingest("things", src, error_threshold=0.5).batch  # a re-run converges
        assert b.status == "success"
    assert tws.datasets.count("things") == 2


def test_readers_keep_their_snapshot_while_a_batch_commits(tws: Workspace, tmp_path: Path) -> None:
    tws.ingest("things", write_csv(tmp_path / "1.csv", [GOOD]))
    snap = tws.datasets.snapshot("things")
    v = tws.datasets.version("things")
    tws.ingest("things", write_csv(tmp_path / "2.csv", [GOOD2]))
    assert snap.count_rows() == 1  # the reader's snapshot is unchanged
    assert tws.datasets.count("things") == 2
    assert tws.datasets.to_arrow("things", version=v).num_rows == 1  # time travel


def test_schema_evolution_adds_a_column_to_the_table(tws: Workspace, tmp_path: Path) -> None:
    tws.ingest("things", write_csv(tmp_path / "1.csv", [GOOD]))
    tws.schemas.add(
        {**ALLTYPES, "fields": [*ALLTYPES["fields"], {"name": "nickname", "type": "string"}]}
    )
    src = write_csv(tmp_path / "2.csv", [{**GOOD2, "nickname": "Zed"}], [*COLS, "nickname"])
    b = tws.ingest("things", src).batch
    assert b.schema_version == 2
    t = tws.datasets.to_arrow("things").sort_by("id").to_pylist()
    assert [r["nickname"] for r in t] == [None, "Zed"]


def test_default_fills_a_missing_column(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "pos.csv"
    src.write_text(
        "order_id,timestamp,loyalty_id,email,phone,store_id,total,items\n"
        "O1,2026-11-01T10:00:00Z,L1,,,S001,10.00,1\n"
        "O2,2026-11-01T11:00:00Z,,,,S001,-5.00,1\n"
    )
    b = ws.ingest("pos_orders", src, error_threshold=1.0).batch
    assert (b.rows_accepted, b.rows_rejected) == (1, 1)
    assert ws.datasets.to_arrow("pos_orders").column("event_type").to_pylist() == ["purchase"]
    q = ws.datasets.quarantine("pos_orders").to_pylist()
    assert q[0]["field"] == "total" and "below the minimum 0" in q[0]["reason"]


def test_sql_over_datasets(tws: Workspace, tmp_path: Path) -> None:
    tws.ingest("things", write_csv(tmp_path / "1.csv", [GOOD, GOOD2]))
    assert tws.sql("select count(*) as n from things").column("n").to_pylist() == [2]
