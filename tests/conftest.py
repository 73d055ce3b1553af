"""Shared pytest fixtures.

Sections (keep each one together; add new sections below the existing ones):

* PostgreSQL: a real server on loopback, started by scripts/test.sh (`make test`)
  with scripts/pg.sh, whose URL arrives in WORKBENCH_TEST_POSTGRES_URL.
* Workspaces.
* SFTP: a real OpenSSH server on loopback, started by scripts/test.sh with
  scripts/sshd.sh; WORKBENCH_TEST_SFTP_URL / _KEY / _ROOT describe it.
* S3: an in-process moto server on loopback, one per test session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

POSTGRES_URL_ENV = "WORKBENCH_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the test server, e.g. ``postgresql://postgres@127.0.0.1:PORT/postgres``.

    Fails in CI (CI=true) when the server was not started; skips elsewhere.
    """
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"{POSTGRES_URL_ENV} is not set: PostgreSQL was not started "
                "(scripts/test.sh starts it with scripts/pg.sh; see .ci/state/pg/log)",
                pytrace=False,
            )
        pytest.skip("PostgreSQL not started: run make test")
    return url


@pytest.fixture
def fresh_postgres_db(postgres_url: str) -> Iterator[str]:
    """A new, empty database for one test; yields its SQLAlchemy URL.

    ``postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME``; dropped afterwards.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"wb_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(postgres_url).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ---------------------------------------------------------------------------
# Workspaces
# ---------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh workspace (SQLite catalog) with the sample brand's schemas and datasets."""
    from workbench import Workspace
    from workbench.sample.brand import register

    w = Workspace.create(tmp_path / "ws")
    register(w)
    yield w
    w.close()


@pytest.fixture
def empty_ws(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh workspace with nothing registered."""
    from workbench import Workspace

    w = Workspace.create(tmp_path / "ws")
    yield w
    w.close()


def _missing_service(why: str, skip_reason: str) -> None:
    """Fail in CI (CI=true) when a test service is missing; skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(skip_reason)


# ---------------------------------------------------------------------------
# SFTP
# ---------------------------------------------------------------------------

SFTP_URL_ENV = "WORKBENCH_TEST_SFTP_URL"
SFTP_KEY_ENV = "WORKBENCH_TEST_SFTP_KEY"
SFTP_ROOT_ENV = "WORKBENCH_TEST_SFTP_ROOT"


@dataclass(frozen=True)
class SftpServer:
    """The loopback sshd of scripts/sshd.sh.

    ``url``: ``sftp://USER@127.0.0.1:PORT`` (key auth only, no password);
    ``key_file``: the client's private key (OpenSSH ed25519, no passphrase);
    ``root``: the export directory. There is no chroot: remote paths are this machine's
    paths, so write to ``f"{root}/name"`` over SFTP and check ``root / "name"`` on disk.
    """

    url: str
    key_file: Path
    root: Path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 22

    @property
    def username(self) -> str:
        return urlsplit(self.url).username or ""

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``fsspec.filesystem("sftp", **kw)`` (paramiko's
        ``SSHClient.connect`` takes the same, with ``hostname`` for ``host``)."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "key_filename": str(self.key_file),
            "look_for_keys": False,
            "allow_agent": False,
            "timeout": 30,
        }


@pytest.fixture(scope="session")
def sftp_server() -> SftpServer:
    """The SFTP server started by scripts/test.sh.

    Fails in CI (CI=true) when the server was not started; skips elsewhere.
    """
    url = os.environ.get(SFTP_URL_ENV)
    key = os.environ.get(SFTP_KEY_ENV)
    root = os.environ.get(SFTP_ROOT_ENV)
    if not (url and key and root):
        unset = [
            v for v, x in ((SFTP_URL_ENV, url), (SFTP_KEY_ENV, key), (SFTP_ROOT_ENV, root)) if not x
        ]
        _missing_service(
            f"{', '.join(unset)} not set: sshd was not started "
            "(scripts/test.sh starts it with scripts/sshd.sh; see .ci/state/sshd/log)",
            "sshd not started: run make test",
        )
    assert url and key and root
    return SftpServer(url=url, key_file=Path(key), root=Path(root))


# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server on loopback with one empty bucket (shared by the whole session:
    give each test its own key prefix). Fake credentials, region us-east-1."""

    endpoint_url: str
    bucket: str
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem(**kw)`` / fsspec's ``s3://``."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An in-process moto S3 server (``ThreadedMotoServer``) on a free 127.0.0.1 port,
    started once per session and stopped at its end. Sets no environment variables."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        _missing_service(
            f"cannot start the S3 test server: {e} (make setup installs moto[server])",
            f"moto not installed: {e}",
        )
        raise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3Server(endpoint_url=f"http://{host}:{port}", bucket="workbench-test")
        boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            aws_access_key_id=s3.key,
            aws_secret_access_key=s3.secret,
            region_name=s3.region,
        ).create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()


def sample_brand_workspace(tmp_path: Path, persons: int, seed: int) -> tuple[Any, Path]:
    """A sample brand generated into ``tmp_path/sample``, ingested into a new workspace
    ``tmp_path/ws`` and its identity graph built: (workspace, sample folder)."""
    from workbench import Workspace
    from workbench.sample import generate
    from workbench.sample.brand import ingest, register

    d = tmp_path / "sample"
    generate(d, persons=persons, seed=seed)
    w = Workspace.create(tmp_path / "ws")
    register(w)
    ingest(w, d)
    w.identity.build()
    return w, d


def copy_workspace(src: Path, dst: Path) -> Path:
    """Copy a closed workspace folder (a plain copy: the catalog keeps dataset tables
    relative to the workspace's lake, so the copy reads and writes its own)."""
    import shutil

    shutil.copytree(src, dst)
    return dst
