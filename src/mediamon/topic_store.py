"""Topics in the database: definitions, mentions, hourly counts, alerts and their delivery.

The order of one run (what ``mediamon alerts run`` and the ``mediamon_alerts`` DAG do):
:func:`refresh_topics` → :func:`match_articles` → :func:`detect` → :func:`deliver_pending`.
Every write is an upsert on a natural key, so a retried or repeated run changes nothing and
sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.mail_content import alert_mail
from mediamon.mail_render import MailOptions, Reader, alert_message
from mediamon.normalize import fold
from mediamon.spikes import HOURS_PER_WEEK, HourlySeries, Spike, assess, floor_hour
from mediamon.tables import (
    alert_deliveries,
    alerts_table,
    mentions,
    topic_versions,
    topics_table,
)
from mediamon.topics import Topic, TopicConfigError, TopicSet, load_topics, topic_from_dict

logger = logging.getLogger(__name__)

# Same constant in every mediamon process; distinct from mediamon.migrate's lock.
DETECT_LOCK_KEY = 0x6D6D_616C_6572_7401
DELIVERY_LOCK_KEY = 0x6D6D_616C_6572_7402
MATCH_BATCH = 500
# Articles changed up to this long before the last match run are matched again: an ingest
# transaction that started earlier may have committed after that run looked.
MATCH_OVERLAP = timedelta(hours=1)
MAX_ALERT_AGE = timedelta(hours=24)
STALE_EPISODE = timedelta(hours=24)
DEFAULT_SENDER = "mediamon <mediamon@localhost>"
# A story's time, as in the index articles_story_time (0003): keep the two identical.
STORY_TIME = "least(coalesce({a}.published_at, {a}.first_seen_at), {a}.first_seen_at)"


class DeliveryError(RuntimeError):
    """Some mails could not be sent; their alerts stay pending for the next run.

    Attributes:
        stats: What the delivery run did, failures included.
    """

    def __init__(self, message: str, stats: DeliveryStats) -> None:
        super().__init__(message)
        self.stats = stats


# ---------------------------------------------------------------------------------------
# Topic definitions


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
        return {
            "topics": self.topics.keys(),
            "changed": list(self.changed),
            "rematch": list(self.rematch),
            "removed": list(self.removed),
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
        for topic in topics:
            old = before.get(topic.key)
            if old is not None and old.version == topic.version and old.active:
                continue
            changed.append(topic.key)
            if old is None or old.match_version != topic.match_version:
                rematch.append(topic.key)
            definition = topic.to_dict()
            statement = insert(topics_table).values(
                topic=topic.key,
                name=topic.name,
                version=topic.version,
                match_version=topic.match_version,
                definition=definition,
                active=True,
                updated_at=sa.func.now(),
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[topics_table.c.topic],
                    set_={
                        c: statement.excluded[c]
                        for c in ("name", "version", "match_version", "definition", "active")
                    }
                    | {"updated_at": sa.func.now()},
                )
            )
            conn.execute(
                insert(topic_versions)
                .values(
                    topic=topic.key,
                    version=topic.version,
                    match_version=topic.match_version,
                    definition=definition,
                )
                .on_conflict_do_nothing()
            )
        removed = sorted(k for k, row in before.items() if row.active and topics.get(k) is None)
        if removed:
            conn.execute(
                topics_table.update()
                .where(topics_table.c.topic.in_(removed))
                .values(active=False, updated_at=sa.func.now())
            )
    if changed or removed:
        logger.info("topics: changed %s, re-match %s, removed %s", changed, rematch, removed)
    return TopicRefresh(topics, tuple(changed), tuple(rematch), tuple(removed))


def stored_topics(engine: sa.Engine, *, include_inactive: bool = False) -> TopicSet:
    """The definitions in force, as stored by the last successful :func:`sync_topics`."""
    query = sa.select(topics_table.c.definition).order_by(topics_table.c.topic)
    if not include_inactive:
        query = query.where(topics_table.c.active)
    with engine.connect() as conn:
        definitions = conn.execute(query).scalars().all()
    return TopicSet(tuple(topic_from_dict(d) for d in definitions), origin="database")


def refresh_topics(engine: sa.Engine, path: Path) -> TopicRefresh:
    """Read the topics file and sync it; when it is invalid keep the stored definitions.

    Raises:
        TopicConfigError: the file is invalid and no valid definition was ever stored.
    """
    try:
        topics = load_topics(path)
    except TopicConfigError as error:
        stored = stored_topics(engine)
        if not len(stored):
            raise
        logger.error("%s; the previous valid topic definitions stay in force", error)
        return TopicRefresh(stored, error=str(error))
    return sync_topics(engine, topics)


# ---------------------------------------------------------------------------------------
# Mentions


@dataclass
class MatchStats:
    """What one :func:`match_articles` call did."""

    articles: int = 0
    mentions: int = 0
    removed: int = 0
    full_rematch: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "articles": self.articles,
            "mentions": self.mentions,
            "removed": self.removed,
            "full_rematch": self.full_rematch,
        }


def match_article(
    topics: Iterable[Topic],
    title: str | None,
    match_text: str,
    language: str | None,
    source: str | None,
) -> dict[str, tuple[int, int]]:
    """The topics an article mentions, with (title hits, body hits). Pure."""
    title_folded = fold(title) if title else ""
    found: dict[str, tuple[int, int]] = {}
    for topic in topics:
        if not topic.in_scope(language, source):
            continue
        title_hits, body_hits = topic.match(title_folded, match_text)
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

    Raises:
        ValueError: a topic is not synced (call :func:`sync_topics` first).
    """
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
                ).where(topics_table.c.topic.in_(topics.keys()))
            )
        }
    for topic in topics:
        row = state.get(topic.key)
        if row is None or row.match_version != topic.match_version:
            raise ValueError(f"topic {topic.key!r} is not synced: call sync_topics first")
    full = [t for t in topics if state[t.key].matched_version != t.match_version]
    incremental = [t for t in topics if t not in full]
    stats = MatchStats(full_rematch=[t.key for t in full])
    if full:
        _match_pass(engine, full, None, batch_size, stats)
        with engine.begin() as conn:
            for topic in full:
                # Mentions of articles no longer in scope, under the old rules.
                deleted = conn.execute(
                    mentions.delete().where(
                        mentions.c.topic == topic.key,
                        mentions.c.match_version != topic.match_version,
                    )
                )
                stats.removed += deleted.rowcount
    if incremental:
        marks = [state[t.key].matched_through for t in incremental]
        since = None if None in marks else min(marks) - MATCH_OVERLAP
        _match_pass(engine, incremental, since, batch_size, stats)
    with engine.begin() as conn:
        for topic in topics:
            conn.execute(
                topics_table.update()
                .where(topics_table.c.topic == topic.key)
                .values(matched_version=topic.match_version, matched_through=started)
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
    versions = {t.key: t.match_version for t in topics}
    last_id = 0
    while True:
        # Keyset pages, each in its own short transaction: no long-lived cursor.
        query = sa.text(
            "select a.article_id, a.title, a.match_text, a.language, s.name as source"
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
                hits = match_article(topics, row.title, row.match_text, row.language, row.source)
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
        statement = insert(mentions).values([{**f, "matched_at": sa.func.now()} for f in found])
        excluded = statement.excluded
        changed = ("match_version", "title_hits", "body_hits")
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[mentions.c.article_id, mentions.c.topic],
                set_={c: excluded[c] for c in changed} | {"matched_at": sa.func.now()},
                where=sa.or_(*(mentions.c[c].is_distinct_from(excluded[c]) for c in changed)),
            )
        )
    # Pairs of this batch that no longer match (the article or the rules changed).
    result = conn.execute(
        sa.text(
            "delete from mentions m"
            " where m.article_id = any(:ids) and m.topic = any(:keys)"
            " and not exists (select 1 from unnest(cast(:f_ids as bigint[]),"
            " cast(:f_topics as text[])) as f(article_id, topic)"
            " where f.article_id = m.article_id and f.topic = m.topic)"
        ),
        {
            "ids": ids,
            "keys": keys,
            "f_ids": [f["article_id"] for f in found],
            "f_topics": [f["topic"] for f in found],
        },
    )
    return int(result.rowcount)


# ---------------------------------------------------------------------------------------
# Counts


def hourly_counts(
    conn: sa.Connection, topic_keys: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[datetime, int]]:
    """Distinct stories per topic and UTC hour in [start, end).

    A story is a root article (``duplicate_of`` is null): a copy that mentions the topic
    counts for its root, in the root's hour, so syndicated copies count once.
    """
    story_time = STORY_TIME.format(a="r")
    rows = conn.execute(
        sa.text(
            f"select m.topic, date_trunc('hour', {story_time}, 'UTC') as hour,"
            "  count(distinct r.article_id) as stories"
            " from mentions m"
            " join articles a on a.article_id = m.article_id"
            " join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)"
            f" where m.topic = any(:topics) and {story_time} >= :start and {story_time} < :end"
            " group by 1, 2"
        ),
        {"topics": list(topic_keys), "start": start, "end": end},
    )
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for topic, hour, stories in rows:
        counts[topic][hour.astimezone(UTC)] = int(stories)
    return counts


def hourly_counts_by_source(
    conn: sa.Connection, topic_key: str, start: datetime, end: datetime
) -> dict[tuple[datetime, str], int]:
    """Distinct stories of one topic per (UTC hour, source of the story's root)."""
    story_time = STORY_TIME.format(a="r")
    rows = conn.execute(
        sa.text(
            f"select date_trunc('hour', {story_time}, 'UTC') as hour, s.name,"
            "  count(distinct r.article_id)"
            " from mentions m"
            " join articles a on a.article_id = m.article_id"
            " join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)"
            " join sources s on s.source_id = r.source_id"
            f" where m.topic = :topic and {story_time} >= :start and {story_time} < :end"
            " group by 1, 2"
        ),
        {"topic": topic_key, "start": start, "end": end},
    )
    return {(hour.astimezone(UTC), source): int(n) for hour, source, n in rows}


def hourly_totals(
    conn: sa.Connection, start: datetime, end: datetime
) -> list[tuple[datetime, str, str | None, int]]:
    """All distinct stories per (UTC hour, source, language) in [start, end)."""
    story_time = STORY_TIME.format(a="a")
    rows = conn.execute(
        sa.text(
            f"select date_trunc('hour', {story_time}, 'UTC') as hour, s.name, a.language,"
            "  count(*)"
            " from articles a join sources s on s.source_id = a.source_id"
            f" where a.duplicate_of is null and {story_time} >= :start and {story_time} < :end"
            " group by 1, 2, 3"
        ),
        {"start": start, "end": end},
    )
    return [(hour.astimezone(UTC), source, language, int(n)) for hour, source, language, n in rows]


def _series(
    start: datetime,
    hours: int,
    counts: dict[datetime, int],
    totals: Sequence[tuple[datetime, str, str | None, int]],
    topic: Topic,
) -> HourlySeries:
    story_counts = [0] * hours
    volume = [0] * hours
    step = timedelta(hours=1)
    for hour, n in counts.items():
        index = (hour - start) // step
        if 0 <= index < hours:
            story_counts[index] += n
    for hour, source, language, n in totals:
        index = (hour - start) // step
        if 0 <= index < hours and topic.in_scope(language, source):
            volume[index] += n
    return HourlySeries(start, story_counts, volume)


def assess_topics(engine: sa.Engine, topics: TopicSet, at: datetime) -> list[Spike]:
    """Test every topic's window ending at ``at`` (read only; the dry run shows these).

    Args:
        engine: The data database.
        topics: The topics to test.
        at: Detection time; the window ends at the start of its hour (UTC).
    """
    end = floor_hour(at)
    if not len(topics):
        return []
    hours = max(t.params.baseline_weeks * HOURS_PER_WEEK + t.params.window_hours for t in topics)
    start = end - timedelta(hours=hours)
    with engine.connect() as conn:
        counts = hourly_counts(conn, topics.keys(), start, end)
        totals = hourly_totals(conn, start, end)
    return [
        assess(_series(start, hours, counts.get(t.key, {}), totals, t), end, t.params, t.key)
        for t in topics
    ]


# ---------------------------------------------------------------------------------------
# Alerts


def dedupe_key(spike: Spike) -> str:
    """One alert per topic and window: ``taiwan/2024-04-02T20:00Z/1h``."""
    return (
        f"{spike.topic}/{spike.window_start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
        f"/{spike.params.window_hours}h"
    )


def detect(engine: sa.Engine, topics: TopicSet, at: datetime) -> list[int]:
    """Test each topic's latest window and record alerts.

    A firing window opens an alert unless one exists for the same topic and window (a
    re-run), the topic's episode is still open (the topic has not re-armed), or another
    alert of the topic lies within its cooldown. An episode ends when its window is no
    longer elevated (see :attr:`mediamon.spikes.Spike.still_elevated`); an outage neither
    opens nor ends one.

    Args:
        engine: The data database (mentions up to date: see :func:`match_articles`).
        topics: The topics in force.
        at: Detection time; the window ends at the start of its hour (UTC).

    Returns:
        Ids of the alerts this call created (empty on a re-run).
    """
    spikes = assess_topics(engine, topics, at)
    created: list[int] = []
    with engine.begin() as conn:
        # Concurrent runs (a retry beside a late run) take turns.
        conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": DETECT_LOCK_KEY})
        for spike in spikes:
            topic = topics.get(spike.topic)
            assert topic is not None
            alert_id = _record(conn, spike, topic)
            if alert_id is not None:
                created.append(alert_id)
    if created:
        logger.info("alerts created: %s", created)
    return created


def _record(conn: sa.Connection, spike: Spike, topic: Topic) -> int | None:
    a = alerts_table.c
    at = spike.window_end
    if spike.status not in ("spike", "quiet"):
        logger.info("topic %s at %s: %s, nothing decided", topic.key, at, spike.status)
        return None
    if conn.execute(sa.select(a.alert_id).where(a.dedupe_key == dedupe_key(spike))).first():
        return None  # this window was already decided
    episode = conn.execute(
        sa.select(a.alert_id, a.last_window_end)
        .where(a.topic == topic.key, a.cleared_at.is_(None), a.window_end < at)
        .order_by(a.window_end.desc())
        .limit(1)
    ).first()
    if episode is not None and at - episode.last_window_end > STALE_EPISODE:
        _clear(conn, episode.alert_id, episode.last_window_end)
        episode = None
    if episode is not None:
        if spike.still_elevated or spike.fired:
            conn.execute(
                alerts_table.update()
                .where(a.alert_id == episode.alert_id)
                .values(
                    last_window_end=sa.func.greatest(a.last_window_end, at),
                    peak_observed=sa.func.greatest(a.peak_observed, spike.observed),
                )
            )
        else:
            _clear(conn, episode.alert_id, at)
        return None
    if not spike.fired:
        return None
    cooldown = timedelta(hours=topic.params.cooldown_hours)
    recent = conn.execute(
        sa.select(a.alert_id).where(
            a.topic == topic.key, a.window_end > at - cooldown, a.window_end < at + cooldown
        )
    ).first()
    if recent is not None:
        logger.info("topic %s at %s: spike within cooldown of alert %s", topic.key, at, recent[0])
        return None
    statement = (
        insert(alerts_table)
        .values(
            dedupe_key=dedupe_key(spike),
            topic=topic.key,
            topic_version=topic.version,
            window_start=spike.window_start,
            window_end=spike.window_end,
            observed=int(spike.observed),
            expected=float(spike.expected),
            lift=float(spike.lift),
            score=float(spike.score),
            p_value=float(spike.p_value),
            total_stories=int(spike.total_stories),
            details=_jsonable(spike.details()),
            state="open",
            last_window_end=spike.window_end,
            peak_observed=int(spike.observed),
            created_at=sa.func.now(),
        )
        .on_conflict_do_nothing(index_elements=[a.dedupe_key])
        .returning(a.alert_id)
    )
    return conn.execute(statement).scalar_one_or_none()


def _clear(conn: sa.Connection, alert_id: int, when: datetime) -> None:
    a = alerts_table.c
    conn.execute(
        alerts_table.update()
        .where(a.alert_id == alert_id, a.cleared_at.is_(None))
        .values(
            cleared_at=when,
            # Resolved only once notified: a cleared alert whose mail is still pending
            # stays open and is sent (then resolved) by deliver_pending.
            state=sa.case((a.state == "notified", "resolved"), else_=a.state),
            resolved_at=sa.case((a.state == "notified", when), else_=a.resolved_at),
        )
    )


def _jsonable(value: Any) -> Any:
    """JSON for jsonb: infinities and NaN become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars, from callers' series
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------
# Delivery


@dataclass
class DeliveryStats:
    """What one :func:`deliver_pending` call did."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    notified: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "notified": self.notified,
            "errors": self.errors[:20],
            "busy": self.busy,
        }


def message_id(kind: str, key: str, recipient: str) -> str:
    """A stable Message-ID, so a mail sent again after a crash can be recognized."""
    digest = hashlib.sha256(recipient.lower().encode("utf-8")).hexdigest()[:12]
    return f"<{kind}-{key}.{digest}@mediamon.invalid>"


def deliver_pending(
    engine: sa.Engine,
    send: Callable[[EmailMessage], None],
    now: datetime,
    *,
    sender: str = DEFAULT_SENDER,
    topics: TopicSet | None = None,
    max_age: timedelta = MAX_ALERT_AGE,
    options: MailOptions | None = None,
) -> DeliveryStats:
    """Send every pending alert once (digests are :mod:`mediamon.digests`' job).

    Each recipient gets their own mail. A delivery is recorded only after ``send``
    returned, and an alert becomes ``notified`` only when all its immediate recipients
    have theirs, so a failed send leaves it pending for the next run and a repeated run
    sends nothing twice. Alerts older than ``max_age`` (a backfill) are not mailed
    immediately (recorded as skipped); digests still show them among their period's spikes.

    Args:
        engine: The data database.
        send: Sends one message (e.g. through Airflow's SmtpHook, or smtplib); raises
            on failure.
        now: The time of this run (decides what is due and stale; the Date header).
        sender: The From address.
        topics: Recipients come from here (default: the stored definitions).
        max_age: Older alerts are not mailed one by one.
        options: Display zone, unsubscribe address and base URL of the mails.

    Returns:
        Counts of sent, skipped and failed mails.

    Raises:
        DeliveryError: at least one send failed (after every other mail was tried and the
            successes recorded); the failed ones stay pending.
    """
    now = now.astimezone(UTC)
    topics = topics if topics is not None else stored_topics(engine, include_inactive=True)
    stats = DeliveryStats()
    with engine.connect() as lock:
        # One delivery at a time: two overlapping runs must not both send.
        got = lock.execute(
            sa.text("select pg_try_advisory_lock(:key)"), {"key": DELIVERY_LOCK_KEY}
        ).scalar_one()
        lock.commit()
        if not got:
            logger.warning("another delivery is running; nothing sent")
            stats.busy = True
            return stats
        try:
            _deliver_immediate(
                engine, send, now, sender, topics, max_age, options or MailOptions(), stats
            )
        finally:
            lock.execute(sa.text("select pg_advisory_unlock(:key)"), {"key": DELIVERY_LOCK_KEY})
            lock.commit()
    if stats.failed:
        raise DeliveryError(
            f"{stats.failed} mail(s) not sent, left pending: " + "; ".join(stats.errors[:3]),
            stats,
        )
    return stats


def _record_delivery(engine: sa.Engine, rows: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(alert_deliveries).values(list(rows)).on_conflict_do_nothing())


def _try_send(
    send: Callable[[EmailMessage], None], message: EmailMessage, stats: DeliveryStats
) -> bool:
    try:
        send(message)
    except Exception as error:  # noqa: BLE001 - any failure means "not sent": retried later
        stats.failed += 1
        stats.errors.append(f"{message['To']}: {type(error).__name__}: {error}")
        logger.warning("mail to %s not sent: %s", message["To"], error)
        return False
    return True


def _deliver_immediate(
    engine: sa.Engine,
    send: Callable[[EmailMessage], None],
    now: datetime,
    sender: str,
    topics: TopicSet,
    max_age: timedelta,
    options: MailOptions,
    stats: DeliveryStats,
) -> None:
    a = alerts_table.c
    with engine.connect() as conn:
        pending = conn.execute(
            sa.select(a.alert_id, a.topic, a.window_end)
            .where(a.state == "open")
            .order_by(a.alert_id)
        ).all()
    for alert_id, topic_key, window_end in pending:
        topic = topics.get(topic_key)
        recipients = [r for r in (topic.recipients if topic else ()) if r.mode == "immediate"]
        with engine.connect() as conn:
            done = set(
                conn.execute(
                    sa.select(alert_deliveries.c.recipient).where(
                        alert_deliveries.c.alert_id == alert_id,
                        alert_deliveries.c.mode == "immediate",
                    )
                ).scalars()
            )
            content = alert_mail(conn, alert_id, topic) if recipients else None
        complete = True
        for recipient in recipients:
            if recipient.address in done:
                continue
            if window_end < now - max_age:
                _record_delivery(
                    engine,
                    [
                        {
                            "alert_id": alert_id,
                            "recipient": recipient.address,
                            "mode": "immediate",
                            "status": "skipped",
                            "message_id": None,
                            "sent_at": now,
                            "note": f"older than {max_age} when first due: not mailed",
                        }
                    ],
                )
                stats.skipped += 1
                continue
            assert content is not None
            mid = message_id("alert", str(alert_id), recipient.address)
            message = alert_message(
                content,
                Reader(recipient.address, recipient.locale, recipient.timezone),
                options,
                sender=sender,
                message_id=mid,
                sent_at=now,
            )
            if not _try_send(send, message, stats):
                complete = False
                continue
            _record_delivery(
                engine,
                [
                    {
                        "alert_id": alert_id,
                        "recipient": recipient.address,
                        "mode": "immediate",
                        "status": "sent",
                        "message_id": mid,
                        "sent_at": now,
                        "note": None,
                    }
                ],
            )
            stats.sent += 1
        if complete:
            with engine.begin() as conn:
                conn.execute(
                    alerts_table.update()
                    .where(a.alert_id == alert_id, a.state == "open")
                    .values(
                        state=sa.case((a.cleared_at.is_not(None), "resolved"), else_="notified"),
                        notified_at=now,
                        resolved_at=sa.case((a.cleared_at.is_not(None), now), else_=None),
                    )
                )
            stats.notified.append(alert_id)


# ---------------------------------------------------------------------------------------
# One run


def run_alerts(
    engine: sa.Engine,
    topics_path: Path,
    at: datetime,
    *,
    send: Callable[[EmailMessage], None] | None = None,
    now: datetime | None = None,
    sender: str = DEFAULT_SENDER,
    dry_run: bool = False,
    options: MailOptions | None = None,
) -> dict[str, Any]:
    """One alerts run: refresh topics, match, detect at ``at``, deliver (if ``send``).

    With ``dry_run`` nothing is written or sent: the topics file is validated (the stored
    definitions are used if it is invalid) and the windows are tested on the mentions as
    they are.

    Args:
        engine: The data database.
        topics_path: The topics file.
        at: Detection time (the DAG's data interval end).
        send: Sends one message; None skips delivery.
        now: Time of delivery (default: ``at``).
        sender: The From address.
        dry_run: Test only; write and send nothing.

    Returns:
        A small JSON-able summary.
    """
    if dry_run:
        try:
            topics = load_topics(topics_path)
            error = None
        except TopicConfigError as problem:
            topics, error = stored_topics(engine), str(problem)
        spikes = assess_topics(engine, topics, at)
        return {
            "dry_run": True,
            "topics_error": error,
            "windows": [_spike_summary(s) for s in spikes],
        }
    refresh = refresh_topics(engine, topics_path)
    matched = match_articles(engine, refresh.topics)
    created = detect(engine, refresh.topics, at)
    summary: dict[str, Any] = {
        "topics": refresh.as_dict(),
        "matched": matched.as_dict(),
        "alerts_created": created,
    }
    if send is not None:
        delivery = deliver_pending(engine, send, now or at, sender=sender, options=options)
        summary["delivery"] = delivery.as_dict()
    return summary


def _spike_summary(spike: Spike) -> dict[str, Any]:
    return {
        "topic": spike.topic,
        "window_end": spike.window_end.isoformat(),
        "status": spike.status,
        "observed": int(spike.observed),
        "expected": round(float(spike.expected), 3),
        "p_value": float(spike.p_value),
    }
