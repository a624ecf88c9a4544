"""Real Airflow parses the DAG files: they import cleanly, follow our policies (tags,
docs, no catch-up, retries) and have the shape the pipeline needs."""

from __future__ import annotations

from typing import Any

DAG_IDS = {
    "mediamon_ingest",
    "mediamon_alerts",
    "mediamon_digests",
    "mediamon_health",
    "mediamon_health_report",
    "mediamon_maintenance",
}
# Tasks that must not retry: the watcher only re-states a failure upstream.
NO_RETRIES = {("mediamon_ingest", "watcher")}


def test_dag_files_import_cleanly(airflow: Any) -> None:
    assert airflow.import_errors == {}
    assert set(airflow.dags) == DAG_IDS


def test_dag_policies(airflow: Any) -> None:
    for dag_id in DAG_IDS:
        dag = airflow.dags[dag_id]
        assert dag.tags and "mediamon" in dag.tags
        assert dag.doc_md
        assert not dag.catchup  # a day without a scheduler: one run, not 96
        assert dag.max_active_runs == 1  # a slow run is never overlapped by the next
        assert dag.owner == "mediamon"
        for task in dag.tasks:
            if (dag_id, task.task_id) in NO_RETRIES:
                assert task.retries == 0
            else:
                assert task.retries >= 2, f"{dag_id}.{task.task_id} needs retries"


def test_ingest_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_ingest"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "plan_sources": ["ingest_shard", "watcher"],
        "ingest_shard": ["summarize", "watcher"],
        "summarize": ["check_quality", "publish_articles", "watcher"],
        "check_quality": ["publish_articles", "watcher"],
        "publish_articles": ["watcher"],
        "watcher": [],
    }
    assert [o.name for o in dag.get_task("publish_articles").outlets] == ["mediamon_articles"]
    assert dag.get_task("summarize").trigger_rule == "all_done"
    assert dag.get_task("watcher").trigger_rule == "one_failed"
    assert dag.timetable.expression == "*/15 * * * *"
    # The trigger form offers the configured sources (read at parse time) as a multi-select.
    sources = dag.params.get_param("sources")
    assert sources.schema["type"] == "array"
    assert sources.schema["examples"] == ["demo-news", "archive"]


def test_alerts_dag_shape(airflow: Any) -> None:
    dag = airflow.dags["mediamon_alerts"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "match_topics": ["detect_spikes"],
        "detect_spikes": ["deliver_alerts"],
        "deliver_alerts": [],
    }
