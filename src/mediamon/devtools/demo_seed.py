"""The demo's data without Airflow, for what must look at real mediamon rows (the BI tests,
``make superset-check``): the demo site (feed, pages, a missing page, a syndicated copy),
the seed archive and two weeks of the invented history with its burst of Taiwan stories,
ingested the way ``make demo`` does and with the alert detected at the burst (no mail)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mediamon import service
from mediamon.devtools.demo import BURST_END, write_demo_sources
from mediamon.devtools.demo_history import write_history
from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings

DEMO_SOURCES = ("demo-news", "rfi-archive", "demo-history")


def seed_demo(url: str, var_dir: Path) -> Settings:
    """Ingest the demo sources into the database at ``url`` and detect the burst's alert.

    Raises:
        RuntimeError: the burst did not make exactly one alert (the data is not the demo's).
    """
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
    if len(created) != 1:
        raise RuntimeError(f"the demo's burst made {len(created)} alerts, not one: {created}")
    return settings
