"""The real services that scripts/test.sh starts for the tests are there and usable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


@pytest.mark.postgres
def test_postgres_fresh_database(fresh_postgres_db: str) -> None:
    url = sa.engine.make_url(fresh_postgres_db)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"

    engine = sa.create_engine(fresh_postgres_db)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            version = conn.execute(sa.text("show server_version")).scalar_one()
            assert int(version.split(".")[0]) >= 13, version
            assert conn.execute(sa.text("select current_database()")).scalar_one() == url.database
    finally:
        engine.dispose()
