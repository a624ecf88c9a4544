"""Ops mails the mail server could not take (``ops_outbox``): kept once, mailed once by the
next watchdog run or ops mail, late ones saying so, day-old ones dropped in one line; a
real SMTP server down (a closed port) then up, a real PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from mediamon.alerts.render import Rendered, build_message
from mediamon.ops import health, outbox, report
from mediamon.ops.thresholds import HealthThresholds
from tests.dags.airflow_runs import closed_port
from tests.integration.test_health import Mailbox
from tests.support.smtp_server import Answering, Sink, serve_smtp, smtp_send

OPS = ["ops@example.org"]
SENDER = "mediamon@example.org"


def ops_mail(subject: str) -> EmailMessage:
    return build_message(
        Rendered(subject=subject, text=f"{subject}\n", html=f"<p>{subject}</p>"), SENDER, OPS
    )


def kept(engine: sa.Engine) -> dict[str, tuple[bool, bool, int]]:
    """Each kept mail: (sent, dropped, attempts)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select mail_key, sent_at is not null, dropped_at is not null, attempts"
                " from ops_outbox"
            )
        ).all()
    return {key: (sent, dropped, attempts) for key, sent, dropped, attempts in rows}


def test_a_weekly_report_the_server_could_not_take_goes_with_the_next_watchdog_run(
    engine: sa.Engine, smtp: tuple[Sink, int]
) -> None:
    """Before: ``weekly report … not sent (the next run sends it)``, but the next run is
    next week's, with its own key: once the task's retries were spent, the week's report
    was never mailed. Now it is kept, and the next watchdog run mails it, once."""
    now = datetime.now(UTC)
    down = smtp_send(closed_port())
    with pytest.raises(report.ReportMailError, match="kept in ops_outbox"):
        report.send_weekly(engine, now, send=down, sender=SENDER, recipients=OPS)
    key = report.report_key(now)
    assert kept(engine) == {key: (False, False, 1)}

    sink, port = smtp
    up = smtp_send(port)
    for _ in range(2):  # the second run finds nothing left to send
        result = health.run(
            engine, now, send=up, sender=SENDER, recipients=OPS, limits=HealthThresholds()
        )
    mailbox = Mailbox(sink)
    subjects = [m["Subject"] for m in mailbox.messages]
    assert subjects == [f"[mediamon] source health, week to {now:%Y-%m-%d}"], subjects
    assert result.outbox == {"sent": [], "dropped": [], "refused": [], "waiting": None}
    assert kept(engine) == {key: (True, False, 1)}
    # The week is sent: the report task's next try (or a second command) sends nothing.
    again = report.send_weekly(engine, now, send=up, sender=SENDER, recipients=OPS)
    assert again.already_sent and len(sink.messages) == 1


def test_a_report_kept_is_sent_by_the_tasks_retry_not_twice(
    engine: sa.Engine, smtp: tuple[Sink, int]
) -> None:
    """The report task's retry, with the server back, sends the kept message (the one
    outbox row), and the watchdog after it nothing more."""
    now = datetime.now(UTC)
    with pytest.raises(report.ReportMailError):
        report.send_weekly(engine, now, send=smtp_send(closed_port()), sender=SENDER,
                           recipients=OPS)  # fmt: skip
    sink, port = smtp
    outcome = report.send_weekly(engine, now, send=smtp_send(port), sender=SENDER, recipients=OPS)
    assert outcome.sent, outcome
    health.run(engine, now, send=smtp_send(port), sender=SENDER, recipients=OPS,
               limits=HealthThresholds())  # fmt: skip
    assert len(sink.messages) == 1


def test_kept_mails_go_once_late_ones_say_so_and_day_old_ones_are_dropped_in_one_line(
    engine: sa.Engine, smtp: tuple[Sink, int], caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    refused = ConnectionRefusedError(111, "Connection refused")
    for name, age in (("stale", timedelta(hours=25)), ("late", timedelta(hours=3)),
                      ("fresh", timedelta(minutes=5))):  # fmt: skip
        message = ops_mail(f"[mediamon] task failed: {name}")
        assert outbox.keep(engine, name, "task_failure", message, refused, now - age)
    # The same mail kept again (a callback run twice): stored once.
    assert not outbox.keep(engine, "late", "task_failure", ops_mail("again"), refused, now)

    down = outbox.deliver_pending(engine, smtp_send(closed_port()), now)
    assert (down.sent, down.dropped) == ([], ["stale"])
    assert down.waiting is not None and "ConnectionRefusedError" in down.waiting
    # The first one tried counts the try; the server is down, the rest are not tried.
    assert kept(engine)["late"] == (False, False, 2)
    assert kept(engine)["fresh"] == (False, False, 1)

    sink, port = smtp
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mediamon.ops.outbox"):
        for _ in range(2):
            outbox.deliver_pending(engine, smtp_send(port), now)
    subjects = [m["Subject"] for m in Mailbox(sink).messages]
    assert subjects == [
        "[mediamon] task failed: late (sent 3 hours late)",
        "[mediamon] task failed: fresh",
    ], subjects
    assert kept(engine) == {
        "stale": (False, True, 1),
        "late": (True, False, 2),
        "fresh": (True, False, 1),
    }
    assert not caplog.records  # the drop was said once, by the first delivery


def test_the_drop_is_one_line_naming_the_mails(
    engine: sa.Engine, smtp: tuple[Sink, int], caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    error = ConnectionRefusedError(111, "Connection refused")
    for name in ("a", "b"):
        outbox.keep(engine, name, "task_failure", ops_mail(name), error, now - timedelta(days=2))
    with caplog.at_level(logging.WARNING, logger="mediamon.ops.outbox"):
        done = outbox.deliver_pending(engine, smtp_send(smtp[1]), now)
    assert done.dropped == ["a", "b"] and not smtp[0].messages
    # Its own lines only: the SMTP server's thread logs its clients' disconnects too.
    lines = [r.getMessage() for r in caplog.records if r.name == "mediamon.ops.outbox"]
    assert lines == [
        "2 ops mail(s) dropped, not sent: kept over 24 h while the mail server"
        " could not take them (ops_outbox.dropped_at): a, b"
    ], lines


def test_a_kept_mail_the_server_refuses_for_good_is_not_offered_again(engine: sa.Engine) -> None:
    """A 5xx answer to the message is final, as for the watchdog's own mails: offered
    every 15 minutes it would get mediamon listed as a spammer."""
    now = datetime.now(UTC)
    error = ConnectionRefusedError(111, "Connection refused")
    outbox.keep(engine, "spam", "task_failure", ops_mail("spam"), error, now)
    server = Answering(data={OPS[0]: "554 5.7.1 rejected as spam"})
    with serve_smtp(server) as port:
        for _ in range(2):
            done = outbox.deliver_pending(engine, smtp_send(port), now)
    assert server.offered == {OPS[0]: 1}
    assert done.refused == [] and kept(engine) == {"spam": (False, True, 1)}


def test_a_kept_mail_being_sent_by_another_run_is_left_to_it(
    engine: sa.Engine, smtp: tuple[Sink, int]
) -> None:
    """Two deliveries at once (the watchdog and a failure callback): the row is locked
    while its mail goes out, and the other delivery skips it rather than mail it too."""
    now = datetime.now(UTC)
    error = ConnectionRefusedError(111, "Connection refused")
    outbox.keep(engine, "one", "task_failure", ops_mail("one"), error, now)
    sink, port = smtp
    with engine.connect() as other:
        other.execute(sa.text("select 1 from ops_outbox where mail_key = 'one' for update"))
        done = outbox.deliver_pending(engine, smtp_send(port), now)
        assert (done.sent, sink.messages) == ([], [])
        other.rollback()
    assert outbox.deliver_pending(engine, smtp_send(port), now).sent == ["one"]
    assert outbox.deliver_pending(engine, smtp_send(port), now).sent == []
    assert len(sink.messages) == 1
