"""BI access to the embedded PostgreSQL, through the command line as a user runs it:
``mediamon db url`` prints a URL psql accepts, the server listens on 127.0.0.1 at the
configured port with passwords required over TCP, and ``mediamon db bi-user`` makes a
login that reads ``bi.*`` over TCP and is refused everything else."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mediamon.cli import main
from tests.support.server_folder import server_folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _psql() -> str:
    import pgserver

    found = shutil.which("psql") or str(Path(pgserver.__file__).parent / "pginstall/bin/psql")
    assert Path(found).exists(), "no psql: neither on PATH nor in pgserver"
    return found


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[Path, int]]:
    """A fresh embedded server's var folder and TCP port (the environment of the CLI)."""
    with server_folder() as var_dir:
        yield from _embedded_env(var_dir)


def _embedded_env(var_dir: Path) -> Iterator[tuple[Path, int]]:
    port = _free_port()
    patch = pytest.MonkeyPatch()
    patch.delenv("MEDIAMON_DATABASE_URL", raising=False)
    patch.setenv("MEDIAMON_VAR_DIR", str(var_dir))
    patch.setenv("MEDIAMON_PG_PORT", str(port))
    try:
        yield var_dir, port
    finally:
        patch.undo()


def test_db_url_is_standard_and_psql_accepts_it(
    embedded: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    var_dir, port = embedded
    assert main(["db", "url"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("postgresql://postgres@/mediamon?host=") and f"port={port}" in url
    answer = subprocess.run(
        [_psql(), url, "-tAc", "select current_database()"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "mediamon"
    assert main(["db", "url", "--sqlalchemy"]) == 0
    assert capsys.readouterr().out.startswith("postgresql+psycopg://")


def test_listens_on_loopback_and_wants_a_password(embedded: tuple[Path, int]) -> None:
    _, port = embedded
    main(["db", "url"])  # starts it if the module's first test did not
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/mediamon", connect_timeout=5)


def test_bi_user_reads_bi_over_tcp_and_nothing_else(
    embedded: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = embedded
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["db", "bi-user", "grafana"]) == 0
    out = capsys.readouterr()
    url = out.out.strip()
    assert url.startswith("postgresql://grafana:") and url.endswith(f"@127.0.0.1:{port}/mediamon")
    assert "created grafana" in out.err

    with psycopg.connect(url, connect_timeout=10) as conn:
        assert conn.execute("select timezone from bi.settings").fetchone() == ("Asia/Shanghai",)
        assert conn.execute("select count(*) from bi.source_health").fetchone() is not None
        for statement in (
            "select * from public.articles",
            "select * from public.schema_migrations",
            "set transaction read write; insert into bi.settings (timezone) values ('UTC')",
            "set transaction read write; create table public.grab (x int)",
            "select bi.topic_hours(now(), now()) from public.sources",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create temp table grab (x int)")
        conn.rollback()

    wrong = url.replace("grafana:", "grafana:x", 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)

    # again: a new password, and the old one stops working
    assert main(["db", "bi-user", "grafana"]) == 0
    renewed = capsys.readouterr().out.strip()
    assert renewed != url
    psycopg.connect(renewed, connect_timeout=10).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url, connect_timeout=10)


def test_bi_user_refuses_bad_names(
    embedded: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("postgres", "mediamon_bi", "Robert'); drop table articles;--", "pg_x"):
        assert main(["db", "bi-user", name]) == 2
        assert "bi-user:" in capsys.readouterr().err


def test_bad_settings_are_one_line(
    embedded: tuple[Path, int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMON_PG_PORT", "eighty")
    assert main(["db", "url"]) == 2
    assert capsys.readouterr().err.strip() == (
        "mediamon: MEDIAMON_PG_PORT='eighty': expected a port number (1-65535; 0: socket only)"
    )
    monkeypatch.setenv("MEDIAMON_PG_PORT", "5432")
    monkeypatch.setenv("MEDIAMON_TIMEZONE", "Beijing")
    assert main(["db", "url"]) == 2
    assert "MEDIAMON_TIMEZONE: 'Beijing' is not an IANA time zone name" in capsys.readouterr().err


def test_a_taken_port_leaves_the_socket_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with server_folder() as var_dir, socket.socket() as squatter:  # another checkout's, say
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
        monkeypatch.setenv("MEDIAMON_VAR_DIR", str(var_dir))
        monkeypatch.setenv("MEDIAMON_PG_PORT", str(port))
        assert main(["db", "url"]) == 0  # the demo still runs, on the socket
        assert "host=" in capsys.readouterr().out
        assert f"127.0.0.1:{port} is taken" in caplog.text
        assert main(["db", "bi-user", "metabase"]) == 2
        assert "listens on its socket only" in capsys.readouterr().err


def test_a_first_start_and_a_stop_say_nothing_alarming(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A new user's first command creates the server; its restart onto the TCP port is part
    # of that start (nobody can be connected yet), not a WARNING. Stopping it is one word.
    with server_folder() as var_dir, warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. platformdirs' RuntimeDirWarning
        monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.setenv("MEDIAMON_VAR_DIR", str(var_dir))
        monkeypatch.setenv("MEDIAMON_PG_PORT", str(_free_port()))
        assert main(["db", "url"]) == 0
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert capsys.readouterr().err == ""
        # in a new process: pgserver warns when it is first imported
        stop = subprocess.run(
            [sys.executable, "-m", "mediamon.cli", "db", "stop"],
            env={k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (stop.returncode, stop.stdout, stop.stderr) == (0, "stopped\n", "")
