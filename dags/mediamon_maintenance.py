"""## mediamon_maintenance

Daily retention, so that neither Airflow nor mediamon grows without bound: Airflow's
metadata older than `airflow_keep_days` (`airflow db clean`, given the metadata database
through `MEDIAMON_AIRFLOW_DATABASE_URL`: Airflow 3 keeps tasks out of it otherwise), task
log files older than `airflow_keep_days`, and `fetch_log` rows older than
`fetch_log_keep_days` (articles are never pruned). Logic lives in `mediamon.db.retention`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from mediamon_airflow import MAX_KEEP_DAYS, task_defaults


@dag(
    dag_id="mediamon_maintenance",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(
        retries=2, retry_delay=timedelta(minutes=10), timeout=timedelta(hours=1), backoff=False
    ),
    # Bounded both ways in the form's schema: 10**12 days passed `minimum` alone and
    # failed each task with an OverflowError traceback, after 2 retries 10 minutes apart.
    params={
        "airflow_keep_days": Param(
            30,
            type="integer",
            minimum=1,
            maximum=MAX_KEEP_DAYS,
            description="Days of Airflow metadata and task logs kept",
        ),
        "fetch_log_keep_days": Param(
            90,
            type="integer",
            minimum=1,
            maximum=MAX_KEEP_DAYS,
            description="Days of fetch_log kept",
        ),
    },
    tags=["mediamon", "maintenance"],
    doc_md=__doc__,
)
def mediamon_maintenance() -> None:
    @task
    def clean_airflow_metadata() -> int:
        """`airflow db clean` of the metadata older than the retention."""
        from mediamon.db import retention
        from mediamon_airflow import config_errors_fail_at_once, metadata_url, retention_cutoff

        cutoff = retention_cutoff(get_current_context(), "airflow_keep_days")
        with config_errors_fail_at_once():
            url = metadata_url()
        return len(retention.clean_airflow_metadata(url, cutoff).splitlines())

    @task
    def prune_task_logs() -> dict[str, int]:
        """Delete task log files older than the retention."""
        from airflow.sdk import conf

        from mediamon.db import retention
        from mediamon_airflow import retention_cutoff

        cutoff = retention_cutoff(get_current_context(), "airflow_keep_days")
        folder = conf.get("logging", "base_log_folder")
        return retention.prune_log_files(Path(folder), cutoff).as_dict()

    @task
    def prune_fetch_log() -> int:
        """Delete fetch_log rows older than the retention."""
        from mediamon import service
        from mediamon_airflow import retention_cutoff, settings

        cutoff = retention_cutoff(get_current_context(), "fetch_log_keep_days")
        return service.prune_fetch_log(settings(), cutoff)

    clean_airflow_metadata()
    prune_task_logs()
    prune_fetch_log()


mediamon_maintenance()
