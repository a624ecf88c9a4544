"""docker-compose.yml, checked without Docker (no engine runs here): read the way Compose
reads it, with the variables of .env.example. Published ports on 127.0.0.1, one set of
secrets shared by every Airflow service, healthchecks and restart policies, config and
logs mounted, least-privilege logins, every required variable defined in .env.example.
tests/deployment/test_compose.py runs the services' commands natively."""

from __future__ import annotations

import re

import pytest

from tests.support import REPO_ROOT
from tests.support.compose import COMPOSE, ENV_EXAMPLE, airflow_services, compose, read_env_file


def test_every_required_variable_is_in_env_example() -> None:
    compose()  # raises KeyError naming the variable otherwise
    with pytest.raises(KeyError, match="AIRFLOW_JWT_SECRET"):
        variables = read_env_file(ENV_EXAMPLE)
        del variables["AIRFLOW_JWT_SECRET"]
        compose(variables)


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


def test_airflow_services_share_one_configuration() -> None:
    services = airflow_services(compose())
    assert set(services) >= {
        "airflow-init", "api-server", "scheduler", "dag-processor", "triggerer",
        "worker-ingest", "worker-default",
    }  # fmt: skip
    shared = (
        "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__EXECUTOR",
        "MEDIAMON_SOURCES", "MEDIAMON_OPS_EMAIL", "AIRFLOW_CONN_MEDIAMON_SMTP",
        # the ingest scale settings ops tune in .env (README, settings)
        "MEDIAMON_SHARDS", "MEDIAMON_WORKERS", "MEDIAMON_SHARD_TIME_BUDGET_S",
    )  # fmt: skip
    for key in shared:
        values = {name: s["environment"].get(key) for name, s in services.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    assert services["api-server"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_healthchecks_restarts_volumes_and_least_privilege() -> None:
    document = compose()
    variables = read_env_file(ENV_EXAMPLE)
    for name, service in document["services"].items():
        if name == "airflow-init":
            assert service["restart"] == "no"
            assert variables["NEWSDB_OWNER"] in service["environment"]["MEDIAMON_DATABASE_URL"]
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "always", f"{name} is not restarted"
    for name, service in airflow_services(document).items():
        mounts = service["volumes"]
        assert "./config:/opt/mediamon/config:ro" in mounts, name
        assert "airflow-logs:/opt/airflow/logs" in mounts or name == "airflow-init", name
        if name != "airflow-init":  # the tasks connect as the writer role, never the owner
            url = service["environment"]["MEDIAMON_DATABASE_URL"]
            assert url.startswith(f"postgresql://{variables['MEDIAMON_WRITER_ROLE']}:"), name
        if name in ("scheduler", "worker-ingest", "worker-default", "triggerer"):
            assert "--skip-serve-logs" in service["command"], name  # no 0.0.0.0:8793
    dockerfile = (REPO_ROOT / "Dockerfile").read_text("utf-8")
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    assert not re.search(r"^COPY .*config", dockerfile, re.M), "config/ is mounted, not baked"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text("utf-8")
