"""The environment mediamon runs Airflow in (without importing Airflow): metadata in the
embedded PostgreSQL (or ``MEDIAMON_AIRFLOW_DATABASE_URL``), DAGs from ``dags/``,
LocalExecutor, every service on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
            else db.embedded_url(settings.var_dir, "airflow", settings.pg_port)
        )
    if metadata_url:
        metadata_url = db.normalize_url(metadata_url)
    # MEDIAMON_AIRFLOW_PORT moves the UI off 8080 (another service, a second checkout).
    port = str(settings.airflow_port)
    defaults = {
        "AIRFLOW_HOME": str(settings.var_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(dags_folder().parent / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The LocalExecutor forks this many workers up front (32 by default: ~2 GB);
        # the ingest DAG maps over as many shards, each using its share of the cores.
        "AIRFLOW__CORE__PARALLELISM": str(box_parallelism()),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": port,
        # Links Airflow writes (the failure mail's log link) name this UI, not :8080.
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # A busy small box answers the execution API slowly: with the default 5 s a task
        # times out, retries a call that had succeeded, and fails on the state conflict.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        # Loopback only: everyone who can reach the UI is admin, no login. Airflow 3.3 reads
        # this option from [core], not [simple_auth_manager].
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "MEDIAMON_VAR_DIR": str(settings.var_dir),
        "MEDIAMON_SOURCES": str(settings.sources_path),
    }
    metadata_url = metadata_url or env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if metadata_url:
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        # For the maintenance DAG's `airflow db clean` (Airflow 3 hides its own setting
        # from tasks).
        defaults["MEDIAMON_AIRFLOW_DATABASE_URL"] = metadata_url
        # Airflow 3.3 derives its async URL with asyncpg, which we do not install.
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = metadata_url.replace(
            "postgresql+psycopg://", "postgresql+psycopg_async://"
        )
    if settings.database_url:
        defaults["MEDIAMON_DATABASE_URL"] = settings.database_url
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def box_parallelism(cores: int | None = None) -> int:
    """Task slots for this machine: two per core (a shard waits on the network part of
    the time), at least 4 so the small tasks of other DAGs still find a slot."""
    return max(4, 2 * (cores or os.cpu_count() or 1))


def airflow_command(args: Sequence[str]) -> list[str]:
    """``airflow ARGS`` with the ``airflow`` script installed beside this Python."""
    return [str(Path(sys.executable).parent / "airflow"), *args]


def run_airflow(settings: Settings, args: Sequence[str], **kwargs: object) -> int:
    """Run one ``airflow`` command in mediamon's environment; return its exit status."""
    env = airflow_environment(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return subprocess.run(airflow_command(args), env=env, check=False, **kwargs).returncode  # type: ignore[call-overload, no-any-return]


SERVICES = (
    ("api-server", "-H", "127.0.0.1"),  # the port: AIRFLOW__API__PORT
    # serve-logs would listen on 0.0.0.0; the api-server reads local log files instead.
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
)


STARTUP_TIMEOUT_S = 180


def services_file(settings: Settings) -> Path:
    """Where ``mediamon run`` notes the process ids it started (for ``mediamon stop``)."""
    return settings.var_dir / "airflow" / "services.pids"


def services_log_dir(settings: Settings) -> Path:
    """Where ``mediamon run`` writes each service's output (``api-server.log`` …)."""
    return settings.var_dir / "airflow" / "logs" / "services"


def run_services(settings: Settings) -> int:
    """Start Airflow's long-running services on loopback; print the UI's address once the
    api-server answers; stop them all on Ctrl-C, on ``mediamon stop``, or when any one
    of them exits."""
    import signal
    import time

    from mediamon.errors import ConfigError

    # Checked before anything starts: a second set of services would find the port taken
    # while the first set's api-server answers the health check (the URL was announced,
    # then "api-server exited"), and its pid file replaced the first set's, so `mediamon
    # stop` no longer found the first set, and two schedulers ran on one database.
    earlier = running_services(settings)
    if earlier:
        raise ConfigError(
            f"the Airflow services of an earlier `mediamon run` still run (pids"
            f" {', '.join(map(str, earlier))}); `mediamon stop` (`make stop`) stops them"
        )
    # the port airflow_environment will give the api-server, known before it starts the
    # embedded database: a refused run leaves nothing running
    port = int(os.environ.get("AIRFLOW__API__PORT") or settings.airflow_port)
    if port_in_use(port):
        raise ConfigError(
            f"MEDIAMON_AIRFLOW_PORT: 127.0.0.1:{port} is in use by another program; stop"
            " it or choose another port"
        )
    env = airflow_environment(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if subprocess.run(airflow_command(["db", "migrate"]), env=env, check=False).returncode:
        return 1
    # Each service leads its own process group, so stopping it stops its workers too.
    # Their output goes to a file each: four services print hundreds of lines a minute,
    # and the one line a person needs here (the UI's address) scrolled away at once.
    api_url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    logs = services_log_dir(settings)
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for args in SERVICES:
        with (logs / f"{args[0]}.log").open("ab") as log:
            processes.append(
                subprocess.Popen(
                    airflow_command(list(args)),
                    env=env,
                    start_new_session=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    pids = services_file(settings)
    pids.write_text("".join(f"{p.pid}\n" for p in processes), encoding="utf-8")
    print(f"starting Airflow's services; their logs: {logs}/", flush=True)
    # The services lead their own sessions, so a SIGTERM (kill, systemd, timeout) or a
    # SIGHUP (the terminal closed) reaches this process only; Python's default for both
    # ends it without the cleanup below, and the services ran on, orphaned.
    previous = _stop_on_signals((signal.SIGTERM, signal.SIGHUP))
    try:
        if _wait_for_api(api_url, processes):
            print(
                f"Airflow UI: {api_url}  (no login on loopback: every user is admin;"
                " `make stop` or Ctrl-C stops every service)",
                flush=True,
            )
        else:
            print(f"mediamon: the Airflow api-server did not answer; see {logs}/",
                  file=sys.stderr, flush=True)  # fmt: skip
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        for (name, *_), process in zip(SERVICES, processes, strict=True):
            # not one that `mediamon stop` ended (SIGTERM: -15 here, or 143 from a shell)
            if process.returncode not in (None, 0, -signal.SIGTERM, 128 + signal.SIGTERM):
                print(f"mediamon: Airflow's {name} exited ({process.returncode});"
                      f" see {logs / name}.log", file=sys.stderr, flush=True)  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        for number in previous:  # a second signal must not cut the cleanup short
            signal.signal(number, signal.SIG_IGN)
        for process in processes:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        pids.unlink(missing_ok=True)
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def _stop_on_signals(numbers: Sequence[int]) -> dict[int, Any]:
    """Make each signal of ``numbers`` stop ``run_services`` as Ctrl-C does; return the
    handlers they had (none changed outside the main thread, where Python forbids it)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt

    return {number: signal.signal(number, interrupt) for number in numbers}


def port_in_use(port: int) -> bool:
    """Whether a program listens on (or holds) 127.0.0.1:``port``."""
    import socket

    with socket.socket() as probe:
        # as uvicorn binds: a port whose last connections wait out TIME_WAIT is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _wait_for_api(api_url: str, processes: Sequence[subprocess.Popen[bytes]]) -> bool:
    """Whether the api-server's health endpoint answered before the timeout (False as
    soon as a service exits)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(f"{api_url}/api/v2/monitor/health", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    return False


def _signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal_number)


def running_services(settings: Settings) -> list[int]:
    """The pids of the services' pid file that still run an ``airflow`` command (so a
    recycled pid is never taken for one)."""
    pids_path = services_file(settings)
    if not pids_path.exists():
        return []
    running = []
    for line in pids_path.read_text(encoding="utf-8").split():
        pid = int(line)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"airflow" in command:
            running.append(pid)
    return running


def stop_services(settings: Settings, timeout_s: float = 30) -> int:
    """Stop the services a ``mediamon run`` started (from its pid file); return how many
    were running. A pid is signalled only while it still runs an ``airflow`` command, so
    a recycled pid is never hit."""
    import signal
    import time

    pids_path = services_file(settings)
    running = running_services(settings)
    for pid in running:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while running and time.monotonic() < deadline:
        running_now = [pid for pid in running if Path(f"/proc/{pid}").exists()]
        if not running_now:
            break
        time.sleep(0.5)
    for pid in running:
        if Path(f"/proc/{pid}").exists():
            _signal_group(pid, signal.SIGKILL)
    pids_path.unlink(missing_ok=True)
    return len(running)
