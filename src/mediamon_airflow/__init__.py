"""The DAG layer's glue: turns Airflow's view of the world (connections, run context)
into the plain values the ``mediamon`` package takes, so that ``mediamon`` itself never
imports Airflow. Installed beside ``mediamon`` (not in ``dags/``): Airflow 3 puts the DAGs
folder on ``sys.path`` only in some processes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mediamon.alerts.smtp import SMTP_CONN_ID

DATABASE_CONN_ID = "mediamon_db"
# How messages name the database's URL when the connection gives it (never its value).
DATABASE_CONN_SOURCE = f"the Airflow connection {DATABASE_CONN_ID}"
# The most days of retention a maintenance run's params may ask for (a century: keep all).
MAX_KEEP_DAYS = 36_500
# How far past the worker's clock a run's time may be: the scheduler's and the workers'
# clocks may differ a little; a run of a later time was given it by hand.
RUN_TIME_SKEW = timedelta(minutes=5)


def articles_asset() -> Any:
    """The ``mediamon_articles`` asset: ``mediamon_ingest`` emits it after a run,
    ``mediamon_alerts`` is scheduled on it. Defined here once for both DAGs."""
    from airflow.sdk import Asset

    return Asset(name="mediamon_articles", uri="mediamon://articles")


def without_backfills() -> Any:
    """``allowed_run_types`` for the DAGs that mail (digests, the watchdog, the weekly
    report): scheduled and manual runs only. A backfill is a batch of past runs, and what
    they would mail is old news: a week's backfill of ``mediamon_digests`` was a week of
    past digests, mailed at once. Airflow refuses it ("does not allow backfill runs") and
    the UI offers none; a cleared past run still runs, judged by the clock
    (:func:`late_run_clock`). ``mediamon_alerts`` follows an asset, which Airflow never
    backfills."""
    from airflow.sdk.api.datamodels._generated import DagRunType

    return (DagRunType.SCHEDULED, DagRunType.MANUAL)


def settings() -> Any:
    """mediamon's settings, with the database from the ``mediamon_db`` connection when one
    is defined (else ``MEDIAMON_DATABASE_URL``, else the embedded server)."""
    from dataclasses import replace

    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mediamon.settings import Settings

    configured = Settings.from_env()
    try:
        uri = BaseHook.get_connection(DATABASE_CONN_ID).get_uri()
    except AirflowNotFoundException:
        return configured
    return replace(configured, database_url=uri, database_source=DATABASE_CONN_SOURCE)


def run_time(context: dict[str, Any]) -> tuple[str, datetime]:
    """A key naming this run's interval, and the interval's end.

    A re-run of the same interval gets the same key, so its fetch-log rows overwrite the
    first run's. Runs triggered without a logical date have no interval: ``run_after``.

    Raises:
        AirflowFailException: the time is after the clock (by more than
            :data:`RUN_TIME_SKEW`): a logical date or data interval given by hand.
    """
    from airflow.sdk.exceptions import AirflowFailException

    moment = context.get("data_interval_end") or context["dag_run"].run_after
    # Airflow hands out pendulum DateTimes; the package does plain datetime arithmetic.
    end = datetime.fromtimestamp(moment.timestamp(), tz=UTC)
    # The trigger form's logical date and the API's data_interval_end take any time, and a
    # manual run starts at once whatever it says: a run "at" 2300 stored its articles as
    # first seen in 2300, a watchdog run in 9999 opened `no successful ingest run for
    # 2812366.9 days`. A retry cannot make the time pass: the task fails on its first try.
    clock = datetime.now(UTC)
    if end > clock + RUN_TIME_SKEW:
        raise AirflowFailException(
            f"the run's time {end.isoformat()} (its logical date or data interval's end) is"
            f" after the clock's {clock:%Y-%m-%dT%H:%MZ}: mediamon does not run an interval"
            " that has not happened; trigger without a logical date, or with a past one"
        )
    return f"{context['dag'].dag_id}:{end.isoformat()}", end


def late_run_clock(context: dict[str, Any]) -> datetime | None:
    """The clock's time when this run was cleared and runs again, else None: what such a
    run mails is judged stale by the clock, not by its hour. (The DAGs that mail refuse
    backfills, see :func:`without_backfills`.) The demo and ``dags test`` of a past hour
    are first runs and still mail as of their hour."""
    if context["dag_run"].clear_number:
        return datetime.now(UTC)
    return None


def delivery_time(context: dict[str, Any]) -> datetime:
    """The time a run judges its pending alerts stale at: its interval's end, or the
    clock's for a late run. A past hour's run, cleared in the UI days later, mailed that
    hour's alerts as if new (its spike was a backfill by then)."""
    _, end = run_time(context)
    clock = late_run_clock(context)
    return end if clock is None else max(end, clock)


def smtp_send() -> tuple[Any, str | None]:
    """A sender through the ``mediamon_smtp`` connection and its From address, or
    (None, None) when the connection is not defined (alerts then stay pending)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mediamon.alerts import smtp

    try:
        conn = BaseHook.get_connection(SMTP_CONN_ID)
    except AirflowNotFoundException:
        return None, None
    fields = {
        "host": conn.host or "localhost",
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "extra": conn.extra_dejson,
    }
    settings = smtp.connection_settings(fields, SMTP_CONN_ID)
    return smtp.smtp_sender(settings), settings.sender


def failure_mail() -> dict[str, Any]:
    """``default_args`` that mail ``MEDIAMON_OPS_EMAIL`` (comma-separated) when a task has
    failed for good, and when a task that failed with a mailed error succeeds again,
    through the ``mediamon_smtp`` connection; empty when unset.
    Read at parse time: an environment variable costs nothing, unlike a Variable."""
    from mediamon.settings import Settings

    recipients = list(Settings.from_env().ops_emails)
    if not recipients:
        return {}
    from mediamon_airflow.task_failure import TaskFailureMail, TaskRecoveryMail

    return {
        "on_failure_callback": TaskFailureMail(recipients),
        "on_success_callback": TaskRecoveryMail(recipients),
    }


def task_defaults(
    *, retries: int, retry_delay: timedelta, timeout: timedelta, backoff: bool = True
) -> dict[str, Any]:
    """The ``default_args`` every mediamon DAG shares (owner, retries, the ops failure
    mail, a time limit per task); each DAG says only how patient it is."""
    return {
        "owner": "mediamon",
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": backoff,
        **failure_mail(),
        "execution_timeout": timeout,
    }


@contextmanager
def config_errors_fail_at_once() -> Iterator[None]:
    """Turn mediamon's :class:`~mediamon.errors.ConfigError` into ``AirflowFailException``:
    the task fails at once, without retries (a retry cannot fix a file); so does a
    database a newer mediamon upgraded (:class:`~mediamon.errors.SchemaMismatch`: a retry
    runs the same code). Other errors (a database that is down) keep their retries; a
    database that cannot be reached or refuses the work is raised as one line naming it
    (:class:`~mediamon.errors.DatabaseUnavailable`): the task log held SQLAlchemy's and
    the driver's chained tracebacks, 150 lines a task saying no more than that line."""
    from airflow.sdk.exceptions import AirflowFailException

    from mediamon.errors import ConfigError, DatabaseUnavailable, SchemaMismatch, explain

    try:
        yield
    except ConfigError as error:
        raise AirflowFailException(f"configuration error: {error}") from error
    except SchemaMismatch as error:
        raise AirflowFailException(str(error)) from error
    except Exception as error:
        explained = explain(error)
        if not isinstance(explained, DatabaseUnavailable) or explained is error:
            raise
        raise DatabaseUnavailable(f"{explained} ({_database_named()})") from None


def _database_named() -> str:
    """mediamon's database as the error line names it, and where its URL came from (the
    variable or the ``mediamon_db`` connection; never the password)."""
    from mediamon.db.engine import database_named

    try:
        configured = settings()
        url = configured.database_url
    except Exception:  # noqa: BLE001 - the database's own error is the one to raise
        return "mediamon's database"
    if not url:
        return "mediamon's embedded database"
    try:
        named = database_named(url)
    except Exception:  # noqa: BLE001 - as above
        named = "(an unreadable URL)"
    return f"mediamon's database {named}, from {configured.database_source}"


# The XCom a shard task that raised leaves for summarize (mediamon.ops.runs.shard_failure).
SHARD_FAILURE_KEY = "shard_failure"


@contextmanager
def shard_failure_reported(ti: Any, sources: list[str]) -> Iterator[None]:
    """Leave a shard task's failure for ``summarize`` (an XCom; Airflow clears it when
    the task is tried again): the sources it loaded before it raised are counted loaded,
    and summarize does not mail what the task's own failure mail says. A task killed
    with SIGKILL leaves nothing: summarize then names its sources and mails."""
    from mediamon.ops.mail import failure_text
    from mediamon.ops.runs import shard_failure

    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as error:  # Airflow's timeout and SIGTERM are BaseExceptions
        try:
            ti.xcom_push(SHARD_FAILURE_KEY, shard_failure(sources, failure_text(error), error))
        except Exception as push_error:  # noqa: BLE001 - the task's own error is the one to raise
            logging.getLogger(__name__).warning(
                "summarize will count this shard's sources as not reported (its failure"
                " could not be left for it: %s)",
                push_error,
            )
        raise


# The trigger form's list of sources is read at parse time, within its budget: a sources
# file past 1 MiB (some 10,000 sources) gives no list, and the list shows 1,000 names at
# most (any name may still be typed; plan_sources checks it).
FORM_SOURCES_MAX_BYTES = 1024 * 1024
FORM_MAX_SOURCES = 1_000


def configured_source_names() -> list[str]:
    """Names in the sources file, for the trigger form's multi-select; [] when the file
    cannot be read. Runs at parse time: one small YAML file, no database, no network
    (about a millisecond; the DAG file's parse budget is 0.2 s). The choice is only a
    picking aid: ``plan_sources`` checks the names against the file it reads at run time.
    """
    import os
    from pathlib import Path

    import yaml

    from mediamon.config_yaml import read_config_bytes
    from mediamon.settings import DEFAULT_CONFIG_DIR

    path = os.environ.get("MEDIAMON_SOURCES") or str(DEFAULT_CONFIG_DIR / "sources.yaml")
    try:
        # As the tasks read it (a regular file, opened without blocking), and smaller: a
        # FIFO in the file's place held the DAG processor until its timeout (the DAG then
        # broken in the UI), /dev/zero read until memory ran out.
        data = read_config_bytes(Path(path), max_bytes=FORM_SOURCES_MAX_BYTES)
        document = yaml.load(
            data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
        entries = document["sources"]
        names = [str(entry["name"]) for entry in entries if isinstance(entry, dict)]
        return names[:FORM_MAX_SOURCES]  # each is in the serialized DAG and the form
    except Exception:  # noqa: BLE001 - a broken file must not break parsing; plan_sources says why
        return []


def api_server_engine() -> Any:
    """An engine on mediamon's database for the api-server (the mediamon page): the
    ``mediamon_db`` connection when one is defined (the api-server reads connections from
    its own secrets backends and metadata database, not through the task SDK), else
    ``MEDIAMON_DATABASE_URL``, else the embedded server."""
    from dataclasses import replace

    from airflow.models.connection import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mediamon import db
    from mediamon.settings import Settings

    settings = Settings.from_env()
    try:
        uri = Connection.get_connection_from_secrets(DATABASE_CONN_ID).get_uri()
        settings = replace(settings, database_url=uri, database_source=DATABASE_CONN_SOURCE)
    except AirflowNotFoundException:
        pass
    return db.make_engine(db.resolve_url(settings))


def shard_count() -> int:
    """Shards per cycle: ``MEDIAMON_SHARDS`` when set, else Airflow's ``[core]
    parallelism`` (the task slots; mediamon sizes it to the box), at most 1,024."""
    from airflow.sdk import conf

    from mediamon.ingest.shards import requested_shards
    from mediamon.ingest.shards import shard_count as clamp

    return clamp(requested_shards(), conf.getint("core", "parallelism", fallback=32))


def shard_options(shards_in_run: int, *, refetch: bool) -> Any:
    """How one shard task runs: its extraction pool shares this machine's cores with the
    other shards that run at the same time (at most ``parallelism`` of them), and it
    starts sources for ``MEDIAMON_SHARD_TIME_BUDGET_S`` (the schedule's share)."""
    import os

    from airflow.sdk import conf

    from mediamon.ingest.shard_runner import ShardOptions, pool_size

    concurrent = min(max(1, shards_in_run), conf.getint("core", "parallelism", fallback=32))
    configured = settings()
    workers = pool_size(os.cpu_count() or 1, concurrent, configured.workers)
    return ShardOptions(
        workers=workers, refetch_known=refetch, time_budget_s=configured.shard_time_budget_s
    )


def retention_cutoff(context: dict[str, Any], param: str) -> datetime:
    """The run's time minus the ``param`` days of retention."""
    from datetime import timedelta

    days = min(max(1, int(context["params"][param])), MAX_KEEP_DAYS)
    return run_time(context)[1] - timedelta(days=days)


def metadata_url() -> str:
    """Airflow's metadata database for ``airflow db clean``: ``MEDIAMON_AIRFLOW_DATABASE_URL``
    (mediamon's environment and the compose file set it; Airflow 3 hides its own setting
    from tasks)."""
    import os

    from mediamon.errors import ConfigError

    url = os.environ.get("MEDIAMON_AIRFLOW_DATABASE_URL")
    if not url:
        # A setting, not a passing failure: a ConfigError, which fails the task at once
        # (a RuntimeError was retried twice, 10 minutes apart, to the same end).
        raise ConfigError(
            "MEDIAMON_AIRFLOW_DATABASE_URL is not set: the maintenance task cannot reach"
            " Airflow's metadata database to run airflow db clean"
        )
    return url
