"""Shared pytest fixtures.

Sections (keep each one together; add new sections below the existing ones):

* PostgreSQL: a real server on loopback, started by scripts/test.sh (`make test`)
  with scripts/pg.sh, whose URL arrives in WORKBENCH_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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
