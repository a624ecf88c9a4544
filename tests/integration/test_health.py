"""The ops watchdog (``mediamon health run``) against a real PostgreSQL and a real SMTP
server on 127.0.0.1: one incident mail per problem episode, none on a repeat, a recovery
mail when it clears, nothing at all in a dry run; and what each check finds."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.bi import settings as bi_settings
from mediamon.cli import main
from mediamon.ingest import load
from mediamon.ingest.sources import Source
from mediamon.models import Article
from mediamon.ops import health, incident_mail, report, runs
from mediamon.ops.thresholds import HealthThresholds
from mediamon.settings import DEFAULT_CONFIG_DIR
from tests.support.smtp_server import (
    Answering,
    Sink,
    connection_json,
    free_port,
    serve_smtp,
    smtp_send,
)

T = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)


class Mailbox:
    """The messages a real SMTP server on 127.0.0.1 received, parsed."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = [message_from_bytes(m.content, policy=policy.default) for m in self.sink.messages]
        assert all(isinstance(m, EmailMessage) for m in parsed)
        return parsed  # type: ignore[return-value]


@pytest.fixture()
def mailbox(
    smtp: tuple[Sink, int], monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> Mailbox:
    """The CLI's environment: the test database, MEDIAMON_OPS_EMAIL and a mediamon_smtp
    connection to the test's SMTP server."""
    sink, port = smtp
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
    return Mailbox(sink)


def add_articles(
    engine: sa.Engine, built_seed: Article, source: str, times: list[datetime]
) -> None:
    """One article per time in ``times``, first seen then, through the real load path."""
    with engine.begin() as conn:
        ids = load.sync_sources(
            conn, [Source(name=source, kind="feed", location=f"https://{source}.example/rss")]
        )
        for moment in times:
            url = f"https://{source}.example/{moment:%Y%m%d%H%M}"
            article = replace(built_seed, canonical_url=url, url=url)
            load.upsert_articles(conn, ids[source], [article], moment)


def add_polls(engine: sa.Engine, source: str, times: list[datetime]) -> None:
    """Feed fetches of ``source`` that found the feed (and nothing new, or something)."""
    with engine.begin() as conn:
        source_id = conn.execute(
            sa.text("select source_id from sources where name = :n"), {"n": source}
        ).scalar_one()
        for moment in times:
            conn.execute(
                sa.text(
                    "insert into fetch_log (run_key, source_id, url, kind, fetched_at, status)"
                    " values (:run, :id, :url, 'feed', :at, 200)"
                ),
                {"run": f"poll:{moment.isoformat()}", "id": source_id,
                 "url": f"https://{source}.example/rss", "at": moment},
            )  # fmt: skip


def add_failing_state(conn: sa.Connection, source_id: int) -> None:
    """The polling state of a source whose last three polls, the last at T, failed."""
    conn.execute(
        sa.text(
            "insert into source_state (source_id, base_interval, poll_interval,"
            " next_poll_at, last_polled_at, last_outcome, consecutive_failures,"
            " last_error, run_key)"
            " values (:id, '15 min', '15 min', :at, :at, 'failed', 3, 'HTTP 503', 'r')"
        ),
        {"id": source_id, "at": T},
    )


def hourly(end: datetime, hours: int) -> list[datetime]:
    return [end - timedelta(hours=h) for h in range(hours)]


def test_a_silent_source_is_mailed_once_and_its_recovery_once(
    mailbox: Mailbox,
    engine: sa.Engine,
    built_seed: Article,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDIAMON_TIMEZONE", "Europe/Paris")
    # Both sources bring an article every hour for two days; "quiet" stops 10 h before T.
    add_articles(engine, built_seed, "busy", hourly(T - timedelta(minutes=15), 48))
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "busy", hourly(T - timedelta(minutes=15), 48))
    add_polls(engine, "quiet", hourly(T - timedelta(minutes=5), 58))

    assert main(["health", "run", "--at", T.isoformat(), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "source_silent:quiet: source quiet has brought no new article for 10 h" in dry
    assert mailbox.messages == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from incidents")).scalar_one() == 0

    assert main(["health", "run", "--at", T.isoformat()]) == 0
    assert len(mailbox.messages) == 1
    (incident,) = mailbox.messages
    assert incident["To"] == "ops@example.org"
    assert incident["Subject"] == (
        "[mediamon] INCIDENT: source quiet has brought no new article for 10 h"
    )
    text = incident.get_body(("plain",))
    html = incident.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    # In MEDIAMON_TIMEZONE with the offset, as the alert mails (before: "02:00 UTC" always)
    assert "Since: 2024-06-10 04:00 (UTC+02:00)" in plain
    assert "Found: 2024-06-10 14:00 (UTC+02:00)" in plain
    assert "Last new article first seen 2024-06-10 04:00 (UTC+02:00)." in plain
    assert "Usually a new article every 60 min" in plain
    assert "What to do: Check that https://quiet.example/rss still lists" in plain
    assert "<table" in html.get_content()

    capsys.readouterr()
    assert main(["health", "run", "--at", T.isoformat()]) == 0  # the same time again
    assert len(mailbox.messages) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["opened"] == []

    later = T + timedelta(minutes=15)
    add_articles(engine, built_seed, "quiet", [later])
    add_articles(engine, built_seed, "busy", [later])
    assert main(["health", "run", "--at", later.isoformat()]) == 0
    assert len(mailbox.messages) == 2
    recovery = mailbox.messages[1]
    assert recovery["Subject"] == (
        "[mediamon] RESOLVED: source quiet has brought no new article for 10 h"
    )
    with engine.connect() as conn:
        row = conn.execute(sa.text("select * from bi.incidents")).mappings().one()
    assert row["kind"] == "source_silent" and row["subject"] == "quiet"
    assert not row["is_open"] and row["resolved_at"] == later
    assert row["notified_at"] == T and row["recovery_notified_at"] == later

    assert main(["health", "run", "--at", (later + timedelta(minutes=15)).isoformat()]) == 0
    assert len(mailbox.messages) == 2  # nothing open, nothing cleared: no mail


def test_without_a_mail_connection_incidents_wait_and_the_command_fails(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP", raising=False)
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", [T - timedelta(minutes=5)])
    assert main(["health", "run", "--at", T.isoformat()]) == 1
    assert "1 open incident(s) not mailed: no mediamon_smtp connection" in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.execute(sa.text("select notified_at from incidents")).scalar_one() is None


def mail_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, port: int) -> None:
    """The CLI's environment with a mediamon_smtp connection to 127.0.0.1:``port``."""
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True}}),
    )


REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def test_with_the_mail_server_down_incidents_wait_and_the_command_fails_in_one_line(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    smtp: tuple[Sink, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: a traceback ending in ConnectionRefusedError.
    mail_env(monkeypatch, database_url, tmp_path, free_port())  # nothing listens there
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", [T - timedelta(minutes=5)])
    assert main(["health", "run", "--at", T.isoformat()]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"mediamon: 1 incident mail(s) not sent: source_silent:quiet: {REFUSED}"
        " (the incidents stay recorded; the next run mails them)"
    ]
    assert out.startswith("source_silent:quiet: ")  # what was found is still shown
    with engine.connect() as conn:
        row = conn.execute(sa.text("select dedupe_key, notified_at from incidents")).one()
    assert tuple(row) == ("source_silent:quiet", None)

    # The server is back: the next run mails the waiting incident, once.
    sink, port = smtp
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"host": "127.0.0.1", "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True}}),
    )  # fmt: skip
    assert main(["health", "run", "--at", (T + timedelta(minutes=15)).isoformat()]) == 0
    assert len(sink.messages) == 1
    with engine.connect() as conn:
        notified = conn.execute(sa.text("select notified_at from incidents")).scalar_one()
    assert notified == T + timedelta(minutes=15)


def test_a_failed_incident_mail_does_not_stop_the_others(
    engine: sa.Engine, built_seed: Article
) -> None:
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_articles(engine, built_seed, "still", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", [T - timedelta(minutes=5)])
    add_polls(engine, "still", [T - timedelta(minutes=5)])
    sent: list[EmailMessage] = []

    def send(message: EmailMessage) -> None:
        if "quiet" in str(message["Subject"]):
            raise ConnectionResetError("server went away")
        sent.append(message)

    with pytest.raises(incident_mail.IncidentMailError) as failure:
        health.run(
            engine, T, send=send, sender="m@x", recipients=["ops@x"], limits=HealthThresholds()
        )
    assert str(failure.value) == (
        "1 incident mail(s) not sent: source_silent:quiet: ConnectionResetError: server went"
        " away (the incidents stay recorded; the next run mails them)"
    )
    result = failure.value.result
    assert result is not None
    assert result.mailed == ["source_silent:still"] and len(sent) == 1
    assert result.unmailed == ["source_silent:quiet"]
    assert failure.value.exit_code == 1


SPAM = "554 5.7.1 rejected as spam"


def test_an_incident_mail_refused_at_data_is_recorded_and_not_offered_again(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server takes the envelope and refuses the message at the end of DATA (554: a
    spam filter; 552: too large): final for that message (RFC 5321). Before: the incident
    stayed unmailed and every watchdog run, every 15 minutes, offered the same message
    again (~96 refusals a day, how a sender gets listed) and failed. Now the first refusal
    is recorded with the server's answer and the run fails once, in one line; later runs
    offer it no more and pass. A 4xx at DATA is still tried again."""
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_articles(engine, built_seed, "later", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", [T - timedelta(minutes=5)])
    add_polls(engine, "later", [T - timedelta(minutes=5)])
    server = Answering(data={"ops@example.org": SPAM})
    with serve_smtp(server) as port:
        mail_env(monkeypatch, database_url, tmp_path, port)
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert main(["health", "run", "--at", T.isoformat()]) == 1
        assert capsys.readouterr().err.splitlines() == [
            "mediamon: 2 incident mail(s) not sent:"
            f" source_silent:later: refused for good: {SPAM} (to DATA);"
            f" source_silent:quiet: refused for good: {SPAM} (to DATA)"
            " (the incidents stay recorded; the next run mails those not refused for good)"
        ]
        for minutes in (15, 30):
            at = T + timedelta(minutes=minutes)
            assert main(["health", "run", "--at", at.isoformat()]) == 0
        assert server.offered == {"ops@example.org": 2}  # once each, not once a run
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select subject, notified_at, mail_refused from bi.incidents order by 1")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("later", None, f"{SPAM} (to DATA)"),
        ("quiet", None, f"{SPAM} (to DATA)"),
    ]

    # A 4xx at DATA is for now: the mail waits and goes at the next run.
    add_articles(engine, built_seed, "busy", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "busy", [T + timedelta(minutes=40)])
    full = Answering(
        data={"ops@example.org": "452 4.3.1 out of storage"},
        data_tries_left={"ops@example.org": 1},
    )
    with serve_smtp(full) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert main(["health", "run", "--at", (T + timedelta(minutes=45)).isoformat()]) == 1
        assert main(["health", "run", "--at", (T + timedelta(minutes=60)).isoformat()]) == 0
    assert full.offered == {"ops@example.org": 2} and len(full.messages) == 1
    assert "source_silent:busy" in str(full.messages[0].content)


def test_a_server_refusing_every_mail_fails_the_watchdog_in_one_line(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    smtp: tuple[Sink, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """530 to MAIL FROM (the connection has no login): every mail gets it. Before: each
    incident mail was tried (2 here), each failed as if the server were down, and the
    watchdog task was retried, asking again for each. Now the first answer stops the
    run with one line naming the server and its answer, a configuration error (the
    Airflow task fails at once); the incidents stay recorded, unmailed, and go once
    the connection is fixed."""
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_articles(engine, built_seed, "still", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", [T - timedelta(minutes=5)])
    add_polls(engine, "still", [T - timedelta(minutes=5)])
    answer = "530 5.7.0 Authentication required"
    server = Answering(mail_from=answer)
    with serve_smtp(server) as port:
        mail_env(monkeypatch, database_url, tmp_path, port)
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert main(["health", "run", "--at", T.isoformat()]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mediamon: the SMTP server 127.0.0.1:{port} refuses every mail: {answer}"
        " (to MAIL FROM); nothing more sent (0 incident mail(s) before it): the incidents"
        " stay recorded, unmailed, until the mediamon_smtp connection or the relay is fixed"
    ]
    assert server.mail_froms == 1  # asked once, not once per mail
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select notified_at, mail_refused from incidents")).all()
    assert [tuple(r) for r in rows] == [(None, None), (None, None)]
    sink, port = smtp
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
    assert main(["health", "run", "--at", (T + timedelta(minutes=15)).isoformat()]) == 0
    assert len(sink.messages) == 2


def test_findings_from_runs_polls_and_alerts(engine: sa.Engine) -> None:
    limits = HealthThresholds()
    with engine.begin() as conn:
        ids = load.sync_sources(
            conn, [Source(name="down", kind="feed", location="https://down.example/rss")]
        )
        add_failing_state(conn, ids["down"])
        # Two hours ago a run succeeded; the last one loaded but failed a check.
        ok = runs.summarize([{"source": "down", "poll": "polled", "new": 1}])
        runs.record(conn, "ok", T - timedelta(hours=2), ok)
        runs.record_checks(conn, "ok", T - timedelta(hours=2), [])
        runs.record(conn, "bad", T - timedelta(minutes=15), ok)
        runs.record_checks(
            conn,
            "bad",
            T - timedelta(minutes=15),
            [{"name": "duplicate_rate", "passed": False, "detail": "9 of 9 copies"}],
        )
        found = {f.key: f for f in health.find_problems(conn, T, limits)}
    assert set(found) == {
        "source_failing:down",
        "ingest_stale:ingest",
        "quality_check:duplicate_rate",
    }
    assert found["source_failing:down"].detail.startswith("https://down.example/rss: HTTP 503")
    assert found["ingest_stale:ingest"].since == T - timedelta(hours=2)
    assert found["quality_check:duplicate_rate"].detail == "bad: 9 of 9 copies"

    with engine.begin() as conn:
        failed = runs.summarize([{"source": "down", "poll": "failed", "errors": ["HTTP 503"]}])
        assert runs.record(conn, "worse", T - timedelta(minutes=1), failed) == "failed"
        found = {f.key: f for f in health.find_problems(conn, T, limits)}
    assert found["ingest_failed:ingest"].detail == ("worse: all 1 due source(s) failed: down")
    assert found["ingest_failed:ingest"].since == T - timedelta(minutes=15)  # the streak


def test_a_run_with_no_source_due_does_not_clear_a_failed_ingest(engine: sa.Engine) -> None:
    # Every source failed; the next runs find them all backing off, poll nothing and
    # succeed. That says nothing about ingest: the incident stays open, its streak too.
    limits = HealthThresholds()
    failed = runs.summarize([{"source": "down", "poll": "failed", "errors": ["DNS"]}])
    with engine.begin() as conn:
        assert runs.record(conn, "down", T - timedelta(minutes=30), failed) == "failed"
        for minutes in (15, 0):
            runs.record(conn, f"idle{minutes}", T - timedelta(minutes=minutes), runs.summarize([]))
            runs.record_checks(conn, f"idle{minutes}", T - timedelta(minutes=minutes), [])
        assert conn.execute(sa.text("select status from ingest_runs where run_key = 'idle0'")
                            ).scalar_one() == "success"  # fmt: skip
        found = {f.key: f for f in health.find_problems(conn, T, limits)}
        assert found["ingest_failed:ingest"].detail == "down: all 1 due source(s) failed: down"
        assert found["ingest_failed:ingest"].since == T - timedelta(minutes=30)
        # a run that read a source again is the evidence that clears it
        ok = runs.summarize([{"source": "down", "poll": "polled", "new": 1}])
        runs.record(conn, "back", T + timedelta(minutes=15), ok)
        later = {f.key for f in health.find_problems(conn, T + timedelta(minutes=15), limits)}
    assert "ingest_failed:ingest" not in later


def test_thresholds_come_from_the_environment_clamped() -> None:
    limits = HealthThresholds.from_env(
        {"MEDIAMON_HEALTH_FAILING_POLLS": "5", "MEDIAMON_HEALTH_VOLUME_RATIO": "7",
         "MEDIAMON_HEALTH_MIN_SILENCE_MINUTES": "90"}
    )  # fmt: skip
    assert limits.failing_polls == 5 and limits.volume_ratio == 1
    assert limits.min_silence == timedelta(minutes=90)
    from mediamon.errors import ConfigError

    with pytest.raises(ConfigError, match="MEDIAMON_HEALTH_SILENT_FACTOR='often'"):
        HealthThresholds.from_env({"MEDIAMON_HEALTH_SILENT_FACTOR": "often"})


def test_a_volume_cliff_against_past_weeks(engine: sa.Engine, built_seed: Article) -> None:
    # The 3 hours before T, a week, two and three weeks earlier: 10 articles an hour;
    # in the last 3 hours before T, only 2 in all.
    times = [
        T - timedelta(days=7 * week, hours=hour, minutes=6 * n)
        for week in (1, 2, 3)
        for hour in range(3)
        for n in range(10)
    ]
    add_articles(engine, built_seed, "wire", times)
    add_articles(engine, built_seed, "wire", [T - timedelta(minutes=30), T - timedelta(hours=2)])
    limits = replace(HealthThresholds(), min_arrivals=10_000)  # silence aside
    with engine.connect() as conn:
        (finding,) = health.find_problems(conn, T, limits)
    assert finding.key == "volume_drop:all"
    assert finding.summary == "2 new articles in the last 3 h, usually 30"
    with engine.connect() as conn:
        # Half the usual volume is a slow day, not a cliff.
        assert health.find_problems(conn, T, replace(limits, volume_ratio=0.05)) == []


def test_alerts_pending_for_over_an_hour(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into topics (topic, name, version, match_version, definition)"
                " values ('tw', '台湾', 'v1', 'm1', '{}')"
            )
        )
        conn.execute(
            sa.text(
                "insert into alerts (dedupe_key, topic, topic_version, window_start, window_end,"
                " observed, expected, lift, score, p_value, total_stories, details,"
                " last_window_end, peak_observed, created_at)"
                " values ('tw:1', 'tw', 'v1', :start, :end, 9, 1, 9, 6, 1e-6, 40, '{}', :end, 9,"
                " :created)"
            ),
            {"start": T - timedelta(hours=3), "end": T - timedelta(hours=2),
             "created": T - timedelta(minutes=90)},
        )  # fmt: skip
        (finding,) = health.find_problems(conn, T, HealthThresholds())
        assert finding.key == "alerts_undelivered:alerts"
        assert finding.since == T - timedelta(minutes=90)
        assert health.find_problems(conn, T - timedelta(minutes=31), HealthThresholds()) == []


def test_weekly_source_health_report_is_mailed_once_a_week(
    mailbox: Mailbox,
    engine: sa.Engine,
    built_seed: Article,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDIAMON_TIMEZONE", "Europe/Paris")
    add_articles(engine, built_seed, "busy", hourly(T, 24 * 10))  # 10 days, one an hour
    with engine.begin() as conn:
        (source_id,) = conn.execute(sa.text("select source_id from sources")).scalars()
        for hours, (error, elapsed) in enumerate([(None, 100), ("HTTP 503", 900), (None, 300)]):
            conn.execute(
                sa.text(
                    "insert into fetch_log (run_key, source_id, url, kind, fetched_at,"
                    " elapsed_ms, error) values (:run, :id, 'https://busy.example/rss',"
                    " 'feed', :at, :ms, :error)"
                ),
                {"run": f"r{hours}", "id": source_id, "at": T - timedelta(hours=hours),
                 "ms": elapsed, "error": error},
            )  # fmt: skip
    assert main(["health", "report", "--at", T.isoformat()]) == 0
    assert main(["health", "report", "--at", (T + timedelta(hours=1)).isoformat()]) == 0
    assert len(mailbox.messages) == 1  # the same ISO week: once
    (report,) = mailbox.messages
    assert report["Subject"] == "[mediamon] source health, week to 2024-06-10"
    text = report.get_body(("plain",))
    assert text is not None
    # the week in MEDIAMON_TIMEZONE with the offset (before: "… 12:00 UTC" always)
    assert text.get_content().splitlines()[0] == (
        "Source health from 2024-06-03 14:00 (UTC+02:00) to 2024-06-10 14:00 (UTC+02:00)."
    )
    header, row = text.get_content().splitlines()[2:4]
    assert header.split()[:4] == ["Source", "Polls", "Failures", "Articles"]
    # 3 polls, 1 failed, 168 articles this week against 72 the week before, median 300 ms.
    assert row.split() == ["busy", "3", "1", "168", "300", "+133%"]


def test_the_weekly_report_leaves_out_sources_removed_before_the_week(
    engine: sa.Engine, built_seed: Article
) -> None:
    """Before: a source taken out of the sources file stayed in every weekly report, a
    row of zeros (0 polls, 0 articles) week after week, like a source that broke."""
    add_articles(engine, built_seed, "gone", hourly(T - timedelta(days=20), 24))
    add_articles(engine, built_seed, "left", hourly(T - timedelta(days=3), 24))
    add_polls(engine, "left", [T - timedelta(days=3)])  # removed during the week
    add_articles(engine, built_seed, "kept", hourly(T, 24))
    with engine.begin() as conn:
        bi_settings.mark_enabled_sources(conn, ["kept"])
        rows = report.report_rows(conn, T)
    assert [r["source"] for r in rows] == ["kept", "left"]


def test_with_the_mail_server_down_the_weekly_report_waits_and_the_command_fails(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    smtp: tuple[Sink, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: a traceback ending in ConnectionRefusedError.
    mail_env(monkeypatch, database_url, tmp_path, free_port())
    add_articles(engine, built_seed, "busy", hourly(T, 24))
    assert main(["health", "report", "--at", T.isoformat()]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"mediamon: weekly report source-health:2024-W24 not sent: {REFUSED}"
        " (kept in ops_outbox: the next watchdog run or retry sends it)"
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ops_reports")).scalar_one() == 0

    sink, port = smtp
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"host": "127.0.0.1", "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True}}),
    )  # fmt: skip
    assert main(["health", "report", "--at", T.isoformat()]) == 0
    assert len(sink.messages) == 1


REPORT_SERVER_SETTINGS = {
    # name: (the server, the connection's login, what the line says of the server)
    "auth-required": (
        lambda: Answering(mail_from="530 5.7.0 Authentication required"),
        {},
        "refuses every mail: 530 5.7.0 Authentication required (to MAIL FROM)",
    ),
    "no-auth-for-the-login": (
        Answering,
        {"login": "mediamon", "password": "secret"},
        "does not offer AUTH (many offer it only over TLS), but the mediamon_smtp connection"
        " has a login ('mediamon'): remove the login for a relay that needs none, or use a"
        " server or port that offers AUTH",
    ),
}


@pytest.mark.parametrize("case", list(REPORT_SERVER_SETTINGS))
def test_a_mail_server_setting_fails_the_weekly_report_in_one_line_at_once(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    """A server refusing every mail (530), or offering no AUTH to a connection with a
    login. Before: the weekly report took it for a server down: `not sent:
    MailServerRefusal: …` / `SMTPNotSupportedError: SMTP AUTH extension not supported by
    server. (the next run sends it)`, exit 1, and the task retried. Now it is the
    configuration error the alerts, digests and watchdog make of it: one line naming
    the server and its answer or what it lacks, exit 2 (in Airflow no retries), the week
    unsent."""
    make_server, login, said = REPORT_SERVER_SETTINGS[case]
    add_articles(engine, built_seed, "busy", hourly(T, 24))
    server = make_server()
    with serve_smtp(server) as port:
        mail_env(monkeypatch, database_url, tmp_path, port)
        connection = json.loads(connection_json(port)) | login
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", json.dumps(connection))
        assert main(["health", "report", "--at", T.isoformat()]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mediamon: weekly report source-health:2024-W24 not sent: the SMTP server"
        f" 127.0.0.1:{port} {said} (the week stays unsent until the mediamon_smtp"
        " connection or the relay is fixed)"
    ]
    assert server.messages == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ops_reports")).scalar_one() == 0


def test_a_source_no_longer_polled_is_not_silent(engine: sa.Engine, built_seed: Article) -> None:
    add_articles(engine, built_seed, "removed", hourly(T - timedelta(hours=10), 48))
    limits = HealthThresholds()
    with engine.connect() as conn:
        assert health.find_problems(conn, T, limits) == []  # never polled after its news
    add_polls(engine, "removed", [T - timedelta(hours=9)])  # polled, but not yet overdue
    with engine.connect() as conn:
        assert health.find_problems(conn, T, limits) == []
    add_polls(engine, "removed", [T - timedelta(hours=5)])  # overdue (4 h) and nothing
    with engine.connect() as conn:
        assert [f.key for f in health.find_problems(conn, T, limits)] == ["source_silent:removed"]
        later = T + timedelta(days=2)  # no poll for a day: removed from the sources file
        assert health.find_problems(conn, later, limits) == []


def test_a_failing_source_removed_from_the_sources_file_closes_its_incident_once(
    mailbox: Mailbox, engine: sa.Engine
) -> None:
    """Before: a source removed from the sources file while failing kept its failure
    streak in ``source_state``, so every watchdog run found ``source_failing:dead`` again:
    the incident stayed open for good (``mediamon status`` and ``bi.incidents`` listed it,
    no recovery mail ever came) about a source nobody polls any more."""
    with engine.begin() as conn:
        ids = load.sync_sources(
            conn,
            [Source(name=name, kind="feed", location=f"https://{name}.example/rss")
             for name in ("dead", "kept")],
        )  # fmt: skip
        for name in ("dead", "kept"):
            add_failing_state(conn, ids[name])
    assert main(["health", "run", "--at", T.isoformat()]) == 0
    assert sorted(m["Subject"] for m in mailbox.messages) == [
        "[mediamon] INCIDENT: source dead failed its last 3 polls",
        "[mediamon] INCIDENT: source kept failed its last 3 polls",
    ]
    with engine.begin() as conn:  # what the next ingest run's sync of the file does
        bi_settings.mark_enabled_sources(conn, ["kept"])
    later = T + timedelta(minutes=15)
    assert main(["health", "run", "--at", later.isoformat()]) == 0
    assert main(["health", "run", "--at", (later + timedelta(minutes=15)).isoformat()]) == 0
    assert [m["Subject"] for m in mailbox.messages[2:]] == [
        "[mediamon] RESOLVED: source dead failed its last 3 polls"
    ]
    with engine.connect() as conn:
        open_ = conn.execute(sa.text("select subject from bi.incidents where is_open"))
        assert open_.scalars().all() == ["kept"]


def test_a_cleared_earlier_watchdog_run_mails_no_stale_incident_or_recovery(
    mailbox: Mailbox, engine: sa.Engine, built_seed: Article
) -> None:
    """Before: an earlier watchdog run executed again (Airflow "clear task" on a past
    mediamon_health run, or `health run --at` a past time) judged today's incidents by
    the past: it opened again a problem a later run had seen clear (INCIDENT mailed) and
    resolved one a later run had opened (RESOLVED mailed, the problem still there); the
    next regular run undid both, two more false mails."""
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", hourly(T - timedelta(minutes=5), 58))
    ok = runs.summarize([{"source": "quiet", "poll": "polled", "new": 1}])
    failed = runs.summarize([{"source": "quiet", "poll": "failed", "errors": ["HTTP 503"]}])
    with engine.begin() as conn:
        runs.record(conn, "ok", T - timedelta(minutes=10), ok)
        runs.record_checks(conn, "ok", T - timedelta(minutes=10), [])
        runs.record(conn, "bad", T + timedelta(minutes=10), failed)
    assert main(["health", "run", "--at", T.isoformat()]) == 0
    later = T + timedelta(minutes=15)
    add_articles(engine, built_seed, "quiet", [later])
    assert main(["health", "run", "--at", later.isoformat()]) == 0
    expected = [
        "[mediamon] INCIDENT: source quiet has brought no new article for 10 h",
        "[mediamon] RESOLVED: source quiet has brought no new article for 10 h",
        "[mediamon] INCIDENT: the latest ingest run failed",
    ]
    assert [m["Subject"] for m in mailbox.messages] == expected

    assert main(["health", "run", "--at", T.isoformat()]) == 0  # the first run, cleared
    assert main(["health", "run", "--at", (later + timedelta(minutes=15)).isoformat()]) == 0
    assert [m["Subject"] for m in mailbox.messages] == expected
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select kind, is_open from bi.incidents order by 1")).all()
    assert [tuple(r) for r in rows] == [("ingest_failed", True), ("source_silent", False)]


def test_incidents_judged_by_a_clock_that_ran_ahead_still_resolve_and_open(
    mailbox: Mailbox, engine: sa.Engine
) -> None:
    """Before: a watchdog run while the clock was a year ahead (a bad NTP step, a VM
    restored) stamped its incidents a year on, and every run after the clock was set
    right took them for a later run's judgement: the incident it opened never resolved
    when the problem cleared, and one it resolved never opened again when the problem
    came back, for a year."""
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(days=365)
    ok = runs.summarize([{"source": "s", "poll": "polled", "new": 1}])
    failed = runs.summarize([{"source": "s", "poll": "failed", "errors": ["HTTP 503"]}])

    def ingest(key: str, at: datetime, summary: runs.RunSummary) -> None:
        with engine.begin() as conn:
            runs.record(conn, key, at, summary)
            runs.record_checks(conn, key, at, [])

    def ingest_failed_mails() -> list[str]:
        subjects = (str(m["Subject"]) for m in mailbox.messages)
        return [s for s in subjects if s.endswith("the latest ingest run failed")]

    ingest("bad", now - timedelta(minutes=30), failed)
    assert main(["health", "run", "--at", ahead.isoformat()]) == 0  # the clock a year ahead
    ingest("ok", now - timedelta(minutes=20), ok)  # set right; ingest works again
    assert main(["health", "run", "--at", (now - timedelta(minutes=19)).isoformat()]) == 0
    assert ingest_failed_mails() == [
        "[mediamon] INCIDENT: the latest ingest run failed",
        "[mediamon] RESOLVED: the latest ingest run failed",
    ]

    ingest("ok-ahead", ahead - timedelta(minutes=5), ok)  # the clock jumps ahead again
    ingest("bad-ahead", ahead - timedelta(minutes=10), failed)
    assert main(["health", "run", "--at", ahead.isoformat()]) == 0  # opened, then resolved:
    ingest("ok-ahead-2", ahead + timedelta(minutes=5), ok)
    assert main(["health", "run", "--at", (ahead + timedelta(minutes=6)).isoformat()]) == 0
    ingest("bad-now", now - timedelta(minutes=10), failed)  # set right; ingest fails
    assert main(["health", "run", "--at", (now - timedelta(minutes=9)).isoformat()]) == 0
    assert ingest_failed_mails()[-3:] == [
        "[mediamon] INCIDENT: the latest ingest run failed",
        "[mediamon] RESOLVED: the latest ingest run failed",
        "[mediamon] INCIDENT: the latest ingest run failed",
    ]
    with engine.connect() as conn:
        open_ = conn.execute(
            sa.text("select last_seen_at from incidents where resolved_at is null"
                    " and kind = 'ingest_failed'")
        ).scalars().all()  # fmt: skip
    assert open_ == [now - timedelta(minutes=9)]


def test_a_topics_file_that_cannot_be_read_is_an_incident_until_it_is_fixed(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: topics.yaml edited into invalid YAML left the alerts and digest tasks
    green (the stored topics stay in force, an ERROR line in their logs) and was in no
    mail: ops never heard of it, while every edit to the topics went unapplied."""
    topics = tmp_path / "topics.yaml"
    topics.write_text("topics:\n  - key: x\n    terms: [台湾\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics))
    assert main(["health", "run"]) == 0
    (incident,) = mailbox.messages
    assert incident["Subject"] == "[mediamon] INCIDENT: the topics file cannot be read"
    body = incident.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert f"Detail: {topics}:4: YAML syntax error" in text
    assert "alerts and digests keep the stored topics until it is fixed" in text

    assert main(["health", "run"]) == 0  # still broken: no second mail
    assert len(mailbox.messages) == 1
    shutil.copy(DEFAULT_CONFIG_DIR / "topics.yaml", topics)
    assert main(["health", "run"]) == 0
    assert [m["Subject"] for m in mailbox.messages][1:] == [
        "[mediamon] RESOLVED: the topics file cannot be read"
    ]


def test_overlapping_watchdog_runs_mail_each_incident_once_and_none_reports_it_unmailed(
    smtp: tuple[Sink, int], engine: sa.Engine, built_seed: Article, database_url: str
) -> None:
    # Before: a run that found an incident's row locked skipped it, then listed it as
    # not mailed while the other run's mail was going out: `mediamon health run` exited
    # 1 ("open incident(s) not mailed: None") and the mediamon_health task failed
    # without retry, although every incident was mailed once. Every round did that.
    sources = ("q1", "q2", "q3", "q4")
    for source in sources:
        add_articles(engine, built_seed, source, hourly(T - timedelta(hours=10), 48))
        add_polls(engine, source, hourly(T - timedelta(minutes=5), 58))
    sink, port = smtp
    mailbox = Mailbox(sink)
    for round_ in range(3):
        with engine.begin() as conn:
            conn.execute(sa.text("truncate incidents"))
        sink.messages.clear()
        start = threading.Barrier(3)
        reports: list[object] = []
        runs_ = [
            threading.Thread(target=_watchdog, args=(database_url, port, start, reports))
            for _ in range(3)
        ]
        for run in runs_:
            run.start()
        for run in runs_:
            run.join(60)
        assert reports == [[], [], []], f"round {round_}"
        subjects = Counter(str(m["Subject"]) for m in mailbox.messages)
        assert len(subjects) == len(sources) and set(subjects.values()) == {1}


def _watchdog(
    database_url: str, port: int, start: threading.Barrier, reports: list[object]
) -> None:
    """One watchdog run on its own engine, like a second process (the CLI beside the
    DAG's task); appends the incidents it reports unmailed, or its error."""
    own = db.make_engine(database_url)
    try:
        start.wait()
        result = health.run(
            own, T, send=smtp_send(port), sender="m@x", recipients=["ops@x"],
            limits=HealthThresholds(),
        )  # fmt: skip
        reports.append(result.unmailed)
    except Exception as error:  # noqa: BLE001 - the test shows it
        reports.append(repr(error))
    finally:
        own.dispose()


def test_a_weekly_report_sent_by_an_overlapping_run_is_not_a_failure(
    mailbox: Mailbox,
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    smtp: tuple[Sink, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: the second of two overlapping `health report` runs printed "sent by a
    # concurrent run" and exited 1, though the report went out once.
    add_articles(engine, built_seed, "busy", hourly(T, 24))
    release = threading.Event()
    _, port = smtp

    def slow_send(message: EmailMessage) -> None:
        release.wait(30)  # the first run's mail is going out while the second starts
        smtp_send(port)(message)

    own = db.make_engine(database_url)
    first: list[object] = []
    sending = threading.Thread(
        target=lambda: first.append(
            report.send_weekly(own, T, send=slow_send, sender="m@x", recipients=["ops@x"])
        )
    )
    sending.start()
    second: list[int] = []
    overlapping = threading.Thread(
        target=lambda: second.append(main(["health", "report", "--at", T.isoformat()]))
    )
    overlapping.start()
    try:
        deadline = time.monotonic() + 30
        while not _waiting_for_a_lock(engine) and time.monotonic() < deadline:
            time.sleep(0.05)  # the second run waits on the first's claim of the week
    finally:
        release.set()
        sending.join(30)
        overlapping.join(30)
        own.dispose()
    assert second == [0], capsys.readouterr()
    assert len(mailbox.messages) == 1


def _waiting_for_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "select count(*) from pg_stat_activity"
                    " where datname = current_database() and wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_an_incident_that_opened_and_cleared_while_mail_was_down_is_mailed_once_resolved(
    engine: sa.Engine,
    built_seed: Article,
    database_url: str,
    smtp: tuple[Sink, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Before: an incident whose INCIDENT mail could not go out and that cleared before
    mail came back was in bi.incidents and nowhere else: only a notified incident got a
    RESOLVED mail. Now one RESOLVED mail says it opened and cleared while mail was down;
    an episode resolved longer than MISSED_MAIL_WINDOW ago is history, not mailed."""
    mail_env(monkeypatch, database_url, tmp_path, free_port())  # nothing listens there
    add_articles(engine, built_seed, "quiet", hourly(T - timedelta(hours=10), 48))
    add_polls(engine, "quiet", hourly(T - timedelta(minutes=5), 58))
    assert main(["health", "run", "--at", T.isoformat()]) == 1  # opened, not mailed
    later = T + timedelta(minutes=15)
    add_articles(engine, built_seed, "quiet", [later])
    main(["health", "run", "--at", later.isoformat()])  # cleared, still not mailed
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into incidents (dedupe_key, kind, subject, summary, detail, advice,"
                " since, opened_at, last_seen_at, resolved_at)"
                " values ('ingest_stale:ingest', 'ingest_stale', 'ingest', 'old news', '', '',"
                " :t, :t, :t, :t)"
            ),
            {"t": T - timedelta(days=8)},  # beyond MISSED_MAIL_WINDOW (7 days)
        )
    sink, port = smtp
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"host": "127.0.0.1", "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True}}),
    )  # fmt: skip
    for minutes in (30, 45):  # mail is back; the second run mails nothing again
        assert main(["health", "run", "--at", (T + timedelta(minutes=minutes)).isoformat()]) == 0
    (mail,) = Mailbox(sink).messages
    assert mail["Subject"] == (
        "[mediamon] RESOLVED: source quiet has brought no new article for 10 h"
        " (opened and cleared while mail was down)"
    )
    assert mail["X-Mediamon-Incident"] == "source_silent:quiet resolved"
    text = mail.get_body(("plain",))
    assert text is not None
    assert text.get_content().startswith(
        "This problem opened and cleared while no mail could be sent"
    )
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "select notified_at, recovery_notified_at from bi.incidents where subject = 'quiet'"
            )
        ).one()
    assert tuple(row) == (None, T + timedelta(minutes=30))  # no INCIDENT mail ever went out


def test_a_broken_topics_file_of_an_absurd_modification_time_is_still_an_incident(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog dates a broken file's incident by its modification time. tmpfs (where
    /dev/shm and Kubernetes' ConfigMap volumes live) keeps 64 bits of it: a file touched
    to @100000000000000 is in year 3170843. Before: `health run` ended with `mediamon:
    year 3170843 is out of range`, exit 2, naming nothing (the Airflow task: a ValueError
    traceback, retried to the same end), and the incident about the file was never opened
    nor mailed (-10**14 alike)."""
    mtime = 10**14
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="mediamon-mtime-", dir=shm if shm.is_dir() else None))
    try:
        topics = folder / "topics.yaml"
        topics.write_text("topics:\n  - key: x\n    terms: [台湾\n", "utf-8")
        os.utime(topics, (mtime, mtime))
        if abs(topics.stat().st_mtime - mtime) > 1:
            pytest.fail(f"{folder} cannot hold the modification time {mtime} (not tmpfs)")
        monkeypatch.setenv("MEDIAMON_TOPICS", str(topics))
        assert main(["health", "run"]) == 0
        (incident,) = mailbox.messages
        assert incident["Subject"] == "[mediamon] INCIDENT: the topics file cannot be read"
    finally:
        shutil.rmtree(folder)
