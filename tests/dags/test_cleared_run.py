"""A past ``mediamon_alerts`` run, cleared and run again by a real scheduler (what ops do
in the UI once mail works again): its pending alert is judged by the clock, not by the
run's hour. Before, the spike of days ago was mailed as if new. ``dags test`` cannot show
this: it replaces the run instead of clearing it (its clear count stays 0)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import DEFAULT_CONFIG_DIR, Settings
from mediamon.topics.file import load_topics
from mediamon.topics.store import sync_topics
from tests.support.smtp_server import Sink, connection_json, serve_smtp

HOUR = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def test_a_cleared_past_run_leaves_its_stale_alert_to_the_digests(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into alerts (dedupe_key, topic, topic_version, window_start, window_end,"
                " observed, expected, lift, score, p_value, total_stories, details,"
                " last_window_end, peak_observed)"
                " select 'cleared-run', 'taiwan', version, :start, :end, 9, 0.5, 18, 6, 1e-9,"
                " 40, '{}', :end, 9 from topics where topic = 'taiwan'"
            ),
            {"start": HOUR - timedelta(hours=1), "end": HOUR},
        )
    settings = replace(Settings.from_env(), database_url=database_url, var_dir=tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    sink = Sink()
    with airflow_stack.metadata_database(base) as metadata_url, serve_smtp(sink) as smtp_port:
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, tmp_path)
        with airflow_stack.running(env, metadata_url, stop_grace_s=5) as stack:
            stack.start_components()
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_alerts")
            # The hour's run while mail is not set up: the alert waits (the task is green).
            run_id = "past-hour"
            stack.trigger("mediamon_alerts", run_id=run_id, logical_date=HOUR)
            assert stack.wait_for_run("mediamon_alerts", run_id, 180).state == "success"
            # Days later (the run's times set back to its hour, as a run of then has them)
            # mail works again: the scheduler restarts with the mediamon_smtp connection,
            # and ops clear the old run, which the scheduler runs again.
            metadata = stack.metadata()
            with metadata.begin() as conn:
                conn.execute(
                    sa.text(
                        "update dag_run set run_after = :hour, data_interval_start = :hour,"
                        " data_interval_end = :hour where run_id = :run_id"
                    ),
                    {"hour": HOUR, "run_id": run_id},
                )
            stack.stop_component("scheduler")
            mail = {**env, "AIRFLOW_CONN_MEDIAMON_SMTP": connection_json(smtp_port)}
            stack.start("scheduler-again", ["scheduler", "--skip-serve-logs"], env=mail)
            stack.clear("mediamon_alerts", run_id)
            again = stack.wait_for_run("mediamon_alerts", run_id, 180)
            tasks = stack.task_instances("mediamon_alerts", run_id)
            with metadata.connect() as conn:
                cleared = conn.execute(
                    sa.text("select clear_number from dag_run where run_id = :r"), {"r": run_id}
                ).scalar_one()
            metadata.dispose()
    assert again.state == "success", tasks
    assert cleared == 1 and all(t["state"] == "success" for t in tasks), tasks
    assert sink.messages == []  # before: the alert of 2024 mailed now
    with engine.connect() as conn:
        deliveries = conn.execute(
            sa.text(
                "select d.status, d.note from alert_deliveries d join alerts a using (alert_id)"
                " where a.dedupe_key = 'cleared-run'"
            )
        ).all()
    assert deliveries and all(status == "skipped" for status, _ in deliveries), deliveries
    assert all("older than" in str(note) for _, note in deliveries), deliveries
