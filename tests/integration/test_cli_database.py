"""The ``mediamon`` command on a database that answers but will not do mediamon's work:
read-only, a login without write rights, a server out of disk, migrations of a newer
mediamon or edited since they were applied. Each is one line naming the cause, exit 3,
as a database that is down is (before: tracebacks holding the statement, or nothing)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.bi import access
from mediamon.cli import main
from mediamon.db import migrate
from mediamon.settings import Settings


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own (these tests make it read-only or alter its migrations),
    migrated, named by MEDIAMON_DATABASE_URL."""
    admin = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", tmp_path / "pg")
    with db.scratch_database(admin, "mediamon_cli_db") as url:
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        monkeypatch.setenv("MEDIAMON_DATABASE_URL", url)
        monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
        yield url


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "[SQL" not in err and "select" not in err.lower(), err  # no statement
    return err


@pytest.mark.parametrize("command", [["status"], ["ingest"], ["health", "run"]])
def test_a_read_only_database_is_one_line_and_exit_3(
    scratch: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A standby, or default_transaction_read_only set on the database (before: an
    InternalError traceback ending with `[SQL: update bi.settings …]`, exit 1)."""
    admin = sa.create_engine(db.normalize_url(scratch), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = conn.execute(sa.text("select current_database()")).scalar_one()
        conn.execute(sa.text(f'alter database "{name}" set default_transaction_read_only = on'))
    admin.dispose()
    assert main(command) == 3
    assert _one_line(capsys).startswith(
        "mediamon: database is read-only: cannot execute UPDATE in a read-only transaction"
    )


def test_a_read_only_database_and_a_broken_sources_file_log_one_line_each(
    scratch: str, tmp_path: Path
) -> None:
    """`mediamon ingest` run as ops run it, with the sources file broken while the
    database is read-only: the failed run cannot be recorded, which is logged, then the
    file's error is said (before: the log's ERROR went on with SQLAlchemy's statement,
    its parameters and a link, four lines in all before the one the user needs)."""
    import os
    import subprocess
    import sys

    admin = sa.create_engine(db.normalize_url(scratch), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = conn.execute(sa.text("select current_database()")).scalar_one()
        conn.execute(sa.text(f'alter database "{name}" set default_transaction_read_only = on'))
    admin.dispose()
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - name: [unclosed\n", encoding="utf-8")
    env = os.environ | {"MEDIAMON_SOURCES": str(sources)}
    ran = subprocess.run(
        [sys.executable, "-m", "mediamon", "ingest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stderr
    logged, said = ran.stderr.splitlines()
    assert " ERROR mediamon.ops.service: could not record the failed run cli:" in logged
    assert logged.endswith(
        ": database is read-only: cannot execute UPDATE in a read-only transaction (a"
        " standby server, or default_transaction_read_only set); mediamon needs a database"
        " it can write"
    ), logged
    assert said.startswith(f"mediamon: {sources}: not valid YAML: "), said


def test_a_login_without_write_rights_is_one_line_and_exit_3(
    scratch: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A BI login's URL as MEDIAMON_DATABASE_URL (before: a ProgrammingError traceback,
    `permission denied for table schema_migrations` and the statement, exit 1); its password is
    not printed."""
    engine = db.make_engine(scratch)
    server = sa.make_url(scratch)
    name = f"cli_bi_{uuid.uuid4().hex[:8]}"
    password = "Pw-" + uuid.uuid4().hex
    login = access.create_bi_login(engine, name, password, server.host or "", server.port or 5432)
    try:
        monkeypatch.setenv("MEDIAMON_DATABASE_URL", login.url)
        for command in (["status"], ["ingest"]):
            assert main(command) == 3
            err = _one_line(capsys)
            assert err.startswith(
                "mediamon: database login lacks a right: permission denied for table"
            ), err
            assert "not a BI login" in err and password not in err
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop owned by "{name}"'))
            conn.execute(sa.text(f'drop role "{name}"'))
        engine.dispose()


def test_a_server_out_of_disk_is_one_line_naming_it(
    scratch: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL's disk_full error (SQLSTATE 53100), raised by the server on the first
    write, as a full disk raises it (before: `database unavailable: …`, of a server that
    answered)."""
    engine = db.make_engine(scratch)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "create function pg_temp_full() returns trigger language plpgsql as $$ begin"
                " raise exception 'could not extend file \"base/1/2\": No space left on device'"
                " using errcode = 'disk_full'; end $$"
            ).execution_options(no_parameters=True)
        )
        conn.execute(
            sa.text(
                "create trigger disk_full before update on bi.settings"
                " for each row execute function pg_temp_full()"
            )
        )
    engine.dispose()
    monkeypatch.setenv("MEDIAMON_TIMEZONE", "Europe/Paris")  # the settings row is written
    assert main(["status"]) == 3
    assert _one_line(capsys) == (
        'mediamon: database server out of resources: could not extend file "base/1/2": No'
        " space left on device (free disk space on the server)\n"
    )


def test_a_database_a_newer_mediamon_upgraded_is_refused_in_one_line(
    scratch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deploy rolled back after its migration ran (before: every command went on against
    tables it does not know, and `db upgrade` said `schema is up to date`)."""
    engine = db.make_engine(scratch)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into schema_migrations (version, name, checksum)"
                " values (9999, '9999_from_the_future', 'x')"
            )
        )
    engine.dispose()
    newest = migrate.load_migrations()[-1].name
    for command in (["db", "upgrade"], ["status"]):
        assert main(command) == 3
        assert _one_line(capsys) == (
            "mediamon: database: it was upgraded by a newer mediamon (migration"
            f" 9999_from_the_future; this mediamon's newest is {newest}); run the mediamon"
            " that upgraded it, as migrations are not undone\n"
        )


def test_a_migration_edited_after_it_was_applied_is_one_line(
    scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Another build's migration file (before: a RuntimeError traceback)."""
    sql = tmp_path / "sql"
    shutil.copytree(Settings.from_env().sql_dir, sql)
    first = sorted((sql / "migrations").iterdir())[0]
    first.write_text(first.read_text("utf-8") + "\n-- edited\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SQL_DIR", str(sql))
    assert main(["db", "upgrade"]) == 3
    assert _one_line(capsys).startswith(
        f"mediamon: database: migration {first.stem} changed after it was applied"
    )
