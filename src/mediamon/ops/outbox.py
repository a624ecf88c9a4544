"""Ops mails that the mail server could not take, kept in PostgreSQL (``ops_outbox``) until
it can. Before, a task-failure mail or the weekly source-health report sent while the
SMTP server was down was one WARNING line and lost: the failure mail went out only if
the same error came back, the report never (the next run is the next week's).

Like a mail transfer agent's queue (Postfix defers such mail and tries again), the
message is kept as it was built, under a natural key: one failed task try
(``task-failure:dag.task[map] run try N``), one ISO week (``source-health:2024-W24``).
A key is stored once (``on conflict do nothing``) and mailed once: a delivery locks its
row and marks it sent in the same transaction, and a run finding it locked leaves it to
the other (``skip locked``).

Who delivers: the watchdog (``mediamon_health``, every 15 minutes, and ``mediamon health
run``) before its own incident mails, and each ops mail before itself (the failure
callback, the weekly report): pending mails go first, in the order they were kept. The
watchdog is the place that fits: it runs whatever fails, reads mediamon's database
anyway and already mails what is due once mail works; a quiet day has no other ops mail.

How late: a mail an hour or more late says so in its subject (``(sent 5 hours late)``,
as a late alert does, :data:`mediamon.alerts.compose.LATE_AFTER`); one older than
:data:`MAX_AGE` is dropped with one log line naming it: a day-old failure was red in the
Airflow UI all day, and the watchdog's incidents (ingest stale, alerts undelivered) have
told ops since; mailed as it came it would read as news. A 5xx answer to the message
is final, as for the watchdog's mails: recorded and not offered again.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa

from mediamon.alerts.smtp import refused_for_good, server_refusal
from mediamon.text import one_line

logger = logging.getLogger(__name__)

Send = Callable[[EmailMessage], None]

# Pending mails older than this are dropped, not mailed.
MAX_AGE = timedelta(hours=24)
# As late as a late alert (mediamon.alerts.compose.LATE_AFTER, which imports the chart
# library: not loaded for this), a mail says it is late.
LATE_AFTER = timedelta(hours=1)
# Rows sent or dropped are deleted this long after.
KEEP_DONE = timedelta(days=30)
ERROR_CHARS = 500
# ops_reports' claim for a weekly report delivered from here: the week is then sent.
_REPORT_CLAIM = (
    "insert into ops_reports (report_key, sent_at) values (:key, :at)"
    " on conflict do nothing returning report_key"
)


@dataclass
class Delivery:
    """What one :func:`deliver_pending` did, by mail key."""

    sent: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Why the rest wait: the server's error (None: nothing is waiting for the server).
    waiting: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "dropped": self.dropped, "refused": self.refused,
                "waiting": self.waiting}  # fmt: skip


def may_succeed_later(error: BaseException) -> bool:
    """A send error another try may get past (the server down, a 4xx answer); not a
    refusal of this message (5xx to ``DATA``) nor of every mail (530, relay denied:
    a setting, which the caller reports as such)."""
    return server_refusal(error) is None and refused_for_good(error) is None


def keep(
    engine: sa.Engine,
    key: str,
    kind: str,
    message: EmailMessage,
    error: BaseException | str,
    at: datetime | None = None,
) -> bool:
    """Keep ``message``, which could not be sent for ``error``, for a later delivery;
    return whether it was stored now (False: that key is kept already, pending or sent).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: mediamon's database cannot be written.
    """
    with engine.begin() as conn:
        stored = conn.execute(
            sa.text(
                "insert into ops_outbox (mail_key, kind, subject, message, created_at,"
                " last_error) values (:key, :kind, :subject, :message, :at, :error)"
                " on conflict (mail_key) do nothing returning mail_key"
            ),
            {
                "key": key,
                "kind": kind,
                "subject": str(message["Subject"] or ""),
                "message": bytes(message),
                "at": at or datetime.now(UTC),
                "error": error if isinstance(error, str) else _error_text(error),
            },
        ).first()
    return stored is not None


def pending(engine: sa.Engine) -> list[str]:
    """The keys of the mails still waiting, oldest first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select mail_key from ops_outbox where sent_at is null and dropped_at is null"
                    " order by created_at, mail_key"
                )
            ).scalars()
        )


def deliver_pending(engine: sa.Engine, send: Send, now: datetime | None = None) -> Delivery:
    """Mail every pending ops mail, oldest first, each once; drop those older than
    :data:`MAX_AGE` (one WARNING line names them). The first send that fails for a
    reason another try may get past stops the delivery (the server is down: the rest
    would fail the same way), counted on its row; they all wait for the next call.

    Raises:
        MailServerRefusal: the server refuses every mail (a setting): nothing more is
            tried, the mails stay pending.
    """
    now = now or datetime.now(UTC)
    done = Delivery()
    with engine.begin() as conn:
        # Sent and dropped rows are kept a while to look at, then go: their keys (a task
        # try, an ISO week) do not come back, and ops_reports remembers the weeks.
        conn.execute(
            sa.text("delete from ops_outbox where coalesce(sent_at, dropped_at) < :until"),
            {"until": now - KEEP_DONE},
        )
        done.dropped = list(
            conn.execute(
                sa.text(
                    "update ops_outbox set dropped_at = :now where sent_at is null"
                    " and dropped_at is null and created_at < :oldest returning mail_key"
                ),
                {"now": now, "oldest": now - MAX_AGE},
            ).scalars()
        )
    if done.dropped:
        logger.warning(
            "%d ops mail(s) dropped, not sent: kept over %g h while the mail server could not"
            " take them (ops_outbox.dropped_at): %s",
            len(done.dropped),
            MAX_AGE / timedelta(hours=1),
            ", ".join(sorted(done.dropped)),
        )
    for key in pending(engine):
        with engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "select mail_key, kind, message, created_at from ops_outbox"
                    " where mail_key = :key and sent_at is null and dropped_at is null"
                    " for update skip locked"  # another run is mailing it
                ),
                {"key": key},
            ).one_or_none()
            if row is None:
                continue
            if (
                row.kind == "weekly_report"
                and conn.execute(sa.text(_REPORT_CLAIM), {"key": key, "at": now}).first() is None
            ):
                # The week went out meanwhile (a retry of the report task): done.
                _mark(conn, key, "sent_at", now)
                continue
            try:
                send(late(_message(row.message), now - row.created_at))
            except Exception as error:
                if not may_succeed_later(error):
                    if server_refusal(error) is not None:
                        raise
                    logger.warning("ops mail %s refused for good: %s", key,
                                   refused_for_good(error))  # fmt: skip
                    done.refused.append(key)
                    _mark(conn, key, "dropped_at", now, _error_text(error))
                    continue
                conn.rollback()  # the report's claim with it
                with engine.begin() as again:
                    again.execute(
                        sa.text(
                            "update ops_outbox set attempts = attempts + 1, last_error = :error"
                            " where mail_key = :key"
                        ),
                        {"key": key, "error": _error_text(error)},
                    )
                done.waiting = _error_text(error)
                break
            _mark(conn, key, "sent_at", now)
            done.sent.append(key)
    if done.sent:
        logger.info("%d pending ops mail(s) sent: %s", len(done.sent), ", ".join(done.sent))
    return done


def late(message: EmailMessage, age: timedelta) -> EmailMessage:
    """``message`` with ``(sent N hours late)`` after its subject when it is
    :data:`LATE_AFTER` or more old; its Date stays the time it was written."""
    if age < LATE_AFTER:
        return message
    hours = max(1, round(age / timedelta(hours=1)))
    subject = str(message["Subject"] or "")
    del message["Subject"]
    message["Subject"] = f"{subject} (sent {hours} hour{'s' if hours != 1 else ''} late)"
    message["X-Mediamon-Sent-Late"] = f"{hours} h"
    return message


def _message(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(bytes(data), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # the default policy's class
    return parsed


def _mark(
    conn: sa.Connection, key: str, column: str, at: datetime, error: str | None = None
) -> None:
    conn.execute(
        sa.text(
            f"update ops_outbox set {column} = :at, last_error = coalesce(:error, last_error)"
            " where mail_key = :key"
        ),
        {"key": key, "at": at, "error": error},
    )


def _error_text(error: BaseException) -> str:
    return one_line(f"{type(error).__name__}: {error}", ERROR_CHARS)
