"""The ``workbench`` command, run as a user runs it (the installed console script)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.sample.brand import schema_dir

EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [EXE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


CRM = (
    "crm_id,email,phone,first_name,last_name,birth_date,city,country,postal_code,loyalty_id,"
    "consent_email,consent_sms,consent_ads,updated_at\n"
    "C1,ana@example.com,(212) 555-0142,Ana,Lima,1990-02-03,NYC,US,10001,L1,true,false,true,2026-10-01T10:00:00Z\n"
    "C2,bob@,212-555-0199,Bob,Stone,1985-07-01,Boston,US,02101,,false,true,false,2026-10-02T10:00:00Z\n"
)


def test_cli_walkthrough(tmp_path: Path) -> None:
    w = ["-w", str(tmp_path / "ws")]
    r = wb("init", str(tmp_path / "ws"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "created workspace" in r.stdout
    r = wb("schema", "add", str(schema_dir()), *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "schema crm_customer created (version 1" in r.stdout
    r = wb("schema", "add", str(schema_dir() / "crm_customer.yaml"), *w, cwd=tmp_path)
    assert "schema crm_customer unchanged (version 1" in r.stdout
    r = wb("schema", "list", *w, cwd=tmp_path)
    assert "crm_customer" in r.stdout and "email:email" in r.stdout
    r = wb("schema", "show", "crm_customer", *w, cwd=tmp_path)
    assert "crm_id (primary)" in r.stdout
    r = wb("schema", "show", "crm_customer", "--yaml", *w, cwd=tmp_path)
    assert r.stdout.startswith("name: crm_customer")
    r = wb(
        "dataset",
        "create",
        "crm",
        "--schema",
        "crm_customer",
        "--profile",
        "--error-threshold",
        "0.6",
        *w,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    (tmp_path / "crm.csv").write_text(CRM)
    r = wb("ingest", "crm", str(tmp_path / "crm.csv"), *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "read 2, accepted 1, rejected 1" in r.stdout
    r = wb("batches", *w, cwd=tmp_path)
    assert "crm.csv" in r.stdout and "success" in r.stdout
    r = wb("quarantine", "crm", *w, cwd=tmp_path)
    assert "not a valid email address" in r.stdout and "bob@" in r.stdout
    r = wb("quarantine", "crm", "--summary", *w, cwd=tmp_path)
    assert "email" in r.stdout
    r = wb("dataset", "list", *w, cwd=tmp_path)
    assert "crm" in r.stdout
    r = wb("namespace", "add", "app_user", "--unique", "--priority", "95", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = wb("namespace", "list", *w, cwd=tmp_path)
    assert "app_user" in r.stdout and "ecid" in r.stdout
    r = wb("namespace", "add", "app_user", *w, cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr

    # errors: one line, exit code 2, no traceback
    r = wb("ingest", "crm", str(tmp_path / "crm.csv"), *w, cwd=tmp_path)
    assert r.returncode == 2
    assert "already loaded" in r.stderr and "Traceback" not in r.stderr
    r = wb("ingest", "nope", str(tmp_path / "crm.csv"), *w, cwd=tmp_path)
    assert (
        r.returncode == 2 and "no dataset named 'nope'" in r.stderr and "Traceback" not in r.stderr
    )
    r = wb("ingest", "crm", str(tmp_path / "missing.csv"), *w, cwd=tmp_path)
    assert r.returncode == 2 and "missing.csv: file not found" in r.stderr
    r = wb("schema", "list", "-w", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2 and "not a workspace" in r.stderr


def test_cli_batch_over_threshold_exits_2(tmp_path: Path) -> None:
    w = ["-w", str(tmp_path / "ws")]
    assert wb("init", str(tmp_path / "ws"), cwd=tmp_path).returncode == 0
    assert wb("schema", "add", str(schema_dir()), *w, cwd=tmp_path).returncode == 0
    assert (
        wb("dataset", "create", "crm", "--schema", "crm_customer", *w, cwd=tmp_path).returncode == 0
    )
    (tmp_path / "crm.csv").write_text(CRM)
    r = wb("ingest", "crm", str(tmp_path / "crm.csv"), *w, cwd=tmp_path)
    assert r.returncode == 2
    assert "50.0% of rows rejected (1 of 2)" in r.stderr and "Traceback" not in r.stderr


def test_cli_invalid_schema_lists_problems(tmp_path: Path) -> None:
    assert wb("init", str(tmp_path / "ws"), cwd=tmp_path).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nclass: event\nfields:\n  - {name: x, type: money}\n")
    r = wb("schema", "add", str(bad), "-w", str(tmp_path / "ws"), cwd=tmp_path)
    assert r.returncode == 2
    assert "fields[0].type: unknown type 'money'" in r.stderr


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_cli_help(tmp_path: Path, args: list[str]) -> None:
    assert wb(*args, cwd=tmp_path).returncode == 0


def test_cli_demo_then_identity_and_profiles(tmp_path: Path) -> None:
    w = ["-w", str(tmp_path / "ws")]
    r = wb("demo", "--persons", "1500", "--sample-dir", str(tmp_path / "sample"), *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "crm_customers.csv" in r.stdout and "web_events.parquet" in r.stdout
    assert "workbench quarantine" in r.stdout
    r = wb("identity", "build", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "profiles (clusters)" in r.stdout and "links cut" in r.stdout
    r = wb("profile", "build", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr and "profiles (timestamp)" in r.stdout
    r = wb("profile", "show", "--identity", "crm_id:C00000001", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "attributes" in r.stdout and "crm_customers" in r.stdout and "recent events" in r.stdout
    r = wb("identity", "explain", "crm_id:C00000001", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr and "is in profile" in r.stdout
    r = wb("identity", "evaluate", "--truth", str(tmp_path / "sample" / "truth"), *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "precision" in r.stdout and "persons_fused" in r.stdout
    r = wb("profile", "show", "--identity", "crm_id:NOBODY", *w, cwd=tmp_path)
    assert r.returncode == 2 and "no profile for crm_id:NOBODY" in r.stderr


def test_cli_segments(tmp_path: Path) -> None:
    w = ["-w", str(tmp_path / "ws")]
    segs = str(Path(__file__).parents[1] / "segments")
    r = wb(
        "demo", "--persons", "1500", "--sample-dir", str(tmp_path / "sample"),
        "--segments-dir", segs, *w, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "segment run 1 as of 2026-12-01T00:00:00+00:00" in r.stdout
    assert "cart_abandoners_24h" in r.stdout and "streaming" in r.stdout
    r = wb("segment", "validate", segs, *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "valid definition(s)" in r.stdout
    r = wb("segment", "list", *w, cwd=tmp_path)
    assert r.returncode == 0 and "high_value_loyalty" in r.stdout
    r = wb("segment", "show", "vip_at_risk", "--as-of", "2026-12-01T00:00Z", *w, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "method: batch" in r.stdout and "depends on: high_value_loyalty" in r.stdout
    assert "SELECT" in r.stdout and "2026-10-02T00:00:00+00:00" in r.stdout  # 60d before as_of
    r = wb(
        "segment", "count", "known_never_bought", "--as-of", "2026-12-01T00:00Z", *w, cwd=tmp_path
    )
    assert r.returncode == 0 and "known_never_bought:" in r.stdout and "profiles" in r.stdout
    r = wb(
        "segment",
        "estimate",
        "known_never_bought",
        "--as-of",
        "2026-12-01T00:00Z",
        *w,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "exact" in r.stdout  # 1,500 persons: the sample is everyone
    r = wb(
        "segment",
        "run",
        "--as-of",
        "2026-12-02T00:00Z",
        "--segments",
        "vip_at_risk",
        *w,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "2 segments" in r.stdout and "high_value_loyalty" in r.stdout  # dependency included
    r = wb("segment", "members", "high_value_loyalty", *w, cwd=tmp_path)
    assert r.returncode == 0 and "existing" in r.stdout
    r = wb("segment", "history", "high_value_loyalty", *w, cwd=tmp_path)
    assert r.returncode == 0 and "2026-12-01" in r.stdout and "2026-12-02" in r.stdout
    r = wb("segment", "runs", *w, cwd=tmp_path)
    assert r.returncode == 0 and "success" in r.stdout
    r = wb("segment", "run", "--as-of", "2026-11-01T00:00Z", *w, cwd=tmp_path)
    assert r.returncode == 2 and "before the last successful run" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nrule:\n  all:\n  - {attribute: tier, op: eq, value: gold}\n  - {events: {type: purchase, within: 30 days}}\n"
    )
    r = wb("segment", "validate", str(bad), *w, cwd=tmp_path)
    assert r.returncode == 2
    assert "rule.all[1].events.within" in r.stderr
    r = wb("profile", "show", "--identity", "crm_id:C00000001", *w, cwd=tmp_path)
    assert r.returncode == 0 and ("segment memberships" in r.stdout)


def test_cli_activation(tmp_path: Path) -> None:
    w = ["-w", str(tmp_path / "ws")]
    root = Path(__file__).parents[1]
    r = wb(
        "demo", "--persons", "1500", "--sample-dir", str(tmp_path / "sample"),
        "--segments-dir", str(root / "segments"), "--destinations-dir", str(root / "destinations"),
        *w, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "activations (files under" in r.stdout and "blocked by governance" in r.stdout
    assert list((tmp_path / "ws" / "exports" / "email").glob("newsletter_email_*.csv"))
    r = wb("activate", "list", *w, cwd=tmp_path)
    assert r.returncode == 0 and "newsletter_email" in r.stdout and "daily 06:30" in r.stdout
    r = wb(
        "activate",
        "preview",
        "ads_customer_match",
        "vip_at_risk",
        "--as-of",
        "2026-12-01T00:00Z",
        *w,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "eligible" in r.stdout and "first rows, as they will be written" in r.stdout
    r = wb("activate", "run", "newsletter_email", "--as-of", "2026-12-01T00:00Z", *w, cwd=tmp_path)
    assert r.returncode == 0 and "already_delivered" in r.stdout
    r = wb("activate", "status", *w, cwd=tmp_path)
    assert r.returncode == 0 and "success" in r.stdout and "blocked" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ntype: social\nconnection: {url: out, password: x}\nsegments: [vip_at_risk]\n"
        "mapping: {birth_date: dob}\n"
    )
    r = wb("activate", "add", str(bad), *w, cwd=tmp_path)
    assert r.returncode == 2
    assert "connection.password" in r.stderr
