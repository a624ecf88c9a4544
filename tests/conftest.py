"""Shared fixtures: a real PostgreSQL database (never SQLite, never a mock).

The server is ``MEDIAMON_TEST_DATABASE_URL`` if set, else the local server at
127.0.0.1:5432 if one answers, else an embedded PostgreSQL (pgserver) started for the
session. Each session creates its own database and drops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db, migrate

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh database with mediamon's migrations applied."""
    embedded_dir = tmp_path_factory.mktemp("pg")
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", embedded_dir)
    with db.scratch_database(admin_url, "mediamon_test") as url:
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    db.stop_embedded(embedded_dir)  # if the session had to start one


@pytest.fixture()
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database, emptied before each test."""
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        tables = (
            conn.execute(
                sa.text(
                    "select quote_ident(tablename) from pg_tables"
                    " where schemaname = 'public' and tablename <> 'schema_migrations'"
                )
            )
            .scalars()
            .all()
        )
        if tables:
            conn.execute(sa.text(f"truncate {', '.join(tables)} restart identity cascade"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; its absence is a failure, not a skip."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the corpora and seed tests need ../shared")
    return SHARED
