"""Demo-like data for the BI tests: the demo site (feed, pages, a missing page, a
syndicated copy), the seed archive and two weeks of the invented history with its burst of
Taiwan stories, ingested the way ``make demo`` does and with the alert detected at the
burst, in a database of its own (the shared test database is emptied before each test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediamon import db, service
from mediamon.devtools.demo import BURST_END, write_demo_sources
from mediamon.devtools.demo_history import write_history
from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings

DEMO_SOURCES = ("demo-news", "rfi-archive", "demo-history")


def seed_demo(url: str, var_dir: Path) -> Settings:
    """Ingest the demo sources into ``url`` and detect the burst's alert (no mail)."""
    history = var_dir / "history"
    write_history(history, BURST_END, weeks=2)
    settings = replace(Settings.from_env(), database_url=url, var_dir=var_dir)
    with serve_folder(DEMO_DIR / "site") as base:
        sources = write_demo_sources(var_dir / "sources.yaml", base, history)
        settings = replace(settings, sources_path=sources)
        now = datetime.now(UTC)
        names = service.plan_sources(settings, now, force=True)
        service.ingest(settings, names, "bi-test", now, workers=1)
    created = service.run_alerts(settings, BURST_END)["alerts_created"]
    assert len(created) == 1, created
    return settings


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a scratch database holding the demo data."""
    var_dir = tmp_path_factory.mktemp("bi_demo")
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", var_dir / "embedded")
    with db.scratch_database(admin_url, "mediamon_bi_demo") as url:
        seed_demo(url, var_dir)
        yield url
    db.stop_embedded(var_dir / "embedded")  # if it had to start one
