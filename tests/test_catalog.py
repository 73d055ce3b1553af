"""The catalog works the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import Workspace
from workbench.errors import AlreadyExistsError, ConfigError, NotFoundError, SchemaConflictError
from workbench.sample.brand import SAMPLE_DATASETS, register
from workbench.settings import CATALOG_URL_ENV, WorkspaceSettings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cat.db'}"
    return request.getfixturevalue("fresh_postgres_db")


CRM = (
    "crm_id,email,phone,first_name,last_name,birth_date,city,country,postal_code,loyalty_id,"
    "consent_email,consent_sms,consent_ads,updated_at\n"
    "C1, Ana.Lima@Example.com ,(212) 555-0142,Ana,Lima,1990-02-03,New York,US,10001,L1,true,false,true,2026-10-01T10:00:00Z\n"
    "C2,bob@example.com,212-555-0199,Bob,Stone,1985-07-01,Boston,US,02101,,false,true,false,2026-10-02T10:00:00Z\n"
)


def test_workspace_round_trip_on_each_catalog(catalog_url: str, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", catalog_url=catalog_url)
    assert ws.catalog.backend == catalog_url.split(":")[0].split("+")[0]
    register(ws)
    register(ws)  # idempotent
    src = tmp_path / "crm.csv"
    src.write_text(CRM)
    b = ws.ingest("crm_customers", src).batch
    assert (b.status, b.rows_read, b.rows_accepted, b.rows_rejected) == ("success", 2, 2, 0)
    assert b.started_at is not None and b.started_at.tzinfo is not None
    ws.close()

    again = Workspace.open(tmp_path / "ws")
    assert {d.name for d in again.datasets.list()} == {d.name for d in SAMPLE_DATASETS}
    assert again.batches("crm_customers")[0].id == b.id
    assert again.catalog.find_loaded("crm_customers", b.content_hash) is not None
    assert [v for v, *_ in again.catalog.table_versions("dataset/crm_customers")] == [0, 1]
    s = again.schemas.get("crm_customer")
    with pytest.raises(SchemaConflictError):
        again.schemas.add(
            {**s.to_dict(), "fields": [f.to_dict() for f in s.fields if f.name != "city"]}
        )
    evolved = again.schemas.add(
        {
            **s.to_dict(),
            "fields": [
                *(f.to_dict() for f in s.fields),
                {"name": "segment_hint", "type": "string"},
            ],
        }
    )
    assert evolved.version == 2
    with pytest.raises(AlreadyExistsError):
        again.datasets.create("crm_customers", "loyalty_member")
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        again.datasets.get("nope")
    # identity and profile builds record their watermark and figures in the same catalog
    st = again.identity.build()
    assert st.profiles == 2
    last = again.catalog.last_build("identity")
    assert (
        last is not None
        and last.watermark == {"crm_customers": b.id}
        and last.stats["profiles"] == 2
    )
    again.profiles.build()
    assert again.profiles.get("phone:(212) 555-0142").attributes["city"] == "New York"
    assert [x.kind for x in again.catalog.list_builds()] == ["profiles", "identity"]
    # segments, their runs and per-run results live in the same catalog
    from workbench.segments import attr, segment

    again.segments.add(segment("ny", attr("city") == "New York", description="d"))
    again.segments.add(segment("ny", attr("city").isin(["New York", "Boston"])))
    assert again.segments.info("ny").version == 2
    run = again.segments.run("2026-12-01T00:00Z")
    assert [(r.segment, r.size, r.realized) for r in run.results] == [("ny", 2, 2)]
    run2 = again.segments.run("2026-12-02T00:00Z")
    assert [(r.segment, r.size, r.existing) for r in run2.results] == [("ny", 2, 2)]
    assert list(again.segments.history("ny")["size"]) == [2, 2]
    assert again.segments.runs()[0].as_of.isoformat() == "2026-12-02T00:00:00+00:00"
    # destinations, activations (with JSON counts and files) and job runs too
    again.activation.add(
        {
            "name": "drop", "type": "file", "connection": {"url": str(tmp_path / "out")},
            "segments": ["ny"], "consent": "none", "mode": "incremental",
        }
    )  # fmt: skip
    (act,) = again.activation.run("drop", "2026-12-02T00:00Z")
    assert (act.status, act.mode, act.counts.exported) == ("success", "backfill", 2)
    (again_act,) = again.activation.run("drop", "2026-12-02T00:00Z")
    assert again_act.status == "already_delivered"
    st = again.activation.status("drop")
    assert [(a.status, a.counts["exported"], len(a.files)) for a in st] == [("success", 2, 1)]
    from workbench.catalog.models import JobRunRow

    with again.catalog.session() as s:
        s.add(
            JobRunRow(
                job="export", slot="2026-12-02T00:00:00Z", parameters={"a": 1}, status="success"
            )
        )
    assert [r.slot for r in again.jobs.list()] == ["2026-12-02T00:00:00Z"]
    again.close()


@pytest.mark.postgres
def test_catalog_url_from_environment(fresh_postgres_db: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(CATALOG_URL_ENV, fresh_postgres_db)
    ws = Workspace.create(tmp_path / "ws")
    assert ws.catalog.backend == "postgresql"
    assert (
        "catalog_url: ''" in (tmp_path / "ws" / "workbench.yaml").read_text()
    )  # not written to the file
    ws.close()


def test_bad_catalog_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach catalog"):
        Workspace.create(
            tmp_path / "ws", catalog_url="postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
        )
    # the password never appears in the message
    try:
        Workspace.create(
            tmp_path / "ws2", catalog_url="postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
        )
    except ConfigError as e:
        assert "secret" not in str(e)


def test_open_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a workspace"):
        Workspace.open(tmp_path / "none")


def test_create_refuses_existing(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws").close()
    with pytest.raises(AlreadyExistsError):
        Workspace.create(tmp_path / "ws")
    Workspace.create(tmp_path / "ws", exist_ok=True).close()


def test_settings_round_trip_and_validation() -> None:
    s = WorkspaceSettings(name="x", default_region="gb", error_threshold=0.1)
    again = WorkspaceSettings.from_dict(s.to_dict())
    assert again.default_region == "GB" and again.error_threshold == 0.1
    from workbench.errors import ValidationError

    with pytest.raises(ValidationError) as ei:
        WorkspaceSettings.from_dict({"error_threshold": 2, "default_region": "USA", "colour": 1})
    paths = {p.path for p in ei.value.problems}
    assert paths == {"error_threshold", "default_region", "colour"}


def test_copied_or_moved_workspace_uses_its_own_tables(tmp_path: Path) -> None:
    """Dataset tables are kept relative to the lake: a copy writes to its own tables, and a
    catalog written with absolute paths (older versions) still finds this workspace's."""
    import shutil
    import sqlite3

    import pandas as pd

    src = Workspace.create(tmp_path / "a")
    register(src)
    rows = pd.DataFrame(
        {"crm_id": ["C1"], "email": ["ana@example.com"], "updated_at": ["2026-11-01T00:00:00Z"]}
    )
    src.ingest("crm_customers", rows)
    src.close()
    with sqlite3.connect(tmp_path / "a" / "catalog.db") as c:
        stored = dict(c.execute("SELECT name, table_path FROM datasets").fetchall())
    assert stored["crm_customers"] == "datasets/crm_customers"

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = Workspace.open(tmp_path / "b")
    assert copy.datasets.get("crm_customers").table_path == str(
        (tmp_path / "b").resolve() / "lake" / "datasets" / "crm_customers"
    )
    copy.ingest("crm_customers", rows.assign(crm_id=["C2"]))
    assert copy.datasets.count("crm_customers") == 2
    copy.close()
    original = Workspace.open(tmp_path / "a")
    assert original.datasets.count("crm_customers") == 1
    original.close()

    # an older catalog: absolute paths recorded where the workspace was before a move
    with sqlite3.connect(tmp_path / "b" / "catalog.db") as c:
        c.execute(
            "UPDATE datasets SET table_path = '/old/place/lake/datasets/' || name, "
            "quarantine_path = '/old/place/lake/quarantine/' || name"
        )
    moved = Workspace.open(tmp_path / "b")
    assert moved.datasets.count("crm_customers") == 2
    assert moved.datasets.get("crm_customers").quarantine_path.startswith(
        str((tmp_path / "b").resolve())
    )
    moved.close()
