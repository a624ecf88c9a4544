"""## mediamon_ingest — fetch and load the news sources

**What it does.** Every 15 minutes: names the sources that are due (`plan_sources`),
fetches each one's feed or archive folder, extracts the articles with trafilatura,
normalizes them and upserts them into PostgreSQL (`ingest_shard`, mapped over shards of
the due sources: each host's sources in one shard, at most the executor's parallelism,
labelled with their names in the UI),
records how the run went (`summarize`, table `ingest_runs`), runs the data-quality checks
on this run's articles (`check_quality`) and, when something new was loaded, tells
`mediamon_alerts` to run (`publish_articles`, asset `mediamon_articles`).

**Run states.**
- *Failed* (red): a configuration error (bad sources file, unknown source name: fails at
  once, no retries), a database error (after retries), an `ingest_shard` failing after its
  retries, **every** due source failing, or a failed data-quality check. The `watcher`
  task turns any failed task into a failed run.
- One mail per failure: the failed task's own. A shard that raised mails its error;
  `summarize` stays green, counting what it loaded before it raised, and records the run
  failed in `ingest_runs` (naming how many sources were not ingested), red as here. A
  shard killed without a word (SIGKILL: out of memory; Airflow mails nothing) fails
  `summarize`, whose mail names its sources.
- *Success* (green) with failing sources: one source down among many is not a red run;
  `summarize` counts it (`sources_failed` in its return value), logs it at WARNING, and
  the `mediamon_health` watchdog mails ops when it keeps failing.
- `publish_articles` *skipped*: nothing new was loaded, so no asset event and no alerts run.

**Where to look.** The red task's log; `summarize`'s return value (XCom) for the counts;
`mediamon status` for each source's state and last error; `bi.source_health`,
`bi.incidents` in PostgreSQL.

**Re-running.** Clearing a run re-ingests the same interval: fetch-log rows and articles
are upserted, so nothing is loaded twice. To poll sources now, trigger with params:
`sources` (pick from the configured names; empty = all due), `force` (ignore poll
intervals), `refetch` (fetch pages of articles already stored). Logic lives in
`mediamon.service` and `mediamon.ops`; README "Operations" has the details.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from mediamon_airflow import articles_asset, configured_source_names, task_defaults

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
    default_args=task_defaults(
        retries=2, retry_delay=timedelta(minutes=1), timeout=timedelta(minutes=30)
    ),
    params={
        "sources": Param(
            [],
            type="array",
            items={"type": "string"},
            # `examples` on an array: a multi-select of the configured names in the form.
            examples=configured_source_names(),
            title="Sources",
            description="Sources to poll; empty means all that are due",
        ),
        "force": Param(False, type="boolean", title="Force", description="Ignore poll intervals"),
        "refetch": Param(
            False, type="boolean", title="Refetch", description="Fetch pages already stored"
        ),
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
        from mediamon.errors import ConfigError
        from mediamon.ops import service as ops
        from mediamon_airflow import config_errors_fail_at_once, run_time, settings, shard_count

        context = get_current_context()
        run_key, now = run_time(context)
        params = context["params"]
        with config_errors_fail_at_once():
            try:
                shards = service.plan_shards(
                    settings(), now, only=params["sources"], force=params["force"],
                    shards=shard_count(),
                )  # fmt: skip
            except ConfigError as error:
                ops.record_failed_run(settings(), run_key, now, f"configuration error: {error}")
                raise
        return [shard.as_xcom(len(shards)) for shard in shards]

    @task(
        queue=INGEST_QUEUE,
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['shard']['label'] }}",
    )
    def ingest_shard(shard: dict[str, Any]) -> list[dict[str, object]]:
        """Fetch, extract, normalize and load a shard's sources; one summary per source."""
        from mediamon import service
        from mediamon_airflow import config_errors_fail_at_once as config_errors
        from mediamon_airflow import run_time, settings, shard_failure_reported, shard_options

        context = get_current_context()
        run_key, now = run_time(context)
        options = shard_options(shard["of"], refetch=context["params"]["refetch"])
        with shard_failure_reported(context["ti"], shard["sources"]), config_errors():
            return service.ingest_shard(settings(), shard["sources"], run_key, now, options)

    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def summarize(summaries: list[object]) -> dict[str, object]:
        """Record the run in ``ingest_runs``; count failed sources (each shard returns one
        summary per source). Runs even when some ingest tasks failed, counting what they
        loaded before they raised; fails (without retries) when a shard reported nothing
        (its task killed: Airflow mails nothing for a SIGKILL), naming that shard's
        sources, or when every due source failed and no failed task mailed it already."""
        from airflow.sdk.exceptions import AirflowFailException

        from mediamon.ops import service as ops
        from mediamon_airflow import (
            SHARD_FAILURE_KEY,
            config_errors_fail_at_once,
            run_time,
            settings,
        )

        context = get_current_context()
        run_key, now = run_time(context)
        # The planned shards: a shard whose task was killed (out of memory) returned
        # nothing and mailed nothing; its sources are named here (None: planning failed).
        planned = context["ti"].xcom_pull(task_ids="plan_sources")
        # What the shard tasks that raised left: each mailed its own failure, so summarize
        # counts their sources without failing (and mailing) for them again.
        failures = context["ti"].xcom_pull(task_ids=["ingest_shard"], key=SHARD_FAILURE_KEY)
        # All the shards' summaries in one request: iterating Airflow's lazy sequence asks
        # for the item past the end, which its client logs as an ERROR on every run.
        with config_errors_fail_at_once():  # a database a newer mediamon upgraded
            verdict = ops.finish_ingest(
                settings(), run_key, now, summaries[:], planned, failures or []
            )
        print(f"run summary: {verdict.summary}")  # the log shows it even when the run fails
        if verdict.failure:
            raise AirflowFailException(verdict.failure)
        return verdict.summary

    @task(multiple_outputs=False)
    def check_quality() -> dict[str, object]:
        """Data-quality checks on this run's articles; a failed check fails the run."""
        from airflow.sdk.exceptions import AirflowFailException

        from mediamon.ops import service as ops
        from mediamon_airflow import config_errors_fail_at_once, run_time, settings

        run_key, now = run_time(get_current_context())
        with config_errors_fail_at_once():
            result = ops.check_quality(settings(), run_key, now)
        for check in result["checks"]:
            print(f"{'ok    ' if check['passed'] else 'FAILED'} {check['name']}: {check['detail']}")
        if result["failed"]:
            raise AirflowFailException(f"data-quality check(s) failed: {result['failed']}")
        return result

    @task(outlets=[ARTICLES], multiple_outputs=False)
    def publish_articles(summary: dict[str, object]) -> dict[str, object]:
        """Emit the ``mediamon_articles`` asset event, so ``mediamon_alerts`` runs; skipped
        when nothing new was loaded."""
        from airflow.sdk.exceptions import AirflowSkipException

        loaded = sum(int(summary.get(key, 0) or 0) for key in ("new", "updated"))  # type: ignore[call-overload]
        if not loaded:
            raise AirflowSkipException("nothing new loaded: no asset event, no alerts run")
        return {"loaded": loaded}

    # No failure mail of its own: the task that failed has sent one already.
    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0, on_failure_callback=None)
    def watcher() -> None:
        """Fails the run when any task failed: ``summarize`` runs ALL_DONE and would
        otherwise leave a broken run green (Airflow best practices, "watcher")."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed; see the red task's log")

    planned = plan_sources()
    ingested = ingest_shard.expand(shard=planned)
    summary = summarize(ingested)
    checked = check_quality()
    published = publish_articles(summary)
    summary >> checked >> published
    [planned, ingested, summary, checked, published] >> watcher()


mediamon_ingest()
