"""The DAGs that mail (alerts, digests, health) as real Airflow runs them: each digest
goes out once, a missing or malformed mail connection or a topics file never valid fails
the task on its first try, and the health DAG is red while it cannot mail an incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.models import Article
from tests.dags.airflow_runs import conf, down_source, run_state, write_sources


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("mediamon_alerts", "deliver_alerts"),
        ("mediamon_digests", "send_digests"),
        ("mediamon_health", "watchdog"),
    ],
)
def test_a_malformed_mail_connection_fails_the_task_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    dag_id: str, task_id: str,
) -> None:  # fmt: skip
    """`mediamon_smtp` with port 99999: mediamon refuses it in one line (`configuration
    error: mediamon_smtp: port: expected a whole number from 1 to 65535, got 99999`).
    Before, that line came as an exception every try: 3 retries with backoff (2, 4 and
    8 minutes) for the alerts and digests, 2 for the watchdog, to the same end. Now the
    task fails on its first try, as a bad sources file does."""
    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics

    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")  # the watchdog has a mail
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_SMTP",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": 99999}),
    )
    run = airflow.dags[dag_id].test(logical_date=datetime(2024, 4, 5, 0, 0, tzinfo=UTC))
    state, tasks = run_state(metadata, dag_id, run.run_id)
    assert (state, tasks[task_id]) == ("failed", ("failed", 1)), tasks


def test_a_topics_file_never_valid_fails_match_topics_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No valid topics file was ever stored (a new deployment with a typo): before, the
    file's one-line error was retried 3 times with backoff; now the first try fails."""
    with engine.connect() as conn:  # nothing stored to fall back on (``engine`` empties it)
        assert conn.execute(sa.text("select count(*) from topics")).scalar() == 0
    topics = tmp_path / "topics.yaml"
    topics.write_text("version: 1\ntopics: [{key: taiwan}]\n", "utf-8")  # no name, no terms
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics))
    run = airflow.dags["mediamon_alerts"].test(logical_date=datetime(2024, 4, 6, tzinfo=UTC))
    state, tasks = run_state(metadata, "mediamon_alerts", run.run_id)
    assert (state, tasks["match_topics"]) == ("failed", ("failed", 1)), tasks


def test_digests_dag_sends_each_digest_once(
    airflow: Any, engine: sa.Engine, built_seed: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly; the run after 08:00 in Shanghai mails the daily digest of
    config/topics.yaml (the seed article), a re-run of the hour mails nothing."""
    from email import message_from_bytes, policy

    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    dag = airflow.dags["mediamon_digests"]
    assert [t.task_id for t in dag.tasks] == ["send_digests"]
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    with engine.begin() as conn:
        source = add_source(conn, "rfi-archive")
        row = article_row(
            source, built_seed.canonical_url, built_seed.title, built_seed.body_text,
            built_seed.published_at, first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
        )  # fmt: skip
        conn.execute(ARTICLE_SQL, {**row, "match_text": built_seed.match_text})
    sink = Sink()
    with serve_smtp(sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        hour = datetime(2024, 4, 3, 0, 0, tzinfo=UTC)  # the run ending 09:00 in Shanghai
        assert dag.test(logical_date=hour).state == "success"
        assert dag.test(logical_date=hour).state == "success"
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    message = message_from_bytes(sink.messages[0].content, policy=policy.default)
    assert message["Subject"].startswith("[mediamon] 每日摘要 2024-04-03：1 篇新报道")
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("select status, stories from digest_deliveries")).all()
    assert [tuple(r) for r in recorded] == [("sent", 1)]  # the seed, listed under both topics


def test_digests_due_without_a_mail_connection_make_a_red_run(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, built_seed: Article,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No `mediamon_smtp` connection while the editors' daily digest is due. Before: the
    task returned {"sent": 0, ...} and the run was green, every hour, while no reader got
    a digest and nothing watched for it. Now it fails at once (no retries: a retry cannot
    define the connection), saying so; the digest stays due and goes out once mail works.
    An hour with no digest due stays green."""
    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    with engine.begin() as conn:
        row = article_row(
            add_source(conn, "rfi-archive"), built_seed.canonical_url, built_seed.title,
            built_seed.body_text, built_seed.published_at,
            first_seen_at=datetime(2024, 4, 3, tzinfo=UTC),
        )  # fmt: skip
        conn.execute(ARTICLE_SQL, {**row, "match_text": built_seed.match_text})
    dag = airflow.dags["mediamon_digests"]
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP", raising=False)
    hour = datetime(2024, 4, 3, 0, 0, tzinfo=UTC)  # the run ending 09:00 in Shanghai
    unmailed = dag.test(logical_date=hour)
    assert run_state(metadata, "mediamon_digests", unmailed.run_id) == (
        "failed", {"send_digests": ("failed", 1)},
    )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from digest_deliveries")).scalar() == 0
    sink = Sink()
    with serve_smtp(sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert dag.test(logical_date=hour + timedelta(hours=1)).state == "success"
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP")
    nothing_due = dag.test(logical_date=hour + timedelta(hours=2))
    assert run_state(metadata, "mediamon_digests", nothing_due.run_id)[0] == "success"


def test_health_dag_mails_an_incident_and_is_red_while_it_cannot(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quick_failures: None,
) -> None:
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    # A failed ingest run an hour and a half ago: two incidents (failed, stale).
    sources = write_sources(tmp_path / "sources.yaml", [down_source("down")])
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    ingest_at = datetime(2024, 5, 5, 12, 0, tzinfo=UTC)
    airflow.dags["mediamon_ingest"].test(logical_date=ingest_at, run_conf=conf(force=True))
    health = airflow.dags["mediamon_health"]
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.delenv("AIRFLOW_CONN_MEDIAMON_SMTP", raising=False)
    unmailed = health.test(logical_date=ingest_at + timedelta(minutes=75))
    assert run_state(metadata, "mediamon_health", unmailed.run_id)[0] == "failed"

    mailbox = Mailbox(Sink())
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        mailed = health.test(logical_date=ingest_at + timedelta(minutes=90))
    assert run_state(metadata, "mediamon_health", mailed.run_id)[0] == "success"
    assert sorted(m["Subject"] for m in mailbox.messages) == [
        "[mediamon] INCIDENT: no successful ingest run for 90 min",
        "[mediamon] INCIDENT: the latest ingest run failed",
    ]


@pytest.mark.parametrize("case", ["auth-required", "no-auth-for-a-login"])
def test_a_server_refusing_every_mail_fails_deliver_alerts_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:  # fmt: skip
    """The `mediamon_smtp` server answers every MAIL FROM with 530 (authentication
    required: the connection has no login), or offers no AUTH while the connection has a
    login. Before: each pending mail was tried, failed and left pending, and the task was
    retried 3 times with backoff, each try asking the server again for every mail. Now
    the first refusal stops the run: the task fails on its first try, in one line naming
    the server and its answer (or what it lacks); the alert stays pending."""
    from mediamon.topics.file import parse_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import AT, TOPICS_YAML, alert_on_burst
    from tests.support.smtp_server import Answering, connection_json, serve_smtp

    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(TOPICS_YAML, "utf-8")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics_file))
    topics = parse_topics(TOPICS_YAML, "topics.yaml")
    sync_topics(engine, topics)
    assert len(alert_on_burst(engine, topics)) == 1
    if case == "auth-required":
        server = Answering(mail_from="530 5.7.0 Authentication required")
    else:
        server = Answering()  # offers no AUTH
    with serve_smtp(server) as port:
        connection = json.loads(connection_json(port))
        if case == "no-auth-for-a-login":
            connection |= {"login": "mediamon", "password": "secret"}
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", json.dumps(connection))
        run = airflow.dags["mediamon_alerts"].test(logical_date=AT + timedelta(minutes=5))
    state, tasks = run_state(metadata, "mediamon_alerts", run.run_id)
    assert (state, tasks["deliver_alerts"]) == ("failed", ("failed", 1)), tasks
    assert server.mail_froms == (1 if case == "auth-required" else 0)  # not each mail
    with engine.connect() as conn:
        assert conn.execute(sa.text("select state from alerts")).scalars().all() == ["open"]
        assert conn.execute(sa.text("select count(*) from alert_deliveries")).scalar() == 0


def test_a_server_refusing_every_mail_fails_the_watchdog_at_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, built_seed: Article,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The `mediamon_smtp` server answers every MAIL FROM with 530. Before: each incident
    mail was tried and failed as if the server were down, and the watchdog was retried
    twice, each try asking again for each mail. Now the task fails on its first try, in
    one line naming the server and its answer; the incidents stay recorded, unmailed."""
    from tests.integration.test_health import T, add_articles, add_polls, hourly
    from tests.support.smtp_server import Answering, connection_json, serve_smtp

    for source in ("quiet", "still"):  # two silent sources: two incident mails due
        add_articles(engine, built_seed, source, hourly(T - timedelta(hours=10), 48))
        add_polls(engine, source, [T - timedelta(minutes=5)])
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    server = Answering(mail_from="530 5.7.0 Authentication required")
    with serve_smtp(server) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        run = airflow.dags["mediamon_health"].test(logical_date=T)
    state, tasks = run_state(metadata, "mediamon_health", run.run_id)
    assert (state, tasks["watchdog"]) == ("failed", ("failed", 1)), tasks
    assert server.mail_froms == 1  # one mail asked, not each
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select notified_at, mail_refused from incidents")).all()
    assert [tuple(r) for r in rows] == [(None, None), (None, None)]
