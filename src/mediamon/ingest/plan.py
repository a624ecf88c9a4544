"""Task ``plan_sources``: which configured sources are due for a poll now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from mediamon.ingest import load, polling
from mediamon.ingest.sources import Source


def plan_sources(
    engine: sa.Engine, configured: Sequence[Source], now: datetime, *, force: bool = False
) -> list[Source]:
    """Sync the configured sources into ``sources`` and return those due: by their
    adaptive polling state (:func:`mediamon.ingest.polling.due`; a source never polled is
    due), or all of them with ``force``."""
    with engine.begin() as conn:
        ids = load.sync_sources(conn, configured)
        return list(configured) if force else polling.due(conn, configured, ids, now)
