"""Demo-like data for the BI tests: the demo site (feed, pages, a missing page, a
syndicated copy), the seed archive and two weeks of the invented history with its burst of
Taiwan stories, ingested the way ``make demo`` does and with the alert detected at the
burst, in a database of its own (the shared test database is emptied before each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mediamon import db
from mediamon.devtools.demo_seed import DEMO_SOURCES, seed_demo

__all__ = ["DEMO_SOURCES", "demo_database", "seed_demo"]


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a scratch database holding the demo data."""
    var_dir = tmp_path_factory.mktemp("bi_demo")
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", var_dir / "embedded")
    with db.scratch_database(admin_url, "mediamon_bi_demo") as url:
        seed_demo(url, var_dir)
        yield url
    db.stop_embedded(var_dir / "embedded")  # if it had to start one
