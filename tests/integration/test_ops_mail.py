"""The ops mails as people see them: rendered by headless Debian chromium at phone and
desktop widths (no sideways scrolling), with everything a source supplied escaped.
Screenshots are saved to var/test-artifacts/ops-*.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.ops import mail as ops_mail
from tests.support.browser import ARTIFACTS, Chromium, mail_html_file

AT = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="alert(1)"> feed said: </td></table><b>bold</b>'
LAYOUT = """(() => ({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  images: document.images.length,
  bold: document.querySelectorAll('b').length,
  text: document.body.innerText,
}))()"""


def render(browser: Chromium, message: EmailMessage, name: str, width: int) -> dict[str, Any]:
    """The mail's layout facts in chromium at ``width`` px; a screenshot is left in
    var/test-artifacts/ for people to look at."""
    page_file = mail_html_file(message, ARTIFACTS / f"{name}-{width}.html")
    page = browser.open(page_file.as_uri(), width=width)
    page.screenshot(ARTIFACTS / f"{name}-{width}.png")
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    return layout


def incident(**changes: object) -> SimpleNamespace:
    row = {
        "incident_id": 7,
        "dedupe_key": "source_failing:rfi-cn",
        "summary": "source rfi-cn failed its last 3 polls",
        "detail": "https://www.rfi.fr/cn/" + "very-long-path-" * 20 + ": " + HOSTILE,
        "advice": "Open the feed URL from the worker host.",
        "since": AT - timedelta(hours=1),
        "opened_at": AT,
        "resolved_at": None,
    }
    return SimpleNamespace(**(row | changes))


def test_incident_mail_is_dated_when_sent() -> None:
    """The watchdog dated its mail at the run's time: a run for a past time (``health run
    --at``, a cleared Airflow run) sent mail that sorted days back in the inbox."""
    message = ops_mail.incident_message(incident(), False, "m <m@x.org>", ["ops@x.org"], zone=UTC)
    sent = parsedate_to_datetime(str(message["Date"]))
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize("width", [390, 1280])
def test_incident_and_recovery_mail_fit_and_escape(width: int) -> None:
    with Chromium() as browser:
        for recovery in (False, True):
            row = incident(resolved_at=AT + timedelta(hours=2) if recovery else None)
            message = ops_mail.incident_message(
                row, recovery, "m <m@x.org>", ["ops@x.org"], zone=UTC
            )
            name = "ops-recovery" if recovery else "ops-incident"
            layout = render(browser, message, name, width)
            # No sideways scrolling; the source's markup shows as text, not as markup.
            assert layout["scrollWidth"] <= layout["clientWidth"] <= width, layout
            assert layout["images"] == 0 and layout["bold"] == 0
            assert '<img src=x onerror="alert(1)">' in layout["text"]
            assert ("Cleared" in layout["text"]) is recovery


@pytest.mark.parametrize("width", [390, 1280])
def test_weekly_report_fits(width: int) -> None:
    rows = [
        {"source": f"source-{n}-with-a-long-name", "polls": 672, "failures": n,
         "articles": 1200 + n, "median_latency_ms": 350, "trend": "+12%"}
        for n in range(12)
    ]  # fmt: skip
    message = ops_mail.report_message(
        rows, AT - timedelta(days=7), AT, "m@x.org", ["o@x.org"], zone=UTC
    )
    with Chromium() as browser:
        layout = render(browser, message, "ops-report", width)
    assert layout["scrollWidth"] <= layout["clientWidth"] <= width, layout
    assert layout["text"].count("-with-a-long-name") == 12  # one row per source
    text = message.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    assert text.get_content().splitlines()[3].split() == [
        "source-0-with-a-long-name", "672", "0", "1200", "350", "+12%"
    ]  # fmt: skip


def test_a_recovery_never_announced_says_so() -> None:
    row = incident(resolved_at=AT + timedelta(hours=2))
    told = ops_mail.incident_message(row, True, "m <m@x.org>", ["ops@x.org"], zone=UTC)
    untold = ops_mail.incident_message(
        row, True, "m <m@x.org>", ["ops@x.org"], zone=UTC, unannounced=True
    )
    assert "while mail was down" not in str(told["Subject"])
    assert str(untold["Subject"]).endswith("(opened and cleared while mail was down)")
    text = untold.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    assert "Mailed: Never: no mail could be sent while it was open." in text.get_content()
    # An INCIDENT mail is never "unannounced": it is the announcement.
    first = ops_mail.incident_message(
        incident(), False, "m <m@x.org>", ["ops@x.org"], zone=UTC, unannounced=True
    )
    assert "while mail was down" not in str(first["Subject"])


def task_failure(**changes: str) -> dict[str, str]:
    failure = {
        "dag_id": "mediamon_ingest",
        "task_id": "ingest_shard",
        "run_id": "scheduled__2024-06-10T12:00:00+00:00",
        "tries": "3",
        "error": "OperationalError: connection to server failed; the feed said " + HOSTILE,
        "log_url": "http://127.0.0.1:8080/dags/mediamon_ingest/runs/scheduled__2024-06-10"
        "T12%3A00%3A00%2B00%3A00/tasks/ingest_shard?try_number=3",
    }
    return failure | changes


@pytest.mark.parametrize("width", [390, 1280])
def test_task_failure_mail_says_what_failed_and_fits(width: int) -> None:
    """The provider's notifier sent an HTML part only, without the error: ops had to open
    the UI to learn what broke."""
    message = ops_mail.task_failure_message(task_failure(), "m <m@x.org>", ["ops@x.org"])
    text = message.get_body(("plain",))
    assert text is not None
    plain = text.get_content()
    assert "OperationalError: connection to server failed" in plain
    assert "Log: http://127.0.0.1:8080/dags/mediamon_ingest/runs/" in plain
    with Chromium() as browser:
        layout = render(browser, message, "ops-task-failure", width)
    assert layout["scrollWidth"] <= layout["clientWidth"] <= width, layout
    assert layout["images"] == 0 and layout["bold"] == 0
    assert '<img src=x onerror="alert(1)">' in layout["text"]
    assert "try_number=3" in layout["text"]


def test_a_task_failing_on_the_database_mails_one_line_not_its_statement(
    engine: sa.Engine,
) -> None:
    """Before: the failure mail gave SQLAlchemy's text of the error, which goes on with
    the statement and its parameters: a session killed mid-load mailed `[SQL: …]
    [parameters: …]`, 2,000 characters of the article being loaded."""
    body = "台湾新闻的正文。" * 500
    with engine.connect() as victim:
        pid = victim.exec_driver_sql("select pg_backend_pid()").scalar_one()
        with engine.connect() as admin:
            admin.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.OperationalError) as killed:
            victim.execute(sa.text("select length(:body)"), {"body": body})
    with engine.connect() as conn, pytest.raises(sa.exc.DataError) as refused:
        conn.execute(sa.text("select :body"), {"body": "NUL\x00" + body})
    for error, expected in (
        (killed.value, "database unavailable: "),
        (refused.value, "DataError: PostgreSQL text fields cannot contain NUL"),
    ):
        line = ops_mail.failure_text(error)
        assert line.startswith(expected), line
        assert "\n" not in line and "[SQL" not in line and "parameters" not in line
        assert "台湾新闻" not in line
        message = ops_mail.task_failure_message(
            task_failure(error=line), "m <m@x.org>", ["ops@x.org"]
        )
        plain = message.get_body(("plain",))
        assert isinstance(plain, EmailMessage)
        assert f"Error: {line}" in plain.get_content()
    assert ops_mail.failure_text(None) == ""
    assert ops_mail.failure_text(KeyError("x")) == "KeyError: 'x'"


def test_task_failure_mail_links_only_to_http_urls() -> None:
    message = ops_mail.task_failure_message(
        task_failure(log_url="javascript:alert(1)", error=""), "m <m@x.org>", ["ops@x.org"]
    )
    html = message.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert "href" not in body and "javascript:alert(1)" in body
    assert "(Airflow gave no error text)" in body


@pytest.mark.parametrize("width", [390, 1280])
def test_a_task_failure_over_and_back_again_say_so_and_fit(width: int) -> None:
    """The end of a mailed task failure (a database back) had no mail: ops could not tell
    "fixed" from "still down, held back". Its RESOLVED mail names the task, the error that
    was mailed and when; the error back again says it flaps."""
    failure = task_failure()
    recovery = {
        "dag_id": "mediamon_ingest",
        "task_id": "plan_sources",
        "run_id": "scheduled__2024-06-10T12:45:00+00:00",
        "error": failure["error"],
        "mailed_at": "2024-06-10 20:00 (UTC+08:00)",
        "back_at": "2024-06-10 20:45 (UTC+08:00)",
        "log_url": failure["log_url"],
    }
    message = ops_mail.task_recovery_message(recovery, "m <m@x.org>", ["ops@x.org"])
    assert str(message["Subject"]).startswith(
        "[mediamon] RESOLVED task failure: mediamon_ingest.plan_sources (OperationalError:"
    )
    plain = message.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    text = plain.get_content()
    assert "Mailed: 2024-06-10 20:00 (UTC+08:00)" in text
    assert "Back: 2024-06-10 20:45 (UTC+08:00), run scheduled__2024-06-10T12:45" in text
    again = ops_mail.task_failure_message(
        task_failure(resolved_at="2024-06-10 20:45 (UTC+08:00)"), "m <m@x.org>", ["ops@x.org"]
    )
    again_plain = again.get_body(("plain",))
    assert isinstance(again_plain, EmailMessage)
    assert (
        "Again: This error was mailed as over at 2024-06-10 20:45 (UTC+08:00) and is back:"
        " it flaps. Its end is mailed once no task has failed with it for 4 hours."
    ) in again_plain.get_content()
    with Chromium() as browser:
        layout = render(browser, message, "ops-task-recovery", width)
    assert layout["scrollWidth"] <= layout["clientWidth"] <= width, layout
    assert layout["images"] == 0 and layout["bold"] == 0
    assert '<img src=x onerror="alert(1)">' in layout["text"]
