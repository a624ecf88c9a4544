"""## mediamon_alerts — topic spike alerts

**What it does.** Runs whenever `mediamon_ingest` loaded new or changed articles (asset
`mediamon_articles`; an ingest run that loaded nothing emits no event, so this DAG does
not run for nothing): re-reads the topics (`config/topics.yaml`; an invalid file keeps
the previous definitions — check one with `mediamon topics check`), matches new articles
(`match_topics`), tests each topic's latest hour against its baseline (`detect_spikes`)
and mails new alerts through the `mediamon_smtp` connection (`deliver_alerts`; digests
are `mediamon_digests`' job).

**Run states.** A retry or re-run never sends the same alert twice (dedupe key per topic
and window). Without a `mediamon_smtp` connection `deliver_alerts` stays green with a
WARNING and the alerts wait; the `mediamon_health` watchdog opens an `alerts_undelivered`
incident after an hour. A failed send fails `deliver_alerts` (after its retries); what
was sent stays sent. A mail the server refuses for good (5xx to `RCPT TO` or `DATA`) is
recorded `refused` and not sent again. A server refusing every mail (530 authentication
required, a refused sender, relay denied) fails the task at once, without retries, in
one line; the alerts stay pending until the connection is fixed.

**Where to look.** `bi.alerts`, `bi.alert_deliveries`; `mediamon alerts run --dry-run`
shows what detection would do now. Logic lives in `mediamon.service` (topics/, spikes/,
alerts/); the method is in `docs/spikes.md`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from mediamon_airflow import articles_asset, task_defaults

ARTICLES = articles_asset()


@dag(
    dag_id="mediamon_alerts",
    schedule=[ARTICLES],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(
        retries=3, retry_delay=timedelta(minutes=2), timeout=timedelta(minutes=20)
    ),
    tags=["mediamon", "alerts"],
    doc_md=__doc__,
)
def mediamon_alerts() -> None:
    @task(multiple_outputs=False)
    def match_topics() -> dict[str, object]:
        """Refresh topic definitions and match articles to them."""
        from mediamon import service
        from mediamon_airflow import config_errors_fail_at_once, settings

        with config_errors_fail_at_once():  # no valid topics file ever: a retry cannot help
            return service.match_topics(settings())

    @task
    def detect_spikes() -> list[int]:
        """Test every topic's window ending at this run's time; record new alerts."""
        from mediamon import service
        from mediamon_airflow import run_time, settings

        _, at = run_time(get_current_context())
        return service.detect_spikes(settings(), at)

    @task(multiple_outputs=False)
    def deliver_alerts() -> dict[str, object]:
        """Mail pending alerts once each; a failure leaves them pending."""
        from mediamon import service
        from mediamon_airflow import config_errors_fail_at_once, delivery_time, settings, smtp_send

        with config_errors_fail_at_once():  # a malformed mediamon_smtp: fail at once
            send, sender = smtp_send()
        if send is None:
            # Not a task failure (a retry cannot define the connection): the alerts wait,
            # and the mediamon_health watchdog opens an incident once one waited an hour.
            logging.getLogger(__name__).warning(
                "connection mediamon_smtp is not defined: alerts stay pending"
            )
            return {"sent": 0, "note": "connection mediamon_smtp is not defined"}
        now = delivery_time(get_current_context())
        # A server refusing every mail (530 authentication required, relay denied): red
        # at once, no retries; the alerts stay pending until the connection is fixed.
        with config_errors_fail_at_once():
            return service.deliver_alerts(settings(), send, now, sender)

    match_topics() >> detect_spikes() >> deliver_alerts()


mediamon_alerts()
