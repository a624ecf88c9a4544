"""The BI roll-up behind the gap-free series (migration 0022, docs/decisions.md "BI
roll-up"): stories per local hour and per topic and hour, articles and fetches per
source and day. Every change to articles, mentions or fetch_log marks its hours and days
in the same transaction and the views count marked ones live, so the series are exact
without a refresh; a refresh folds the marks into the roll-up, which keeps the views
fast. Runs that change many rows refresh when they end: ingest, topic matching,
retention."""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

logger = logging.getLogger(__name__)


def refresh(engine: sa.Engine) -> int:
    """Fold the hours and days marked since the last refresh into the roll-up (rebuild it
    after a change of ``bi.settings.timezone``); return how many marks were folded.
    Refreshes run one at a time (the database serializes them); loads go on meanwhile."""
    started = time.perf_counter()
    with engine.begin() as conn:
        folded = int(conn.execute(sa.text("select refresh_bi_rollup()")).scalar_one())
    logger.info("bi roll-up: %d marks folded in %.1f s", folded, time.perf_counter() - started)
    return folded
