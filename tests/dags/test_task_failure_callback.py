"""Mail to ops when a task fails for good: opt-in through MEDIAMON_OPS_EMAIL, one mail
(the watcher does not repeat it), with the error and a log link on the UI's own port; one
mail per cause while it lasts (the database down fails every task that needs it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.devtools.airflow_env import dags_folder
from tests.dags.airflow_runs import conf


def test_ops_failure_mail_is_opt_in(airflow: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mediamon_airflow

    monkeypatch.delenv("MEDIAMON_OPS_EMAIL", raising=False)
    assert mediamon_airflow.failure_mail() == {}
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org, oncall@example.org")
    notifier = mediamon_airflow.failure_mail()["on_failure_callback"]
    assert notifier.recipients == ["ops@example.org", "oncall@example.org"]
    # The watcher re-states a failure another task already mailed: no second mail.
    from airflow.dag_processing.dagbag import DagBag

    parsed = DagBag(dag_folder=str(dags_folder()))  # with MEDIAMON_OPS_EMAIL set
    for task in parsed.dags["mediamon_ingest"].tasks:
        callbacks = task.on_failure_callback
        assert (not callbacks) is (task.task_id == "watcher"), task.task_id


def test_a_task_failing_for_good_mails_ops_its_error_and_log(
    airflow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's SmtpNotifier mailed an HTML part only, without the error, and its
    log link named localhost:8080 whatever port the UI was on."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    broken = tmp_path / "sources.yaml"
    broken.write_text("sources:\n  - {name: x, url: notaurl}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(broken))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:18099/")
    dag = DagBag(dag_folder=str(dags_folder())).dags["mediamon_ingest"]  # reads OPS_EMAIL
    mailbox = Mailbox(Sink())
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        run = dag.test(logical_date=datetime(2024, 5, 6, 12, 0, tzinfo=UTC), run_conf=conf())
    assert run.state == "failed"
    [message] = mailbox.messages  # plan_sources; the watcher does not mail it again
    assert message["Subject"].startswith("[mediamon] task failed: mediamon_ingest.plan_sources")
    plain = message.get_body(("plain",))
    assert plain is not None and message.get_body(("html",)) is not None
    text = plain.get_content()
    assert "source 'x'.url" in text, text
    assert "Log: http://127.0.0.1:18099/dags/mediamon_ingest/runs/" in text, text


@contextmanager
def database_refusing_connections(url: str) -> Iterator[None]:
    """mediamon's database away (its sessions ended, new ones refused), then back: what a
    restart or a failover looks like from the tasks. Airflow's metadata database, on the
    same server, stays up."""
    name = sa.make_url(url).database
    admin = sa.create_engine(
        db.normalize_url(str(sa.make_url(url).set(database="postgres"))),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'alter database "{name}" allow_connections false'))
        conn.execute(
            sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :d"),
            {"d": name},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{name}" allow_connections true'))
        admin.dispose()


def test_one_mail_per_cause_while_the_database_is_down(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, database_url: str,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Before: with mediamon's database down, each ingest run mailed ops twice
    (plan_sources, then summarize, which runs whatever its upstream did) and each watchdog
    run once, the same line: about 13 mails an hour. Now the first failure mails, saying
    until when that error is not mailed again; the runs are red all the same. A mail the
    SMTP server could not take is not counted as sent: the next failure mails."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.airflow_runs import closed_port, run_state
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    dags = DagBag(dag_folder=str(dags_folder())).dags  # reads MEDIAMON_OPS_EMAIL
    for dag_id in ("mediamon_ingest", "mediamon_health"):
        for task in dags[dag_id].tasks:
            task.retries = 0  # the retries would only make the test wait
    with metadata.begin() as conn:
        conn.execute(sa.text("delete from variable where key = 'mediamon_failure_mails'"))
    engine.dispose()
    mailbox = Mailbox(Sink())
    hour = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)

    def ingest(at: datetime) -> Any:
        run = dags["mediamon_ingest"].test(logical_date=at, run_conf=conf())
        return run_state(metadata, "mediamon_ingest", run.run_id)

    with database_refusing_connections(database_url):
        # The mail server down at the first failures: nothing sent, nothing crashed.
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(closed_port()))
        with caplog.at_level(logging.WARNING):
            state, tasks = ingest(hour)
        assert (state, tasks["plan_sources"][0], tasks["summarize"][0]) == (
            "failed", "failed", "failed",
        )  # fmt: skip
        # Its database down too, the mail cannot be kept in ops_outbox: it is held in
        # Airflow's store (before: lost), and the next ops mail sends it first.
        held = [r.getMessage() for r in caplog.records if "could not go out" in r.getMessage()]
        assert held and all("kept in Variable mediamon_held_mails" in line for line in held), held
        caplog.clear()
        with serve_smtp(mailbox.sink) as port:
            monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
            with caplog.at_level(logging.WARNING):
                assert ingest(hour + timedelta(minutes=15))[0] == "failed"
                watchdog = dags["mediamon_health"].test(logical_date=hour)
                assert run_state(metadata, "mediamon_health", watchdog.run_id)[0] == "failed"
                assert ingest(hour + timedelta(minutes=30))[0] == "failed"
    # The database back: the next success of a task that failed with the error mails
    # its end, once (before: nothing; ops could not tell "fixed" from "held back"); the
    # watchdog, which failed with it too, mails nothing more.
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        assert ingest(hour + timedelta(minutes=45))[1]["plan_sources"][0] == "success"
        watchdog = dags["mediamon_health"].test(logical_date=hour + timedelta(minutes=45))
        assert run_state(metadata, "mediamon_health", watchdog.run_id)[1]["watchdog"][0] == (
            "success"
        )
    assert len(mailbox.messages) == 2, [m["Subject"] for m in mailbox.messages]
    message, back = mailbox.messages
    assert message["Subject"].startswith("[mediamon] task failed: mediamon_ingest.plan_sources")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Error: database unavailable: " in text and "not currently accepting" in text
    assert "Repeats: Failures with this same error are not mailed again until " in text
    assert back["Subject"].startswith(
        "[mediamon] RESOLVED task failure: mediamon_ingest.plan_sources (database unavailable: "
    ), back["Subject"]
    back_text = back.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Error: database unavailable: " in back_text and "not currently accepting" in back_text
    assert "Mailed: 20" in back_text and "Back: 20" in back_text, back_text
    from airflow.models.variable import Variable

    # The cause ended: no longer held back, so if it comes back it mails again.
    [ended] = Variable.get("mediamon_failure_mails", deserialize_json=True).values()
    assert "resolved_at" in ended, ended
    held = [r.getMessage() for r in caplog.records if "failure mail not sent" in r.getMessage()]
    # The first failure's mail held (counted as mailed, sent by the next ops mail):
    # plan_sources and summarize, the watchdog, plan_sources and summarize again
    assert len(held) == 5, held
    assert all("the same error was mailed at" in line for line in held), held


@contextmanager
def variable_frozen_once_written(metadata: sa.Engine, key: str) -> Iterator[None]:
    """Airflow's store takes the Variable's first write and refuses every later one: the
    metadata database failing between a task's claim and its record of the mail."""
    with metadata.begin() as conn:
        conn.execute(sa.text("delete from variable where key = :key"), {"key": key})
        conn.execute(sa.text(
            "create or replace function test_refuse_rewrite() returns trigger language plpgsql"
            " as $$ begin raise exception 'test: variable % is read-only', old.key; end $$"
        ))  # fmt: skip
        conn.execute(sa.text(
            "create trigger test_refuse_rewrite before update or delete on variable for each row"
            f" when (old.key = '{key}') execute function test_refuse_rewrite()"
        ))  # fmt: skip
    try:
        yield
    finally:
        with metadata.begin() as conn:
            conn.execute(sa.text("drop trigger if exists test_refuse_rewrite on variable"))
            conn.execute(sa.text("drop function if exists test_refuse_rewrite()"))
            conn.execute(sa.text("delete from variable where key = :key"), {"key": key})


def test_a_failure_mailed_but_not_recorded_is_not_mailed_again(
    airflow: Any, metadata: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Before: when the Variable could not be written after the mail went out (the claim
    stored, the record of the send refused), the fallback for an unavailable store mailed
    the same failure a second time. A store failing only costs deduplication before the
    mail, never a second mail after it."""
    from airflow.dag_processing.dagbag import DagBag

    from mediamon_airflow.task_failure import MAILED_VARIABLE
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    broken = tmp_path / "sources.yaml"
    broken.write_text("sources:\n  - {name: x, url: notaurl}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(broken))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    dag = DagBag(dag_folder=str(dags_folder())).dags["mediamon_ingest"]  # reads OPS_EMAIL
    mailbox = Mailbox(Sink())
    with variable_frozen_once_written(metadata, MAILED_VARIABLE), serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        with caplog.at_level(logging.WARNING):
            run = dag.test(logical_date=datetime(2024, 5, 7, 12, 0, tzinfo=UTC), run_conf=conf())
    assert run.state == "failed"
    subjects = [m["Subject"] for m in mailbox.messages]
    assert len(subjects) == 1, subjects
    assert subjects[0].startswith("[mediamon] task failed: mediamon_ingest.plan_sources")
    warned = [r.getMessage() for r in caplog.records]
    assert any("failure mailed, but not recorded" in line for line in warned), warned


def test_the_database_down_at_a_runs_start_is_one_line_naming_it_in_the_task_log(
    airflow: Any, metadata: sa.Engine, database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: plan_sources' log held SQLAlchemy's and the driver's chained tracebacks, 150
    lines ending in ``(Background on this error at: https://sqlalche.me/…)``, and the
    line ops need (which database, what it said) among them. Now the task's error is one
    line naming mediamon's database, after Airflow's own frames only."""
    import re

    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.airflow_runs import run_state

    dag = DagBag(dag_folder=str(dags_folder())).dags["mediamon_ingest"]
    for task in dag.tasks:
        task.retries = 0  # the retries would only make the test wait
    capfd.readouterr()
    with database_refusing_connections(database_url):
        run = dag.test(logical_date=datetime(2024, 8, 1, 12, 0, tzinfo=UTC), run_conf=conf())
    log = capfd.readouterr().out
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert (state, tasks["plan_sources"][0]) == ("failed", "failed"), tasks
    # plan_sources fails first: its error, as its log shows it, up to the next log line.
    after = log[log.index("Task failed with exception") :].splitlines()[1:]
    shown = []
    for line in after:
        if re.match(r"\d{4}-\d\d-\d\dT", line):
            break
        shown.append(line)
    url = sa.make_url(database_url)
    assert shown[-1].startswith("mediamon.errors.DatabaseUnavailable: database unavailable: ")
    assert shown[-1].endswith(
        f"(mediamon's database {url.database} on {url.host}:{url.port or 5432},"
        " from MEDIAMON_DATABASE_URL)"
    ), shown[-1]
    # Airflow's frames and the line: no chained driver and SQLAlchemy tracebacks.
    assert not [line for line in shown if "sqlalchemy" in line or "psycopg" in line], shown
    assert len(shown) < 60, "\n".join(shown)


def test_a_failure_mail_the_mail_server_cannot_take_is_kept_and_sent_once_it_is_back(
    airflow: Any,
    metadata: sa.Engine,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The mail server down when a task fails for good. Before: one WARNING line, and the
    mail was lost unless the same error failed a task again (measured: 0 mails after the
    server came back and two watchdog runs). Now the mail is kept in ``ops_outbox``, one
    line says so, and the next watchdog run mails it once, first; the run is red all
    the same. (Before that: the callback raised, and Airflow logged "Failed to run task
    callback" with smtplib's traceback after the task's own error.)"""
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.airflow_runs import closed_port, run_state
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    broken = tmp_path / "sources.yaml"
    broken.write_text("sources:\n  - {name: x, url: notaurl}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(broken))
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(closed_port()))
    with metadata.begin() as conn:
        conn.execute(sa.text("delete from variable where key = 'mediamon_failure_mails'"))
    dags = DagBag(dag_folder=str(dags_folder())).dags  # reads OPS_EMAIL
    with caplog.at_level(logging.WARNING):
        run = dags["mediamon_ingest"].test(
            logical_date=datetime(2024, 9, 2, 12, 0, tzinfo=UTC), run_conf=conf()
        )
        state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
        assert (state, tasks["plan_sources"][0]) == ("failed", "failed"), tasks
        # The same error failing again meanwhile: held back, not kept a second time.
        again = dags["mediamon_ingest"].test(
            logical_date=datetime(2024, 9, 2, 12, 5, tzinfo=UTC), run_conf=conf()
        )
    assert run_state(metadata, "mediamon_ingest", again.run_id)[0] == "failed"
    lines = [record.getMessage() for record in caplog.records]
    said = [line for line in lines if "of this failure could not go out" in line]
    assert len(said) == 1 and "kept in ops_outbox" in said[0], said
    assert [line for line in lines if "failure mail not sent: the same error" in line], lines

    mailbox = Mailbox(Sink())
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        for minutes in (15, 30):  # the second run finds nothing left to send
            dags["mediamon_health"].test(logical_date=datetime(2024, 9, 2, 12, minutes, tzinfo=UTC))
    failed = [m for m in mailbox.messages if m["Subject"].startswith("[mediamon] task failed")]
    assert len(failed) == 1, [m["Subject"] for m in mailbox.messages]
    assert failed[0]["Subject"].startswith("[mediamon] task failed: mediamon_ingest.plan_sources")
    text = failed[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "source 'x'.url" in text, text
    assert mailbox.messages[0]["Subject"] == failed[0]["Subject"]  # what waited went first
    with engine.connect() as conn:
        kept = conn.execute(
            sa.text("select mail_key, sent_at is not null, dropped_at from ops_outbox")
        ).all()
    assert [(sent, dropped) for _, sent, dropped in kept] == [(True, None)], kept
    assert kept[0][0].startswith("task-failure:mediamon_ingest.plan_sources "), kept
    # The run stays red: the mail went out later, the failure happened.
    assert run_state(metadata, "mediamon_ingest", run.run_id)[0] == "failed"
