"""The environment mediamon runs Airflow in (without importing Airflow): metadata in the
embedded PostgreSQL (or ``MEDIAMON_AIRFLOW_DATABASE_URL``), DAGs from ``dags/``,
LocalExecutor, every service on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mediamon import db
from mediamon.settings import PACKAGE_DIR, Settings


def dags_folder() -> Path:
    """The checkout's ``dags/`` (``mediamon run`` and ``demo`` are developer tools; an
    installed image sets ``AIRFLOW__CORE__DAGS_FOLDER``, which wins, see the Dockerfile)."""
    return PACKAGE_DIR.parents[1] / "dags"


def airflow_environment(
    settings: Settings, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables for ``airflow`` commands; values already set in ``base`` win."""
    env = dict(os.environ if base is None else base)
    metadata_url = Settings.from_env(env).airflow_database_url
    if not metadata_url and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env:
        metadata_url = (
            db.ensure_database(settings.database_url, "airflow")
            if settings.database_url
            else db.embedded_url(settings.var_dir, "airflow")
        )
    if metadata_url:
        metadata_url = db.normalize_url(metadata_url)
    defaults = {
        "AIRFLOW_HOME": str(settings.var_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(dags_folder().parent / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:8080/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SIMPLE_AUTH_MANAGER__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "MEDIAMON_VAR_DIR": str(settings.var_dir),
        "MEDIAMON_SOURCES": str(settings.sources_path),
    }
    if metadata_url:
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        # Airflow 3.3 derives its async URL with asyncpg, which we do not install.
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = metadata_url.replace(
            "postgresql+psycopg://", "postgresql+psycopg_async://"
        )
    if settings.database_url:
        defaults["MEDIAMON_DATABASE_URL"] = settings.database_url
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def airflow_command(args: Sequence[str]) -> list[str]:
    """``airflow ARGS`` with the ``airflow`` script installed beside this Python."""
    return [str(Path(sys.executable).parent / "airflow"), *args]


def run_airflow(settings: Settings, args: Sequence[str], **kwargs: object) -> int:
    """Run one ``airflow`` command in mediamon's environment; return its exit status."""
    env = airflow_environment(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return subprocess.run(airflow_command(args), env=env, check=False, **kwargs).returncode  # type: ignore[call-overload, no-any-return]


SERVICES = (
    ("api-server", "-H", "127.0.0.1", "-p", "8080"),
    # serve-logs would listen on 0.0.0.0; the api-server reads local log files instead.
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
)


def run_services(settings: Settings) -> int:
    """Start Airflow's long-running services on loopback; stop them all on Ctrl-C or
    when any one of them exits."""
    import signal
    import time

    env = airflow_environment(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if subprocess.run(airflow_command(["db", "migrate"]), env=env, check=False).returncode:
        return 1
    processes = [subprocess.Popen(airflow_command(list(args)), env=env) for args in SERVICES]
    print("Airflow UI: http://127.0.0.1:8080  (Ctrl-C stops every service)", flush=True)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0
