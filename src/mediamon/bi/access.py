"""BI access: the embedded PostgreSQL's loopback listener, standard ``postgresql://`` URLs
and BI logins in the read-only role ``mediamon_bi``.

pgserver starts PostgreSQL with ``-h ""`` (Unix socket only) on the command line, which
beats any setting in postgresql.conf, so mediamon starts the server itself with
``-h 127.0.0.1 -p PORT`` when it is not running, and restarts it once with those options
when pgserver started it without them (a fresh data folder). TCP connections need a
password (scram-sha-256 in pg_hba.conf); the socket stays trusted for local processes.
"""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from mediamon.db.roles import (
    BI_ROLE,
    RESERVED_ROLES,
    ROLE_SETTING_NAMES,
    bi_login_refusals,
    bi_login_settings,
    is_role_name,
)
from mediamon.errors import EXIT_DATABASE, InputError, UserError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class EmbeddedServerError(UserError):
    """The embedded server could not be started the way it is configured."""

    exit_code = EXIT_DATABASE


@dataclass(frozen=True)
class Listener:
    """Where the embedded server listens: its socket folder and port (the TCP port too,
    when ``tcp`` is true: PostgreSQL uses one port number for both)."""

    socket_dir: Path
    port: int
    tcp: bool


def _postmaster(pgdata: Path) -> Any:
    from pgserver.utils import PostmasterInfo

    return PostmasterInfo.read_from_pgdata(pgdata)


def _system_user() -> str | None:
    import os

    # pgserver runs the server as user "pgserver" when started as root
    return "pgserver" if os.geteuid() == 0 else None


def require_password_over_tcp(pgdata: Path) -> None:
    """Make every TCP line of pg_hba.conf ask for a password (pgserver's initdb trusts
    all); the local socket stays trusted. Writing keeps the file's owner."""
    hba = pgdata / "pg_hba.conf"
    lines = hba.read_text(encoding="utf-8").splitlines()
    changed = [
        re.sub(r"\btrust\s*$", "scram-sha-256", line) if line.startswith("host") else line
        for line in lines
    ]
    if changed != lines:
        hba.write_text("\n".join(changed) + "\n", encoding="utf-8")


def _port_taken(port: int) -> bool:
    """Whether something else listens on 127.0.0.1:``port`` already (another checkout's
    server, a system PostgreSQL)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _warn_taken(port: int) -> None:
    logger.warning(
        "127.0.0.1:%d is taken: the embedded PostgreSQL listens on its socket only, so BI"
        " tools cannot reach it; set MEDIAMON_PG_PORT to a free port (0: socket only)",
        port,
    )


@contextmanager
def pgserver_records() -> Iterator[list[str]]:
    """pgserver's ERROR records while the block runs, kept instead of printed.

    pgserver logs a failed command as one 40-line ERROR (the command, its output, the
    server's log) before raising; the caller names the reason in one line instead (see
    :func:`failure_reason`). Its INFO records (three a start) are dropped too: they
    filled every task log with the server's internals.
    """
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log = logging.getLogger("pgserver")
    keep, propagate = Keep(logging.ERROR), log.propagate
    log.addHandler(keep)
    log.propagate = False
    try:
        yield messages
    finally:
        log.removeHandler(keep)
        log.propagate = propagate


def failure_reason(messages: list[str], error: BaseException) -> str:
    """PostgreSQL's own words for a failure in ``messages`` (pgserver's records, the
    server log): its last FATAL or PANIC line, else initdb's error line, else the
    command's name and exit status."""
    lines = [line.strip() for text in messages for line in text.splitlines()]
    for marker in ("FATAL:", "PANIC:", "initdb: error:"):
        found = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
        if found:
            return found[-1]
    command = getattr(error, "cmd", None) or ["postgres"]
    status = getattr(error, "returncode", None)
    return f"{Path(str(command[0])).name} failed" + (f" (exit status {status})" if status else "")


def _pg_ctl(pgdata: Path, action: str, port: int | None) -> None:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from pgserver import _commands
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import find_suitable_socket_dir

        socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    listen = ["-o", f"-h {LOOPBACK}", "-o", f"-p {port}"] if port else ["-o", '-h ""']
    options = [*listen, "-o", f"-k {socket_dir}"]
    extra = ["-m", "fast"] if action == "restart" else []
    # pgserver._commands makes one function per binary at import: mypy cannot see them.
    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
    server_log = pgdata / "log"
    written = server_log.stat().st_size if server_log.exists() else 0
    with pgserver_records() as messages:
        try:
            pg_ctl(
                ["-w", *extra, *options, "-l", str(server_log), action],
                pgdata=pgdata,
                user=_system_user(),
                timeout=60,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            # The server's own reason is in its log, past what earlier starts wrote: a bad
            # setting in postgresql.conf, a full disk, a port taken. Only the last is
            # MEDIAMON_PG_PORT's to fix (before, every failure was blamed on the port).
            if server_log.exists():
                with server_log.open("rb") as read:
                    read.seek(written)
                    messages.append(read.read().decode("utf-8", "replace"))
            reason = failure_reason(messages, error)
            where = f"{LOOPBACK}:{port}" if port else "its socket"
            hint = (
                "; set MEDIAMON_PG_PORT to a free port, or 0 for the socket only"
                if port and ("could not bind" in reason or "could not create" in reason)
                else ""
            )
            raise EmbeddedServerError(
                f"the embedded PostgreSQL could not start on {where}: {reason}{hint};"
                f" server log: {server_log}"
            ) from error


def start_listening(pgdata: Path, port: int) -> None:
    """Before pgserver looks: start an initialized, stopped server on ``port`` (socket and
    127.0.0.1), so that pgserver finds it running and adopts it."""
    if port <= 0 or not (pgdata / "PG_VERSION").exists():
        return
    info = _postmaster(pgdata)
    if info is not None and info.is_running():
        return
    if _port_taken(port):
        _warn_taken(port)
        return  # pgserver starts it on its socket only
    require_password_over_tcp(pgdata)
    logger.info("starting the embedded PostgreSQL on %s:%d", LOOPBACK, port)
    _pg_ctl(pgdata, "start", port)


def ensure_listening(pgdata: Path, port: int, *, fresh: bool = False) -> Listener:
    """After pgserver started (or adopted) the server: restart it once with ``port`` on
    127.0.0.1 if it does not listen there yet. Returns where it listens. ``fresh``: pgserver
    has just created the server, so the restart is its first start's last step, not news."""
    info = _postmaster(pgdata)
    if info is None or not info.is_running():
        raise EmbeddedServerError(f"the embedded PostgreSQL under {pgdata} is not running")
    if port > 0 and (info.hostname != LOOPBACK or info.port != port):
        if _port_taken(port):
            # never restart (and cut the connections of Airflow's services) for nothing
            _warn_taken(port)
            return _listener(info)
        require_password_over_tcp(pgdata)
        # A restart cuts every connection (Airflow's services, a BI tool): worth a warning,
        # unless the server was created a moment ago and nobody can be connected yet.
        logger.log(
            logging.INFO if fresh else logging.WARNING,
            "restarting the embedded PostgreSQL to listen on %s:%d",
            LOOPBACK,
            port,
        )
        _pg_ctl(pgdata, "restart", port)
        info = _postmaster(pgdata)
    return _listener(info)


def _listener(info: Any) -> Listener:
    return Listener(
        socket_dir=Path(info.socket_dir), port=int(info.port), tcp=info.hostname == LOOPBACK
    )


def embedded_listener(pgdata: Path) -> Listener | None:
    """Where the running embedded server listens; None when it is not running."""
    info = _postmaster(pgdata)
    return _listener(info) if info is not None and info.is_running() else None


def socket_url(listener: Listener, database: str, *, driver: str = "postgresql") -> str:
    """URL of ``database`` through the socket as the superuser (trusted locally)."""
    return f"{driver}://postgres@/{database}?host={listener.socket_dir}&port={listener.port}"


def standard_url(url: str) -> str:
    """``url`` with the scheme every PostgreSQL client reads (psql, libpq, JDBC-style
    tools): ``postgresql://``, without a SQLAlchemy driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise InputError(f"not a PostgreSQL URL: {scheme}://…")
    return "postgresql://" + rest


@dataclass(frozen=True)
class BiLogin:
    """A BI login just created (or given a new password)."""

    name: str
    url: str
    created: bool


def create_bi_login(
    engine: sa.Engine,
    name: str,
    password: str | None,
    host: str,
    port: int,
    *,
    writer: str | None = None,
) -> BiLogin:
    """Create login ``name`` in the read-only role (or give an existing one a new password),
    read-only by default; return its ``postgresql://`` URL on ``host``:``port``.

    An existing role is changed only when it is a plain member of ``mediamon_bi``: no
    superuser or other role attribute, no other membership or members, owning nothing,
    writing no table, and not ``writer`` (the tasks' writer role, MEDIAMON_WRITER_ROLE).

    The password is hashed (SCRAM) before it is sent, so it never appears in the server's
    statement log.

    Raises:
        InputError: ``name`` is not a plain lower-case role name, is reserved, or is an
            existing role that is more than a BI login.
        UserError: the role ``mediamon_bi`` is missing (the migration could not create it).
    """
    if not is_role_name(name) or name in RESERVED_ROLES:
        raise InputError(
            f"bi-user: {name!r} is not allowed; use lower-case letters, digits and _ "
            f"(not {', '.join(sorted(RESERVED_ROLES))} or pg_*)"
        )
    password = password or secrets.token_urlsafe(24)
    from psycopg import sql

    with engine.begin() as conn:
        roles = set(
            conn.execute(
                sa.text("select rolname from pg_roles where rolname in (:bi, :name)"),
                {"bi": BI_ROLE, "name": name},
            ).scalars()
        )
        if BI_ROLE not in roles:
            raise UserError(
                f"bi-user: role {BI_ROLE} is missing; run `mediamon db upgrade` as a user"
                " allowed to create roles"
            )
        exists = name in roles
        refusals = bi_login_refusals(conn, name, writer) if exists else []
        if refusals:
            raise InputError(
                f"bi-user: role {name!r} already exists and {', '.join(refusals)}; bi-user"
                f" only creates logins or gives a new password to plain members of {BI_ROLE}:"
                " choose another name"
            )
        # the defaults the login has of its own stay (roles.BI_LOGIN_DEFAULTS)
        already_set = conn.exec_driver_sql(ROLE_SETTING_NAMES, {"name": name}).scalar()
        raw = conn.connection.driver_connection
        assert raw is not None
        verifier = raw.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
        statements = [
            sql.SQL(("alter" if exists else "create") + " role {} with login password {}").format(
                sql.Identifier(name), sql.Literal(verifier.decode())
            ),
            sql.SQL("grant {} to {}").format(sql.Identifier(BI_ROLE), sql.Identifier(name)),
            # read-only sessions without JIT, with a statement timeout, more work_mem
            # (roles.BI_LOGIN_SETTINGS says why)
            *bi_login_settings(name, already_set or ()),
        ]
        for statement in statements:
            conn.exec_driver_sql(statement.as_string(raw).replace("%", "%%"))
        database = conn.execute(sa.text("select current_database()")).scalar_one()
    url = f"postgresql://{quote(name)}:{quote(password, safe='')}@{host}:{port}/{quote(database)}"
    return BiLogin(name=name, url=url, created=not exists)
