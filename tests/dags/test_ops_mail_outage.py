"""Ops mail when mediamon's database misbehaves: a failure mail held in Airflow's store
while that database and the mail server are both down, and mailed once either is back;
the failure callback bounded when the database's host never answers."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon.devtools.airflow_env import dags_folder
from tests.dags.airflow_runs import conf
from tests.dags.test_task_failure_callback import database_refusing_connections

HELD = "mediamon_held_mails"


def _dags(metadata: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org")
    dags = DagBag(dag_folder=str(dags_folder())).dags  # reads MEDIAMON_OPS_EMAIL
    for dag_id in ("mediamon_ingest", "mediamon_health"):
        for task in dags[dag_id].tasks:
            task.retries = 0  # the retries would only make the test wait
    with metadata.begin() as conn:
        conn.execute(
            sa.text("delete from variable where key in ('mediamon_failure_mails', :held)"),
            {"held": HELD},
        )
    return dags


def _held(metadata: sa.Engine) -> list[str]:
    """The keys of the mails held in the Variable (its value may be encrypted)."""
    from airflow.models.variable import Variable

    value = Variable.get(HELD, default_var=None, deserialize_json=True)
    return [m["key"] for m in value["mails"]] if value else []


def _failure_mails(mailbox: Any) -> list[str]:
    subjects = [str(m["Subject"]) for m in mailbox.messages]
    return [s for s in subjects if s.startswith("[mediamon] task failed")]


@pytest.mark.parametrize("back_first", ["mail_server", "database"])
def test_a_failure_mail_with_the_database_and_mail_server_down_is_held_and_mailed_once(
    airflow: Any, metadata: sa.Engine, engine: sa.Engine, database_url: str,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, back_first: str,
) -> None:  # fmt: skip
    """Before: with mediamon's database down (so no ops_outbox) and the SMTP server down,
    the failure mail was one WARNING line and lost: 0 mails once both were back, about
    the outage ops most need to hear of. Now it is held in the Airflow Variable
    ``mediamon_held_mails`` and mailed once: by the watchdog while the database is still
    down, or through ops_outbox once the database is back first."""
    from tests.dags.airflow_runs import closed_port, run_state
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    dags = _dags(metadata, monkeypatch)
    engine.dispose()
    mailbox = Mailbox(Sink())
    hour = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)

    def watchdog(at: datetime) -> str:
        run = dags["mediamon_health"].test(logical_date=at)
        return str(run_state(metadata, "mediamon_health", run.run_id)[0])

    monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(closed_port()))
    with database_refusing_connections(database_url):
        with caplog.at_level(logging.WARNING):
            run = dags["mediamon_ingest"].test(logical_date=hour, run_conf=conf())
        assert run_state(metadata, "mediamon_ingest", run.run_id)[1]["plan_sources"][0] == (
            "failed"
        )
        said = [r.getMessage() for r in caplog.records if "could not go out" in r.getMessage()]
        assert len(said) == 1 and f"kept in Variable {HELD}" in said[0], said
        [key] = _held(metadata)
        assert key.startswith("task-failure:mediamon_ingest.plan_sources "), key
        if back_first == "mail_server":
            with serve_smtp(mailbox.sink) as port:
                monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
                # The watchdog fails (the database), but mails what was held first; its
                # own failure is the same error: held back.
                assert watchdog(hour + timedelta(minutes=15)) == "failed"
                assert watchdog(hour + timedelta(minutes=30)) == "failed"
            assert _held(metadata) == []
    if back_first == "database":
        # The mail server still down: the held mail moves into ops_outbox.
        watchdog(hour + timedelta(minutes=15))
        assert _held(metadata) == []
        with engine.connect() as conn:
            assert conn.execute(
                sa.text("select mail_key from ops_outbox where sent_at is null")
            ).scalars().all() == [key]
    with serve_smtp(mailbox.sink) as port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(port))
        for minutes in (45, 60):  # the second run finds nothing left to send
            assert watchdog(hour + timedelta(minutes=minutes)) in ("success", "failed")
    failed = _failure_mails(mailbox)
    assert len(failed) == 1, [m["Subject"] for m in mailbox.messages]
    assert failed[0].startswith("[mediamon] task failed: mediamon_ingest.plan_sources"), failed
    text = mailbox.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Error: database unavailable: " in text, text
    assert _held(metadata) == []


@contextmanager
def black_hole() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections (the kernel's backlog) and never says
    a word: a database host behind a firewall that drops, as libpq sees it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def test_the_failure_callback_ends_when_the_database_host_never_answers(
    airflow: Any, metadata: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the callback's connection to ops_outbox had no connect timeout; with the
    database's host black-holed it waited for ever (the task's slot held, the mail never
    sent). Now it gives up after ``OUTBOX_CONNECT_TIMEOUT_S`` and mails all the same."""
    from tests.integration.test_health import Mailbox
    from tests.support.smtp_server import Sink, connection_json, serve_smtp

    dags = _dags(metadata, monkeypatch)
    mailbox = Mailbox(Sink())
    # A run "in" the future fails at once (run_time), before the task reads the database:
    # only the callback meets the black hole.
    future = datetime.now(UTC) + timedelta(days=2)
    done: list[Any] = []
    limit = 60.0
    with black_hole() as port, serve_smtp(mailbox.sink) as smtp_port:
        monkeypatch.setenv("AIRFLOW_CONN_MEDIAMON_SMTP", connection_json(smtp_port))
        # A connect_timeout of an hour in the URL is clamped too.
        monkeypatch.setenv(
            "MEDIAMON_DATABASE_URL",
            f"postgresql://mediamon@127.0.0.1:{port}/x?connect_timeout=3600",
        )
        start = time.monotonic()
        runner = threading.Thread(
            target=lambda: done.append(dags["mediamon_health"].test(logical_date=future)),
            daemon=True,
        )
        runner.start()
        runner.join(limit)
        took = time.monotonic() - start
    runner.join(limit)  # the black hole closed: the old code's connect fails now
    assert done and done[0].state == "failed"
    assert took < limit, f"the callback waited {took:.0f} s on a host that never answers"
    assert took < 40, took  # a connect or two of OUTBOX_CONNECT_TIMEOUT_S (5 s), the mail
    assert len(_failure_mails(mailbox)) == 1, [m["Subject"] for m in mailbox.messages]


@pytest.mark.parametrize(
    ("query", "tries", "said"),
    [
        ("", 2, "database unavailable: "),  # down: retried, as before
        ("?connect_timeout=abc", 1, "configuration error: "),  # a setting: fails at once
    ],
    ids=["unreachable", "malformed"],
)
def test_errors_of_the_mediamon_db_connection_name_it_and_keep_their_retries(
    airflow: Any, metadata: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], query: str, tries: int, said: str,
) -> None:  # fmt: skip
    """Before: with the Airflow connection ``mediamon_db`` configured, its errors named
    ``MEDIAMON_DATABASE_URL`` (``MEDIAMON_DATABASE_URL: connect_timeout: expected …``),
    or no source at all: ops looked at a variable that was not in use. Now the line names
    the connection, without its password; a database that does not answer is still
    retried, a malformed URL still fails at once."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.airflow_runs import closed_port, run_state

    monkeypatch.delenv("MEDIAMON_OPS_EMAIL", raising=False)
    dag = DagBag(dag_folder=str(dags_folder())).dags["mediamon_ingest"]
    for task in dag.tasks:
        task.retries = 1 if task.task_id == "plan_sources" else 0
        task.retry_delay = timedelta(0)
        task.retry_exponential_backoff = False
    port = closed_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAMON_DB", f"postgresql://mediamon:s3cret-pw@127.0.0.1:{port}/mm{query}"
    )
    capfd.readouterr()
    run = dag.test(logical_date=datetime(2024, 11, 1, 12, 0, tzinfo=UTC), run_conf=conf())
    log = capfd.readouterr().out
    state, tasks = run_state(metadata, "mediamon_ingest", run.run_id)
    assert (state, tasks["plan_sources"]) == ("failed", ("failed", tries)), tasks
    errors = [line for line in log.splitlines() if line.startswith("mediamon.errors.")]
    errors += [line for line in log.splitlines() if "AirflowFailException: configuration" in line]
    assert errors and any(said in line for line in errors), errors
    assert all("the Airflow connection mediamon_db" in line for line in errors), errors
    assert "MEDIAMON_DATABASE_URL" not in "\n".join(errors), errors
    assert "s3cret-pw" not in log
