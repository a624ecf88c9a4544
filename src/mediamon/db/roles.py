"""Least-privilege database logins: the role the ingest and alert tasks write with, and
a login for BI users (a member of the read-only ``mediamon_bi`` role that migration 0004
creates). Run by the database owner after the migrations (`mediamon db roles`, the
compose file's airflow-init); running it again updates passwords and grants."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from psycopg import sql

logger = logging.getLogger(__name__)

WRITER_ROLE_ENV = ("MEDIAMON_WRITER_ROLE", "MEDIAMON_WRITER_PASSWORD")
BI_LOGIN_ENV = ("MEDIAMON_BI_LOGIN", "MEDIAMON_BI_PASSWORD")


@dataclass(frozen=True)
class Login:
    name: str
    password: str


def logins_from_env(environ: Mapping[str, str] | None = None) -> tuple[Login | None, Login | None]:
    """The writer role and BI login named in the environment (None where unset).

    Raises:
        ValueError: a role is named without its password.
    """
    env = os.environ if environ is None else environ
    found: list[Login | None] = []
    for name_var, password_var in (WRITER_ROLE_ENV, BI_LOGIN_ENV):
        name = env.get(name_var, "").strip()
        if not name:
            found.append(None)
            continue
        password = env.get(password_var, "")
        if not password:
            raise ValueError(f"{name_var} is set but {password_var} is empty")
        found.append(Login(name, password))
    return found[0], found[1]


def ensure_roles(engine: sa.Engine, writer: Login | None, bi_login: Login | None) -> list[str]:
    """Create or update the logins and grant what each needs; return what was done.

    The writer may read and write mediamon's tables and draw from their sequences, never
    change the schema; the BI login may only read the ``bi`` views.
    """
    done: list[str] = []
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:

            def run(statement: sql.Composable) -> None:
                cursor.execute(statement)

            def login(role: Login) -> None:
                exists = cursor.execute(
                    "select 1 from pg_roles where rolname = %s", (role.name,)
                ).fetchone()
                verb = "alter" if exists else "create"
                run(
                    sql.SQL("{} role {} login password {}").format(
                        sql.SQL(verb), sql.Identifier(role.name), sql.Literal(role.password)
                    )
                )
                done.append(f"{verb} role {role.name}")

            if writer is not None:
                login(writer)
                who = sql.Identifier(writer.name)
                owner = sql.Identifier(cursor.execute("select current_user").fetchone()[0])
                run(
                    sql.SQL("grant connect on database {} to {}").format(
                        sql.Identifier(raw.info.dbname), who
                    )
                )
                # public: mediamon's tables; bi: its settings table (the tasks keep the
                # time zone there) beside the views.
                for schema in ("public", "bi"):
                    for statement in (
                        "grant usage on schema {schema} to {who}",
                        "grant select, insert, update, delete on all tables in schema {schema}"
                        " to {who}",
                        "grant usage, select on all sequences in schema {schema} to {who}",
                        "alter default privileges for role {owner} in schema {schema}"
                        " grant select, insert, update, delete on tables to {who}",
                        "alter default privileges for role {owner} in schema {schema}"
                        " grant usage, select on sequences to {who}",
                    ):
                        run(
                            sql.SQL(statement).format(
                                schema=sql.Identifier(schema), who=who, owner=owner
                            )
                        )
                done.append(f"granted {writer.name} read and write on mediamon's tables")
            if bi_login is not None:
                login(bi_login)
                run(sql.SQL("grant mediamon_bi to {}").format(sql.Identifier(bi_login.name)))
                run(
                    sql.SQL("grant connect on database {} to {}").format(
                        sql.Identifier(raw.info.dbname), sql.Identifier(bi_login.name)
                    )
                )
                done.append(f"granted {bi_login.name} the read-only role mediamon_bi")
    for line in done:
        logger.info("%s", line)
    return done
