"""The ops mail for a task that failed for good: the task, its run, the error and the link
to its log, in plain text and HTML, through the ``mediamon_smtp`` connection like every
other mediamon mail. (The smtp provider's ``SmtpNotifier`` sends an HTML part only and
its template has no error text: ops had to open the UI to learn what broke.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseNotifier

logger = logging.getLogger(__name__)


# Which failure causes were mailed and when (mediamon.ops.failure_mail): in Airflow's own
# store, which a failing task can still write when mediamon's database is what failed.
MAILED_VARIABLE = "mediamon_failure_mails"


# Ops mails neither the mail server nor ops_outbox (mediamon's database) could take
# (mediamon.ops.held_mail): held in Airflow's store, released once either is back.
HELD_VARIABLE = "mediamon_held_mails"
# The longest the callbacks wait to connect to mediamon's database (the URL's own
# connect_timeout when lower): a black-holed server held a callback without a limit.
OUTBOX_CONNECT_TIMEOUT_S = 5


def _load(key: str = MAILED_VARIABLE) -> dict[str, Any]:
    from airflow.sdk import Variable

    from mediamon.ops.failure_mail import StoreUnavailable

    try:
        value = Variable.get(key, default=None, deserialize_json=True)
    except ValueError:
        return {}  # not JSON (edited by hand): start again
    except Exception as error:
        raise StoreUnavailable(f"Variable {key}: {error}") from error
    return value if isinstance(value, dict) else {}


def _store(state: dict[str, Any], key: str = MAILED_VARIABLE) -> None:
    from airflow.sdk import Variable

    from mediamon.ops.failure_mail import StoreUnavailable

    description = (
        "mediamon: failure causes mailed to MEDIAMON_OPS_EMAIL, and when"
        if key == MAILED_VARIABLE
        else "mediamon: ops mails held while mediamon's database and the mail server were down"
    )
    try:
        Variable.set(key, state, description=description, serialize_json=True)
    except Exception as error:
        raise StoreUnavailable(f"Variable {key}: {error}") from error


def _load_held() -> dict[str, Any]:
    return _load(HELD_VARIABLE)


def _store_held(state: dict[str, Any]) -> None:
    _store(state, HELD_VARIABLE)


def _task(ti: Any) -> str:
    return f"{ti.dag_id}.{ti.task_id}"


def _me(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    return f"{_task(ti)}{f'[{map_index}]' if map_index >= 0 else ''} {ti.run_id}"


@contextmanager
def _outbox() -> Iterator[Any]:
    """An engine on mediamon's database for its ops outbox (:mod:`mediamon.ops.outbox`),
    or None when none is configured (the embedded server is not started for a mail)."""
    from mediamon import db
    from mediamon_airflow import settings

    try:
        url = settings().database_url
    except Exception as error:  # noqa: BLE001 - a mail without its outbox still goes
        logger.warning("no ops outbox for this mail (%s)", error)
        url = None
    engine = None
    if url:
        timeout = db.bounded_connect_timeout(url, OUTBOX_CONNECT_TIMEOUT_S)
        engine = db.make_engine(url, connect_timeout=timeout)
    try:
        yield engine
    finally:
        if engine is not None:
            engine.dispose()


def _deliver_kept(engine: Any, send: Any, me: str) -> str | None:
    """Mail what is held (:data:`HELD_VARIABLE`) and what ``ops_outbox`` holds before
    this callback's own mail; a database or mail server still away leaves it for the
    watchdog, which delivers it too. Returns why the mail server did not take a kept
    mail just now (None: it did, or none waited)."""
    from mediamon.ops.outbox import deliver_pending

    waiting = release_held(engine, send, me)
    if engine is None or waiting is not None:
        return waiting
    try:
        return deliver_pending(engine, send).waiting
    except Exception as error:  # noqa: BLE001 - this callback's own mail is what matters here
        logger.info("ops mails kept in ops_outbox wait for the watchdog: %s", error)
        return None


def release_held(engine: Any, send: Any, me: str) -> str | None:
    """Move the mails held while mediamon's database and the mail server were both down
    into ``ops_outbox`` (``engine``), or mail them if that database is still down
    (:func:`mediamon.ops.held_mail.release`); returns why the mail server did not take
    one (None: it did, or none was held). Never raises: what is held waits for the next
    release."""
    from datetime import UTC, datetime

    from mediamon.ops.held_mail import release
    from mediamon.ops.outbox import keep

    def move(key: str, message: Any, error: str, at: datetime) -> None:
        keep(engine, key, "task_failure", message, error, at)

    try:
        released = release(me, datetime.now(UTC), load=_load_held, store=_store_held,
                           move=move if engine is not None else None, send=send)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - the held mails wait for the next release
        logger.warning("ops mails held in Variable %s not released: %s", HELD_VARIABLE, error)
        return None
    return released.waiting


def release_held_mails(send: Any, me: str) -> None:
    """For the watchdog, before its own work (which needs mediamon's database): the
    mails held while that database and the mail server were down go out, or into
    ``ops_outbox`` (which the watchdog then delivers), even if the database is still
    down and the watchdog then fails."""
    with _outbox() as engine:
        release_held(engine, send, me)


class TaskFailureMail(BaseNotifier):
    """``on_failure_callback``: mails ``recipients`` once a task has failed after its
    retries (Airflow calls it then, not on each retry); a failure whose error was mailed
    in the last hours is not mailed again (:mod:`mediamon.ops.failure_mail`)."""

    def __init__(self, recipients: Sequence[str]) -> None:
        super().__init__()
        self.recipients = list(recipients)

    def notify(self, context: Any) -> None:
        from datetime import UTC, datetime, timedelta
        from zoneinfo import ZoneInfo

        from mediamon.alerts.catalog import local_time
        from mediamon.alerts.deliver import DEFAULT_SENDER
        from mediamon.ops.failure_mail import mail_once
        from mediamon.ops.held_mail import hold
        from mediamon.ops.mail import failure_text, task_failure_message
        from mediamon.ops.outbox import MAX_AGE, keep, may_succeed_later
        from mediamon.settings import Settings
        from mediamon.text import one_line
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
        key = f"task-failure:{_me(ti)} try {ti.try_number}"  # one mail per failed try
        kept: list[BaseException] = []
        unkept: list[str] = []  # why it could not be kept either (mediamon's database)
        held: list[str] = []  # why it is held in HELD_VARIABLE (ops_outbox could not take it)

        def deliver(quiet_until: datetime | None, back_since: datetime | None = None) -> None:
            shown = {"quiet_until": local_time(quiet_until, zone)} if quiet_until else {}
            if back_since is not None:  # flapping: its RESOLVED mail went out at that time
                shown["resolved_at"] = local_time(back_since, zone)
            message = task_failure_message({**failure, **shown}, sender or DEFAULT_SENDER,
                                           self.recipients)  # fmt: skip
            try:
                if server_down:
                    # Not asked twice in a row: a server that hangs costs its deadline once.
                    raise ConnectionError(f"the mail server took no mail just now ({server_down})")
                send(message)
            except Exception as error:
                if not may_succeed_later(error):
                    raise
                try:
                    if engine is None:
                        raise RuntimeError("no database is configured for ops_outbox")
                    keep(engine, key, "task_failure", message, error)
                except Exception as db_error:  # noqa: BLE001 - the send's error is the one to raise
                    # mediamon's database down too: the outage ops most need to hear of.
                    # Held in Airflow's store, which this callback can still write.
                    why = one_line(failure_text(db_error), 300)
                    try:
                        hold(key, message, error, datetime.now(UTC), load=_load_held,
                             store=_store_held)  # fmt: skip
                    except Exception as store_error:  # noqa: BLE001 - as for db_error
                        unkept.append(f"{why}; Variable {HELD_VARIABLE}: {store_error}")
                        raise error from None
                    held.append(why)
                # Kept counts as mailed: the same error failing meanwhile is held back
                # (its mail will tell), not kept again under each failed task.
                kept.append(error)

        with _outbox() as engine:
            server_down = _deliver_kept(engine, send, _me(ti))  # what waits goes first
            try:
                mail_once(failure["error"], _me(ti), datetime.now(UTC), task=_task(ti),
                          load=_load, store=_store, send=deliver)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - the task is red all the same
                # One line: Airflow logged the callback's traceback, 30 lines about smtplib,
                # after the task's own error. The claim was given up: the next failure with
                # this error mails it.
                logger.warning(
                    "ops mail of this failure could not go out (%s: %s)%s; the next failure"
                    " with this error mails it",
                    type(error).__name__,
                    error,
                    f", nor be kept in ops_outbox ({unkept[0]})" if unkept else "",
                )
                return
        if kept:
            logger.warning(
                "ops mail of this failure could not go out (%s: %s); kept in %s:"
                " the next watchdog run (mediamon_health, every 15 minutes) or ops mail"
                " sends it once the mail server takes mail, if within %g h",
                type(kept[0]).__name__,
                kept[0],
                f"Variable {HELD_VARIABLE}, as ops_outbox could not take it ({held[0]})"
                if held
                else "ops_outbox",
                MAX_AGE / timedelta(hours=1),
            )


class TaskRecoveryMail(BaseNotifier):
    """``on_success_callback``: when a task that failed with an error mailed to ops
    succeeds, mails ``recipients`` that the failure is over, once per error
    (:func:`mediamon.ops.failure_mail.mail_recovery`). One read of the Variable per
    success, and nothing more unless that task's failure was mailed. A problem here never
    fails the task: the recovery mail is tried again at the next success."""

    def __init__(self, recipients: Sequence[str]) -> None:
        super().__init__()
        self.recipients = list(recipients)

    def notify(self, context: Any) -> None:
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        from mediamon.alerts.catalog import local_time
        from mediamon.alerts.deliver import DEFAULT_SENDER
        from mediamon.ops.failure_mail import mail_recovery, recoveries_due
        from mediamon.ops.mail import task_recovery_message
        from mediamon.settings import Settings
        from mediamon_airflow import smtp_send

        ti = context["ti"]
        now = datetime.now(UTC)
        try:
            state = _load()
            if not recoveries_due(state, _task(ti), now):
                # The common case, every success of every task: one read, nothing else.
                # (Checking for any entry at all read the Variable again and looked up
                # the mail connection for hours after any cause was mailed.)
                return
            send, sender = smtp_send()
            if send is None:
                return
            zone = ZoneInfo(Settings.from_env().timezone)

            def deliver(error: str, mailed_at: datetime) -> None:
                recovery = {
                    "dag_id": str(ti.dag_id),
                    "task_id": str(ti.task_id),
                    "run_id": str(ti.run_id),
                    "error": error,
                    "mailed_at": local_time(mailed_at, zone),
                    "back_at": local_time(now, zone),
                    "log_url": str(ti.log_url),
                }
                send(task_recovery_message(recovery, sender or DEFAULT_SENDER, self.recipients))

            with _outbox() as engine:
                _deliver_kept(engine, send, _me(ti))  # the failure's own mail, if kept, goes first
                mail_recovery(_task(ti), _me(ti), now, load=_load, store=_store, send=deliver,
                              state=state)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - the task succeeded; say why no mail
            logger.warning("recovery mail not sent (tried at the next success): %s", error)
