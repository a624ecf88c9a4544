"""Applies the numbered SQL files in ``sql/migrations`` and records each one applied."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mediamon.errors import SchemaMismatch
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every mediamon process.
ADVISORY_LOCK_KEY = 0x6D6564696D6F6E


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """Folder of migration files: the package's ``sql/migrations`` (``MEDIAMON_SQL_DIR``
    overrides the folder)."""
    return Settings.from_env().sql_dir / "migrations"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    """Read the migration files in version order.

    Raises:
        ValueError: a file in the folder is not named ``NNNN_description.sql`` or two
            files share a version.
    """
    folder = folder or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: migration files must be named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path}: version {version} is already used by {found[version].name}")
        found[version] = Migration(version, path.stem, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def upgrade(engine: sa.Engine, folder: Path | None = None) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction.

    Concurrent callers (mapped tasks starting together) serialize on an advisory lock.

    Returns:
        The names of the migrations applied by this call.

    Raises:
        SchemaMismatch: an applied migration's file has changed since it was applied, or
            the database holds migrations newer than this mediamon's.
    """
    applied_now: list[str] = []
    with engine.connect() as conn:
        conn.execute(sa.text("select pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        try:
            # Checked first: the tasks' writer role may not create tables, and PostgreSQL
            # refuses even "create table if not exists" on a table that exists.
            if conn.execute(sa.text("select to_regclass('schema_migrations')")).scalar() is None:
                conn.execute(
                    sa.text(
                        "create table if not exists schema_migrations ("
                        " version integer primary key, name text not null,"
                        " checksum text not null, applied_at timestamptz not null default now())"
                    )
                )
            conn.commit()
            recorded = conn.execute(
                sa.text("select version, name, checksum from schema_migrations order by 1")
            ).all()
            done: dict[int, str] = {row.version: row.checksum for row in recorded}
            known = load_migrations(folder)
            _check_not_newer(recorded, known)
            for migration in known:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise SchemaMismatch(
                            f"database: migration {migration.name} changed after it was"
                            " applied (the database was upgraded by another build of"
                            " mediamon); add a new migration instead"
                        )
                    continue
                logger.info("applying migration %s", migration.name)
                conn.exec_driver_sql(migration.sql)
                conn.execute(
                    sa.text(
                        "insert into schema_migrations (version, name, checksum)"
                        " values (:v, :n, :c)"
                    ),
                    {"v": migration.version, "n": migration.name, "c": migration.checksum},
                )
                conn.commit()
                applied_now.append(migration.name)
        finally:
            conn.rollback()
            conn.execute(sa.text("select pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()
    return applied_now


def _check_not_newer(recorded: Sequence[Any], known: Sequence[Migration]) -> None:
    """Refuse a database a newer mediamon upgraded (a deploy rolled back, an old worker
    image beside a new scheduler): this code would read and write tables whose shape it
    does not know. Before, every command ran on, and ``db upgrade`` said "schema is up to
    date". Migrations are never undone, so the way out is the newer mediamon."""
    newest = max((m.version for m in known), default=0)
    newer = [row.name for row in recorded if row.version > newest]
    if newer:
        mine = known[-1].name if known else "none"
        raise SchemaMismatch(
            f"database: it was upgraded by a newer mediamon (migration {newer[-1]}; this"
            f" mediamon's newest is {mine}); run the mediamon that upgraded it, as"
            " migrations are not undone"
        )
