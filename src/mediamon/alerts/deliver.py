"""Delivery: every pending alert mailed once to each immediate recipient, and the daily
digests that are due. Every write is an upsert on a natural key, so a retried or repeated
run sends nothing twice."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.alerts import render
from mediamon.db.queries import STORY_TIME
from mediamon.db.tables import (
    alert_deliveries,
    alerts_table,
)
from mediamon.spikes.counts import hourly_counts
from mediamon.topics.definitions import Topic, TopicSet
from mediamon.topics.store import stored_topics

logger = logging.getLogger(__name__)

DELIVERY_LOCK_KEY = 0x6D6D_616C_6572_7402
MAX_ALERT_AGE = timedelta(hours=24)
MAX_DIGEST_AGE = timedelta(days=7)
TOP_STORIES = 5
CHART_HOURS = 7 * 24
DEFAULT_SENDER = "mediamon <mediamon@localhost>"


class DeliveryError(RuntimeError):
    """Some mails could not be sent; their alerts stay pending for the next run.

    Attributes:
        stats: What the delivery run did, failures included.
    """

    def __init__(self, message: str, stats: DeliveryStats) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass
class DeliveryStats:
    """What one :func:`deliver_pending` call did."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    digests: int = 0
    notified: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "digests": self.digests,
            "notified": self.notified,
            "errors": self.errors[:20],
            "busy": self.busy,
        }


def alert_content(
    conn: sa.Connection, alert_id: int, topic: Topic | None = None, *, top: int = TOP_STORIES
) -> render.AlertContent:
    """Gather what an alert mail shows: the numbers, the top stories and 7 days of counts."""
    row = conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).one()
    name = topic.name if topic else row.topic
    story_time = STORY_TIME.format(a="r")
    stories = conn.execute(
        sa.text(
            f"select r.title, s.name as source, {story_time} as published_at, r.url"
            " from mentions m"
            " join articles a on a.article_id = m.article_id"
            " join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)"
            " join sources s on s.source_id = r.source_id"
            f" where m.topic = :topic and {story_time} >= :start and {story_time} < :end"
            f" group by r.article_id, s.name"
            " order by max(m.title_hits) desc, count(*) desc,"
            "  max(m.title_hits + m.body_hits) desc, published_at desc, r.article_id"
            " limit :top"
        ),
        {"topic": row.topic, "start": row.window_start, "end": row.window_end, "top": top},
    ).all()
    history_start = row.window_end - timedelta(hours=CHART_HOURS)
    counts = hourly_counts(conn, [row.topic], history_start, row.window_end).get(row.topic, {})
    history = tuple(counts.get(history_start + timedelta(hours=i), 0) for i in range(CHART_HOURS))
    return render.AlertContent(
        alert_id=row.alert_id,
        topic_key=row.topic,
        topic_name=name,
        window_start=row.window_start,
        window_end=row.window_end,
        observed=row.observed,
        expected=row.expected,
        p_value=row.p_value,
        total_stories=row.total_stories,
        stories=tuple(render.Story(s.title, s.source, s.published_at, s.url) for s in stories),
        history=history,
        history_start=history_start,
        params=dict(row.details.get("params", {})),
    )


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
) -> DeliveryStats:
    """Send every pending alert once, and the daily digests that are due.

    Each recipient gets their own mail. A delivery is recorded only after ``send``
    returned, and an alert becomes ``notified`` only when all its immediate recipients
    have theirs, so a failed send leaves it pending for the next run and a repeated run
    sends nothing twice. Alerts older than ``max_age`` (a backfill) are not mailed
    immediately (recorded as skipped) but still appear in digests.

    Args:
        engine: The data database.
        send: Sends one message (e.g. through Airflow's SmtpHook, or smtplib); raises
            on failure.
        now: The time of this run (decides what is due and stale; the Date header).
        sender: The From address.
        topics: Recipients come from here (default: the stored definitions).
        max_age: Older alerts are not mailed one by one.

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
            _deliver_immediate(engine, send, now, sender, topics, max_age, stats)
            _deliver_digests(engine, send, now, sender, topics, stats)
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
            content = alert_content(conn, alert_id, topic) if recipients else None
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
            message = render.build_message(
                render.render_alert(content, recipient.timezone),
                sender,
                [recipient.address],
                message_id=mid,
                sent_at=now,
                headers={"X-Mediamon-Alert": str(alert_id), "X-Mediamon-Topic": topic_key},
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


def digest_cutoff(now: datetime, hour: int, timezone: str) -> tuple[datetime, date]:
    """The latest digest time at or before ``now`` (UTC) and its local date."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    cutoff = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if cutoff > local:
        cutoff = datetime.combine(local.date() - timedelta(days=1), time(hour), tzinfo=zone)
    return cutoff.astimezone(UTC), cutoff.date()


def _deliver_digests(
    engine: sa.Engine,
    send: Callable[[EmailMessage], None],
    now: datetime,
    sender: str,
    topics: TopicSet,
    stats: DeliveryStats,
) -> None:
    subscriptions: dict[str, list[str]] = defaultdict(list)
    schedule: dict[str, tuple[int, str]] = {}
    for topic in topics:
        for recipient in topic.recipients:
            if recipient.mode == "digest":
                subscriptions[recipient.address].append(topic.key)
                schedule.setdefault(recipient.address, (recipient.digest_hour, recipient.timezone))
    a = alerts_table.c
    for address, keys in sorted(subscriptions.items()):
        hour, timezone = schedule[address]
        cutoff, day = digest_cutoff(now, hour, timezone)
        with engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.select(a.alert_id)
                    .where(
                        a.topic.in_(keys),
                        a.window_end <= cutoff,
                        a.window_end > cutoff - MAX_DIGEST_AGE,
                        ~sa.exists().where(
                            alert_deliveries.c.alert_id == a.alert_id,
                            alert_deliveries.c.recipient == address,
                            alert_deliveries.c.mode == "digest",
                        ),
                    )
                    .order_by(a.alert_id)
                )
                .scalars()
                .all()
            )
            if not ids:
                continue
            contents = [
                alert_content(conn, i, topics.get(k), top=3)
                for i, k in conn.execute(sa.select(a.alert_id, a.topic).where(a.alert_id.in_(ids)))
            ]
        key = (
            f"{day.isoformat()}-{hashlib.sha256(','.join(map(str, ids)).encode()).hexdigest()[:8]}"
        )
        mid = message_id("digest", key, address)
        message = render.build_message(
            render.render_digest(contents, day, timezone),
            sender,
            [address],
            message_id=mid,
            sent_at=now,
            headers={"X-Mediamon-Digest": day.isoformat()},
        )
        if not _try_send(send, message, stats):
            continue
        _record_delivery(
            engine,
            [
                {
                    "alert_id": i,
                    "recipient": address,
                    "mode": "digest",
                    "status": "sent",
                    "message_id": mid,
                    "sent_at": now,
                    "note": None,
                }
                for i in ids
            ],
        )
        stats.digests += 1
        stats.sent += 1
