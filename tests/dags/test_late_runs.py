"""Runs of the mailing DAGs that Airflow makes late: a backfill. What they would mail is
old news; Google Alerts would not send it, and neither does mediamon."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench import airflow_stack
from mediamon.devtools.airflow_env import airflow_environment
from mediamon.settings import Settings

MAILING_DAGS = ("mediamon_digests", "mediamon_health", "mediamon_health_report")


@pytest.fixture(scope="module", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    airflow_stack.drop_templates()


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
