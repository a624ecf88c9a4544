"""Runs of the mailing DAGs that Airflow makes late, by a real scheduler (LocalExecutor):
a backfill, and a past run cleared days after its hour. What they would mail is old
news; Google Alerts would not send it, and neither does mediamon."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import sqlalchemy as sa

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import DEFAULT_CONFIG_DIR, Settings
from mediamon.topics.file import load_topics
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
from tests.support.smtp_server import Sink, connection_json, serve_smtp

MAILING_DAGS = ("mediamon_digests", "mediamon_health", "mediamon_health_report")


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [airflow_stack.airflow_bin(), *args], env=env, capture_output=True, text=True
    )


def _environment(database_url: str, home: Path, metadata_url: str) -> dict[str, str]:
    settings = replace(Settings.from_env(), database_url=database_url, var_dir=home)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
    return airflow_stack.stack_environment(env, metadata_url, home)


def test_the_dags_that_mail_refuse_a_backfill(database_url: str, tmp_path: Path) -> None:
    """Before: `airflow backfill create` of last week's mediamon_digests made 168 runs,
    each mailing the digest of its hour that had not gone out (a week of past digests at
    once); the watchdog's and the weekly report's likewise mailed the past. Now Airflow
    refuses it in one line, and makes no run."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    week_ago = (datetime.now(UTC) - timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    with airflow_stack.metadata_database(base) as metadata_url:
        env = _environment(database_url, tmp_path, metadata_url)
        parsed = _airflow(env, "dags", "reserialize")
        assert parsed.returncode == 0, parsed.stderr[-2000:]
        answers = {
            dag_id: _airflow(
                env,
                "backfill",
                "create",
                "--dag-id",
                dag_id,
                "--from-date",
                week_ago.isoformat(),
                "--to-date",
                (week_ago + timedelta(days=6)).isoformat(),
            )  # fmt: skip
            for dag_id in MAILING_DAGS
        }
        metadata = sa.create_engine(metadata_url)
        with metadata.connect() as conn:
            made = conn.execute(sa.text("select count(*) from dag_run")).scalar_one()
            backfills = conn.execute(sa.text("select count(*) from backfill")).scalar_one()
        metadata.dispose()
    for dag_id, done in answers.items():
        said = done.stdout + done.stderr
        assert done.returncode != 0, (dag_id, said[-1000:])
        assert f"Dag with dag_id: '{dag_id}' does not allow backfill runs" in said, said[-1000:]
    assert (made, backfills) == (0, 0)


def test_a_cleared_past_digests_run_mails_no_stale_digest(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    """Two days ago the digests run after the editors' 08:00 (Shanghai) failed to mail
    (no mail set up); ops fix mail and clear that run. Before: it mailed the digest of two
    days ago now, beside the one the recipient got this morning. Now the cleared run finds
    the digest stale (a later digest time has passed): nothing is mailed or recorded, and
    the next digest lists the stories from where the last one ended."""
    sync_topics(engine, load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    digest_time = today - timedelta(days=2)  # 08:00 in Shanghai, two days ago
    with engine.begin() as conn:
        source = add_source(conn, "rfi-late")
        row = article_row(
            source, "https://rfi.example/taiwan-1", "台湾出口管制新规", "台湾 出口管制 报道。",
            digest_time - timedelta(hours=3), first_seen_at=digest_time - timedelta(hours=3),
        )  # fmt: skip
        conn.execute(ARTICLE_SQL, row)
    sink = Sink()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    with airflow_stack.metadata_database(base) as metadata_url, serve_smtp(sink) as smtp_port:
        env = _environment(database_url, tmp_path, metadata_url)
        with airflow_stack.running(env, metadata_url, stop_grace_s=5) as stack:
            stack.start_components()
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_digests")
            run_id = "two-days-ago"
            hour = digest_time + timedelta(minutes=5)
            stack.trigger("mediamon_digests", run_id=run_id, logical_date=hour)
            # Red: a digest was due and no mail connection (the editors' digest waits).
            assert stack.wait_for_run("mediamon_digests", run_id, 180).state == "failed"
            metadata = stack.metadata()
            with metadata.begin() as conn:  # the run's times are those of a run of then
                conn.execute(
                    sa.text(
                        "update dag_run set run_after = :end, data_interval_start = :start,"
                        " data_interval_end = :end where run_id = :run_id"
                    ),
                    {"start": hour - timedelta(hours=1), "end": hour, "run_id": run_id},
                )
            stack.stop_component("scheduler")
            mail = {**env, "AIRFLOW_CONN_MEDIAMON_SMTP": connection_json(smtp_port)}
            stack.start("scheduler-again", ["scheduler", "--skip-serve-logs"], env=mail)
            stack.clear("mediamon_digests", run_id)
            again = stack.wait_for_run("mediamon_digests", run_id, 180)
            tasks = stack.task_instances("mediamon_digests", run_id)
            with metadata.connect() as conn:
                clears, returned = conn.execute(
                    sa.text(
                        "select r.clear_number, x.value from dag_run r join xcom x"
                        " using (dag_id, run_id) where r.run_id = :r and x.key = 'return_value'"
                    ),
                    {"r": run_id},
                ).one()
            metadata.dispose()
    assert again.state == "success" and clears == 1, tasks
    # The scheduler's own run of this hour may mail today's digest: none of two days ago.
    subjects = [
        str(message_from_bytes(m.content, policy=policy.default)["Subject"]) for m in sink.messages
    ]
    old_day = (digest_time + timedelta(hours=8)).date().isoformat()  # its date in Shanghai
    assert not [s for s in subjects if old_day in s], subjects
    assert returned["stale"] == 1 and returned["sent"] == 0, returned
    with engine.connect() as conn:
        periods = conn.execute(sa.text("select period_end from digest_deliveries")).scalars()
        assert digest_time not in list(periods)
