"""## mediamon_ingest

Every 15 minutes: fetch each due source (RSS/Atom feed or archive folder), extract the
articles with trafilatura, normalize them and upsert them into PostgreSQL. Mapped over
shards of due sources (each host's sources in one shard, at most the executor's
parallelism, never over articles); data moves through Postgres, XCom carries names and counts.
Emits the `mediamon_articles` asset for downstream DAGs (alerts).

Params: `sources` (names, empty = all due), `force` (ignore poll intervals),
`refetch` (fetch pages of articles already stored). Logic lives in `mediamon.service`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from mediamon_airflow import articles_asset, failure_mail

ARTICLES = articles_asset()
# Celery workers listening on this queue run the ingest shards; the small tasks stay on
# the default queue. The LocalExecutor ignores queues.
INGEST_QUEUE = "ingest"


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
    def plan_sources() -> list[dict[str, object]]:
        """Upgrade the schema, sync the sources file, and split the due sources into
        shards (each host's sources together; at most the executor's parallelism)."""
        from mediamon import service
        from mediamon_airflow import run_time, settings, shard_count

        context = get_current_context()
        _, now = run_time(context)
        params = context["params"]
        shards = service.plan_shards(
            settings(), now, only=params["sources"], force=params["force"], shards=shard_count()
        )
        return [shard.as_xcom(len(shards)) for shard in shards]

    @task(
        queue=INGEST_QUEUE,
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['shard']['label'] }}",
    )
    def ingest_shard(shard: dict[str, Any]) -> list[dict[str, object]]:
        """Fetch, extract, normalize and load a shard's sources; one summary per source."""
        from mediamon import service
        from mediamon_airflow import run_time, settings, shard_options

        context = get_current_context()
        run_key, now = run_time(context)
        options = shard_options(shard["of"], refetch=context["params"]["refetch"])
        return service.ingest_shard(settings(), shard["sources"], run_key, now, options)

    @task(outlets=[ARTICLES], trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def summarize(shards: list[list[dict[str, object]] | None]) -> dict[str, int]:
        """Add up what the sources loaded; the asset event tells the alerts DAG to run."""
        from mediamon.ingest.shards import flatten_summaries
        from mediamon.models import total_stats

        return total_stats(flatten_summaries(shards))

    summarize(ingest_shard.expand(shard=plan_sources()))


mediamon_ingest()
