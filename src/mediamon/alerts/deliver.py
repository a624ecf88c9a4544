"""Delivery: every pending alert mailed once to each immediate recipient (digests are
:mod:`mediamon.alerts.digest`'s). Every write is an upsert on a natural key, so a retried
or repeated run sends nothing twice."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.alerts import subscriptions
from mediamon.alerts.compose import AlertMail, MailOptions, Reader, alert_message
from mediamon.alerts.content import alert_mail
from mediamon.alerts.render import clean, message_id_domain
from mediamon.alerts.smtp import MailServerRefusal, refused_for_good, server_refusal
from mediamon.db.engine import session_lock
from mediamon.db.tables import (
    alert_deliveries,
    alerts_table,
    topics_table,
)
from mediamon.errors import MailNotSent
from mediamon.topics.definitions import TopicSet
from mediamon.topics.store import stored_topics

logger = logging.getLogger(__name__)

DELIVERY_LOCK_KEY = 0x6D6D_616C_6572_7402
MAX_ALERT_AGE = timedelta(hours=24)
DEFAULT_SENDER = "mediamon <mediamon@localhost>"


class DeliveryError(MailNotSent):
    """Some mails could not be sent (their alerts stay pending for the next run) or were
    refused for good (recorded ``refused``, not tried again).

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
    refused: int = 0  # recipients the server refused for good (5xx): recorded, not retried
    unsubscribed: int = 0  # recipients who left the topic (mail_subscriptions): not mailed
    notified: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "refused": self.refused,
            "unsubscribed": self.unsubscribed,
            "notified": self.notified,
            "errors": self.errors[:20],
            "busy": self.busy,
        }


def message_id(
    kind: str, key: str, recipient: str, sender: str = DEFAULT_SENDER, *, made: str = ""
) -> str:
    """A stable Message-ID, so a mail sent again after a crash can be recognized, at the
    sender's domain (:func:`~mediamon.alerts.render.message_id_domain`).

    ``made`` names what the mail is of beyond ``key`` (an alert's topic, window and the
    time its row was stored), hashed with the recipient: the id stays the same for every
    try of one mail and differs for any other. Of ``alert-7`` and the recipient alone, a
    database made again (a restore, a new deployment, staging beside production with
    one sender) gave its alert #7 the id of the old alert #7, and Gmail, which keeps one
    message per Message-ID, dropped the new alert unseen."""
    seed = recipient.lower() + ("\0" + made if made else "")
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()[: 16 if made else 12]
    return f"<{kind}-{key}.{digest}@{message_id_domain(sender)}>"


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
    """Send every pending alert once (digests are :mod:`mediamon.alerts.digest`'s job).

    Each recipient gets their own mail. A delivery is recorded only after ``send``
    returned, and an alert becomes ``notified`` only when all its immediate recipients
    have theirs, so a failed send leaves it pending for the next run and a repeated run
    sends nothing twice. Alerts older than ``max_age`` (a backfill) are not mailed
    immediately (recorded as skipped); digests still show them among their period's spikes.
    Alerts of a topic removed from the topics file before its mail went out are not mailed
    either (recorded as skipped).

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
        MailServerRefusal: the server refuses every mail (530 authentication required,
            a refused sender, a relay denial): the run stops at the first, the alerts
            not mailed stay pending.
    """
    now = now.astimezone(UTC)
    topics = topics if topics is not None else stored_topics(engine, include_inactive=True)
    stats = DeliveryStats()
    # One delivery at a time: two overlapping runs must not both send.
    with session_lock(engine, DELIVERY_LOCK_KEY) as got:
        if not got:
            logger.warning("another delivery is running; nothing sent")
            stats.busy = True
            return stats
        try:
            _deliver_immediate(
                engine, send, now, sender, topics, max_age, options or MailOptions(), stats
            )
        except MailServerRefusal as refusal:
            raise MailServerRefusal(
                f"{refusal}; nothing more sent ({stats.sent} mail(s) before it): the alerts"
                " stay pending until the mediamon_smtp connection or the relay is fixed"
            ) from refusal
    if stats.failed or stats.refused:
        raise DeliveryError(_failure_line(stats), stats)
    return stats


def _failure_line(stats: DeliveryStats) -> str:
    said = []
    if stats.failed:
        said.append(f"{stats.failed} mail(s) not sent, left pending")
    if stats.refused:
        said.append(f"{stats.refused} recipient(s) refused for good, not tried again")
    return ", ".join(said) + ": " + "; ".join(stats.errors[:3])


def _record_delivery(engine: sa.Engine, rows: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(alert_deliveries).values(list(rows)).on_conflict_do_nothing())


def _record_unsubscribed(engine: sa.Engine, alert_id: int, address: str, now: datetime) -> None:
    """The alert's delivery to a recipient who left its topic: skipped, saying why, so the
    alert is complete (notified) without their mail."""
    row = {
        "alert_id": alert_id,
        "recipient": address,
        "mode": "immediate",
        "status": "skipped",
        "message_id": None,
        "sent_at": now,
        "note": "unsubscribed: the recipient left this topic's mail",
    }
    _record_delivery(engine, [row])


def _try_send(
    send: Callable[[EmailMessage], None],
    build: Callable[[], EmailMessage],
    address: str,
    stats: DeliveryStats,
) -> str | bool:
    """Build and send one mail: True when sent, False when it failed (tried again by the
    next run), or the note to record when the server refused the mail for good.
    The message is built here, inside the try: an address the mail library refuses in a
    header fails that mail, not the rest of the run.

    Raises:
        MailServerRefusal: the server refuses every mail; the others are not tried.
    """
    try:
        send(build())
    except Exception as error:  # noqa: BLE001 - any failure means "not sent": retried later
        refusal = server_refusal(error)
        if refusal is not None:
            # Every other mail would get the same answer (and a login refused once a
            # mail gets the address blocked): stop here, record nothing.
            logger.error("mail to %s not sent: %s", address, refusal)
            raise refusal from error
        answer = refused_for_good(error)
        if answer is not None:
            # A dead mailbox stays dead, and a message refused (spam, too large) is
            # refused again: offering it every run failed the task for a day, and
            # offering a refused message again gets the sender listed as a spammer.
            stats.refused += 1
            stats.errors.append(f"{address}: refused for good: {answer}")
            logger.warning("mail to %s refused for good, not tried again: %s", address, answer)
            return f"refused for good: {answer}"
        stats.failed += 1
        stats.errors.append(f"{address}: {type(error).__name__}: {error}")
        logger.warning("mail to %s not sent: %s", address, error)
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
        pending = pending_alerts(conn)
        # Topics taken out of the topics file (or renamed: a new key) while their alert
        # waited (the SMTP server down): nobody follows them any more.
        removed = set(
            conn.execute(sa.select(topics_table.c.topic).where(~topics_table.c.active)).scalars()
        )
    for alert_id, topic_key, window_end in pending:
        topic = topics.get(topic_key)
        recipients = [r for r in (topic.recipients if topic else ()) if r.mode == "immediate"]
        skip = _skip_reason(window_end, topic_key in removed, now, max_age)
        with engine.connect() as conn:
            done = set(
                conn.execute(
                    sa.select(alert_deliveries.c.recipient).where(
                        alert_deliveries.c.alert_id == alert_id,
                        alert_deliveries.c.mode == "immediate",
                    )
                ).scalars()
            )
            content = alert_mail(conn, alert_id, topic) if recipients and not skip else None
        complete = True
        for recipient in recipients:
            if recipient.address in done:
                continue
            if not skip:
                # Read just before this mail, not once per run: a recipient who clicked
                # "unsubscribe" while the run mailed others gets nothing more from it.
                with engine.connect() as conn:
                    if not subscriptions.still_wants(conn, recipient.address, topic_key):
                        _record_unsubscribed(engine, alert_id, recipient.address, now)
                        stats.unsubscribed += 1
                        continue
            if skip:
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
                            "note": skip,
                        }
                    ],
                )
                stats.skipped += 1
                continue
            assert content is not None
            mid = message_id("alert", str(alert_id), recipient.address, sender, made=_made(content))
            build = partial(
                alert_message,
                content,
                Reader(recipient.address, recipient.locale, recipient.timezone),
                options,
                sender=sender,
                message_id=mid,
            )  # dated when it is sent (a re-run of a past run mails now, not then)
            outcome = _try_send(send, build, recipient.address, stats)
            if outcome is False:
                complete = False
                continue
            refused = isinstance(outcome, str)  # the server's answer: refused for good
            _record_delivery(
                engine,
                [
                    {
                        "alert_id": alert_id,
                        "recipient": recipient.address,
                        "mode": "immediate",
                        "status": "refused" if refused else "sent",
                        "message_id": None if refused else mid,
                        "sent_at": now,
                        "note": clean(outcome, 500) if refused else None,
                    }
                ],
            )
            if not refused:
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


def _made(alert: AlertMail) -> str:
    """What makes an alert's mails its own (:func:`message_id`): topic, window and when
    its row was stored (the database's clock, unchanged by a retry), in UTC whatever the
    session's zone."""
    stored = alert.raised_at.astimezone(UTC).isoformat() if alert.raised_at else ""
    return f"{alert.topic_key}|{alert.window_end.astimezone(UTC).isoformat()}|{stored}"


def _skip_reason(
    window_end: datetime, topic_removed: bool, now: datetime, max_age: timedelta
) -> str | None:
    """Why a pending alert is recorded as skipped instead of mailed (None: it is mailed)."""
    if window_end < now - max_age:
        return f"older than {max_age} when first due: not mailed"
    if topic_removed:
        return "topic no longer in the topics file when due: not mailed"
    return None


def mail_outlook(
    conn: sa.Connection,
    alert_id: int | None,
    topics: TopicSet,
    topic_key: str,
    now: datetime,
    *,
    max_age: timedelta = MAX_ALERT_AGE,
    left: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, Any]:
    """What :func:`deliver_pending` has done or would do now with an alert's mail, read
    only (``mediamon alerts run --dry-run``). ``alert_id`` None: an alert this run would
    create. ``left``: :func:`mediamon.alerts.subscriptions.left_topics` of the topics'
    recipients, read once by a caller that asks about many alerts (None: read here).

    ``mail`` is ``would_send`` (this run mails it to ``would_mail_to``: all its immediate
    recipients, or those a failed send left out, while ``mailed_to`` had theirs),
    ``would_skip`` (pending, but recorded as skipped: ``reason``), ``sent`` (already
    mailed, to ``mailed_to``), ``skipped`` (recorded as skipped, never mailed) or
    ``no_recipients``. A
    topic missing from ``topics`` counts as taken out of the topics file: the run syncs
    the file before it delivers.
    """
    topic = topics.get(topic_key)
    immediate = [r.address for r in (topic.recipients if topic else ()) if r.mode == "immediate"]
    # Those who left the topic are not mailed (deliver_pending records them skipped).
    if left is None:
        left = subscriptions.left_topics(conn, immediate)
    immediate = [address for address in immediate if subscriptions.wants(left, address, topic_key)]
    if alert_id is None:
        return {
            "mail": "would_send" if immediate else "no_recipients",
            "mailed_to": [],
            "would_mail_to": immediate,
            "reason": None,
        }
    a = alerts_table.c
    d = alert_deliveries.c
    state, window_end = conn.execute(
        sa.select(a.state, a.window_end).where(a.alert_id == alert_id)
    ).one()
    done = conn.execute(
        sa.select(d.recipient, d.status, d.note)
        .where(d.alert_id == alert_id, d.mode == "immediate")
        .order_by(d.recipient)
    ).all()
    mailed = [row.recipient for row in done if row.status == "sent"]
    if state == "open":  # pending: what this run does with it
        missing = [address for address in immediate if address not in {r.recipient for r in done}]
        skip = _skip_reason(window_end, topic is None, now, max_age)
        if skip is not None and missing:
            return {"mail": "would_skip", "mailed_to": mailed, "would_mail_to": [], "reason": skip}
        return {
            "mail": "would_send" if missing else ("sent" if mailed else "no_recipients"),
            "mailed_to": mailed,
            "would_mail_to": missing,
            "reason": None,
        }
    if mailed:
        status = "sent"
    elif done:
        status = "skipped"
    else:
        status = "no_recipients"
    return {
        "mail": status,
        "mailed_to": mailed,
        "would_mail_to": [],  # notified: deliver_pending sends it to nobody else
        "reason": next((row.note for row in done if row.status != "sent"), None),
    }


def pending_alerts(conn: sa.Connection) -> list[tuple[int, str, datetime]]:
    """(id, topic, window end) of every alert whose mail is pending, oldest first."""
    a = alerts_table.c
    return [
        (int(alert_id), str(topic), window_end)
        for alert_id, topic, window_end in conn.execute(
            sa.select(a.alert_id, a.topic, a.window_end)
            .where(a.state == "open")
            .order_by(a.alert_id)
        )
    ]
