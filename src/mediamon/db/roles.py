"""Least-privilege database logins: the role the ingest and alert tasks write with, and
a login for BI users (a member of the read-only ``mediamon_bi`` role that migration 0004
creates). Run by the database owner after the migrations (`mediamon db roles`, the
compose file's airflow-init); running it again updates passwords and grants."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from psycopg import sql

from mediamon.errors import InputError

logger = logging.getLogger(__name__)

# The read-only role of the bi views (migration 0004 creates it).
BI_ROLE = "mediamon_bi"
WRITER_ROLE_ENV = ("MEDIAMON_WRITER_ROLE", "MEDIAMON_WRITER_PASSWORD")
# A role mediamon makes: a plain lower-case name PostgreSQL keeps as written (it cuts a
# longer one to 63 bytes, so the printed login would not log in), not one PostgreSQL
# reserves (public, pg_*). bi-user refuses the two roles it must never touch by name too;
# `db roles` says what each existing role is (postgres: a superuser).
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")  # \Z: "$" allows a final line break
RESERVED_ROLES = frozenset({"postgres", BI_ROLE, "public"})
BI_LOGIN_ENV = ("MEDIAMON_BI_LOGIN", "MEDIAMON_BI_PASSWORD")

# Session defaults of every BI login, set on the login itself: PostgreSQL applies a role's
# settings only when that role logs in, so set on mediamon_bi (a group, no login) they
# would reach no one. Read-only sessions, so a tool cannot even create a temporary table.
# The rest are defaults an administrator may have chosen otherwise for a login (and an
# analyst may raise in a session, `set statement_timeout = '10min'`): a login that already
# has one keeps it (docs/topics.md, "BI logins").
BI_LOGIN_ENFORCED = (("default_transaction_read_only", "on"),)
# No JIT: a dashboard's whole series (bi.topic_daily for every topic) is estimated above
# jit_above_cost and spent about a second compiling a query that reads the roll-up in a
# fraction of that (docs/decisions.md, roll-up). A statement ends after a minute, when
# Superset's web request has long given up on it (SUPERSET_WEBSERVER_TIMEOUT, 60 s), and
# the slowest dashboard query takes 3 s on a year of two million articles: before, one
# runaway query held its backend and its locks until someone killed it. A transaction left
# open and idle (psql's BEGIN, a tool that never commits) ends after 5 minutes: it held
# its snapshot (vacuum could not clean behind it) and its locks (a migration's ALTER waited
# on it, and every query behind that ALTER). work_mem: see BI_WORK_MEM_MB.
BI_WORK_MEM_MB = 64
BI_LOGIN_DEFAULTS = (
    ("jit", "off"),
    ("statement_timeout", "60s"),
    ("idle_in_transaction_session_timeout", "5min"),
    # A year's group-by over bi.articles (a source's stories per day: 353,000 groups on
    # two million articles) spilled 63 MB to disk at the default 4 MB. Memory is bounded
    # by sessions x hash nodes x work_mem x hash_mem_multiplier (2): a dashboard's query
    # has one or two such nodes, so each BI session may take up to about 256 MB at its
    # peak, and 10 at once (Superset's chart queries of a dashboard, psql) 2.5 GB; the
    # sizing is in docs/topics.md, "BI logins".
    ("work_mem", f"{BI_WORK_MEM_MB}MB"),
)
BI_LOGIN_SETTINGS = BI_LOGIN_ENFORCED + BI_LOGIN_DEFAULTS

# The names of the settings a role has of its own (pg_roles.rolconfig, "name=value").
ROLE_SETTING_NAMES = (
    "select coalesce(array(select split_part(c, '=', 1) from unnest(r.rolconfig) c), '{}')"
    " from pg_roles r where r.rolname = %(name)s"
)


def bi_login_settings(name: str, already_set: Collection[str] = ()) -> list[sql.Composed]:
    """The statements that give login ``name`` the BI session defaults: all of them to a
    new login; to an existing one (``already_set``: the settings it has of its own) the
    enforced ones, and the defaults it has no value for."""
    return [
        sql.SQL("alter role {} set {} = {}").format(
            sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
        )
        for setting, value in BI_LOGIN_SETTINGS
        if (setting, value) in BI_LOGIN_ENFORCED or setting not in already_set
    ]


@dataclass(frozen=True)
class Login:
    name: str
    password: str


ROLE_NAME_RULE = "expected lower-case letters, digits and _ (at most 63; not public or pg_*)"


def is_role_name(name: str) -> bool:
    """Whether mediamon may create a role called ``name`` (see :data:`ROLE_NAME`)."""
    return bool(ROLE_NAME.match(name)) and name != "public" and not name.startswith("pg_")


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
        if not is_role_name(name):
            # Before: `pg_x` and `public` were a ReservedName traceback; a line break or
            # a space made a role of that name, its line break forging the output's lines.
            raise InputError(f"{name_var}={name[:70]!r}: {ROLE_NAME_RULE}")
        password = env.get(password_var, "")
        if not password:
            raise ValueError(f"{name_var} is set but {password_var} is empty")
        found.append(Login(name, password))
    return found[0], found[1]


# What makes an existing role more than a BI login, checked before bi-user touches it:
# giving it a new password and read-only sessions would break whoever logs in with it
# (the tasks' writer role), and "reads bi.* only" would be false for a superuser.
_EXISTING_ROLE = sa.text(
    "select r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,"
    " exists (select 1 from pg_auth_members m join pg_roles b on b.oid = m.roleid"
    "          where m.member = r.oid and b.rolname = :bi) as in_bi,"
    " array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
    "        where m.member = r.oid and g.rolname <> :bi order by 1) as other_roles,"
    " exists (select 1 from pg_auth_members m where m.roleid = r.oid) as has_members,"
    # Ownership of anything, in any database (tables, schemas, the database itself).
    " exists (select 1 from pg_shdepend d where d.refclassid = 'pg_authid'::regclass"
    "          and d.refobjid = r.oid and d.deptype = 'o') as owns,"
    # Write privileges, granted directly or through any role it belongs to.
    " exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    "          where c.relkind in ('r', 'p', 'v', 'm', 'f')"
    "            and n.nspname not in ('pg_catalog', 'information_schema')"
    "            and n.nspname not like 'pg\\_%'"
    "            and has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))"
    "   as writes"
    " from pg_roles r where r.rolname = :name"
)


def bi_login_refusals(conn: sa.Connection, name: str, writer: str | None) -> list[str]:
    """Why the existing role ``name`` is not a plain login of ``mediamon_bi`` (empty: it
    is one)."""
    row = conn.execute(_EXISTING_ROLE, {"bi": BI_ROLE, "name": name}).one()
    reasons = [
        text
        for flag, text in (
            (row.rolsuper, "is a superuser"),
            (row.rolcreaterole, "may create roles"),
            (row.rolcreatedb, "may create databases"),
            (row.rolbypassrls, "bypasses row-level security"),
            (row.rolreplication, "may start replication"),
            (name == writer, "is the tasks' writer role (MEDIAMON_WRITER_ROLE)"),
        )
        if flag
    ]
    if row.other_roles:
        reasons.append(f"is a member of {', '.join(row.other_roles)}")
    if row.has_members:
        reasons.append("has members")
    if row.owns:
        reasons.append("owns database objects")
    if row.writes:
        reasons.append("may write tables of this database")
    if not row.in_bi:
        reasons.append(f"is not a member of {BI_ROLE}")
    return reasons


# What makes an existing role unfit to become the writer: `db roles` gives it a new
# password and write grants, which would lock out whoever logs in with it (the owner
# running this command, a superuser) or let a BI login write.
_WRITER_CANDIDATE = sa.text(
    "select r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,"
    " r.rolname = current_user as is_self,"
    " exists (select 1 from pg_auth_members m join pg_roles b on b.oid = m.roleid"
    "          where m.member = r.oid and b.rolname = :bi) as in_bi,"
    " exists (select 1 from pg_shdepend d where d.refclassid = 'pg_authid'::regclass"
    "          and d.refobjid = r.oid and d.deptype = 'o') as owns"
    " from pg_roles r where r.rolname = :name"
)


def _refusals(conn: sa.Connection, writer: Login | None, bi_login: Login | None) -> list[str]:
    """Why the named roles must not be created or changed as asked (empty: go ahead)."""
    if writer and bi_login and writer.name == bi_login.name:
        return [
            f"MEDIAMON_WRITER_ROLE and MEDIAMON_BI_LOGIN both name {writer.name!r}:"
            " the BI login would write"
        ]
    refusals = []
    if writer is not None:
        row = conn.execute(_WRITER_CANDIDATE, {"bi": BI_ROLE, "name": writer.name}).first()
        reasons = [
            text
            for flag, text in (
                (row and row.rolsuper, "is a superuser"),
                (row and row.rolcreaterole, "may create roles"),
                (row and row.rolcreatedb, "may create databases"),
                (row and row.rolbypassrls, "bypasses row-level security"),
                (row and row.rolreplication, "may start replication"),
                (row and row.is_self, "is the role running this command"),
                (row and row.in_bi, f"is a member of {BI_ROLE} (a BI login)"),
                (row and row.owns, "owns database objects"),
            )
            if flag
        ]
        if reasons:
            refusals.append(
                f"MEDIAMON_WRITER_ROLE={writer.name!r} is an existing role that"
                f" {', '.join(reasons)}; name a role of its own"
            )
    if bi_login is not None:
        exists = conn.execute(
            sa.text("select 1 from pg_roles where rolname = :name"), {"name": bi_login.name}
        ).first()
        writer_name = writer.name if writer else None
        if exists and (reasons := bi_login_refusals(conn, bi_login.name, writer_name)):
            refusals.append(
                f"MEDIAMON_BI_LOGIN={bi_login.name!r} is an existing role that"
                f" {', '.join(reasons)}; name a login of its own"
            )
    return refusals


def ensure_roles(engine: sa.Engine, writer: Login | None, bi_login: Login | None) -> list[str]:
    """Create or update the logins and grant what each needs; return what was done.

    The writer may read and write mediamon's tables and draw from their sequences, never
    change the schema; the BI login may only read the ``bi`` views.
    """
    done: list[str] = []
    with engine.begin() as conn:
        if refusals := _refusals(conn, writer, bi_login):
            raise InputError("db roles: " + "; ".join(refusals) + "; nothing was changed")
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
                (already_set,) = cursor.execute(
                    ROLE_SETTING_NAMES, {"name": bi_login.name}
                ).fetchone()
                for default in bi_login_settings(bi_login.name, already_set):
                    run(default)
                run(
                    sql.SQL("grant connect on database {} to {}").format(
                        sql.Identifier(raw.info.dbname), sql.Identifier(bi_login.name)
                    )
                )
                done.append(f"granted {bi_login.name} the read-only role mediamon_bi")
    for line in done:
        logger.info("%s", line)
    return done
