"""``mediamon db bi-user NAME`` on a role that already exists: it gives a new password
only to a plain login of ``mediamon_bi``, and refuses, changing nothing, a role that is
more (the tasks' writer role, a superuser, an owner...), whose login would otherwise break
or which would not read ``bi.*`` only.

The roles are scratch roles with unique names on the shared test server, dropped after
each test: roles are global to the server, so no other role is touched."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.bi import dashboard
from mediamon.cli import main
from mediamon.db import migrate, roles


@pytest.fixture()
def admin(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """The test database as its owner, and the command line pointed at it."""
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.delenv("MEDIAMON_WRITER_ROLE", raising=False)
    monkeypatch.delenv("MEDIAMON_BI_PASSWORD", raising=False)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def scratch_role(admin: sa.Engine) -> Iterator[Callable[[str], str]]:
    """Makes roles with unique names (``create role {} …``) and drops them afterwards."""
    made: list[str] = []

    def make(options: str) -> str:
        name = f"bi_scratch_{uuid.uuid4().hex[:10]}"
        made.append(name)
        with admin.begin() as conn:
            conn.execute(sa.text(f'create role "{name}" {options}'))
        return name

    yield make
    with admin.begin() as conn:
        for name in reversed(made):
            conn.execute(sa.text(f'drop owned by "{name}" cascade'))
            conn.execute(sa.text(f'drop role "{name}"'))


def _state(admin: sa.Engine, name: str) -> tuple[object, ...]:
    """What bi-user would change: the password (its verifier), settings and memberships."""
    with admin.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "select a.rolpassword, r.rolconfig, array(select g.rolname"
                    "  from pg_auth_members m join pg_roles g on g.oid = m.roleid"
                    "  where m.member = a.oid order by 1)"
                    " from pg_authid a join pg_roles r on r.oid = a.oid where a.rolname = :name"
                ),
                {"name": name},
            ).one()
        )


def _refused(admin: sa.Engine, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run bi-user on ``name``; assert it failed in one line and changed nothing."""
    before = _state(admin, name)
    assert main(["db", "bi-user", name]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.count("\n") == 1
    assert out.err.startswith(f"mediamon: bi-user: role '{name}' already exists and ")
    assert _state(admin, name) == before
    return out.err


def test_the_writer_role_is_refused_and_keeps_its_login(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = scratch_role("login password 'writer-pass'")
    roles.ensure_roles(admin, roles.Login(writer, "writer-pass"), None)
    # Known by its privileges alone, and named when MEDIAMON_WRITER_ROLE says it is.
    assert "may write tables of this database" in _refused(admin, writer, capsys)
    monkeypatch.setenv("MEDIAMON_WRITER_ROLE", writer)
    assert "is the tasks' writer role (MEDIAMON_WRITER_ROLE)" in _refused(admin, writer, capsys)
    # a login in the writer role, even one made a member of mediamon_bi too
    member = scratch_role(f'login in role "{writer}", mediamon_bi')
    assert f"is a member of {writer}" in _refused(admin, member, capsys)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("login superuser in role mediamon_bi", "is a superuser"),
        ("login createrole in role mediamon_bi", "may create roles"),
        ("login createdb in role mediamon_bi", "may create databases"),
        ("login bypassrls in role mediamon_bi", "bypasses row-level security"),
        ("login replication in role mediamon_bi", "may start replication"),
        ("login", "is not a member of mediamon_bi"),
        ("login in role mediamon_bi, pg_read_all_data", "is a member of pg_read_all_data"),
    ],
)
def test_a_role_that_is_more_than_a_bi_login_is_refused(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    options: str,
    reason: str,
) -> None:
    assert reason in _refused(admin, scratch_role(options), capsys)


def test_an_owner_a_writer_or_a_group_is_refused(
    admin: sa.Engine, scratch_role: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    owner = scratch_role("login in role mediamon_bi")
    writes = scratch_role("login in role mediamon_bi")
    group = scratch_role("nologin in role mediamon_bi")
    scratch_role(f'login in role "{group}"')
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{owner}" authorization "{owner}"'))
        conn.execute(sa.text(f'grant insert on public.articles to "{writes}"'))
    assert "owns database objects" in _refused(admin, owner, capsys)
    assert "may write tables of this database" in _refused(admin, writes, capsys)
    assert "has members" in _refused(admin, group, capsys)


def test_a_plain_bi_login_gets_a_new_password(
    admin: sa.Engine, scratch_role: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = scratch_role("login password 'old' in role mediamon_bi")
    before = _state(admin, name)
    assert main(["db", "bi-user", name]) == 0
    assert f"new password for {name} in role mediamon_bi" in capsys.readouterr().err
    after = _state(admin, name)
    assert after[0] != before[0]
    assert after[1] == [
        "default_transaction_read_only=on",
        "jit=off",
        "statement_timeout=60s",
        "idle_in_transaction_session_timeout=5min",
        "work_mem=64MB",
    ]


def test_a_bi_login_keeps_the_limits_an_administrator_chose(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bi-user and db roles run again give a login the defaults it has no value for, and
    read-only sessions always; a timeout or work_mem set by hand stays."""
    made = scratch_role("login password 'old' in role mediamon_bi")
    named = scratch_role("login password 'old' in role mediamon_bi")
    for name in (made, named):
        with admin.begin() as conn:
            conn.execute(sa.text(f"alter role \"{name}\" set statement_timeout = '10min'"))
            conn.execute(sa.text(f"alter role \"{name}\" set work_mem = '16MB'"))
            conn.execute(sa.text(f'alter role "{name}" set default_transaction_read_only = off'))
    assert main(["db", "bi-user", made]) == 0, capsys.readouterr()
    roles.ensure_roles(admin, None, roles.Login(named, "db-roles-pass"))
    for name in (made, named):
        assert _state(admin, name)[1] == [
            "statement_timeout=10min",
            "work_mem=16MB",
            "default_transaction_read_only=on",
            "jit=off",
            "idle_in_transaction_session_timeout=5min",
        ], name


def _roles_refused(
    admin: sa.Engine,
    names: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    writer: str | None = None,
    bi_login: str | None = None,
) -> str:
    """Run `db roles` naming ``writer`` and ``bi_login``; assert one line, exit 2, and
    that none of ``names`` changed."""
    for variable, value in (("WRITER_ROLE", writer), ("BI_LOGIN", bi_login)):
        if value is None:
            monkeypatch.delenv(f"MEDIAMON_{variable}", raising=False)
        else:
            monkeypatch.setenv(f"MEDIAMON_{variable}", value)
    monkeypatch.setenv("MEDIAMON_WRITER_PASSWORD", "new-writer-pass")
    monkeypatch.setenv("MEDIAMON_BI_PASSWORD", "new-bi-pass")
    before = [_state(admin, name) for name in names]
    assert main(["db", "roles"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1, out
    assert out.err.startswith("mediamon: db roles: ") and "nothing was changed" in out.err
    assert [_state(admin, name) for name in names] == before
    return out.err


def test_db_roles_refuses_to_make_a_writer_of_a_role_that_is_more(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: `MEDIAMON_WRITER_ROLE=postgres mediamon db roles` gave the superuser (or the
    owner running it) a new password; a BI login named as writer was given write grants."""
    superuser = scratch_role("login superuser password 'keep'")
    bi_login = scratch_role("login password 'keep' in role mediamon_bi")
    for name, reason in ((superuser, "is a superuser"), (bi_login, "is a member of mediamon_bi")):
        err = _roles_refused(admin, [name], capsys, monkeypatch, writer=name)
        assert f"MEDIAMON_WRITER_ROLE='{name}' is an existing role that" in err and reason in err
    with admin.connect() as conn:
        me = conn.execute(sa.text("select current_user")).scalar_one()
    err = _roles_refused(admin, [], capsys, monkeypatch, writer=me)
    assert "is the role running this command" in err


def test_db_roles_refuses_a_bi_login_that_is_more_or_is_the_writer(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    superuser = scratch_role("login superuser password 'keep' in role mediamon_bi")
    err = _roles_refused(admin, [superuser], capsys, monkeypatch, bi_login=superuser)
    assert f"MEDIAMON_BI_LOGIN='{superuser}'" in err and "is a superuser" in err
    same = scratch_role("login password 'keep'")
    err = _roles_refused(admin, [same], capsys, monkeypatch, writer=same, bi_login=same)
    assert "both name" in err


def test_db_roles_run_again_updates_its_own_roles(
    admin: sa.Engine,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refusals leave the command's own re-run alone: new passwords, same grants."""
    writer = scratch_role("login password 'old'")
    bi_login = scratch_role("login password 'old' in role mediamon_bi")
    roles.ensure_roles(admin, roles.Login(writer, "w1"), roles.Login(bi_login, "b1"))
    before = (_state(admin, writer), _state(admin, bi_login))
    monkeypatch.setenv("MEDIAMON_WRITER_ROLE", writer)
    monkeypatch.setenv("MEDIAMON_WRITER_PASSWORD", "w2")
    monkeypatch.setenv("MEDIAMON_BI_LOGIN", bi_login)
    monkeypatch.setenv("MEDIAMON_BI_PASSWORD", "b2")
    assert main(["db", "roles"]) == 0, capsys.readouterr()
    after = (_state(admin, writer), _state(admin, bi_login))
    assert after[0][0] != before[0][0] and after[1][0] != before[1][0]
    assert after[0][1:] == before[0][1:] and after[1][1:] == before[1][1:]


# What dashboards ask that is planned above jit_above_cost on a year of data (bi.topic_daily
# for every topic, make bench-bi): the login's plan of it must not compile.
ALL_TOPICS_DAILY = "select topic, sum(stories) from bi.topic_daily group by topic"


def _as_login(database_url: str, name: str, password: str) -> sa.Engine:
    """An engine logged in as ``name`` (a session of its own: role settings apply at login)."""
    url = sa.make_url(database_url).set(username=name, password=password)
    return db.make_engine(url.render_as_string(hide_password=False))


def _session_of(engine: sa.Engine) -> tuple[str, str, str]:
    """The login's jit and read-only defaults, and its plan of ALL_TOPICS_DAILY with every
    query costly enough for JIT (so only ``jit = off`` keeps JIT out of it)."""
    with engine.connect() as conn:
        jit = conn.execute(sa.text("show jit")).scalar_one()
        read_only = conn.execute(sa.text("show default_transaction_read_only")).scalar_one()
        conn.execute(sa.text("set jit_above_cost = 0"))
        plan = "\n".join(conn.execute(sa.text(f"explain {ALL_TOPICS_DAILY}")).scalars())
    engine.dispose()
    return jit, read_only, plan


def test_bi_logins_run_without_jit(
    admin: sa.Engine,
    database_url: str,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a BI login compiled its plans with JIT like any session, about a second on
    bi.topic_daily for every topic of a year (README, bench). Set on mediamon_bi the
    setting would reach no one (a role's settings apply when it logs in), so both ways of
    making a login set it on the login, and the page reads without it too."""
    made = scratch_role("login password 'old' in role mediamon_bi")
    monkeypatch.setenv("MEDIAMON_BI_PASSWORD", "bi-user-pass")
    assert main(["db", "bi-user", made]) == 0, capsys.readouterr()
    named = scratch_role("login password 'old' in role mediamon_bi")
    roles.ensure_roles(admin, None, roles.Login(named, "db-roles-pass"))
    for name, password in ((made, "bi-user-pass"), (named, "db-roles-pass")):
        jit, read_only, plan = _session_of(_as_login(database_url, name, password))
        assert (jit, read_only) == ("off", "on"), name
        assert "JIT" not in plan, plan
    # the same query as the owner with JIT on does compile: the check above can fail
    with admin.connect() as conn:
        conn.execute(sa.text("set jit = on"))
        conn.execute(sa.text("set jit_above_cost = 0"))
        if conn.execute(sa.text("select pg_jit_available()")).scalar_one():
            owner_plan = conn.execute(sa.text(f"explain {ALL_TOPICS_DAILY}")).scalars().all()
            assert any("JIT" in line for line in owner_plan)
    with dashboard.read_only(admin) as conn:
        assert conn.execute(sa.text("show jit")).scalar_one() == "off"
        # and hashes with a BI login's work_mem, as the bench reads (bench/bi_scale.py)
        assert conn.execute(sa.text("show work_mem")).scalar_one() == "64MB"


def test_migration_0023_turns_jit_off_for_the_bi_logins_made_before(
    admin: sa.Engine, scratch_role: Callable[[str], str]
) -> None:
    """Logins made by bi-user before 0023 ran with JIT: the migration sets it off on each
    plain login of mediamon_bi, and leaves a login whose jit was chosen, and other roles."""
    before = scratch_role("login password 'old' in role mediamon_bi")
    chosen = scratch_role("login password 'old' in role mediamon_bi")
    other = scratch_role("login password 'old'")
    with admin.begin() as conn:
        conn.execute(sa.text(f'alter role "{before}" set default_transaction_read_only = on'))
        conn.execute(sa.text(f'alter role "{chosen}" set jit = on'))
    (migration,) = [m.sql for m in migrate.load_migrations() if m.version == 23]
    with admin.begin() as conn:
        conn.exec_driver_sql(migration)
    assert _state(admin, before)[1] == ["default_transaction_read_only=on", "jit=off"]
    assert _state(admin, chosen)[1] == ["jit=on"]
    assert _state(admin, other)[1] is None


def test_a_bi_logins_runaway_statement_is_cancelled_after_a_minute(
    admin: sa.Engine,
    database_url: str,
    scratch_role: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a BI login (Superset's, an analyst's psql) had no statement_timeout, so one
    runaway query held its backend and its locks for ever; only mediamon's own page set
    one. Now every login both commands make ends a statement after a minute, leaves an
    idle transaction after 5 minutes, and hashes with 64 MB of work_mem."""
    made = scratch_role("login password 'old' in role mediamon_bi")
    monkeypatch.setenv("MEDIAMON_BI_PASSWORD", "bi-user-pass")
    assert main(["db", "bi-user", made]) == 0, capsys.readouterr()
    named = scratch_role("login password 'old' in role mediamon_bi")
    roles.ensure_roles(admin, None, roles.Login(named, "db-roles-pass"))
    logins = {made: "bi-user-pass", named: "db-roles-pass"}

    def sleep_past_the_limit(name: str) -> tuple[str, float]:
        engine = _as_login(database_url, name, logins[name])
        started = time.monotonic()
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select pg_sleep(75)"))
        except sa.exc.OperationalError as error:
            return type(error.orig).__name__, time.monotonic() - started
        finally:
            engine.dispose()
        return "finished", time.monotonic() - started

    # both at once: a minute in all
    with ThreadPoolExecutor(len(logins)) as pool:
        outcomes = dict(zip(logins, pool.map(sleep_past_the_limit, logins), strict=True))
    for name, (outcome, seconds) in outcomes.items():
        assert outcome == "QueryCanceled" and 59 < seconds < 70, (name, outcome, seconds)
        engine = _as_login(database_url, name, logins[name])
        with engine.connect() as conn:
            shown = [
                conn.execute(sa.text(f"show {setting}")).scalar_one()
                for setting in ("statement_timeout", "idle_in_transaction_session_timeout",
                                "work_mem")
            ]  # fmt: skip
        engine.dispose()
        assert shown == ["1min", "5min", "64MB"], name


def test_migration_0027_limits_the_bi_logins_made_before(
    admin: sa.Engine, scratch_role: Callable[[str], str]
) -> None:
    """Logins made before 0027 had no statement timeout: the migration gives each plain
    login of mediamon_bi the defaults bi-user gives, keeps a value set by hand, and leaves
    other roles and superusers alone."""
    before = scratch_role("login password 'old' in role mediamon_bi")
    chosen = scratch_role("login password 'old' in role mediamon_bi")
    other = scratch_role("login password 'old'")
    superuser = scratch_role("login superuser password 'old' in role mediamon_bi")
    with admin.begin() as conn:
        conn.execute(sa.text(f'alter role "{before}" set default_transaction_read_only = on'))
        conn.execute(sa.text(f'alter role "{before}" set jit = off'))
        conn.execute(sa.text(f'alter role "{chosen}" set statement_timeout = 0'))
    (migration,) = [m.sql for m in migrate.load_migrations() if m.version == 27]
    with admin.begin() as conn:
        conn.exec_driver_sql(migration)
    assert sorted(_state(admin, before)[1]) == sorted(
        f"{setting}={value}" for setting, value in roles.BI_LOGIN_SETTINGS
    )
    assert _state(admin, chosen)[1] == [
        "statement_timeout=0",
        "idle_in_transaction_session_timeout=5min",
        "work_mem=64MB",
    ]
    assert _state(admin, other)[1] is None
    assert _state(admin, superuser)[1] is None
