"""Topic definitions in the database: the file's topics synced into ``topics`` (every
version kept in ``topic_versions``), or the stored ones when the file is invalid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.tables import (
    topic_versions,
    topics_table,
)
from mediamon.topics.definitions import TopicConfigError, TopicSet, topic_from_dict
from mediamon.topics.file import load_topics
from mediamon.topics.match import MAX_KEYS_SHOWN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicRefresh:
    """The outcome of reading the topics file.

    Attributes:
        topics: The topics in force (the file's, or the stored ones when it was rejected).
        changed: Keys of topics that are new or whose definition changed.
        rematch: Keys whose matching rules changed (their past articles are re-matched).
        removed: Keys no longer in the file (kept, inactive).
        error: Why the file was rejected (file, line and reason), else None.
    """

    topics: TopicSet
    changed: tuple[str, ...] = ()
    rematch: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Counts, and the first :data:`MAX_KEYS_SHOWN` keys of each change: the
        ``match_topics`` task's XCom, a row in Airflow's database. Every key of 10,000
        topics made it 150 kB an hour; the topics in force are in ``topics`` and what
        changed in ``topic_versions``, where the tasks after it read them."""
        return {
            "topics": len(self.topics),
            "changed": len(self.changed),
            "rematch": len(self.rematch),
            "removed": len(self.removed),
            "changed_keys": list(self.changed[:MAX_KEYS_SHOWN]),
            "rematch_keys": list(self.rematch[:MAX_KEYS_SHOWN]),
            "removed_keys": list(self.removed[:MAX_KEYS_SHOWN]),
            "error": self.error,
        }


def sync_topics(engine: sa.Engine, topics: TopicSet) -> TopicRefresh:
    """Store a valid topic set as the definitions in force.

    New and changed topics are upserted on their key and every new version is kept in
    ``topic_versions``; topics missing from the set become inactive (their mentions stay).
    """
    with engine.begin() as conn:
        before = {
            row.topic: row
            for row in conn.execute(
                sa.select(
                    topics_table.c.topic,
                    topics_table.c.version,
                    topics_table.c.match_version,
                    topics_table.c.active,
                )
            )
        }
        changed: list[str] = []
        rematch: list[str] = []
        rows: list[dict[str, Any]] = []
        for topic in topics:
            old = before.get(topic.key)
            if old is not None and old.version == topic.version and old.active:
                continue
            changed.append(topic.key)
            if old is None or old.match_version != topic.match_version:
                rematch.append(topic.key)
            rows.append(
                {
                    "topic": topic.key,
                    "name": topic.name,
                    "version": topic.version,
                    "match_version": topic.match_version,
                    "definition": topic.to_dict(),
                }
            )
        if rows:
            # All in one statement each (psycopg sends the rows in batches): two round
            # trips per topic made a first sync of 3,000 topics, or any change of every
            # topic's version, take 15 s.
            statement = insert(topics_table).values(active=True, updated_at=sa.func.now())
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[topics_table.c.topic],
                    set_={
                        c: statement.excluded[c]
                        for c in ("name", "version", "match_version", "definition", "active")
                    }
                    | {"updated_at": sa.func.now()},
                ),
                rows,
            )
            conn.execute(
                insert(topic_versions).on_conflict_do_nothing(),
                [{k: v for k, v in row.items() if k != "name"} for row in rows],
            )
        removed = sorted(k for k, row in before.items() if row.active and topics.get(k) is None)
        if removed:
            conn.execute(
                topics_table.update()
                .where(topics_table.c.topic.in_(removed))
                .values(active=False, updated_at=sa.func.now())
            )
    if changed or removed:
        logger.info(
            "topics: %d changed, %d to re-match, %d removed: %s",
            len(changed),
            len(rematch),
            len(removed),
            _some(changed + removed),
        )
    return TopicRefresh(topics, tuple(changed), tuple(rematch), tuple(removed))


def _some(keys: list[str], shown: int = 20) -> str:
    """Keys for a log line: the first ``shown`` (a file of 3,000 topics made 60 kB lines)."""
    more = len(keys) - shown
    return ", ".join(keys[:shown]) + (f" and {more} more" if more > 0 else "")


def stored_topics(
    engine: sa.Engine, *, include_inactive: bool = False, compile_rules: bool = False
) -> TopicSet:
    """The definitions in force, as stored by the last successful :func:`sync_topics`.

    Their rules are compiled on first use unless ``compile_rules``: each was valid when
    stored, and detection and delivery, which read the stored topics every cycle, use
    the rules of few topics or none (3,000 topics: 0.5-0.7 s a read, three quarters of
    it compiling 15,000 rules; ``python -m bench.topics_scale``)."""
    query = sa.select(topics_table.c.definition).order_by(topics_table.c.topic)
    if not include_inactive:
        query = query.where(topics_table.c.active)
    with engine.connect() as conn:
        definitions = conn.execute(query).scalars().all()
    return TopicSet(
        tuple(topic_from_dict(d, compile_rules=compile_rules) for d in definitions),
        origin="database",
    )


def refresh_topics(engine: sa.Engine, path: Path) -> TopicRefresh:
    """Read the topics file and sync it; when it is invalid keep the stored definitions.

    Raises:
        TopicConfigError: the file is invalid and no valid definition was ever stored.
    """
    try:
        topics = load_topics(path)
    except TopicConfigError as error:
        # Compiled: these are matched next, and a stored rule that no longer compiles
        # fails here, as an invalid stored definition, not in the middle of matching.
        stored = stored_topics(engine, compile_rules=True)
        if not len(stored):
            raise
        logger.error("%s; the previous valid topic definitions stay in force", error)
        return TopicRefresh(stored, error=str(error))
    return sync_topics(engine, topics)
