"""Scale-out for real (`make celery-smoke`): api-server, scheduler, dag-processor and two
Celery workers (queues ``ingest`` and ``default``) with Redis on 127.0.0.1:6379 as broker
and PostgreSQL as result backend; the ingest DAG, triggered, runs its shards on the
ingest worker and its other tasks on the default worker, as Airflow's metadata shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench import airflow_stack
from bench.feedfarm import serve_farm
from bench.scale import unscheduled
from mediamon.devtools.airflow_env import airflow_environment, dags_folder
from mediamon.settings import Settings

SITES, ARTICLES = 6, 2


@pytest.fixture(scope="module", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    airflow_stack.drop_templates()


def test_ingest_dag_runs_on_two_celery_workers(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_file = (dags_folder() / "mediamon_ingest.py").read_text("utf-8")
    (dags / "mediamon_ingest.py").write_text(unscheduled(dag_file), "utf-8")  # triggered only
    sources = tmp_path / "sources.yaml"
    settings = replace(
        Settings.from_env(), database_url=database_url, sources_path=sources, var_dir=tmp_path
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    with (
        serve_farm(SITES, ARTICLES) as farm,
        airflow_stack.metadata_database(base) as metadata_url,
    ):
        farm.sources_yaml(sources)
        env = airflow_environment(settings, {**base, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url})
        env = airflow_stack.stack_environment(env, metadata_url, tmp_path)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        env["MEDIAMON_SHARDS"] = "3"
        env = airflow_stack.celery_environment(env, metadata_url)
        with airflow_stack.running(env, metadata_url) as stack:
            stack.start_components()
            airflow_stack.start_celery_worker(stack, "worker-ingest", "ingest", 2)
            airflow_stack.start_celery_worker(stack, "worker-default", "default", 1)
            stack.wait_for_api()
            stack.wait_for_dag("mediamon_ingest")
            run_id = stack.trigger("mediamon_ingest")
            times = stack.wait_for_run("mediamon_ingest", run_id, timeout_s=150)
            tasks = stack.task_instances("mediamon_ingest", run_id)
            metadata = stack.metadata()
            with metadata.connect() as conn:
                results = conn.execute(
                    sa.text("select status, count(*) from celery_taskmeta group by 1")
                ).all()
            metadata.dispose()
    assert times.state == "success", [(t["task_id"], t["state"]) for t in tasks]
    ran = [t for t in tasks if t["state"] == "success"]
    assert {t["task_id"] for t in ran} >= {"plan_sources", "ingest_shard", "summarize"}
    for task in ran:  # the shards on the ingest worker, everything else on the default one
        expected = (
            ("ingest", "worker-ingest")
            if task["task_id"] == "ingest_shard"
            else ("default", "worker-default")
        )
        assert (task["queue"], task["hostname"]) == expected, task
    assert all(t["state"] in ("success", "skipped") for t in tasks), tasks  # watcher: skipped
    assert sum(1 for t in tasks if t["task_id"] == "ingest_shard") == 3
    assert {t["executor"] for t in tasks} <= {"CeleryExecutor", None}
    # The PostgreSQL result backend holds a row per Celery task (the last one may still
    # read STARTED: the run can end before the worker records the result).
    assert sum(dict(results).values()) >= len(ran)
    assert set(dict(results)) <= {"SUCCESS", "STARTED"} and dict(results).get("SUCCESS")
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("select count(*) from bi.articles")).scalar_one()
    assert loaded == SITES * ARTICLES
