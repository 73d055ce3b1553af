"""Activation to file destinations, on the hand-made brand of test_segments (answers by hand).

Members at 2026-12-01T00:00Z of the segments used here:
* ``gold_or_platinum``: C1 (gold, email ana@x.com, phone +12025550101, consent email/sms/ads
  true), C2 (platinum, bo@x.com, no phone, consent email false, ads true);
* ``viewers_3d`` (page view in the last 3 days): C1, C3 at 12-01; C1, C2, C3 at 12-03T15:00;
  C2 at 12-04.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.test_segments import _data
from workbench.errors import ValidationError, WorkbenchError
from workbench.segments import attr, events, segment

AS_OF = "2026-12-01T00:00Z"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def aws(tmp_path):  # type: ignore[no-untyped-def]
    """The hand-made brand with segments evaluated at 12-01, 12-03T15:00 and 12-04."""
    from workbench import Workspace
    from workbench.sample.brand import register

    ws = Workspace.create(tmp_path / "ws")
    register(ws)
    data = _data()
    crm = data["crm_customers"]
    crm.loc[0, "email"] = "  Ana@X.com "  # normalized at ingestion: ana@x.com
    for name, df in data.items():
        ws.ingest(name, df)
    ws.identity.build()
    ws.profiles.build()
    ws.segments.add(
        [
            segment("gold_or_platinum", attr("tier").isin(["gold", "platinum"])),
            segment("viewers_3d", events("page_view").within("3d")),
            segment("young", attr("birth_date").age() < 30),
        ]
    )
    ws.segments.run(AS_OF)
    ws.ids = {f"C{i}": ws.identity.lookup(f"crm_id:C{i}") for i in range(1, 6)}  # type: ignore[attr-defined]
    yield ws
    ws.close()


def dest(name: str, type_: str, url: Path | str, segments: list[str], **kw: object) -> dict:
    return {
        "name": name,
        "type": type_,
        "connection": {"url": str(url), **kw.pop("conn", {})},
        "segments": segments,
        **kw,
    }  # type: ignore[dict-item]


def read_csv(p: str | Path) -> pd.DataFrame:
    return pd.read_csv(p, dtype=str, keep_default_na=False)


def test_email_export_clear_normalized_email_with_consent(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "esp"
    aws.activation.add(
        dest(
            "esp",
            "email",
            out,
            ["gold_or_platinum"],
            mapping={"first_name": "first_name", "tier": "tier"},
        )
    )
    (r,) = aws.activation.run("esp", AS_OF)
    assert r.status == "success"
    assert (r.counts.eligible, r.counts.exported, r.counts.skipped_no_consent) == (2, 1, 1)
    f = out / "esp_gold_or_platinum_20261201_000000.csv"
    df = read_csv(f)
    assert list(df.columns) == ["email", "first_name", "tier"]
    assert df.to_dict("records") == [{"email": "ana@x.com", "first_name": "Ana", "tier": "gold"}]
    man = json.loads((out / "esp_gold_or_platinum_20261201_000000.manifest.json").read_text())
    assert man["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert man["files"][0]["rows"] == 1 and man["as_of"] == "2026-12-01T00:00:00+00:00"
    assert man["segment_version"] == 1 and man["counts"]["skipped_no_consent"] == 1
    # the same activation again delivers nothing new and says so
    (again,) = aws.activation.run("esp", AS_OF)
    assert again.status == "already_delivered" and again.id == r.id
    assert sorted(p.name for p in out.iterdir()) == [
        f.name,
        man["files"][0]["name"].replace(".csv", ".manifest.json"),
    ]
    st = aws.activation.status("esp")
    assert [(a.status, a.counts["exported"]) for a in st] == [("success", 1)]


def test_sms_export_e164_phone_with_sms_consent(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    aws.activation.add(dest("sms", "sms", tmp_path / "sms", ["gold_or_platinum"]))
    (r,) = aws.activation.run("sms", AS_OF)
    # C1 has a phone and sms consent; C2 has no phone
    assert (r.counts.exported, r.counts.skipped_no_identity) == (1, 1)
    assert read_csv(r.files[0]["path"]).to_dict("records") == [{"phone": "+12025550101"}]


def test_social_and_advertising_hash_normalized_identities(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    aws.activation.add(dest("social", "social", tmp_path / "soc", ["gold_or_platinum"]))
    aws.activation.add(dest("ads", "advertising", tmp_path / "ads", ["gold_or_platinum"]))
    (s,) = aws.activation.run("social", AS_OF)
    (a,) = aws.activation.run("ads", AS_OF)
    # known SHA-256 of the normalized values (email trimmed + lower-cased; phone E.164)
    assert sha("ana@x.com") == "03fded36e5de3aa5574b74c9f74a86c85dc60a352799efe57ff1b69faee05d13"
    assert sha("12025550101") == "67e7a951e6becf971320de27eff89a398fa38fa98bc797868234a06a48b8e9bf"
    social = read_csv(s.files[0]["path"]).sort_values("email").to_dict("records")
    assert social == sorted(
        [
            {"email": sha("ana@x.com"), "phone": sha("12025550101")},  # digits, no '+'
            {"email": sha("bo@x.com"), "phone": ""},
        ],
        key=lambda r: r["email"],
    )
    ads = read_csv(a.files[0]["path"])
    assert list(ads.columns) == ["Email", "Phone"]
    assert set(ads["Phone"]) == {sha("+12025550101"), ""}
    for path in (s.files[0]["path"], a.files[0]["path"]):
        text = Path(path).read_text()
        assert "ana@x.com" not in text and "+1202" not in text
    # the preview shows hashes, never clear values
    p = aws.activation.preview("ads", "gold_or_platinum", AS_OF)
    assert (p.counts.eligible, p.counts.exported) == (2, 2)
    assert "ana@x.com" not in p.rows.to_string()
    assert set(p.rows["Email"]) == {sha("ana@x.com"), sha("bo@x.com")}


def test_governance_refuses_a_forbidden_mapping_at_configuration_time(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as e:
        aws.activation.add(
            dest(
                "soc2",
                "social",
                tmp_path / "x",
                ["gold_or_platinum"],
                mapping={"birth_date": "dob"},
            )
        )
    assert any(
        p.path == "mapping.birth_date"
        and "'birth_date' is labelled C5" in p.message
        and "'interest_targeting'" in p.message
        for p in e.value.problems
    ), e.value.problems
    assert "soc2" not in {d.name for d in aws.activation.list()}


def test_a_segment_using_a_forbidden_field_is_blocked(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    aws.activation.add(dest("soc3", "social", tmp_path / "soc3", ["young", "gold_or_platinum"]))
    res = {r.segment: r for r in aws.activation.run("soc3", AS_OF)}
    assert res["young"].status == "blocked" and res["young"].counts.blocked == 2  # C1, C3
    assert "birth_date (C5)" in (res["young"].error or "")
    assert res["gold_or_platinum"].status == "success"
    assert not list((tmp_path / "soc3").glob("*young*"))
    p = aws.activation.preview("soc3", "young", AS_OF)
    assert p.blocked_by == ["birth_date (C5)"] and p.rows.empty


def test_consent_policy_can_allow_unknown(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # C4 (bronze) has consent_email unknown; C1..C5 with email: C1 y, C2 n, C3 y, C5 y
    aws.segments.add(segment("everyone_known", attr("first_name").exists()))
    aws.segments.run("2026-12-01T00:00:01Z")
    aws.activation.add(
        dest(
            "f",
            "file",
            tmp_path / "f",
            ["everyone_known"],
            identities=["crm_id"],
            consent={"attribute": "consent_email", "allow": ["y", "unknown"]},
        )
    )
    (r,) = aws.activation.run("f", "2026-12-01T00:00:01Z")
    got = set(read_csv(r.files[0]["path"])["crm_id"])
    assert got == {"C1", "C3", "C4", "C5"} and r.counts.skipped_no_consent == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_file_drop_formats(aws, tmp_path, fmt) -> None:  # type: ignore[no-untyped-def]
    aws.activation.add(
        dest(
            "drop",
            "file",
            tmp_path / "drop",
            ["gold_or_platinum"],
            conn={"format": fmt},
            consent="none",
            mapping={"tier": "tier", "points": "points"},
        )
    )
    (r,) = aws.activation.run("drop", AS_OF)
    path = r.files[0]["path"]
    assert path.endswith(f".{fmt}")
    if fmt == "csv":
        rows = read_csv(path).to_dict("records")
    elif fmt == "parquet":
        rows = pq.read_table(path).to_pandas().astype(str).to_dict("records")
    else:
        rows = [
            {k: str(v) for k, v in json.loads(line).items()}
            for line in Path(path).read_text().splitlines()
        ]
    assert sorted(rows, key=lambda x: x["crm_id"]) == [
        {"crm_id": "C1", "tier": "gold", "points": "12000"},
        {"crm_id": "C2", "tier": "platinum", "points": "30000"},
    ]


def test_full_and_incremental_across_three_segment_runs(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    aws.activation.add(dest("full", "file", tmp_path / "full", ["viewers_3d"], consent="none"))
    aws.activation.add(
        dest("inc", "file", tmp_path / "inc", ["viewers_3d"], consent="none", mode="incremental")
    )
    seen_full, seen_inc = [], []
    for when in ("2026-12-01T00:00Z", "2026-12-03T15:00Z", "2026-12-04T00:00Z"):
        if when != AS_OF:
            aws.segments.run(when)
        (f,) = aws.activation.run("full", when)
        (i,) = aws.activation.run("inc", when)
        seen_full.append(sorted(read_csv(f.files[0]["path"])["crm_id"]))
        df = read_csv(i.files[0]["path"])
        seen_inc.append(sorted(zip(df["crm_id"], df["action"], strict=True)))
    # full files never contain exited profiles
    assert seen_full == [["C1", "C3"], ["C1", "C2", "C3"], ["C2"]]
    # incremental: a back-fill first, then only what changed (realized = add, exited = remove)
    assert seen_inc == [
        [("C1", "add"), ("C3", "add")],
        [("C2", "add")],
        [("C1", "remove"), ("C3", "remove")],
    ]
    modes = [a.mode for a in aws.activation.status("inc")]
    assert modes == ["incremental", "incremental", "backfill"]


def test_large_exports_are_split_into_numbered_parts(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    aws.segments.add(segment("all_named", attr("first_name").exists()))
    aws.segments.run("2026-12-01T00:00:02Z")
    aws.activation.add(
        dest(
            "split", "file", tmp_path / "split", ["all_named"], consent="none", max_rows_per_file=2
        )
    )
    (r,) = aws.activation.run("split", "2026-12-01T00:00:02Z")
    names = [f["name"] for f in r.files]
    assert names == [
        "split_all_named_20261201_000002.csv",
        "split_all_named_20261201_000002_2.csv",
        "split_all_named_20261201_000002_3.csv",
    ]
    assert [f["rows"] for f in r.files] == [2, 2, 1]
    ids = [x for f in r.files for x in read_csv(f["path"])["crm_id"]]
    assert sorted(ids) == ["C1", "C2", "C3", "C4", "C5"]
    man = json.loads(Path(r.manifest or "").read_text())
    for f in man["files"]:
        assert (
            hashlib.sha256((tmp_path / "split" / f["name"]).read_bytes()).hexdigest() == f["sha256"]
        )


def test_crash_before_rename_leaves_no_visible_file_and_rerun_completes(
    aws, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "crash"
    aws.activation.add(dest("crash", "file", out, ["gold_or_platinum"], consent="none"))
    monkeypatch.setenv("WORKBENCH_FAILPOINT", "activation.before_rename")
    with pytest.raises(WorkbenchError, match="failpoint"):
        aws.activation.run("crash", AS_OF)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
    assert aws.activation.status("crash")[0].status == "failed"
    monkeypatch.delenv("WORKBENCH_FAILPOINT")
    (r,) = aws.activation.run("crash", AS_OF)
    assert r.status == "success"
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == [
        "crash_gold_or_platinum_20261201_000000.csv",
        "crash_gold_or_platinum_20261201_000000.manifest.json",
    ]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_secrets_are_never_inline_and_never_logged(aws, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ValidationError, match=r"connection.password: secrets are never written inline"
    ):
        aws.activation.add(
            dest("bad", "file", tmp_path, ["gold_or_platinum"], conn={"password": "hunter2"})
        )
    monkeypatch.setenv("MY_S3_SECRET", "s3cr3t-value-123")
    aws.activation.add(
        dest(
            "s3x",
            "file",
            "s3://bucket/prefix",
            ["gold_or_platinum"],
            conn={"secret_key_env": "MY_S3_SECRET", "access_key_env": "MY_S3_SECRET"},
        )
    )
    assert "s3cr3t" not in json.dumps(aws.catalog.get_destination("s3x"))
    caplog.set_level(logging.DEBUG)
    aws.activation.add(dest("esp2", "email", tmp_path / "e2", ["gold_or_platinum"]))
    aws.activation.run("esp2", AS_OF)
    assert "s3cr3t-value-123" not in caplog.text


def test_unknown_segment_or_attribute_is_a_configuration_error(aws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as e:
        aws.activation.add(dest("x", "email", tmp_path, ["nope"], mapping={"tierr": "tier"}))
    paths = {p.path for p in e.value.problems}
    assert paths == {"segments[0]", "mapping.tierr"}
    with pytest.raises(ValidationError, match=r"schedule.daily_at: '25:00' is not a time"):
        aws.activation.add(
            dest("x", "email", tmp_path, ["gold_or_platinum"], schedule={"daily_at": "25:00"})
        )


def test_sample_destinations_are_valid(tmp_path) -> None:
    from workbench.activation import load_folder

    ds = load_folder(Path(__file__).parents[1] / "destinations")
    assert {d.type for d in ds} >= {"email", "sms", "social", "advertising", "file"}


@pytest.mark.sftp
def test_sftp_file_drop_against_the_real_server(aws, sftp_server) -> None:  # type: ignore[no-untyped-def]
    sub = sftp_server.root / "act"
    url = f"sftp://{sftp_server.username}@{sftp_server.host}:{sftp_server.port}{sub}"
    aws.activation.add(
        dest(
            "sftp_drop",
            "file",
            url,
            ["gold_or_platinum"],
            consent="none",
            conn={"key_file": str(sftp_server.key_file)},
        )
    )
    (r,) = aws.activation.run("sftp_drop", AS_OF)
    assert r.status == "success"
    local = sub / "sftp_drop_gold_or_platinum_20261201_000000.csv"
    assert sorted(read_csv(local)["crm_id"]) == ["C1", "C2"]
    man = json.loads((sub / "sftp_drop_gold_or_platinum_20261201_000000.manifest.json").read_text())
    assert man["files"][0]["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert not [p for p in sub.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_s3_file_drop(aws, s3_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_S3_KEY", s3_server.key)
    monkeypatch.setenv("TEST_S3_SECRET", s3_server.secret)
    aws.activation.add(
        dest(
            "s3_drop", "file", f"s3://{s3_server.bucket}/activation-test", ["gold_or_platinum"],
            consent="none",
            conn={
                "format": "parquet", "endpoint_url": s3_server.endpoint_url, "region": s3_server.region,
                "access_key_env": "TEST_S3_KEY", "secret_key_env": "TEST_S3_SECRET",
            },
        )
    )  # fmt: skip
    (r,) = aws.activation.run("s3_drop", AS_OF)
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    key = f"{s3_server.bucket}/activation-test/s3_drop_gold_or_platinum_20261201_000000.parquet"
    with fs.open(key, "rb") as f:
        assert sorted(pq.read_table(f).column("crm_id").to_pylist()) == ["C1", "C2"]
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{s3_server.bucket}/activation-test"))
    assert names == [
        "s3_drop_gold_or_platinum_20261201_000000.manifest.json",
        "s3_drop_gold_or_platinum_20261201_000000.parquet",
    ]
    assert r.files[0]["path"] == key
    # the destination stores where the secrets come from, never their values
    assert (
        aws.catalog.get_destination("s3_drop")["connection"]["secret_key_env"] == "TEST_S3_SECRET"
    )
