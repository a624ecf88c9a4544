"""Matching articles to topics: ``mentions`` brought up to date, incrementally, or in
full for a topic whose rules changed."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mediamon import limits
from mediamon.bi import rollup
from mediamon.db.engine import session_lock
from mediamon.db.queries import query
from mediamon.db.tables import (
    mentions,
    topics_table,
)
from mediamon.text import DOTTED_I, IGNORABLE, fold
from mediamon.topics.definitions import Topic, TopicSet, topic_from_dict
from mediamon.topics.prefilter import TopicNeedles, needles_of

logger = logging.getLogger(__name__)

MATCH_BATCH = 500
# Keys of re-matched topics a run's summary names (the rest counted).
MAX_KEYS_SHOWN = 20
# Distinct from the other advisory locks (mediamon.db.migrate, spikes.detect, alerts.*).
MATCH_LOCK_KEY = 0x6D6D_616C_6572_7404
# Articles changed up to this long before the last match run are matched again: an ingest
# transaction that started earlier may have committed after that run looked.
MATCH_OVERLAP = timedelta(hours=1)


@dataclass
class MatchStats:
    """What one :func:`match_articles` call did."""

    articles: int = 0
    mentions: int = 0
    removed: int = 0
    full_rematch: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Counts and the first keys re-matched: the match_topics task's XCom (every key
        of a first match of 10,000 topics, 150 kB in Airflow's database)."""
        return {
            "articles": self.articles,
            "mentions": self.mentions,
            "removed": self.removed,
            "full_rematch": len(self.full_rematch),
            "full_rematch_keys": self.full_rematch[:MAX_KEYS_SHOWN],
        }


def match_article(
    topics: Iterable[Topic],
    title: str | None,
    match_text: str,
    language: str | None,
    source: str | None,
    needles: TopicNeedles | None = None,
) -> dict[str, tuple[int, int]]:
    """The topics an article mentions, with (title hits, body hits). Pure.

    ``needles``: :func:`~mediamon.topics.prefilter.needles_of` the same topics, to find
    every rule's words in one pass and go through only the topics one of whose words
    occurs (what a batch of articles does); None: each topic is tried, each rule looks
    for its own words.
    """
    title_folded = fold(title) if title else ""
    # Bodies folded before fold dropped invisible characters still hold them.
    if IGNORABLE.search(match_text):
        match_text = IGNORABLE.sub("", match_text)
    # Bodies folded before fold read a dotted capital İ as i keep its dot above.
    if DOTTED_I in match_text:
        match_text = match_text.replace(DOTTED_I, "i")
    present = (needles.present(title_folded), needles.present(match_text)) if needles else None
    if needles is not None and present is not None:
        # Only the topics one of whose words occurs: going through all of them, even to
        # rule each out in C, cost 0.6 ms an article per 1,000 topics (3,000 topics: a
        # full re-match of 20,000 articles, 40 s of Python loop).
        topics = needles.topics_with(present[0] | present[1])
    found: dict[str, tuple[int, int]] = {}
    for topic in topics:
        if not topic.in_scope(language, source):
            continue
        title_hits, body_hits = topic.match(title_folded, match_text, present)
        if title_hits or body_hits:
            found[topic.key] = (title_hits, body_hits)
    return found


def match_articles(
    engine: sa.Engine, topics: TopicSet, *, batch_size: int = MATCH_BATCH
) -> MatchStats:
    """Bring ``mentions`` up to date for the given (synced) topics.

    Topics whose matching rules changed since their mentions were computed are matched
    against every article (and their old mentions dropped); the others only against the
    articles inserted or changed since the previous run.

    One run at a time, the others wait (an advisory lock): two full re-matches of a topic
    under different rules (the file edited twice, the alerts and the digest runs each
    syncing it) interleaved, and the first, finishing, deleted the second's fresh
    mentions as "old rules"; the second then marked the topic matched, and those
    articles were never matched again.

    Raises:
        ValueError: a topic is not synced (call :func:`sync_topics` first).
    """
    with session_lock(engine, MATCH_LOCK_KEY, wait=True):
        stats = _match_articles(engine, topics, batch_size)
    rollup.refresh(engine)  # the mentions written or deleted, into the BI roll-up
    return stats


def _match_articles(engine: sa.Engine, topics: TopicSet, batch_size: int) -> MatchStats:
    with engine.connect() as conn:
        started = conn.execute(sa.select(sa.func.now())).scalar_one()
        state = {
            row.topic: row
            for row in conn.execute(
                sa.select(
                    topics_table.c.topic,
                    topics_table.c.match_version,
                    topics_table.c.matched_version,
                    topics_table.c.matched_through,
                    topics_table.c.definition,
                ).where(topics_table.c.topic.in_(topics.keys()))
            )
        }
    in_force = []
    for given in topics:
        row = state.get(given.key)
        if row is None:
            raise ValueError(f"topic {given.key!r} is not synced: call sync_topics first")
        if row.match_version != given.match_version:
            # Another run synced an edited file after the caller's sync (this run may have
            # waited for the lock meanwhile): match under the stored definition, the one
            # in force, instead of failing the run.
            logger.info("topic %s: matched under the definition synced since", given.key)
            given = topic_from_dict(row.definition)
        in_force.append(given)
    topics = TopicSet(tuple(in_force), topics.origin)
    full = [t for t in topics if state[t.key].matched_version != t.match_version]
    # By key: `t not in full` compared whole topics, field by field, with every topic of
    # the list; a first sync of 3,000 topics spent 4.5 million comparisons here.
    full_keys = {t.key for t in full}
    incremental = [t for t in topics if t.key not in full_keys]
    stats = MatchStats(full_rematch=[t.key for t in full])
    if full:
        _match_pass(engine, full, None, batch_size, stats)
        with engine.begin() as conn:
            # Mentions of articles no longer in scope, under the old rules.
            deleted = conn.execute(
                mentions.delete().where(
                    mentions.c.topic == sa.bindparam("topic_key"),
                    mentions.c.match_version != sa.bindparam("match"),
                ),
                [{"topic_key": t.key, "match": t.match_version} for t in full],
            )
            stats.removed += deleted.rowcount
    if incremental:
        marks = [state[t.key].matched_through for t in incremental]
        since = None if None in marks else min(marks) - MATCH_OVERLAP
        _match_pass(engine, incremental, since, batch_size, stats)
    with engine.begin() as conn:
        # One statement for all (psycopg pipelines the rows): one round trip per topic
        # cost every run of 3,000 topics seconds, whether any article was new or not.
        conn.execute(
            topics_table.update()
            .where(topics_table.c.topic == sa.bindparam("topic_key"))
            .values(matched_version=sa.bindparam("match"), matched_through=started),
            [{"topic_key": t.key, "match": t.match_version} for t in topics],
        )
    return stats


def _match_pass(
    engine: sa.Engine,
    topics: Sequence[Topic],
    since: datetime | None,
    batch_size: int,
    stats: MatchStats,
) -> None:
    keys = [t.key for t in topics]
    needles = needles_of(topics)
    versions = {t.key: t.match_version for t in topics}
    last_id = 0
    while True:
        # Keyset pages, each in its own short transaction: no long-lived cursor.
        query = sa.text(
            # Rows stored before the caps of mediamon.limits existed are cut here too.
            f"select a.article_id, left(a.title, {limits.MAX_TITLE_CHARS}) as title,"
            f" left(a.match_text, {limits.MAX_BODY_CHARS}) as match_text,"
            " a.language, s.name as source"
            " from articles a join sources s on s.source_id = a.source_id"
            " where a.article_id > :last"
            + (" and a.updated_at >= :since" if since is not None else "")
            + " order by a.article_id limit :limit"
        )
        params: dict[str, Any] = {"last": last_id, "limit": batch_size}
        if since is not None:
            params["since"] = since
        with engine.begin() as conn:
            rows = conn.execute(query, params).all()
            if not rows:
                return
            last_id = rows[-1].article_id
            found: list[dict[str, Any]] = []
            for row in rows:
                hits = match_article(
                    topics, row.title, row.match_text, row.language, row.source, needles
                )
                found += [
                    {
                        "article_id": row.article_id,
                        "topic": key,
                        "match_version": versions[key],
                        "title_hits": title_hits,
                        "body_hits": body_hits,
                    }
                    for key, (title_hits, body_hits) in hits.items()
                ]
            ids = [row.article_id for row in rows]
            stats.articles += len(rows)
            stats.removed += _replace_mentions(conn, ids, keys, found)
            stats.mentions += len(found)


def _replace_mentions(
    conn: sa.Connection, ids: list[int], keys: list[str], found: list[dict[str, Any]]
) -> int:
    if found:
        conn.execute(
            query("upsert_mentions"),
            {
                "ids": [f["article_id"] for f in found],
                "topics": [f["topic"] for f in found],
                "versions": [f["match_version"] for f in found],
                "title_hits": [f["title_hits"] for f in found],
                "body_hits": [f["body_hits"] for f in found],
            },
        )
    # Pairs of this batch that no longer match (the article or the rules changed).
    result = conn.execute(
        query("stale_mentions"),
        {
            "ids": ids,
            "keys": keys,
            "f_ids": [f["article_id"] for f in found],
            "f_topics": [f["topic"] for f in found],
        },
    )
    return int(result.rowcount)
