"""## mediamon_ingest

Every 15 minutes: fetch each due source (RSS/Atom feed or archive folder), extract the
articles with trafilatura, normalize them and upsert them into PostgreSQL. Mapped over
sources, never over articles; data moves through Postgres, XCom carries names and counts.
Emits the `mediamon_articles` asset for downstream DAGs (alerts).

Params: `sources` (names, empty = all due), `force` (ignore poll intervals),
`refetch` (fetch pages of articles already stored). Logic lives in `mediamon.service`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from mediamon_airflow import articles_asset, failure_mail

ARTICLES = articles_asset()


@dag(
    dag_id="mediamon_ingest",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args={
        "owner": "mediamon",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        **failure_mail(),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "sources": Param([], type="array", description="Source names; empty means all due"),
        "force": Param(False, type="boolean", description="Ignore poll intervals"),
        "refetch": Param(False, type="boolean", description="Fetch pages already stored"),
    },
    tags=["mediamon", "ingest"],
    doc_md=__doc__,
)
def mediamon_ingest() -> None:
    @task
    def plan_sources() -> list[str]:
        """Upgrade the schema, sync the sources file, and name the sources due."""
        from mediamon import service
        from mediamon_airflow import run_time, settings

        context = get_current_context()
        _, now = run_time(context)
        params = context["params"]
        return service.plan_sources(settings(), now, only=params["sources"], force=params["force"])

    @task(multiple_outputs=False, max_active_tis_per_dagrun=4)
    def ingest_source(source_name: str) -> dict[str, object]:
        """Fetch, extract, normalize and load one source."""
        from mediamon import service
        from mediamon_airflow import run_time, settings

        context = get_current_context()
        run_key, now = run_time(context)
        refetch = context["params"]["refetch"]
        return service.ingest(settings(), [source_name], run_key, now, refetch_known=refetch)[0]

    @task(outlets=[ARTICLES], trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def summarize(summaries: list[dict[str, object]]) -> dict[str, int]:
        """Add up what the sources loaded; the asset event tells the alerts DAG to run."""
        from mediamon.models import total_stats

        return total_stats(summaries)

    summarize(ingest_source.expand(source_name=plan_sources()))


mediamon_ingest()
