"""API keys of the streaming service: hashed in the catalog (SQLite and PostgreSQL), scoped
to datasets and to collect/read, revocable, the token shown once and never logged."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from workbench import Workspace
from workbench.catalog.apikeys import ApiKeyInfo, hash_token
from workbench.catalog.models import CATALOG_VERSION, ApiKeyRow, CatalogMeta
from workbench.errors import AlreadyExistsError, NotFoundError, ValidationError
from workbench.sample.brand import register

EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cat.db'}"
    return request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
def kws(catalog_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    w = Workspace.create(tmp_path / "ws", catalog_url=catalog_url)
    register(w)
    yield w
    w.close()


def test_create_verify_list_revoke(kws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    info, token = kws.apikeys.create("web-app", datasets=["web_events"], scopes=["collect"])
    assert token.startswith("wb_") and len(token) == 46
    assert info.prefix == token[:11] and info.active
    assert (info.name, info.datasets, info.scopes) == ("web-app", ("web_events",), ("collect",))
    got = kws.apikeys.verify(token)
    assert got is not None and got.name == "web-app" and got.last_used_at is not None
    # a wrong, truncated, malformed or foreign token is refused
    for bad in [token[:-1] + ("A" if token[-1] != "A" else "B"), token[:-1], "", "wb_", token + "x",
                "Bearer " + token, token.upper(), None, 42]:  # fmt: skip
        assert kws.apikeys.verify(bad) is None  # type: ignore[arg-type]
    _, other = kws.apikeys.create("reader", scopes=("read",))
    assert other != token
    assert [k.name for k in kws.apikeys.list()] == ["reader", "web-app"]
    revoked = kws.apikeys.revoke("web-app")
    assert revoked.revoked_at is not None and not revoked.active
    assert kws.apikeys.verify(token) is None
    assert kws.apikeys.revoke("web-app").revoked_at == revoked.revoked_at  # idempotent
    assert [k.name for k in kws.apikeys.list(include_revoked=False)] == ["reader"]
    assert kws.apikeys.verify(other) is not None
    # the token never reaches a log or the catalog, only its prefix and hash do
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "web-app" in logged and info.prefix in logged
    assert token not in logged and other not in logged
    assert token not in repr(info) and token not in str(kws.apikeys.list())
    with kws.catalog.session() as s:
        rows = list(s.scalars(select(ApiKeyRow)))
        dump = repr([(r.name, r.prefix, r.key_hash, r.datasets, r.scopes) for r in rows])
    assert token not in dump and other not in dump
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert hash_token(token) in dump
    if kws.catalog.backend == "sqlite":  # not even in the database file or its log
        db = Path(kws.catalog.engine.url.database or "")
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert token.encode() not in raw and hash_token(token).encode() in raw


def test_scopes_and_datasets(kws: Workspace) -> None:
    all_ds, t1 = kws.apikeys.create("all")
    assert all_ds.scopes == ("collect", "read") and all_ds.datasets is None
    assert all_ds.allows("web_events", "collect") and all_ds.allows("crm_customers", "read")
    assert all_ds.allows(None, "read") and not all_ds.allows("web_events", "admin")
    some, _ = kws.apikeys.create(
        "some", datasets=["web_events", "pos_orders", "web_events"], scopes=["read", "collect"]
    )
    assert some.datasets == ("pos_orders", "web_events") and some.scopes == ("collect", "read")
    assert some.allows("web_events", "collect") and not some.allows("crm_customers", "collect")
    collect, _ = kws.apikeys.create("collector", scopes="collect")
    assert collect.allows("web_events", "collect") and not collect.allows("web_events", "read")
    assert not collect.allows(None, "read")
    kws.apikeys.revoke("all")
    assert not kws.apikeys.get("all").allows("web_events", "collect")
    assert kws.apikeys.verify(t1) is None


def test_bad_requests_are_clear_errors(kws: Workspace) -> None:
    with pytest.raises(ValidationError) as ei:
        kws.apikeys.create("Bad Name", scopes=["write"], datasets=[])
    assert {p.path for p in ei.value.problems} == {"name", "scopes", "datasets"}
    with pytest.raises(ValidationError, match="at least one scope"):
        kws.apikeys.create("x", scopes=[])
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        kws.apikeys.create("x", datasets=["nope"])
    kws.apikeys.create("x")
    with pytest.raises(AlreadyExistsError):
        kws.apikeys.create("x")
    kws.apikeys.revoke("x")
    with pytest.raises(AlreadyExistsError, match="revoked keys keep their name"):
        kws.apikeys.create("x")
    with pytest.raises(NotFoundError, match="no api key named 'y'"):
        kws.apikeys.revoke("y")
    assert [k.name for k in kws.apikeys.list()] == ["x"]  # failed creations left nothing


def test_hashes_are_compared_in_constant_time(
    kws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.catalog.apikeys as mod

    calls: list[tuple[str, str]] = []
    real = mod.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mod.hmac, "compare_digest", spy)
    _, token = kws.apikeys.create("k")
    assert kws.apikeys.verify(token) is not None
    assert calls == [(hash_token(token), hash_token(token))]


def test_older_catalog_is_upgraded(kws: Workspace, tmp_path: Path) -> None:
    """A catalog made before api_keys existed (version 3) gains the table when opened."""
    with kws.catalog.engine.begin() as c:
        c.execute(text("DROP TABLE api_keys"))
        c.execute(text("UPDATE catalog_meta SET value = '3' WHERE key = 'version'"))
    kws.close()
    again = Workspace.open(tmp_path / "ws")
    with again.catalog.session() as s:
        meta = s.get(CatalogMeta, "version")
        assert meta is not None and int(meta.value) == CATALOG_VERSION == 4
    info, token = again.apikeys.create("after-upgrade")
    got = again.apikeys.verify(token)
    assert got is not None and got.name == info.name
    assert {d.name for d in again.datasets.list()} >= {"web_events"}  # nothing else changed
    again.close()


def test_last_used_is_written_at_most_once_a_minute(kws: Workspace) -> None:
    _, token = kws.apikeys.create("k")
    first = kws.apikeys.verify(token)
    assert first is not None and first.last_used_at is not None
    second = kws.apikeys.verify(token)
    assert second is not None and second.last_used_at == first.last_used_at
    assert isinstance(second, ApiKeyInfo)


def _wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [EXE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_apikey(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    register(ws)
    ws.close()
    w = ["--workspace", "ws"]
    r = _wb("-vv", "apikey", "create", *w, "--name", "app", "--dataset", "web_events",
            "--scope", "collect", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()  # the token alone on stdout
    assert token.startswith("wb_") and len(token) == 46
    assert "store this token now" in r.stderr and "app" in r.stderr
    assert token not in r.stderr  # not in the (debug) log either
    r = _wb("apikey", "create", *w, "--name", "all", cwd=tmp_path)
    all_token = r.stdout.strip()
    r = _wb("apikey", "list", *w, cwd=tmp_path)
    assert r.returncode == 0 and token not in r.stdout and all_token not in r.stdout
    assert token[:11] in r.stdout and "web_events" in r.stdout and "collect, read" in r.stdout
    with Workspace.open(tmp_path / "ws") as again:
        k = again.apikeys.verify(token)
        assert k is not None and k.allows("web_events", "collect")
        assert not k.allows("web_events", "read") and not k.allows("pos_orders", "collect")
    r = _wb("apikey", "revoke", "app", *w, cwd=tmp_path)
    assert r.returncode == 0 and "revoked" in r.stdout
    r = _wb("apikey", "list", *w, cwd=tmp_path)
    assert "revoked" in r.stdout and "active" in r.stdout
    with Workspace.open(tmp_path / "ws") as again:
        assert again.apikeys.verify(token) is None
        assert again.apikeys.verify(all_token) is not None
    r = _wb("apikey", "create", *w, "--name", "x", "--dataset", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "no dataset named 'nope'" in r.stderr and not r.stdout
    r = _wb("apikey", "create", *w, "--name", "x", "--scope", "admin", cwd=tmp_path)
    assert r.returncode == 2 and not r.stdout
    r = _wb("apikey", "revoke", "nope", *w, cwd=tmp_path)
    assert r.returncode == 2 and "no api key named 'nope'" in r.stderr
