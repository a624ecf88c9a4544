"""Shared fixtures: a real PostgreSQL database (never SQLite, never a mock).

The server is ``MEDIAMON_TEST_DATABASE_URL`` if set, else the local server at
127.0.0.1:5432 if one answers, else an embedded PostgreSQL (pgserver) started for the
session. Each session creates its own database and drops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.db import migrate
from mediamon.ingest.archive import parse_archive_text
from mediamon.ingest.build import ArticleJob, build_article
from mediamon.models import Article
from tests.support import SHARED
from tests.support.smtp_server import Sink, serve_smtp

SEED = "000_206a002612bb7ab9.txt"  # the RFI article mediamon started from


SUITES = {
    "unit": "unit",
    "integration": "integration",
    "dags": "airflow",
    "faults": "faults",
    "deployment": "deployment",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its suite's folder (tests/unit → ``unit``, tests/dags →
    ``airflow``...), so ``-m`` selects a suite whatever the paths given."""
    tests_dir = Path(__file__).parent
    for item in items:
        suite = item.path.relative_to(tests_dir).parts[0]
        if suite in SUITES:
            item.add_marker(SUITES[suite])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Quiet pgserver's exit message: it logs at INFO from an atexit hook, after pytest
    closed the streams that Airflow's logging set-up (imported by the DAG tests) writes
    to, and each message ended the run's output with a "--- Logging error ---" trace."""
    import logging

    logging.getLogger("pgserver").setLevel(logging.WARNING)


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


@pytest.fixture(scope="session")
def built_seed(shared_dir: Path) -> Article:
    """The seed document of ``../shared/seeds``, parsed and built the way ingest does."""
    text = (shared_dir / "seeds" / SEED).read_text(encoding="utf-8")
    item, html = parse_archive_text(text, SEED)
    job = ArticleJob(
        item=item,
        source_language="zh",
        drop_params=(),
        seen_at=datetime(2024, 4, 3, tzinfo=UTC),
        archived_html=html,
    )
    article = build_article(job).article
    assert article is not None
    return article


@pytest.fixture()
def smtp() -> Iterator[tuple[Sink, int]]:
    """A real SMTP server on a free loopback port, and the sink recording its mail."""
    sink = Sink()
    with serve_smtp(sink) as port:
        yield sink, port
