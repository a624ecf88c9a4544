"""Airflow's services started for real, each in its own process on 127.0.0.1 (api-server,
scheduler, dag-processor, Celery workers), as `mediamon run` or the compose file starts
them: shared by the scale benchmark, `make celery-smoke` and the compose test.

The metadata database is a scratch database on the local server; it is migrated once
per process into a template and copied (``create database … template …``) per stack.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from bench.common import REPO_ROOT
from mediamon import db

_TEMPLATES: dict[str, str] = {}  # admin URL -> migrated template database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _admin_url() -> str:
    return db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", REPO_ROOT / "var" / "bench")


def _sql_admin(statement: str) -> None:
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def migrated_template(env: Mapping[str, str]) -> str:
    """A metadata database with Airflow's schema, made once (``airflow db migrate``)."""
    admin = _admin_url()
    if admin not in _TEMPLATES:
        name = f"airflow_template_{uuid.uuid4().hex[:8]}"
        url = db.ensure_database(admin, name)
        migrate_env = {
            **env,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.normalize_url(url),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db.normalize_url(url).replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://"
            ),
        }
        done = subprocess.run(
            [airflow_bin(), "db", "migrate"], env=migrate_env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed: {done.stderr[-3000:]}")
        _TEMPLATES[admin] = name
    return _TEMPLATES[admin]


@contextmanager
def metadata_database(env: Mapping[str, str]) -> Iterator[str]:
    """A fresh, migrated metadata database (a copy of the template); dropped afterwards."""
    template = migrated_template(env)
    name = f"airflow_stack_{uuid.uuid4().hex[:8]}"
    _sql_admin(f'create database "{name}" template "{template}"')
    try:
        yield sa.make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        _sql_admin(f'drop database if exists "{name}" with (force)')


def drop_templates() -> None:
    """Drop the template databases this process made."""
    for name in _TEMPLATES.values():
        _sql_admin(f'drop database if exists "{name}" with (force)')
    _TEMPLATES.clear()


def stack_environment(base: Mapping[str, str], metadata_url: str, home: Path) -> dict[str, str]:
    """One shared configuration for every service: metadata database, secrets, the
    api-server on a free loopback port (never 8080, other programs run here too)."""
    port = free_port()
    url = db.normalize_url(metadata_url)
    env = dict(base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url.replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://"
            ),
            "MEDIAMON_AIRFLOW_DATABASE_URL": url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
    )
    return env


@dataclass
class Stack:
    """Running Airflow services."""

    env: dict[str, str]
    metadata_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _token: str | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start ``airflow ARGS`` as service ``name``, its output in a log file."""
        log = Path(self.env["AIRFLOW_HOME"]) / f"{name}.out"
        self.logs[name] = log
        with log.open("wb") as out:
            self.processes[name] = subprocess.Popen(
                [airflow_bin(), *args],
                env=dict(env if env is not None else self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )

    def start_components(self) -> None:
        """Airflow's own components, each started alone (``airflow standalone`` and
        serve-logs would listen on 0.0.0.0): the api-server on 127.0.0.1, the scheduler
        without serve-logs, the dag-processor."""
        port = self.env["AIRFLOW__API__PORT"]
        self.start("api-server", ["api-server", "-H", "127.0.0.1", "-p", port])
        self.start("scheduler", ["scheduler", "--skip-serve-logs"])
        self.start("dag-processor", ["dag-processor"])

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[name].read_text("utf-8", "replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def wait_for_api(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"api-server at {self.api_url} did not answer in {timeout_s} s")

    def metadata(self) -> sa.Engine:
        return sa.create_engine(db.normalize_url(self.metadata_url))

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180) -> None:
        """Until the dag-processor has serialized ``dag_id``."""
        self._wait(
            "select 1 from serialized_dag where dag_id = :dag_id",
            {"dag_id": dag_id},
            timeout_s,
            f"{dag_id} was not parsed",
        )

    def wait_until_idle(self, dag_id: str, timeout_s: float = 300) -> None:
        """Until ``dag_id`` has no queued or running run (the scheduled run the scheduler
        makes when the DAG appears, say)."""
        self._wait(
            "select 1 where not exists (select from dag_run where dag_id = :dag_id"
            " and state in ('queued', 'running'))",
            {"dag_id": dag_id},
            timeout_s,
            f"{dag_id} still has a run going",
        )

    def api(self, method: str, path: str, body: dict[str, object]) -> dict[str, Any]:
        """One call of the api-server's public REST API (``/api/v2``), authorized by the
        JWT the simple auth manager hands out without credentials to a stack whose users
        are all admins (``airflow_environment`` sets it: loopback only). An ``airflow``
        command per call paid an interpreter and Airflow's import (seconds each,
        bench.airflow_calls) for one request; the token is fetched once and again when
        it has expired (401).

        Raises:
            RuntimeError: the api-server refused the call (its answer quoted).
        """
        for fresh in (False, True):
            if self._token is None or fresh:
                got = requests.get(f"{self.api_url}/auth/token", timeout=30)
                if not got.ok:
                    raise RuntimeError(f"no API token: HTTP {got.status_code} {got.text[:500]}")
                self._token = str(got.json()["access_token"])
            answer = requests.request(
                method,
                f"{self.api_url}/api/v2/{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=60,
            )
            if answer.status_code != 401:
                break
        if not answer.ok:
            said = f"HTTP {answer.status_code} {answer.text[:2000]}"
            raise RuntimeError(f"{method} /api/v2/{path}: {said}")
        return dict(answer.json())

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, object] | None = None,
        run_id: str | None = None,
        logical_date: datetime | None = None,
    ) -> str:
        """Trigger ``dag_id`` as ``airflow dags trigger`` does (no logical date unless
        given); returns the run id."""
        run_id = run_id or f"bench__{uuid.uuid4().hex[:10]}"
        self.api(
            "POST",
            f"dags/{dag_id}/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": logical_date.isoformat() if logical_date else None,
                "conf": conf or {},
            },
        )
        return run_id

    def trigger_with_cli(self, dag_id: str, conf: dict[str, object] | None = None) -> str:
        """:meth:`trigger` the way it was done before, through the ``airflow`` command
        (kept for bench.airflow_calls, which compares the two)."""
        run_id = f"bench__{uuid.uuid4().hex[:10]}"
        done = subprocess.run(
            [airflow_bin(), "dags", "trigger", dag_id, "-r", run_id, "-c", json.dumps(conf or {})],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"trigger failed: {done.stderr[-2000:]}")
        return run_id

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def clear(self, dag_id: str, run_id: str) -> None:
        """Clear every task of one run (``airflow tasks clear --yes`` over its interval),
        so the scheduler runs it again."""
        self.api(
            "POST",
            f"dags/{dag_id}/clearTaskInstances",
            {"dry_run": False, "dag_run_id": run_id, "only_failed": False},
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float) -> RunTimes:
        """Until the run ends; its state and times from the metadata database."""
        deadline = time.monotonic() + timeout_s
        engine = self.metadata()
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                with engine.connect() as conn:
                    row = conn.execute(
                        sa.text(
                            "select state, queued_at, start_date, end_date from dag_run"
                            " where dag_id = :dag_id and run_id = :run_id"
                        ),
                        {"dag_id": dag_id, "run_id": run_id},
                    ).first()
                if row is not None and row.state in ("success", "failed"):
                    return RunTimes(row.state, row.queued_at, row.start_date, row.end_date)
                time.sleep(1)
        finally:
            engine.dispose()
        raise TimeoutError(f"{dag_id} run {run_id} did not end in {timeout_s} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, object]]:
        engine = self.metadata()
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "select task_id, map_index, rendered_map_index, state, hostname, queue,"
                        " executor, start_date, end_date from task_instance"
                        " where dag_id = :dag_id and run_id = :run_id order by task_id, map_index"
                    ),
                    {"dag_id": dag_id, "run_id": run_id},
                ).mappings()
                return [dict(r) for r in rows]
        finally:
            engine.dispose()

    def _wait(self, query: str, params: dict[str, object], timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        engine = self.metadata()
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                with engine.connect() as conn:
                    if conn.execute(sa.text(query), params).first() is not None:
                        return
                time.sleep(1)
        finally:
            engine.dispose()
        raise TimeoutError(f"{message} in {timeout_s} s")

    def stop_component(self, name: str, grace_s: float = 60) -> None:
        """Stop one service (to start it again otherwise): SIGTERM its process group, and
        SIGKILL what is left after ``grace_s``. A scheduler finishing its loop on a
        machine under load sometimes outlived a minute's wait for SIGTERM alone."""
        import psutil

        process = self.processes.pop(name)
        descendants: list[psutil.Process] = []
        with suppress(psutil.Error):
            descendants = psutil.Process(process.pid).children(recursive=True)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for child in descendants:
                with suppress(psutil.Error):
                    child.kill()

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM every service's process group, then SIGKILL what is left after
        ``grace_s``, including task processes that moved to process groups of their own."""
        import psutil

        descendants: list[psutil.Process] = []
        for process in self.processes.values():
            with suppress(psutil.Error):
                descendants += psutil.Process(process.pid).children(recursive=True)
        for process in self.processes.values():
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for process in self.processes.values():  # stray processes of a group
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for child in descendants:
            with suppress(psutil.Error):
                child.kill()


@dataclass(frozen=True)
class RunTimes:
    state: str
    queued_at: datetime
    start_date: datetime | None
    end_date: datetime | None

    @property
    def cycle_s(self) -> float:
        """Trigger (queued) to run end."""
        return ((self.end_date or self.queued_at) - self.queued_at).total_seconds()


@contextmanager
def running(env: dict[str, str], metadata_url: str, stop_grace_s: float = 30) -> Iterator[Stack]:
    """A :class:`Stack` stopped on exit, whatever happens; ``stop_grace_s``: how long its
    services get to stop on SIGTERM (a test that has read what it needs lets them go
    sooner: a scheduler finishing its loop under load took the whole 30 s)."""
    stack = Stack(env=env, metadata_url=metadata_url)
    try:
        yield stack
    finally:
        stack.stop(stop_grace_s)


def worker_hostname() -> str:
    """The hostname a task instance records: the Celery worker's name when several run
    on one machine (``AIRFLOW__CORE__HOSTNAME_CALLABLE`` points here), else the FQDN."""
    return os.environ.get("MEDIAMON_WORKER_NAME") or socket.getfqdn()


def celery_environment(env: Mapping[str, str], metadata_url: str) -> dict[str, str]:
    """``env`` with the CeleryExecutor: Redis on 127.0.0.1:6379 as broker (keys under a
    prefix of their own: other programs share this Redis), PostgreSQL as result backend."""
    celery = dict(env)
    celery.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": os.environ.get(
                "MEDIAMON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
            ),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db.normalize_url(metadata_url),
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": (
                f"mediamon-{uuid.uuid4().hex[:8]}:"
            ),
        }
    )
    return celery


def start_celery_worker(stack: Stack, name: str, queues: str, concurrency: int) -> None:
    """``airflow celery worker`` serving ``queues`` as node ``name@host`` (no log server:
    it would listen on 0.0.0.0); task instances record ``name`` as their hostname."""
    home = Path(stack.env["AIRFLOW_HOME"])
    env = {
        **stack.env,
        "MEDIAMON_WORKER_NAME": name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bench.airflow_stack.worker_hostname",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    stack.start(
        name,
        [
            *("celery", "worker", "-q", queues, "--skip-serve-logs", "-H", f"{name}@%h"),
            *("--pid", str(home / f"{name}.pid"), "-c", str(concurrency)),
            *("--without-gossip", "--without-mingle"),
        ],
        env=env,
    )
