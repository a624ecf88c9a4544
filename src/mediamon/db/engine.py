"""Database engines: the configured server, or mediamon's own embedded PostgreSQL."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mediamon.errors import ConfigError
from mediamon.settings import Settings, make_var_dir

logger = logging.getLogger(__name__)

EMBEDDED_DATABASES = ("mediamon", "airflow")
DRIVER = "postgresql+psycopg"


def normalize_url(url: str) -> str:
    """Return ``url`` with its scheme set to the psycopg 3 driver.

    Airflow connections render as ``postgres://`` and many tools write ``postgresql://``;
    SQLAlchemy needs ``postgresql+psycopg://`` to pick psycopg 3.
    """
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def server_of(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, for messages: no user or password."""
    try:
        parts = sa.make_url(normalize_url(url))
    except sa.exc.ArgumentError:
        return "the server of an unreadable URL"
    host = str(parts.host or parts.query.get("host") or "the local socket")
    port = parts.port or parts.query.get("port") or 5432
    return f"{f'[{host}]' if ':' in host else host}:{port}/{parts.database or ''}"


def make_engine(url: str, *, connect_timeout: int | None = None, **pool_options: Any) -> sa.Engine:
    """Create an engine for ``url`` (any postgres scheme).

    Statements are planned at every execution (psycopg would prepare them after five):
    mediamon's tables grow fast from empty, and a plan prepared while a table was small
    stays in use. Reloading 20,000 articles into an emptied table ran 3,000 rows/s on
    plans kept from its first rows, 6,000 planned afresh. ``pool_options`` go to
    :func:`sqlalchemy.create_engine` (pool_size, max_overflow, pool_timeout);
    ``connect_timeout`` (seconds) overrides the URL's, for callers that must not wait
    long (:func:`bounded_connect_timeout`).
    """
    connect_args: dict[str, Any] = {"prepare_threshold": None}
    if connect_timeout is not None:
        connect_args["connect_timeout"] = connect_timeout
    return sa.create_engine(
        normalize_url(url),
        pool_pre_ping=True,
        connect_args=connect_args,
        **pool_options,
    )


def bounded_connect_timeout(url: str, most: int) -> int:
    """The URL's ``connect_timeout`` clamped to 1..``most`` seconds; ``most`` when it has
    none, or 0 or less (libpq's "wait for ever"). For a caller that must end: a server
    black-holed (a socket that never answers) held libpq's connect without a limit."""
    try:
        value = sa.make_url(normalize_url(url)).query.get("connect_timeout")
        seconds = float(value) if isinstance(value, str) else 0.0
    except (sa.exc.ArgumentError, ValueError):
        seconds = 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return most
    return max(1, min(most, int(seconds)))


def checked_url(url: str, name: str) -> str:
    """``url`` for the psycopg driver, if it is a well-formed PostgreSQL URL.

    Raises:
        ConfigError: malformed, or another database; the message names ``name`` and
            never shows the password.
    """
    try:
        parsed = sa.make_url(normalize_url(url))
        parsed.port  # noqa: B018 - a non-numeric port fails only when read
    except (sa.exc.ArgumentError, ValueError) as error:
        reason = str(error).split(" from string", 1)[0]
        raise ConfigError(
            f"{name}: not a database URL ({reason}); expected"
            " postgresql://user:password@host:port/database"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"{name}: mediamon needs PostgreSQL, got a {parsed.get_backend_name()}:// URL"
        )
    _check_connect_timeout(parsed.query.get("connect_timeout"), name)
    return normalize_url(url)


# The longest wait for a connection a URL may ask for (libpq has no bound of its own).
MAX_CONNECT_TIMEOUT_S = 3600


def _check_connect_timeout(value: str | tuple[str, ...] | None, name: str) -> None:
    """psycopg reads the URL's ``connect_timeout`` with ``int(float(value))`` at each
    connection: ``nan``, ``inf``, ``1e400`` or ``abc`` failed every command and task with
    a ProgrammingError traceback (exit 1), not a line naming the variable; ``-inf`` an
    OverflowError inside psycopg, reported the same way.

    Raises:
        ConfigError: not a finite number of seconds up to :data:`MAX_CONNECT_TIMEOUT_S`
            (0 or less is libpq's "no limit", as before), or given twice.
    """
    if value is None:
        return
    text = value if isinstance(value, str) else ", ".join(value)
    try:
        seconds = float(text) if isinstance(value, str) else math.nan
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds <= MAX_CONNECT_TIMEOUT_S):
        raise ConfigError(
            f"{name}: connect_timeout: expected a number of seconds up to"
            f" {MAX_CONNECT_TIMEOUT_S}, got {text[:40]!r}"
        )


def embedded_url(var_dir: Path, database: str = "mediamon", tcp_port: int = 0) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``var_dir`` and return a URL.

    The server outlives this process (cleanup_mode=None) so that Airflow's tasks, the CLI
    and the scheduler share one server; ``mediamon db stop`` stops it. With ``tcp_port``
    it also listens on 127.0.0.1 at that port, for BI tools (``mediamon.bi.access``).
    """
    from mediamon.bi import access

    pgserver = _pgserver()
    pgdata = var_dir / "pgdata"
    # pgdata too (pgserver would make it, failing with an error that names no variable)
    make_var_dir(pgdata)
    fresh = not (pgdata / "PG_VERSION").exists()
    access.start_listening(pgdata, tcp_port)
    _start_embedded(pgserver, pgdata)
    listener = access.ensure_listening(pgdata, tcp_port, fresh=fresh)
    # Our own URL, not pgserver's: its URL leaves out the port, which may not be 5432 here.
    for name in EMBEDDED_DATABASES:
        ensure_database(access.socket_url(listener, "postgres", driver=DRIVER), name)
    return access.socket_url(listener, database, driver=DRIVER)


def resolve_url(settings: Settings, database: str = "mediamon") -> str:
    """The data database's URL: the configured one, else the embedded server's.

    Raises:
        ConfigError: the configured URL is malformed or not a PostgreSQL URL.
    """
    if settings.database_url:
        # Named as configured: with the Airflow connection mediamon_db in use, an error
        # naming MEDIAMON_DATABASE_URL sent ops to a variable that may not even be set.
        return checked_url(settings.database_url, settings.database_source)
    return embedded_url(settings.var_dir, database, settings.pg_port)


def database_named(url: str) -> str:
    """The database of ``url`` as a person names it, without login or password:
    ``mediamon on db.example.org:5432``."""
    parsed = sa.make_url(url)
    return f"{parsed.database} on {parsed.host or 'localhost'}:{parsed.port or 5432}"


def ensure_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url`` if missing; return its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a plain database name")
    server_url = sa.make_url(normalize_url(url))
    target = server_url.set(database=name)
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("select 1 from pg_database where datname = :name"), {"name": name}
            ).first()
            if not exists:
                conn.execute(sa.text(f'create database "{name}"'))
    finally:
        engine.dispose()
    return target.render_as_string(hide_password=False)


def _pgserver() -> Any:
    """The pgserver module, imported only when the embedded server is wanted (heavy), and
    without platformdirs' warning that XDG_RUNTIME_DIR is unset (containers, CI, ``sudo``:
    harmless here, and it made ``mediamon db stop`` look broken)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def _start_embedded(pgserver: Any, pgdata: Path) -> None:
    """Start the embedded server (pgserver); a failed initdb or start is one line naming
    the folder and PostgreSQL's own reason (a disk full under MEDIAMON_VAR_DIR read as a
    40-line log record and a CalledProcessError traceback).

    Raises:
        EmbeddedServerError: initdb or the server's start failed.
    """
    import subprocess

    from mediamon.bi import access

    with access.pgserver_records() as messages:
        try:
            pgserver.get_server(pgdata, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            reason = access.failure_reason(messages, error)
            raise access.EmbeddedServerError(
                f"the embedded PostgreSQL in {pgdata} did not start: {reason}"
            ) from error


def stop_embedded(var_dir: Path) -> bool:
    """Stop the embedded server if it runs; return whether it was running."""
    import subprocess

    pgdata = var_dir / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    pgserver = _pgserver()
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    command = [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "stop"]
    if server.system_user is not None:
        command = ["runuser", "-u", server.system_user, "--", *command]
    subprocess.run(command, check=True, capture_output=True)
    return True


def local_server_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    """Whether a PostgreSQL server (or anything) listens on host:port."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def scratch_admin_url(env_var: str, var_dir: Path) -> str:
    """A server for throwaway databases (tests, benchmarks): ``env_var`` if set, else the
    local server on 127.0.0.1:5432 if one answers, else an embedded one under ``var_dir``."""
    import os

    configured = os.environ.get(env_var)
    if configured:
        return normalize_url(configured)
    if local_server_answers():
        return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    return embedded_url(var_dir, "postgres")


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named database on the server of ``admin_url``, yield its URL,
    and drop it afterwards."""
    import uuid

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = ensure_database(admin_url, name)
    try:
        yield url
    finally:
        admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        finally:
            admin.dispose()


@contextmanager
def session_lock(engine: sa.Engine, key: int, *, wait: bool = False) -> Iterator[bool]:
    """Hold PostgreSQL's session advisory lock ``key`` for the block if no one else does;
    yields whether it was got. Runs that must not overlap (two deliveries would both send)
    take it; a run that does not get it does nothing rather than wait. With ``wait`` the
    block waits for the lock instead (always True): for work that must be done by every
    run, one run at a time."""
    with engine.connect() as conn:
        if wait:
            conn.execute(sa.text("select pg_advisory_lock(:key)"), {"key": key})
            got = True
        else:
            got = bool(
                conn.execute(
                    sa.text("select pg_try_advisory_lock(:key)"), {"key": key}
                ).scalar_one()
            )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("select pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
