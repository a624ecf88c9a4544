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


class TaskFailureMail(BaseNotifier):
    """``on_failure_callback``: mails ``recipients`` once a task has failed after its
    retries (Airflow calls it then, not on each retry)."""

    def __init__(self, recipients: Sequence[str]) -> None:
        super().__init__()
        self.recipients = list(recipients)

    def notify(self, context: Any) -> None:
        from mediamon.alerts.deliver import DEFAULT_SENDER
        from mediamon.ops.mail import failure_text, task_failure_message
        from mediamon_airflow import smtp_send

        send, sender = smtp_send()
        if send is None:
            logger.warning("no mediamon_smtp connection: the failure mail is not sent")
            return
        ti = context["ti"]
        error = context.get("exception")
        failure = {
            "dag_id": str(ti.dag_id),
            "task_id": str(ti.task_id),
            "run_id": str(ti.run_id),
            "tries": str(ti.try_number),
            "error": failure_text(error),
            "log_url": str(ti.log_url),
        }
        send(task_failure_message(failure, sender or DEFAULT_SENDER, self.recipients))
