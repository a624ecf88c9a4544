"""The weekly source-health report: per source, its polls, failed polls, new articles,
median poll latency and the trend against the week before. Mailed once per ISO week
(``ops_reports`` remembers), so a re-run of the weekly task sends nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from mediamon.alerts.smtp import MailServerRefusal
from mediamon.errors import MailNotSent
from mediamon.ops import outbox

WEEK = timedelta(days=7)


class ReportMailError(MailNotSent):
    """The weekly report could not be sent (the SMTP server is down, refuses us); the
    week is not marked as sent, so the next run sends it."""

    exit_code = 1


@dataclass(frozen=True)
class ReportOutcome:
    """What :func:`send_weekly` did; ``already_sent``: this week's report went out before,
    or from an overlapping run while this one waited (not a failure of this run)."""

    key: str
    rows: list[dict[str, Any]]
    sent: bool
    note: str | None = None
    already_sent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"report": self.key, "sources": len(self.rows), "sent": self.sent, "note": self.note}


def report_key(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"source-health:{year}-W{week:02d}"


def report_rows(conn: sa.Connection, end: datetime) -> list[dict[str, Any]]:
    """One row per source for the week ending at ``end``."""
    rows = conn.execute(
        sa.text(
            "select s.name as source,"
            "  coalesce(f.polls, 0) as polls, coalesce(f.failures, 0) as failures,"
            "  f.median_latency_ms,"
            "  (select count(*) from articles a where a.source_id = s.source_id"
            "     and a.first_seen_at > :start and a.first_seen_at <= :end) as articles,"
            "  (select count(*) from articles a where a.source_id = s.source_id"
            "     and a.first_seen_at > :before and a.first_seen_at <= :start) as articles_before"
            " from sources s left join lateral ("
            "  select count(distinct run_key) as polls,"
            "         count(*) filter (where kind = 'feed' and error is not null) as failures,"
            "         round(percentile_cont(0.5) within group (order by elapsed_ms)"
            "               filter (where kind = 'feed')) as median_latency_ms"
            "    from fetch_log fl where fl.source_id = s.source_id and fl.kind in ('feed', 'file')"
            "     and fl.fetched_at > :start and fl.fetched_at <= :end) f on true"
            # A source taken out of the sources file is reported for the weeks it was
            # still polled in, not as a row of zeros every week after.
            " where s.enabled or f.polls > 0"
            " order by s.name"
        ),
        {"start": end - WEEK, "end": end, "before": end - 2 * WEEK},
    ).mappings()
    report = []
    for row in rows:
        item = dict(row)
        item["median_latency_ms"] = (
            int(item["median_latency_ms"]) if item["median_latency_ms"] is not None else "-"
        )
        item["trend"] = _trend(int(item["articles"]), int(item.pop("articles_before")))
        report.append(item)
    return report


def _trend(now: int, before: int) -> str:
    if before == 0:
        return "new" if now else "-"
    change = (now - before) / before
    return f"{change:+.0%}"


def send_weekly(
    engine: sa.Engine,
    at: datetime,
    *,
    send: Callable[[EmailMessage], None] | None,
    sender: str,
    recipients: Sequence[str],
    zone: tzinfo = UTC,
    dry_run: bool = False,
) -> ReportOutcome:
    """Mail the report for the week ending at ``at`` unless this ISO week's was sent; its
    times in ``zone`` (MEDIAMON_TIMEZONE).

    Raises:
        ReportMailError: the mail was not sent; the week stays unsent for the next run.
        MailServerRefusal: the server refuses every mail, or lacks what the connection
            needs (a configuration error: no retries); the week stays unsent.
    """
    from mediamon.ops import mail as ops_mail

    key = report_key(at)
    with engine.connect() as conn:
        rows = report_rows(conn, at)
        already = conn.execute(
            sa.text("select sent_at from ops_reports where report_key = :key"), {"key": key}
        ).scalar_one_or_none()
    if already is not None:
        note = f"already sent {already.isoformat()}"
        return ReportOutcome(key, rows, False, note, already_sent=True)
    if dry_run:
        return ReportOutcome(key, rows, False, "dry run: nothing written, nothing sent")
    if send is None or not recipients:
        missing = "no mediamon_smtp connection" if send is None else "MEDIAMON_OPS_EMAIL unset"
        return ReportOutcome(key, rows, False, f"{missing}: not sent")
    # Ops mails kept while the server was down go first, this week's report among them
    # if an earlier try of this run kept it (mediamon.ops.outbox).
    if key in outbox.deliver_pending(engine, send).sent:
        return ReportOutcome(key, rows, True, "sent from the outbox, where an earlier try kept it")
    with engine.begin() as conn:
        claimed = conn.execute(
            sa.text(
                "insert into ops_reports (report_key, sent_at) values (:key, :at)"
                " on conflict do nothing returning report_key"
            ),
            {"key": key, "at": at},
        ).first()
        if claimed is None:
            return ReportOutcome(key, rows, False, "sent by a concurrent run", already_sent=True)
        # Sent inside the claiming transaction: a failed send rolls the claim back.
        message = None
        try:
            message = ops_mail.report_message(rows, at - WEEK, at, sender, recipients, zone=zone)
            send(message)
        except MailServerRefusal as refusal:
            # A setting (530, no AUTH for the login, no STARTTLS): a retry gets the same.
            raise MailServerRefusal(
                f"weekly report {key} not sent: {refusal} (the week stays unsent until the"
                " mediamon_smtp connection or the relay is fixed)"
            ) from refusal
        except Exception as error:  # noqa: BLE001 - any other failure: retried
            # The next run is next week's: kept, the watchdog mails it once the server
            # takes mail (before: lost once the task's retries were spent).
            kept = False
            if message is not None and outbox.may_succeed_later(error):
                kept = True
                outbox.keep(engine, key, "weekly_report", message, error)
            raise ReportMailError(
                f"weekly report {key} not sent: {type(error).__name__}: {error}"
                + (
                    " (kept in ops_outbox: the next watchdog run or retry sends it)"
                    if kept
                    else " (the next run sends it)"
                )
            ) from error
    return ReportOutcome(key, rows, True)
