"""Hourly story counts from the database: per topic, per topic and source, and all
stories per source and language (the volume a topic's share is measured against)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from mediamon.db.queries import query

logger = logging.getLogger(__name__)


def hourly_counts(
    conn: sa.Connection, topic_keys: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[datetime, int]]:
    """Distinct stories per topic and UTC hour in [start, end).

    A story is a root article (``duplicate_of`` is null): a copy that mentions the topic
    counts for its root, in the root's hour, so syndicated copies count once.
    """
    rows = conn.execute(
        query("topic_hourly_counts"),
        {"topics": list(topic_keys), "start": start, "end": end},
    )
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for topic, hour, stories in rows:
        counts[topic][hour.astimezone(UTC)] = int(stories)
    return counts


def hourly_totals(
    conn: sa.Connection, start: datetime, end: datetime
) -> list[tuple[datetime, str, str | None, int]]:
    """All distinct stories per (UTC hour, source, language) in [start, end)."""
    rows = conn.execute(
        query("hourly_totals"),
        {"start": start, "end": end},
    )
    return [(hour.astimezone(UTC), source, language, int(n)) for hour, source, language, n in rows]
