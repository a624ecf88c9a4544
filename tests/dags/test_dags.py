"""Real Airflow: the DAG files parse, follow our policies, and a ``dag.test()`` run of the
ingest DAG loads the demo site into PostgreSQL; a second run of the interval changes
nothing. Airflow's metadata lives in its own PostgreSQL database, made for the session."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.devtools.airflow_env import airflow_command, airflow_environment, dags_folder
from mediamon.devtools.sitehost import serve_folder
from mediamon.models import Article
from mediamon.settings import DEMO_DIR, Settings

DAG_IDS = {"mediamon_ingest", "mediamon_alerts", "mediamon_digests"}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_folder(DEMO_DIR / "site") as base:
        yield base


@pytest.fixture(scope="module")
def airflow(
    database_url: str, site: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Airflow configured through the environment, which it reads once, when first imported."""
    assert "airflow" not in sys.modules, "Airflow was imported before its configuration was set"
    home = tmp_path_factory.mktemp("airflow")
    sources = home / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: demo-news, url: '{site}/feed.xml', language: zh,"
        " allow_private_network: true}\n"
        f"  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n",
        "utf-8",
    )
    metadata_url = db.ensure_database(database_url, f"airflow_test_{uuid.uuid4().hex[:8]}")
    settings = replace(
        Settings.from_env(), database_url=database_url, sources_path=sources, var_dir=home
    )
    env = airflow_environment(settings, {"MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
    env["AIRFLOW_HOME"] = str(home)
    saved = dict(os.environ)
    os.environ.update(env)
    migrated = subprocess.run(
        airflow_command(["db", "migrate"]), env={**saved, **env}, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    from airflow.dag_processing.dagbag import DagBag

    yield DagBag(dag_folder=str(dags_folder()))
    from airflow import settings as airflow_settings

    airflow_settings.dispose_orm()  # before its database goes
    os.environ.clear()
    os.environ.update(saved)
    admin = sa.create_engine(db.normalize_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = sa.make_url(metadata_url).database
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def test_dag_files_import_cleanly(airflow: Any) -> None:
    assert airflow.import_errors == {}
    assert set(airflow.dags) == DAG_IDS


def test_dag_policies(airflow: Any) -> None:
    for dag_id in DAG_IDS:
        dag = airflow.dags[dag_id]
        assert dag.tags and "mediamon" in dag.tags
        assert dag.doc_md
        assert not dag.catchup
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} needs retries"


def test_ingest_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_ingest"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "plan_sources": ["ingest_source"],
        "ingest_source": ["summarize"],
        "summarize": [],
    }
    assert [o.name for o in dag.get_task("summarize").outlets] == ["mediamon_articles"]
    assert dag.timetable.expression == "*/15 * * * *"


def test_dag_run_loads_and_a_rerun_changes_nothing(airflow: Any, engine: sa.Engine) -> None:
    dag = airflow.dags["mediamon_ingest"]
    logical_date = datetime(2024, 4, 20, 12, 0, tzinfo=UTC)
    run = dag.test(logical_date=logical_date, run_conf={"force": True})
    assert run.state == "success"
    with engine.connect() as conn:
        articles = conn.execute(sa.text("select * from articles order by article_id")).all()
        log_rows = conn.execute(sa.text("select count(*) from fetch_log")).scalar_one()
        sources = conn.execute(sa.text("select source, count(*) from bi.articles group by 1")).all()
    assert dict(sources) == {"demo-news": 6, "archive": 1}

    rerun = dag.test(logical_date=logical_date, run_conf={"force": True, "refetch": True})
    assert rerun.state == "success"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select * from articles order by article_id")).all() == articles
        assert conn.execute(sa.text("select count(*) from fetch_log")).scalar_one() == log_rows


def test_ops_failure_mail_is_opt_in(airflow: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mediamon_airflow

    monkeypatch.delenv("MEDIAMON_OPS_EMAIL", raising=False)
    assert mediamon_airflow.failure_mail() == {}
    monkeypatch.setenv("MEDIAMON_OPS_EMAIL", "ops@example.org, oncall@example.org")
    notifier = mediamon_airflow.failure_mail()["on_failure_callback"]
    assert notifier.to == ["ops@example.org", "oncall@example.org"]
    assert notifier.smtp_conn_id == "mediamon_smtp"


def test_alerts_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_alerts"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "match_topics": ["detect_spikes"],
        "detect_spikes": ["deliver_alerts"],
        "deliver_alerts": [],
    }


def test_digests_dag_sends_each_digest_once(
    airflow: Any, engine: sa.Engine, built_seed: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly; the run after 08:00 in Shanghai mails the daily digest of
    config/topics.yaml (the seed article), a re-run of the hour mails nothing."""
    import json
    from email import message_from_bytes, policy

    from mediamon.settings import DEFAULT_CONFIG_DIR
    from mediamon.topics.file import load_topics
    from mediamon.topics.store import sync_topics
    from tests.integration.test_alert_stages import ARTICLE_SQL, add_source, article_row
    from tests.support.smtp_server import Sink, serve_smtp

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
        monkeypatch.setenv(
            "AIRFLOW_CONN_MEDIAMON_SMTP",
            json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                        "extra": {"disable_ssl": True, "disable_tls": True}}),
        )  # fmt: skip
        hour = datetime(2024, 4, 3, 0, 0, tzinfo=UTC)  # the run ending 09:00 in Shanghai
        assert dag.test(logical_date=hour).state == "success"
        assert dag.test(logical_date=hour).state == "success"
    assert [r for _, r, _ in sink.messages] == [["editors@example.org"]]
    message = message_from_bytes(sink.messages[0].content, policy=policy.default)
    assert message["Subject"].startswith("[mediamon] 每日摘要 2024-04-03：1 篇新报道")
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("select status, stories from digest_deliveries")).all()
    assert [tuple(r) for r in recorded] == [("sent", 1)]  # the seed, listed under both topics
