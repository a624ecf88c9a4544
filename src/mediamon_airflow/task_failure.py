"""The ops mail for a task that failed for good: the task, its run, the error and the link
to its log, in plain text and HTML, through the ``mediamon_smtp`` connection like every
other mediamon mail. (The smtp provider's ``SmtpNotifier`` sends an HTML part only and
its template has no error text: ops had to open the UI to learn what broke.)"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier

logger = logging.getLogger(__name__)


# Which failure causes were mailed and when (mediamon.ops.failure_mail): in Airflow's own
# store, which a failing task can still write when mediamon's database is what failed.
MAILED_VARIABLE = "mediamon_failure_mails"


def _load() -> dict[str, Any]:
    from airflow.sdk import Variable

    from mediamon.ops.failure_mail import StoreUnavailable

    try:
        value = Variable.get(MAILED_VARIABLE, default=None, deserialize_json=True)
    except ValueError:
        return {}  # not JSON (edited by hand): start again
    except Exception as error:
        raise StoreUnavailable(f"Variable {MAILED_VARIABLE}: {error}") from error
    return value if isinstance(value, dict) else {}


def _store(state: dict[str, Any]) -> None:
    from airflow.sdk import Variable

    from mediamon.ops.failure_mail import StoreUnavailable

    try:
        Variable.set(
            MAILED_VARIABLE,
            state,
            description="mediamon: failure causes mailed to MEDIAMON_OPS_EMAIL, and when",
            serialize_json=True,
        )
    except Exception as error:
        raise StoreUnavailable(f"Variable {MAILED_VARIABLE}: {error}") from error


class TaskFailureMail(BaseNotifier):
    """``on_failure_callback``: mails ``recipients`` once a task has failed after its
    retries (Airflow calls it then, not on each retry); a failure whose error was mailed
    in the last hours is not mailed again (:mod:`mediamon.ops.failure_mail`)."""

    def __init__(self, recipients: Sequence[str]) -> None:
        super().__init__()
        self.recipients = list(recipients)

    def notify(self, context: Any) -> None:
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        from mediamon.alerts.catalog import local_time
        from mediamon.alerts.deliver import DEFAULT_SENDER
        from mediamon.ops.failure_mail import mail_once
        from mediamon.ops.mail import failure_text, task_failure_message
        from mediamon.settings import Settings
        from mediamon_airflow import smtp_send

        send, sender = smtp_send()
        if send is None:
            logger.warning("no mediamon_smtp connection: the failure mail is not sent")
            return
        ti = context["ti"]
        failure = {
            "dag_id": str(ti.dag_id),
            "task_id": str(ti.task_id),
            "run_id": str(ti.run_id),
            "tries": str(ti.try_number),
            "error": failure_text(context.get("exception")),
            "log_url": str(ti.log_url),
        }
        zone = ZoneInfo(Settings.from_env().timezone)

        def deliver(quiet_until: datetime | None) -> None:
            shown = {"quiet_until": local_time(quiet_until, zone)} if quiet_until else {}
            message = task_failure_message({**failure, **shown}, sender or DEFAULT_SENDER,
                                           self.recipients)  # fmt: skip
            send(message)

        map_index = getattr(ti, "map_index", -1)
        me = f"{ti.dag_id}.{ti.task_id}{f'[{map_index}]' if map_index >= 0 else ''} {ti.run_id}"
        mail_once(failure["error"], me, datetime.now(UTC),
                  load=_load, store=_store, send=deliver)  # fmt: skip
