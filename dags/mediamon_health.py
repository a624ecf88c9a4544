"""## mediamon_health — the ops watchdog

**What it does.** Every 15 minutes, independent of task callbacks (a killed task runs
none), it reads mediamon's database and opens an *incident* for each problem it sees:
a source failing its last polls, a source silent for several times its usual interval,
total ingest volume falling off a cliff against the same hours of past weeks, topic alerts
pending undelivered for over an hour, no successful ingest run for over an hour, the
latest ingest run failed, a failed data-quality check. Each incident is mailed once to
`MEDIAMON_OPS_EMAIL` through the `mediamon_smtp` connection, and once more when it clears.

**Run states.** Green: the watchdog ran and every open incident has been mailed. Red:
the database could not be read, or an open incident could not be mailed (no
`mediamon_smtp` connection, `MEDIAMON_OPS_EMAIL` unset, the server down) — the log lists
the incidents; they wait in `bi.incidents` and go out once mail works. A mail the server
refuses for good (a 5xx to `DATA`) fails one try (the retry finds it recorded) and is not
offered again (`bi.incidents.mail_refused`); a server refusing every mail (530
authentication required) fails the task at once, without retries, in one line.

**Mail kept while the server was down.** Each run first mails the ops mails kept in
`ops_outbox` (a task-failure mail or weekly report the server did not take), oldest
first, each once; over a day old, they are dropped in one log line. They do not turn
the run red (their runs were red); its return value lists them under `outbox`. Before
that, even with mediamon's database down, it mails the failure mails held in the
Variable `mediamon_held_mails` (the database was down too when they failed), or moves
them into `ops_outbox` once the database is back.

**Where to look.** `bi.incidents` (every episode, open and closed); `mediamon health run
--dry-run` shows what the watchdog sees now without writing or sending; thresholds are
`MEDIAMON_HEALTH_*` variables (README "Operations"). Re-running a run is harmless: an
incident is mailed once whatever runs find it.

`mediamon_health_report` mails the weekly source-health report (per source: polls,
failures, articles, median latency, trend), once per ISO week; its task is *skipped* when
the report was already sent or mail is not set up.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from mediamon_airflow import task_defaults, without_backfills

# The watchdog failing (its database down) is itself worth a mail (task_defaults does).
DEFAULT_ARGS = task_defaults(
    retries=2, retry_delay=timedelta(minutes=1), timeout=timedelta(minutes=10), backoff=False
)


@dag(
    dag_id="mediamon_health",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    allowed_run_types=without_backfills(),
    default_args=DEFAULT_ARGS,
    tags=["mediamon", "ops"],
    doc_md=__doc__,
)
def mediamon_health() -> None:
    @task(multiple_outputs=False)
    def watchdog() -> dict[str, object]:
        """Find problems, keep incidents, mail new ones and recoveries."""
        from airflow.sdk.exceptions import AirflowFailException

        from mediamon.ops import service as ops
        from mediamon_airflow import config_errors_fail_at_once, run_time, settings, smtp_send
        from mediamon_airflow.task_failure import release_held_mails

        context = get_current_context()
        _, now = run_time(context)
        with config_errors_fail_at_once():  # a malformed mediamon_smtp too: no retries
            send, sender = smtp_send()
            if send is not None:  # failure mails held while the database was down too
                release_held_mails(send, f"mediamon_health.watchdog {context['run_id']}")
            result = ops.health_run(settings(), now, send=send, sender=sender)
        for finding in result.findings:
            print(f"{finding.key}: {finding.summary}")
        if result.unmailed:
            raise AirflowFailException(
                f"{len(result.unmailed)} open incident(s) not mailed ({result.note}):"
                f" {', '.join(result.unmailed)}"
            )
        return result.as_dict()

    watchdog()


@dag(
    dag_id="mediamon_health_report",
    schedule="0 7 * * 1",  # Mondays 07:00 UTC: the week just ended
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    allowed_run_types=without_backfills(),
    default_args=DEFAULT_ARGS,
    tags=["mediamon", "ops"],
    doc_md=__doc__,
)
def mediamon_health_report() -> None:
    @task(multiple_outputs=False)
    def weekly_report() -> dict[str, object]:
        """Mail the source-health report for the week ending at this run's time, once."""
        from airflow.sdk.exceptions import AirflowSkipException

        from mediamon.ops import service as ops
        from mediamon_airflow import config_errors_fail_at_once, run_time, settings, smtp_send

        _, now = run_time(get_current_context())
        with config_errors_fail_at_once():
            send, sender = smtp_send()
            outcome = ops.health_report(settings(), now, send=send, sender=sender)
        if not outcome.sent:
            # A report is a courtesy, not an alarm: without mail set up it is skipped (the
            # watchdog's own run turns red when an incident cannot be mailed).
            raise AirflowSkipException(f"report not sent: {outcome.note}")
        return outcome.as_dict()

    weekly_report()


mediamon_health()
mediamon_health_report()
