"""Mail to ops when a task fails for good: opt-in through MEDIAMON_OPS_EMAIL, one mail
(the watcher does not repeat it), with the error and a log link on the UI's own port."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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
