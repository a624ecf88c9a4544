"""## mediamon_digests

Every hour, sends the daily and weekly digests that are due: each digest recipient of
`config/topics.yaml` gets, at their local digest hour, every new story of their topics
in the period, grouped by topic, with the period's spikes on top. The code decides who is
due (`mediamon.alerts.digest`); a digest is recorded per recipient and period, so a retry or a
re-run sends nothing twice, and nothing is sent when nothing is new. Without a
`mediamon_smtp` connection a run with a digest due fails at once, in one line (the
digests stay due). The same code runs from `mediamon digest run [--at TIME] [--dry-run]`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from mediamon_airflow import task_defaults, without_backfills


@dag(
    dag_id="mediamon_digests",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    allowed_run_types=without_backfills(),
    default_args=task_defaults(
        retries=3, retry_delay=timedelta(minutes=2), timeout=timedelta(minutes=30)
    ),
    tags=["mediamon", "alerts"],
    doc_md=__doc__,
)
def mediamon_digests() -> None:
    @task(multiple_outputs=False)
    def send_digests() -> dict[str, object]:
        """Send each due digest once; a failed send is due again at the next try."""
        from airflow.sdk.exceptions import AirflowFailException

        from mediamon import service
        from mediamon_airflow import (
            config_errors_fail_at_once,
            late_run_clock,
            run_time,
            settings,
            smtp_send,
        )

        context = get_current_context()
        _, now = run_time(context)
        # A cleared run of days ago sends no stale digest: the current one lists its stories.
        clock = late_run_clock(context)
        # A malformed mediamon_smtp or a topics file never valid: a retry cannot help.
        with config_errors_fail_at_once():
            send, sender = smtp_send()
            if send is None:
                # Nothing is recorded, so the digests stay due. A green run here hid, hour
                # after hour, that no reader got one; red at once (a retry cannot define
                # the connection), and only when a digest is due.
                waiting = service.digests_waiting(settings(), now, clock)
                if waiting:
                    raise AirflowFailException(
                        f"connection mediamon_smtp is not defined: {waiting} digest(s) due"
                        " and not sent (they stay due)"
                    )
                return {"sent": 0, "note": "connection mediamon_smtp is not defined"}
            summary = service.run_digests(settings(), now, send=send, sender=sender, clock=clock)
        # XCom carries counts, not the recipients' addresses.
        return {k: summary[k] for k in ("due", "sent", "empty", "stale", "failed", "stories")}

    send_digests()


mediamon_digests()
