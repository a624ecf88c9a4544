"""Alert mail from the command line through the ``mediamon_smtp`` connection, to a real
SMTP server (aiosmtpd) on 127.0.0.1, on the demo's invented history with its burst."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.alerts import smtp as mail
from mediamon.alerts.deliver import DeliveryError, DeliveryStats, deliver_pending
from mediamon.cli import main
from mediamon.devtools.demo import mail_sink
from mediamon.devtools.demo_history import write_history
from mediamon.errors import ConfigError
from mediamon.topics.definitions import TopicSet
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import refresh_topics, sync_topics
from tests.integration.test_alert_stages import AT, TOPICS_YAML, alert_on_burst, rows, scalar
from tests.support.smtp_server import (
    Answering,
    Picky,
    Sink,
    connection_json,
    password_check,
    serve_smtp,
    serve_trickle,
    smtp_send,
)

BURST_END = "2024-04-17T02:00:00+00:00"


def test_connection_from_env_json_and_uri() -> None:
    json_conn = {
        "AIRFLOW_CONN_MEDIAMON_SMTP": json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": 8025, "login": "u",
             "password": "hunter2", "extra": {"disable_ssl": True, "from_email": "a@b.c"}}
        )
    }  # fmt: skip
    settings = mail.settings_from_env(environ=json_conn)
    assert settings is not None
    assert (settings.host, settings.port, settings.login) == ("127.0.0.1", 8025, "u")
    assert not settings.use_ssl and settings.use_starttls and settings.sender == "a@b.c"
    assert "hunter2" not in repr(settings)  # the password stays out of logs

    uri = mail.settings_from_env(
        environ={
            "AIRFLOW_CONN_MEDIAMON_SMTP": "smtp://me:s%40cret@mail.example.org:25?disable_ssl=true&disable_tls=true"
        }
    )
    assert uri is not None and uri.password == "s@cret" and not uri.use_starttls
    assert mail.settings_from_env(environ={}) is None
    with pytest.raises(mail.MailConfigError, match="AIRFLOW_CONN_MEDIAMON_SMTP: not valid JSON"):
        mail.settings_from_env(environ={"AIRFLOW_CONN_MEDIAMON_SMTP": "{nope"})


CONN = "AIRFLOW_CONN_MEDIAMON_SMTP"
PORT_RANGE = "expected a whole number from 1 to 65535, got"
HOST_NAME = "host: expected a host name without spaces or control characters, got"
MALFORMED = {
    # name: (the variable's value, the one line; before: the error in the comment)
    "port-1e400": ('{"host": "h", "port": 1e400}', f"port: {PORT_RANGE} inf"),  # OverflowError
    "port-99999": ('{"host": "h", "port": 99999}', f"port: {PORT_RANGE} 99999"),  # port 34463
    "port-0": ('{"host": "h", "port": 0}', f"port: {PORT_RANGE} 0"),  # silently 465
    "port-abc": ('{"host": "h", "port": "abc"}', f"port: {PORT_RANGE} 'abc'"),  # int() literal
    "port-true": ('{"host": "h", "port": true}', f"port: {PORT_RANGE} True"),  # port 1
    "uri-port-99999": ("smtp://h:99999", f"port: {PORT_RANGE} '99999'"),  # Port out of range
    "uri-port-abc": ("smtp://u:s3cret@h:abc", f"port: {PORT_RANGE} 'abc'"),  # could not cast
    "uri-ipv6": ("smtp://u:s3cret@[::1:25", "not a valid URI (Invalid IPv6 URL)"),  # ValueError
    "extra-list": ('{"host": "h", "extra": [1, 2]}', "extra: expected a JSON object, got a list"),
    "extra-json-list": (  # AttributeError
        '{"host": "h", "extra": "[1, 2]"}',
        "extra: expected a JSON object, got a list",
    ),
    "extra-bad-json": (  # JSONDecodeError, not naming the variable
        '{"host": "h", "extra": "{nope"}',
        "extra: not valid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)",
    ),
    "host-number": ('{"host": 5}', f"{HOST_NAME} 5"),  # TypeError
    "host-space": ('{"host": "mail example.org"}', f"{HOST_NAME} 'mail example.org'"),
    "host-nul": ('{"host": "h\\u0000x"}', f"{HOST_NAME} 'h\\x00x'"),
    "host-empty": ('{"host": ""}', "the connection has no host"),
    "timeout-inf": (  # OverflowError when sending
        '{"host": "h", "extra": {"timeout": "inf"}}',
        "extra.timeout: expected a number of seconds, got 'inf'",
    ),
    "timeout-nan-uri": (
        "smtp://h:25?timeout=nan",
        "extra.timeout: expected a number of seconds, got 'nan'",
    ),
    "timeout-text": (  # ValueError when sending
        '{"host": "h", "extra": {"timeout": "soon"}}',
        "extra.timeout: expected a number of seconds, got 'soon'",
    ),
    "password-number": (
        '{"host": "h", "password": 271828}',
        "password: expected text, got a number",
    ),
    "login-number": ('{"host": "h", "login": 7}', "login: expected text, got 7"),
    "from-email-header-break": (
        '{"host": "h", "extra": {"from_email": "a@b.c\\r\\nBcc: x@y.z"}}',
        "extra.from_email: expected an address without control characters,"
        " got 'a@b.c\\r\\nBcc: x@y.z'",
    ),
    "json-trailing-data": ("{} []", "not valid JSON: Extra data: line 1 column 4 (char 3)"),
    "nested-deeply": ('{"a": ' + "[" * 100_000, "not valid JSON: nested too deeply"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_connections_are_one_line_naming_the_variable_and_field(case: str) -> None:
    value, message = MALFORMED[case]
    with pytest.raises(mail.MailConfigError) as failure:
        mail.settings_from_env(environ={CONN: value})
    assert str(failure.value) == f"{CONN}: {message}"
    assert isinstance(failure.value, ConfigError)  # the CLI: one line, exit 2
    assert "s3cret" not in str(failure.value) and "271828" not in str(failure.value)


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("0", 1.0), (-5, 1.0), ("12.5", 12.5), (10**400, 300.0), (None, 30.0)],
    ids=["zero", "negative", "text", "huge", "unset"],
)
def test_connection_timeout_is_clamped(timeout: object, seconds: float) -> None:
    conn = json.dumps({"host": "h", "port": "2525", "extra": {"timeout": timeout}})
    settings = mail.settings_from_env(environ={CONN: conn})
    assert settings is not None and (settings.port, settings.timeout_s) == (2525, seconds)


def test_airflow_connection_fields_are_checked_the_same_way() -> None:
    fields = {"host": "h", "port": 70000, "login": None, "password": "pw", "extra": {}}
    with pytest.raises(mail.MailConfigError, match=r"^mediamon_smtp: port: expected a whole"):
        mail.connection_settings(fields, mail.SMTP_CONN_ID)
    fields = {"host": "h", "port": None, "login": None, "password": None, "extra": None}
    assert mail.connection_settings(fields).port == 465  # Airflow: no port given


@pytest.fixture()
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    from datetime import datetime

    folder = tmp_path / "history"
    write_history(folder, datetime.fromisoformat(BURST_END), weeks=2)
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    return folder


def test_alerts_run_mails_once_through_the_connection(
    history: Path,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import-archive", str(history), "--source-name", "history"]) == 0
    capsys.readouterr()

    assert main(["alerts", "run", "--at", BURST_END, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from alerts")).scalar_one() == 0

    with mail_sink(tmp_path / "mail") as (sink, port):
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert main(["alerts", "run", "--at", BURST_END]) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(["alerts", "run", "--at", BURST_END]) == 0  # a re-run sends nothing
        second = json.loads(capsys.readouterr().out)
        saved = list(sink.saved)

    assert len(first["alerts_created"]) == 1, first
    assert first["delivery"]["sent"] >= 1
    assert second["alerts_created"] == [] and second["delivery"]["sent"] == 0
    immediate = [p for p in saved if b"desk@example.org" in p.read_bytes()]
    assert len(immediate) == 1
    message = message_from_bytes(immediate[0].read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("[mediamon] 台湾：1 小时内 9 篇报道")  # desk reads zh-CN
    assert message["To"] == "desk@example.org"
    with engine.connect() as conn:
        state = conn.execute(sa.text("select state from bi.alerts")).scalar_one()
    assert state == "notified"


DIGEST_TOPICS = """\
version: 1
defaults:
  digest: {hour: 8, timezone: Asia/Shanghai}
topics:
  - key: taiwan
    name: 台湾
    terms: [台湾, 台海]
    recipients:
      - {address: desk@example.org, mode: immediate, locale: zh-CN}
      - {address: editors@example.org, mode: daily, locale: zh-CN}
      - {address: weekly@example.org, mode: weekly, digest_weekday: wednesday, locale: en,
         timezone: Europe/London, digest_hour: 7}
"""


def test_digest_run_mails_each_recipient_once(
    history: Path,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(DIGEST_TOPICS, encoding="utf-8")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics_file))
    assert main(["import-archive", str(history), "--source-name", "history"]) == 0
    capsys.readouterr()
    at = "2024-04-18T00:30:00+00:00"  # 08:30 in Shanghai, the morning after the burst
    # A dry run reads the mentions as they are: match first, as an earlier run would have.
    match_articles(engine, refresh_topics(engine, topics_file).topics)
    assert main(["digest", "run", "--at", at, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["due"] == 2 and dry["sent"] == 0
    # The totals agree with the list (before, "stories" stayed 0 beside digests of 14).
    assert dry["stories"] == sum(d["stories"] for d in dry["digests"]) > 0, dry
    assert dry["empty"] == sum(d["stories"] == 0 and d["spikes"] == 0 for d in dry["digests"])

    with mail_sink(tmp_path / "mail") as (sink, port):
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert main(["digest", "run", "--at", at]) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(["digest", "run", "--at", at]) == 0  # the same periods again: nothing
        second = json.loads(capsys.readouterr().out)
        saved = list(sink.saved)

    assert (first["sent"], first["failed"]) == (2, 0)
    assert (second["due"], second["sent"]) == (0, 0)
    assert len(saved) == 2
    periods = {d["recipient"]: d for d in first["digests"]}
    for path in saved:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        digest = periods[message["To"]]
        with engine.connect() as conn:
            expected = sorted(
                conn.execute(
                    sa.text(
                        "select distinct story_id from bi.topic_mentions"
                        " where topic = 'taiwan' and published_at >= :start"
                        " and published_at < :end"
                    ),
                    {"start": digest["period_start"], "end": digest["period_end"]},
                ).scalars()
            )
        html_part = message.get_body(("html",))
        assert html_part is not None
        listed = sorted(int(i) for i in re.findall(r'data-story="(\d+)"', html_part.get_content()))
        assert expected and listed == expected, message["To"]
        assert digest["stories"] == len(expected)
    # Daily: 08:00 Shanghai to 08:00 Shanghai; weekly: Wednesday 07:00 London, a week back.
    assert periods["editors@example.org"]["period_end"] == "2024-04-18T00:00:00+00:00"
    assert periods["weekly@example.org"]["period_start"] == "2024-04-10T06:00:00+00:00"


def test_demo_mail_sink_keeps_earlier_mails(tmp_path: Path) -> None:
    """A second `make demo` numbers its mails after the first run's and deletes none."""
    from email.message import EmailMessage

    from tests.support.smtp_server import smtp_send

    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "01.eml").write_bytes(b"Subject: first run\r\n\r\nkept\r\n")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "x"
    message.set_content("hello")
    for _ in range(2):  # two demo runs
        with mail_sink(folder) as (sink, port):
            smtp_send(port)(message)
            assert len(sink.saved) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["01.eml", "02.eml", "03.eml"]
    assert (folder / "01.eml").read_bytes() == b"Subject: first run\r\n\r\nkept\r\n"


def test_a_mail_some_recipients_refused_says_who_did_not_get_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ops mail to two addresses (MEDIAMON_OPS_EMAIL) whose server accepts one and
    refuses the other (451, mailbox busy). Before: smtplib returned the refusal and the
    sender dropped it: the incident counted as mailed and nobody learned that
    oncall@example.org never got it. Now a warning names the recipient and the answer
    (the mail is not sent again: ops@ would get it twice)."""
    sink = Picky({"oncall@example.org": "451 4.2.1 mailbox busy"})
    message = EmailMessage()
    message["Subject"], message["From"] = "[mediamon] INCIDENT: source silent", "m@example.org"
    message["To"] = "ops@example.org, oncall@example.org"
    message.set_content("rfi-cn has been silent for 6 hours")
    with serve_smtp(sink) as port, caplog.at_level("WARNING", logger="mediamon.alerts.smtp"):
        fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
                  "disable_tls": True}}  # fmt: skip
        mail.smtp_sender(mail.connection_settings(fields))(message)
    assert [r for _, r, _ in sink.messages] == [["ops@example.org"]]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "'[mediamon] INCIDENT: source silent' not accepted for oncall@example.org (the others"
        " got it): oncall@example.org: 451 4.2.1 mailbox busy"
    ]


def test_a_server_trickling_bytes_gets_a_total_deadline_per_message() -> None:
    """A server that answers one byte every 0.2 s (a tarpit, an overloaded relay): every
    read succeeds within the 1 s timeout, so before, one message took as long as the
    server kept trickling (here 30 s; in Airflow, until the task's timeout killed the run
    with the rest unsent). Now a message gets four timeouts in all, then the connection
    is broken and the mail counts as not sent, in one line naming the server."""
    message = EmailMessage()
    message["Subject"], message["From"] = "[mediamon] taiwan", "m@example.org"
    message["To"] = "reader@example.org"
    message.set_content("a spike")
    with serve_trickle(gap_s=0.2, for_s=30) as port:
        fields = {"host": "127.0.0.1", "port": port,
                  "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 1}}  # fmt: skip
        send = mail.smtp_sender(mail.connection_settings(fields))
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            send(message)
        took = time.monotonic() - started
    assert 4 <= took < 8, took
    assert str(raised.value) == (
        f"the SMTP server 127.0.0.1:{port} took longer than 4 s for one message:"
        " connection broken, not sent"
    )


# A delivery in a process of its own, killed while it sends: its sender passes every mail
# to the SMTP server, and before the second one writes the marker file and waits.
KILLED_DELIVERY = """
import smtplib, sys, time
from datetime import datetime
from pathlib import Path
from mediamon import db
from mediamon.alerts.deliver import deliver_pending

url, port, marker, now = sys.argv[1:5]
sent = []

def send(message):
    if sent:
        Path(marker).write_text("second mail")
        time.sleep(120)
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as client:
        client.send_message(message)
    sent.append(message["To"])

deliver_pending(db.make_engine(url), send, datetime.fromisoformat(now))
"""


def deliver_after_kill(
    engine: sa.Engine, send: Callable[[EmailMessage], None], now: datetime, topics: TopicSet
) -> DeliveryStats:
    """``deliver_pending`` once the killed delivery's lock is gone: its database session
    ends when PostgreSQL sees the connection closed, a moment after the kill (a delivery
    finding the lock taken sends nothing, as the next run would not)."""
    deadline = time.monotonic() + 30
    while True:
        stats = deliver_pending(engine, send, now, topics=topics)
        if not stats.busy or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def test_a_delivery_killed_mid_send_mails_nobody_twice(
    engine: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    """A delivery process killed (SIGKILL: no exception, no clean-up) between the first
    and the second mail of an alert for two recipients: the run after it sends the
    second and not the first again, since each mail is recorded as soon as send()
    returns and every run reads what is recorded before it sends. (Killed between the
    server's acceptance and the record, milliseconds, the mail goes again under the
    same Message-ID: docs/topics.md, Alerts.)"""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")  # taiwan: desk, duty (immediate)
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    now = (AT + timedelta(minutes=5)).isoformat()
    marker = tmp_path / "second-mail"
    sink = Sink()
    with serve_smtp(sink) as port:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_DELIVERY, database_url, str(port), str(marker), now],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the delivery never reached its second mail"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()
        first_run = [r for _, recipients, _ in sink.messages for r in recipients]
        assert len(first_run) == 1
        stats = deliver_after_kill(engine, smtp_send(port), AT + timedelta(minutes=5), topics)
        again = deliver_pending(engine, smtp_send(port), AT + timedelta(minutes=6), topics=topics)
    received = sorted(r for _, recipients, _ in sink.messages for r in recipients)
    assert received == ["desk@example.org", "duty@example.org"], received
    assert stats.sent == 1 and again.sent == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select state from alerts")).scalar_one() == "notified"


# A delivery in a process of its own through the mediamon_smtp sender, killed while the
# server takes its time to answer QUIT.
KILLED_IN_GOODBYE = """
import sys
from datetime import datetime
from mediamon import db
from mediamon.alerts.deliver import deliver_pending
from mediamon.alerts.smtp import connection_settings, smtp_sender

url, port, now = sys.argv[1:4]
fields = {"host": "127.0.0.1", "port": int(port),
          "extra": {"disable_ssl": True, "disable_tls": True}}
deliver_pending(db.make_engine(url), smtp_sender(connection_settings(fields)),
                datetime.fromisoformat(now))
"""


class SlowGoodbye(Sink):
    """Accepts every message at once, then takes 20 s to answer QUIT (a busy relay);
    ``quits`` counts the QUITs it got."""

    def __init__(self) -> None:
        super().__init__()
        self.quits = 0

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.quits += 1
        await asyncio.sleep(20)
        return "221 Bye"


def test_a_delivery_killed_while_the_server_says_goodbye_mails_nobody_twice(
    engine: sa.Engine, database_url: str
) -> None:
    """The server accepted the first mail (250 to DATA) and took 20 s to answer QUIT;
    the delivery was killed meanwhile. Before: the sender waited for the goodbye before
    returning, so the accepted mail was not recorded and the next run mailed it again
    (and the second recipient's too, once its goodbye came). Now a mail is recorded as
    soon as the server accepted it; the goodbye follows in a thread of its own."""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")  # taiwan: desk, duty (immediate)
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    now = AT + timedelta(minutes=5)
    slow, fast = SlowGoodbye(), Sink()
    with serve_smtp(slow) as port:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_IN_GOODBYE, database_url, str(port), now.isoformat()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not slow.messages:  # the first mail accepted
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            deadline = time.monotonic() + 8
            while len(slow.messages) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)  # time enough to record what was accepted
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    with serve_smtp(fast) as port:
        stats = deliver_after_kill(engine, smtp_send(port), now + timedelta(minutes=1), topics)
    received = sorted(
        r for sink in (slow, fast) for _, recipients, _ in sink.messages for r in recipients
    )
    assert received == ["desk@example.org", "duty@example.org"], received
    assert stats.sent == 0


def plain_sender(port: int) -> Callable[[EmailMessage], None]:
    """The ``mediamon_smtp`` sender for the server on ``port`` (no TLS)."""
    fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
              "disable_tls": True}}  # fmt: skip
    return mail.smtp_sender(mail.connection_settings(fields))


def test_a_message_refused_for_good_at_data_is_recorded_and_never_offered_again(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The server takes both recipients at RCPT TO, then answers the end of DATA with 554
    (rejected as spam) for desk@'s mail, and with 452 (out of storage, for now) once for
    duty@'s. Before: only a refusal at RCPT TO was final, so desk@'s mail was offered
    again at every alerts run (here three; in production every ingest cycle, about 96
    times until the alert went stale a day later), each a message the server had said it
    will never take, which is how a sender gets listed as a spammer. Now a 5xx to DATA is
    final for that mail: recorded `refused` with the server's answer on one line, the run
    fails once in one line, later runs are quiet; the 4xx one is mailed by the next run."""
    topics = parse_topics(TOPICS_YAML, "topics.yaml")  # taiwan: desk, duty (immediate)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    desk, duty = "desk@example.org", "duty@example.org"
    sink = Answering(
        data={desk: "554 5.7.1 Message rejected as spam", duty: "452 4.3.1 Out of storage"},
        data_tries_left={duty: 1},
    )
    with serve_smtp(sink) as port, caplog.at_level("WARNING", logger="mediamon.alerts"):
        send = plain_sender(port)
        with pytest.raises(DeliveryError) as first:
            deliver_pending(engine, send, AT + timedelta(minutes=5), topics=topics)
        stats = first.value.stats
        assert (stats.sent, stats.failed, stats.refused) == (0, 1, 1)
        assert str(first.value).startswith(
            "1 mail(s) not sent, left pending, 1 recipient(s) refused for good, not tried"
            " again: desk@example.org: refused for good: 554 5.7.1 Message rejected as spam"
            " (to DATA); duty@example.org: SMTPDataError: (452, b'4.3.1 Out of storage')"
        ), str(first.value)
        later = [
            deliver_pending(engine, send, AT + timedelta(minutes=m), topics=topics)
            for m in (20, 35)
        ]
    assert [(s.sent, s.failed, s.refused) for s in later] == [(1, 0, 0), (0, 0, 0)]
    assert sink.offered == {desk: 1, duty: 2}  # desk@'s refused message offered once
    assert [r for _, r, _ in sink.messages] == [[duty]]
    assert scalar(engine, "select state from alerts") == "notified"
    assert rows(engine, "select recipient, status, note from alert_deliveries order by 1") == [
        (desk, "refused", "refused for good: 554 5.7.1 Message rejected as spam (to DATA)"),
        (duty, "sent", None),
    ]
    assert (
        "mail to desk@example.org refused for good, not tried again:"
        " 554 5.7.1 Message rejected as spam (to DATA)"
    ) in [r.getMessage() for r in caplog.records]


REFUSES_EVERY_MAIL = {
    # name: (the server, the answer as the error names it)
    "auth-required-at-mail-from": (
        lambda: Answering(mail_from="530 5.7.0 Authentication required"),
        "530 5.7.0 Authentication required (to MAIL FROM)",
    ),
    "sender-refused": (
        lambda: Answering(mail_from="553 5.7.1 <mediamon@localhost>: Sender address rejected"),
        "553 5.7.1 <mediamon@localhost>: Sender address rejected (to MAIL FROM)",
    ),
    "relay-denied-at-rcpt": (
        lambda: Answering(
            refuse={
                address: f"554 5.7.1 <{address}>: Relay access denied"
                for address in ("desk@example.org", "duty@example.org")
            }
        ),
        "554 5.7.1 <desk@example.org>: Relay access denied (to RCPT TO)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSES_EVERY_MAIL))
def test_a_server_refusing_every_mail_stops_the_run_loudly_and_the_alerts_wait(
    engine: sa.Engine, case: str
) -> None:
    """A server that refuses every mail whatever it holds: authentication required (530
    to MAIL FROM: the connection has no login), the sender address refused, or a relay
    that relays nothing for us (554 Relay access denied to every RCPT TO). Before: the
    530 and the refused sender left every mail pending and every run asked again for
    each mail (two here; every mail of every run in production), the task retried and
    red, and the relay denial recorded every recipient `refused`: the alert was marked
    notified and never mailed, once the relay was fixed too. Now the run stops at the
    first such answer, records nothing, and raises one line naming the server and the
    answer, a configuration error (the Airflow task fails at once, without retries; the
    command exits 2); once the server is fixed the next run mails the alert."""
    make_server, answer = REFUSES_EVERY_MAIL[case]
    topics = parse_topics(TOPICS_YAML, "topics.yaml")  # taiwan: desk, duty (immediate)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    refusing = make_server()
    with serve_smtp(refusing) as port, pytest.raises(ConfigError) as raised:
        deliver_pending(engine, plain_sender(port), AT + timedelta(minutes=5), topics=topics)
    assert str(raised.value) == (
        f"the SMTP server 127.0.0.1:{port} refuses every mail: {answer}; nothing more sent"
        " (0 mail(s) before it): the alerts stay pending until the mediamon_smtp connection"
        " or the relay is fixed"
    )
    assert isinstance(raised.value, mail.MailServerRefusal)
    assert refusing.mail_froms == 1  # asked once, not once per mail
    assert rows(engine, "select recipient from alert_deliveries") == []
    assert scalar(engine, "select state from alerts") == "open"
    fixed = Sink()
    with serve_smtp(fixed) as port:
        stats = deliver_pending(
            engine, plain_sender(port), AT + timedelta(minutes=20), topics=topics
        )
    assert stats.sent == 2 and sorted(r[0] for _, r, _ in fixed.messages) == [
        "desk@example.org",
        "duty@example.org",
    ]
    assert scalar(engine, "select state from alerts") == "notified"


class Greeting(Sink):
    """A sink counting the sessions that greeted it (EHLO); ``auth`` replaces the AUTH
    line of its EHLO answer (``250-AUTH GSSAPI NTLM``: mechanisms smtplib cannot use)."""

    def __init__(self, auth: str | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.ehlos = 0

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        if self.auth is None:
            return responses
        return [self.auth if line.startswith("250-AUTH") else line for line in responses]


AUTH_OPTIONS = {"authenticator": password_check("mediamon", "secret"), "auth_require_tls": False}
NOT_OFFERED = {
    # name: (the server, its aiosmtpd options, the connection's extra and login, the
    # answer as the error names it, the connection that works with that server)
    "no-auth-for-a-login": (
        Greeting,
        {},
        {
            "login": "mediamon",
            "password": "secret",
            "extra": {"disable_ssl": True, "disable_tls": True},
        },  # fmt: skip
        "does not offer AUTH (many offer it only over TLS), but the mediamon_smtp"
        " connection has a login ('mediamon'): remove the login for a relay that needs"
        " none, or use a server or port that offers AUTH",
        {"extra": {"disable_ssl": True, "disable_tls": True}},
    ),
    "no-starttls-when-tls-is-required": (
        Greeting,
        {},
        {"extra": {"disable_ssl": True}},
        "does not offer STARTTLS, which the mediamon_smtp connection requires"
        " (extra.disable_ssl without extra.disable_tls): use the server's implicit-TLS"
        " port (465) without disable_ssl, or set extra.disable_tls for a relay that takes"
        " mail unencrypted",
        {"extra": {"disable_ssl": True, "disable_tls": True}},
    ),
    "no-auth-mechanism-smtplib-speaks": (
        lambda: Greeting(auth="250-AUTH GSSAPI NTLM"),
        AUTH_OPTIONS,
        {
            "login": "mediamon",
            "password": "secret",
            "extra": {"disable_ssl": True, "disable_tls": True},
        },  # fmt: skip
        "offers AUTH only by GSSAPI NTLM, none of which mediamon speaks (CRAM-MD5, PLAIN, LOGIN)",
        {"extra": {"disable_ssl": True, "disable_tls": True}},
    ),
    "wrong-password": (
        Greeting,
        AUTH_OPTIONS,
        {
            "login": "mediamon",
            "password": "wrong",
            "extra": {"disable_ssl": True, "disable_tls": True},
        },  # fmt: skip
        "refuses every mail: 535 5.7.8 Authentication credentials invalid (to AUTH)",
        {
            "login": "mediamon",
            "password": "secret",
            "extra": {"disable_ssl": True, "disable_tls": True},
        },  # fmt: skip
    ),
}


@pytest.mark.parametrize("case", list(NOT_OFFERED))
def test_a_server_without_what_the_connection_needs_stops_the_run_at_once(
    engine: sa.Engine, case: str
) -> None:
    """A connection with a login to a server that offers no AUTH (or none smtplib
    speaks), or requiring TLS of a server that offers no STARTTLS: smtplib raised
    SMTPNotSupportedError (or a bare SMTPException), which was taken for a server down:
    both mails tried, each in a session of its own, left pending, the task retried 3
    times. It is a setting: now the run stops at the first, in one line naming the server
    and what is missing, a configuration error (no retries, exit 2), nothing recorded;
    with the connection fixed the next run mails the alert. A wrong password (535) is
    one already (the server refusing every mail)."""
    make_server, options, connection, said, fixed = NOT_OFFERED[case]
    topics = parse_topics(TOPICS_YAML, "topics.yaml")  # taiwan: desk, duty (immediate)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    server = make_server()
    with serve_smtp(server, **options) as port:
        settings = mail.connection_settings({"host": "127.0.0.1", "port": port, **connection})
        with pytest.raises(ConfigError) as raised:
            deliver_pending(
                engine, mail.smtp_sender(settings), AT + timedelta(minutes=5), topics=topics
            )
        assert str(raised.value) == (
            f"the SMTP server 127.0.0.1:{port} {said}; nothing more sent (0 mail(s) before"
            " it): the alerts stay pending until the mediamon_smtp connection or the relay"
            " is fixed"
        )
        assert isinstance(raised.value, mail.MailServerRefusal)
        assert server.ehlos == 1  # one session, not one per mail
        assert server.messages == []
        assert rows(engine, "select recipient from alert_deliveries") == []
        assert scalar(engine, "select state from alerts") == "open"
        settings = mail.connection_settings({"host": "127.0.0.1", "port": port, **fixed})
        stats = deliver_pending(
            engine, mail.smtp_sender(settings), AT + timedelta(minutes=20), topics=topics
        )
    assert stats.sent == 2
    assert sorted(r[0] for _, r, _ in server.messages) == ["desk@example.org", "duty@example.org"]
    assert scalar(engine, "select state from alerts") == "notified"


def test_a_slow_goodbye_holds_one_thread_for_a_few_seconds_whatever_the_mails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten mails through a server that accepts each at once and takes 20 s to answer
    QUIT, with the connection's default timeout (30 s). Before: each mail's goodbye
    waited in a thread of its own, ten threads and ten open connections for the 20 s
    (up to the 30 s timeout, or the 120 s deadline for a server trickling its answer),
    a hundred for a digest hour of a hundred readers. Now one goodbye per server waits,
    at most GOODBYE_WAIT_S (5 s); the others say QUIT and close at once. Every mail is
    sent, every session said QUIT."""
    slow = SlowGoodbye()
    before = set(threading.enumerate())
    with serve_smtp(slow) as port:
        send = plain_sender(port)
        started = time.monotonic()
        for n in range(10):
            message = EmailMessage()
            message["Subject"], message["From"] = f"[mediamon] digest {n}", "m@example.org"
            message["To"] = f"reader{n}@example.org"
            message.set_content("the day's stories")
            send(message)
        sending_s = time.monotonic() - started
        goodbyes = [t for t in set(threading.enumerate()) - before if t.name == "smtp-goodbye"]
        assert len(goodbyes) <= 1, len(goodbyes)
        for thread in goodbyes:
            thread.join(timeout=60)
        waited_s = time.monotonic() - started
        deadline = time.monotonic() + 5
        while slow.quits < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sending_s < mail.GOODBYE_WAIT_S, sending_s  # no mail waits for a goodbye
    assert waited_s < mail.GOODBYE_WAIT_S + 2, waited_s
    assert len(slow.messages) == 10
    assert slow.quits == 10
