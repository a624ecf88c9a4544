"""``make superset-check``: import the Superset dashboard into a real Apache Superset, then
look at it as an analyst does. The dashboard's database points at a scratch database
holding the demo's data, read as a fresh ``mediamon_bi`` login; Superset's web server runs
on 127.0.0.1, every chart's data is asked for through its REST API (an error, or no rows,
fails naming the chart and Superset's words) and the dashboard is opened in headless
chromium at desktop width (a screenshot in ``var/test-artifacts/``; an error box fails).
The alert's top stories get titles that are markup as written: a table cell drawing one as
markup instead of showing its text fails. The alert's topic gets a name that is markup, and
the charts are hovered over until a tooltip shows it: drawn as markup, or never shown, fails.

Superset pins SQLAlchemy < 2, so it gets a virtualenv of its own (``var/superset-venv``,
made once) and never shares mediamon's; its metadata lives in a scratch PostgreSQL
database. The server, chromium, the login and both databases are gone afterwards, failed
or not. Nothing here imports Superset.

    python -m mediamon.devtools.superset_check [EXPORT_FOLDER]   # default: the package's
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

from mediamon import db
from mediamon.bi import access, superset_export
from mediamon.devtools.demo_seed import seed_demo
from mediamon.devtools.superset_probe import (
    MARKUP_TITLES,
    MARKUP_TOPIC,
    SupersetApi,
    SupersetProbeError,
    browser_login_cookie,
    check_charts,
    check_dashboard_page,
)
from mediamon.settings import Settings

logger = logging.getLogger(__name__)

# Superset 6.1's wheel misses some of what its importer needs; flask-caching 2.5 breaks it.
SUPERSET_PACKAGES = (
    "apache-superset==6.1.0",
    "flask-caching<2.5",
    "rich",
    "cachetools",
    "psycopg2-binary",
)


def superset_venv(var_dir: Path) -> Path:
    """The ``superset`` command of Superset's own virtualenv, installed on first use."""
    venv = var_dir / "superset-venv"
    command = venv / "bin" / "superset"
    if not command.exists():
        print(f"installing Superset into {venv} (once; a few minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *SUPERSET_PACKAGES], check=True)
    return command


# `superset run` on a busy 2-core machine: importing Superset alone takes 10-20 s
SERVER_START_TIMEOUT_S = 180.0
ADMIN = "admin"
SCREENSHOT = "superset-dashboard-1440.png"


@dataclass(frozen=True)
class CheckReport:
    """What the check found: objects imported, each chart's rows, the screenshot."""

    counts: dict[str, int]
    chart_rows: dict[str, int]
    screenshot: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _bi_login(data_url: str) -> Iterator[str]:
    """A fresh read-only ``mediamon_bi`` login on the data database (made by ``mediamon db
    bi-user``'s code, dropped afterwards: roles outlive databases); its psycopg2 URL."""
    admin = db.make_engine(data_url)
    name = f"superset_check_{uuid.uuid4().hex[:8]}"
    server = sa.make_url(data_url)
    try:
        login = access.create_bi_login(admin, name, None, server.host or "", server.port or 5432)
        url = sa.make_url(login.url)
        yield server.set(
            drivername="postgresql+psycopg2", username=url.username, password=url.password
        ).render_as_string(False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop role if exists "{name}"'))
        admin.dispose()


@contextmanager
def _superset_server(command: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """Superset's web server on 127.0.0.1 only, on a free port; its base URL once
    ``/health`` answers. Stopped (its whole process group) afterwards."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(command), "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so stopping it stops its children
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"superset run exited ({server.returncode}):\n{_tail(log)}")
            try:
                if requests.get(f"{base_url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"superset run did not answer in {SERVER_START_TIMEOUT_S:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.5)
        yield base_url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


def _superset(command: Path, env: dict[str, str], step: Sequence[str]) -> None:
    print(f"superset {step[0]} {step[1] if len(step) > 1 else ''} ...", flush=True)
    done = subprocess.run([str(command), *step], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"superset {' '.join(step[:2])} failed:\n{done.stderr[-3000:]}")


def _count_objects(metadata_url: str) -> dict[str, int]:
    engine = db.make_engine(metadata_url)
    try:
        with engine.connect() as conn:
            return {
                kind: int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
                for kind, table in (
                    ("databases", "dbs"),
                    ("datasets", "tables"),
                    ("charts", "slices"),
                    ("dashboards", "dashboards"),
                )
            }
    finally:
        engine.dispose()


def title_top_stories_as_markup(data_url: str, titles: Sequence[str]) -> None:
    """Give the demo alert's top stories ``titles`` (markup as written, which a feed can
    deliver entity-escaped and ingest stores as text), so the dashboard's table of top
    stories has them to show.

    Raises:
        RuntimeError: the demo's alerts have fewer top stories than ``titles``.
    """
    engine = db.make_engine(data_url)
    try:
        with engine.begin() as conn:
            stories = (
                conn.execute(
                    sa.text(
                        "select top.story_id from bi.alerts al cross join lateral"
                        " bi.topic_window_stories(al.topic, al.window_start, al.window_end) top"
                        " where top.story_rank <= :n order by al.alert_id, top.story_rank"
                    ),
                    {"n": len(titles)},
                )
                .scalars()
                .all()
            )
            if len(stories) < len(titles):
                raise RuntimeError(f"the demo's alerts have {len(stories)} top stories")
            for story, title in zip(stories, titles, strict=False):
                conn.execute(
                    sa.text("update articles set title = :title where article_id = :story"),
                    {"title": title, "story": story},
                )
    finally:
        engine.dispose()


def name_a_topic_as_markup(data_url: str, name: str) -> None:
    """Give the demo topic with an alert the name ``name`` (markup as written), so the
    charts grouped by topic name have it as a series to show in their tooltips."""
    engine = db.make_engine(data_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "update topics set name = :name"
                    " where topic = (select topic from alerts order by alert_id limit 1)"
                ),
                {"name": name},
            )
    finally:
        engine.dispose()


def check(settings: Settings, folder: Path = superset_export.EXPORT_DIR) -> CheckReport:
    """Import the export ``folder`` into a fresh Superset whose database holds the demo's
    data, then ask every chart for its data and draw the dashboard.

    Raises:
        RuntimeError: a Superset command failed, or the import made fewer objects than the
            export holds.
        SupersetProbeError: a chart errors or shows no rows, or the dashboard shows an error.
    """
    command = superset_venv(settings.var_dir)
    admin_url = db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", settings.var_dir / "bench")
    screenshot = settings.var_dir / "test-artifacts" / SCREENSHOT
    password = secrets.token_urlsafe(16)
    (dashboard,) = superset_export.load(folder, "dashboards")
    chart_names = [c["slice_name"] for c in superset_export.load(folder, "charts")]
    with (
        db.scratch_database(admin_url, "superset_meta") as metadata_url,
        db.scratch_database(admin_url, "superset_data") as data_url,
        tempfile.TemporaryDirectory() as work,
    ):
        started = time.monotonic()
        print("seeding the demo's data for the charts ...", flush=True)
        seed_demo(data_url, Path(work) / "demo")
        title_top_stories_as_markup(data_url, MARKUP_TITLES)
        name_a_topic_as_markup(data_url, MARKUP_TOPIC)
        print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)
        config = Path(work) / "superset_config.py"
        secret = secrets.token_urlsafe(32)
        psycopg2_url = sa.make_url(metadata_url).set(drivername="postgresql+psycopg2")
        config.write_text(
            f"SQLALCHEMY_DATABASE_URI = {psycopg2_url.render_as_string(False)!r}\n"
            f"SECRET_KEY = {secret!r}\n",
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "SUPERSET_CONFIG_PATH": str(config),
            "SUPERSET_SECRET_KEY": secret,
            "FLASK_APP": "superset",
        }
        with _bi_login(data_url) as login_url:
            archive = superset_export.build_zip(
                folder, Path(work) / superset_export.ZIP_NAME, login_url
            )
            for step in (
                ["db", "upgrade"],
                ["fab", "create-admin", "--username", ADMIN, "--firstname", "mediamon",
                 "--lastname", "check", "--email", "admin@example.invalid",
                 "--password", password],
                ["init"],
                ["import-dashboards", "-p", str(archive), "-u", ADMIN],
            ):  # fmt: skip
                _superset(command, env, step)
            counts = _count_objects(metadata_url)
            expected = {kind: len(superset_export.load(folder, kind)) for kind in counts}
            if counts != expected:
                raise RuntimeError(f"Superset imported {counts}, the export holds {expected}")
            print("superset run (127.0.0.1) ...", flush=True)
            with _superset_server(command, env, Path(work) / "superset.log") as base_url:
                started = time.monotonic()
                api = SupersetApi(base_url, ADMIN, password)
                results, problems = check_charts(api, chart_names)
                print(f"  {len(results)} charts asked in {time.monotonic() - started:.0f} s")
                started = time.monotonic()
                cookie = browser_login_cookie(base_url, ADMIN, password)
                problems += check_dashboard_page(
                    base_url, dashboard["slug"], cookie, len(chart_names), screenshot
                )
                print(f"  dashboard opened in {time.monotonic() - started:.0f} s", flush=True)
    if problems:
        raise SupersetProbeError(
            "what an analyst would see fail on the imported dashboard"
            f" (screenshot {screenshot}):\n  " + "\n  ".join(problems)
        )
    return CheckReport(counts, {r.name: r.rows for r in results}, screenshot)


def main(argv: Sequence[str] | None = None) -> int:
    # stopped by `kill` (CI ends what is left running), the server, chromium, the login
    # and the scratch databases still go: SystemExit runs the context managers' exits
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args[0]) if args else superset_export.EXPORT_DIR
    try:
        report = check(Settings.from_env(), folder)
    except SupersetProbeError as error:
        print(f"superset-check: {error}", file=sys.stderr)
        return 1
    print("Superset imported " + ", ".join(f"{n} {kind}" for kind, n in report.counts.items()))
    for name, rows in report.chart_rows.items():
        print(f"  {rows:>6} rows  {name}")
    print(f"dashboard drawn without errors: {report.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
