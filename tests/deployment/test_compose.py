"""docker-compose.yml run natively (`make celery-smoke`; no Docker engine runs here): each
service's command runs on this machine with the environment the file gives it (variables
from .env.example), against the local PostgreSQL and Redis. Host names map to 127.0.0.1
(airflowdb, newsdb, redis, api-server) and container paths to folders here; the role and
database names get a unique suffix, since the shared server's roles are global.
airflow-init migrates and creates the logins, the api-server answers and logs the admin
in, both Celery workers answer a ping, and a triggered ingest runs on them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bench import airflow_stack
from bench.feedfarm import serve_farm
from mediamon import db
from tests.support import REPO_ROOT
from tests.support.compose import ENV_EXAMPLE, airflow_services, compose, read_env_file


def _sql(statement: str, url: str | None = None) -> None:
    admin = url or db.scratch_admin_url("MEDIAMON_TEST_DATABASE_URL", REPO_ROOT / "var")
    engine = sa.create_engine(db.normalize_url(admin), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture()
def native(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The compose file resolved for this machine, with the databases and roles the
    postgres containers would create (POSTGRES_USER / POSTGRES_DB) made on the local server."""
    suffix = uuid.uuid4().hex[:8]
    variables = read_env_file(ENV_EXAMPLE)
    for key in ("AIRFLOW_DB_USER", "NEWSDB_OWNER", "MEDIAMON_WRITER_ROLE", "MEDIAMON_BI_LOGIN"):
        variables[key] = f"{variables[key]}_ct_{suffix}"  # the shell's values win, as in Compose
    names = {"airflow": f"airflow_ct_{suffix}", "mediamon": f"mediamon_ct_{suffix}"}
    owners = {"airflow": variables["AIRFLOW_DB_USER"], "mediamon": variables["NEWSDB_OWNER"]}
    passwords = {
        "airflow": variables["AIRFLOW_DB_PASSWORD"],
        "mediamon": variables["NEWSDB_OWNER_PASSWORD"],
    }
    for key, owner in owners.items():
        _sql(f"create role \"{owner}\" login createrole password '{passwords[key]}'")
        _sql(f'create database "{names[key]}" owner "{owner}"')
    try:
        yield {"variables": variables, "databases": names, "document": compose(variables)}
    finally:
        for name in names.values():
            _sql(f'drop database if exists "{name}" with (force)')
        for role in (
            *owners.values(),
            variables["MEDIAMON_WRITER_ROLE"],
            variables["MEDIAMON_BI_LOGIN"],
        ):
            _sql(f'drop role if exists "{role}"')


def _native_env(
    service: dict[str, Any], name: str, databases: dict[str, str], paths: dict[str, Path],
    api_port: int, home: Path, key_prefix: str,
) -> dict[str, str]:  # fmt: skip
    """A service's environment as its container would see it, mapped to this machine."""
    hosts = {
        "@airflowdb:5432/airflow": f"@127.0.0.1:5432/{databases['airflow']}",
        "@newsdb:5432/mediamon": f"@127.0.0.1:5432/{databases['mediamon']}",
        "redis://redis:6379": "redis://127.0.0.1:6379",
        "http://api-server:8080": f"http://127.0.0.1:{api_port}",
        '"host":"mailpit"': '"host":"127.0.0.1"',
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEDIAMON"))}
    for key, value in service["environment"].items():
        text = str(value)
        for old, new in hosts.items():
            text = text.replace(old, new)
        for container, here in paths.items():
            text = text.replace(container, str(here))
        env[key] = text
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            # What the image and the container runtime provide.
            "AIRFLOW_HOME": str(home),
            "HOSTNAME": socket.gethostname(),
            "PATH": f"{Path(airflow_stack.airflow_bin()).parent}{os.pathsep}{env.get('PATH', '')}",
            # A container's own network namespace, emulated: free loopback ports.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                airflow_stack.free_port()
            ),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(airflow_stack.free_port()),
            # This Redis is shared with other programs: our keys under a prefix.
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": key_prefix,
        }
    )
    return env


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    args = command if isinstance(command, list) else shlex.split(command)
    if service.get("entrypoint") == "/bin/bash":
        return ["bash", *args]
    return [airflow_stack.airflow_bin(), *args]  # the image's entrypoint runs `airflow ARGS`


def _healthcheck(service: dict[str, Any], env: dict[str, str], api_port: int) -> int:
    test = service["healthcheck"]["test"]
    kind, *rest = test
    script = rest[0] if kind == "CMD-SHELL" else shlex.join(rest)
    script = script.replace("http://localhost:8080", f"http://127.0.0.1:{api_port}")
    script = script.replace("celery ", f"{Path(airflow_stack.airflow_bin()).parent / 'celery'} ", 1)
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True).returncode


def test_compose_services_run_natively_and_ingest(native: dict[str, Any], tmp_path: Path) -> None:
    document, variables, databases = native["document"], native["variables"], native["databases"]
    services = airflow_services(document)
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    paths = {
        "/opt/airflow/dags": REPO_ROOT / "dags",
        "/opt/airflow/plugins": REPO_ROOT / "plugins",
        "/opt/airflow/logs": tmp_path / "logs",
        "/opt/airflow/auth": tmp_path / "auth",
        "/opt/mediamon/config": config,
    }
    api_port, key_prefix = airflow_stack.free_port(), f"mediamon-ct-{uuid.uuid4().hex[:8]}:"
    envs = {
        name: _native_env(
            service, name, databases, paths, api_port, tmp_path / "home" / name, key_prefix
        )
        for name, service in services.items()
    }
    init = subprocess.run(
        _command(services["airflow-init"]), env=envs["airflow-init"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    assert (
        f"mediamon is ready: http://127.0.0.1:8080 (login {variables['AIRFLOW_ADMIN_USER']})"
        in init.stdout
    )
    news_url = db.normalize_url(envs["api-server"]["MEDIAMON_DATABASE_URL"])
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied for schema public"):
        _sql("create table intruder (x int)", news_url)  # the writer cannot change the schema
    bi_url = sa.make_url(news_url).set(
        username=variables["MEDIAMON_BI_LOGIN"], password=variables["MEDIAMON_BI_PASSWORD"]
    )
    bi = bi_url.render_as_string(hide_password=False)
    _sql("select count(*) from bi.articles", bi)
    with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
        _sql("delete from sources", bi)  # a BI login's transactions are read-only by default
    read_write = bi_url.update_query_dict({"options": "-c default_transaction_read_only=off"})
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        # and a login that asks for read-write still may not write
        _sql("delete from sources", read_write.render_as_string(hide_password=False))

    metadata_url = envs["api-server"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    with (
        serve_farm(4, 2) as farm,
        airflow_stack.running(envs["api-server"], metadata_url) as stack,
    ):
        farm.sources_yaml(config / "sources.yaml")
        for name in (
            "api-server",
            "scheduler",
            "dag-processor",
            "triggerer",
            "worker-ingest",
            "worker-default",
        ):
            stack.start(name, _command(services[name])[1:], env=envs[name])
        stack.wait_for_api()
        assert _healthcheck(services["api-server"], envs["api-server"], api_port) == 0
        token = requests.post(
            f"{stack.api_url}/auth/token",
            json={
                "username": variables["AIRFLOW_ADMIN_USER"],
                "password": variables["AIRFLOW_ADMIN_PASSWORD"],
            },
            timeout=30,
        )
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        wrong = requests.post(
            f"{stack.api_url}/auth/token",
            json={"username": variables["AIRFLOW_ADMIN_USER"], "password": "wrong"},
            timeout=30,
        )
        assert wrong.status_code == 401
        stack.wait_for_dag("mediamon_ingest")
        for worker in ("worker-ingest", "worker-default"):
            assert _healthcheck(services[worker], envs[worker], api_port) == 0, worker
        # The run the schedule starts when the DAG appears may poll them first: the
        # triggered run forces a poll, and queues behind it (max_active_runs=1).
        created = requests.post(
            f"{stack.api_url}/api/v2/dags/mediamon_ingest/dagRuns",
            # force: a run the schedule started at a quarter hour may have polled them
            json={"logical_date": None, "conf": {"force": True}},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 200, created.text
        run_id = created.json()["dag_run_id"]
        times = stack.wait_for_run("mediamon_ingest", run_id, timeout_s=300)
        tasks = stack.task_instances("mediamon_ingest", run_id)
    assert times.state == "success", [(t["task_id"], t["state"]) for t in tasks]
    for task in (t for t in tasks if t["state"] == "success"):
        assert task["queue"] == ("ingest" if task["task_id"] == "ingest_shard" else "default")
    assert {t["task_id"] for t in tasks if t["state"] == "success"} >= {
        "plan_sources", "ingest_shard", "summarize",
    }  # fmt: skip
    engine = sa.create_engine(news_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from articles")).scalar_one() == 8
    engine.dispose()
    passwords = json.loads((tmp_path / "auth" / "passwords.json").read_text("utf-8"))
    assert passwords == {variables["AIRFLOW_ADMIN_USER"]: variables["AIRFLOW_ADMIN_PASSWORD"]}
