"""`mediamon run` / `mediamon stop` as an operator uses them (`make run`, `make stop`):
real Airflow services on a free loopback port; the URL is printed only once the
api-server answers, the UI opens in headless chromium without a login, and `stop` ends
every process `run` started."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.cli import main
from tests.support.smtp_server import free_port


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # field 5 of stat: the group
            members.append(int(entry.name))
    return members


def run_environment(database_url: str, metadata_url: str, var: Path, port: int) -> dict[str, str]:
    """The environment of a `mediamon run` on its own metadata database and port."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "MEDIAMON_"))
    }
    return env | {
        "MEDIAMON_DATABASE_URL": database_url,
        "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url,
        "MEDIAMON_VAR_DIR": str(var),
        "MEDIAMON_AIRFLOW_PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # no runs needed here
    }


def drop_database(database_url: str, metadata_url: str) -> None:
    admin = sa.create_engine(db.normalize_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = sa.make_url(metadata_url).database
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def test_run_prints_the_url_once_the_ui_answers_without_login_and_stop_ends_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (Debian package chromium)")
    metadata_url = db.ensure_database(database_url, f"airflow_run_{uuid.uuid4().hex[:8]}")
    port = free_port()
    env = run_environment(database_url, metadata_url, tmp_path / "var", port)
    service = subprocess.Popen(
        [sys.executable, "-m", "mediamon.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in service.stdout or ()], daemon=True
    ).start()
    try:
        deadline = time.monotonic() + 300
        announced = None
        while announced is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=5)
            except queue.Empty:
                assert service.poll() is None, "mediamon run exited"
                continue
            if line.startswith("Airflow UI: "):
                announced = line
        assert announced is not None, "no URL printed"
        # the services write to their own files, not over the address
        logs = tmp_path / "var" / "airflow" / "logs" / "services"
        assert {p.name for p in logs.iterdir()} >= {"api-server.log", "scheduler.log"}
        printed = []
        while not lines.empty():
            printed.append(lines.get())
        assert len(printed) < 5, printed
        url = f"http://127.0.0.1:{port}"
        assert announced.startswith(f"Airflow UI: {url}  (no login")
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:
            assert answer.status == 200  # it answered before the URL was printed

        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
             "--dump-dom", f"{url}/dags"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert "mediamon_ingest" in dom and "mediamon_health" in dom
        assert 'type="password"' not in dom  # no login form

        pids = (tmp_path / "var" / "airflow" / "services.pids").read_text().split()
        assert len(pids) == 4
        monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
        assert main(["stop"]) == 0
        service.wait(timeout=60)  # `run` ends when its services do
        for pid in pids:
            assert group_members(int(pid)) == [], f"processes of service {pid} still run"
    finally:
        if service.poll() is None:
            os.killpg(service.pid, 9)
        drop_database(database_url, metadata_url)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP])
def test_run_killed_or_its_terminal_closed_stops_every_service(
    signal_number: int, database_url: str, tmp_path: Path
) -> None:
    # `kill PID`, systemd or timeout (SIGTERM), or the terminal closed (SIGHUP): before,
    # `run` died at once and its four services ran on, orphaned; the next `make run`
    # then announced the old api-server's URL and lost the old pid file.
    metadata_url = db.ensure_database(database_url, f"airflow_run_{uuid.uuid4().hex[:8]}")
    var = tmp_path / "var"
    service = subprocess.Popen(
        [sys.executable, "-m", "mediamon.cli", "run"],
        env=run_environment(database_url, metadata_url, var, free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    pids: list[str] = []
    try:
        for line in service.stdout or ():
            if line.startswith("starting Airflow's services"):
                break
        pids = (var / "airflow" / "services.pids").read_text().split()
        assert len(pids) == 4
        os.kill(service.pid, signal_number)  # the run process only, as kill PID does
        assert service.wait(timeout=90) == 0
        for pid in pids:
            assert group_members(int(pid)) == [], f"processes of service {pid} still run"
        assert not (var / "airflow" / "services.pids").exists()
    finally:
        for pid in [service.pid, *map(int, pids)]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        drop_database(database_url, metadata_url)


def test_run_refuses_a_taken_port_or_running_services_in_one_line(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    # Before: the new api-server could not bind, but the program on the port answered the
    # health check, so `run` printed its URL, then "api-server exited"; and its pid file
    # replaced the running set's, which `mediamon stop` could then no longer stop.
    var = tmp_path / "var"
    metadata_url = db.ensure_database(database_url, f"airflow_run_{uuid.uuid4().hex[:8]}")
    for key, value in run_environment(database_url, metadata_url, var, free_port()).items():
        if key.startswith("MEDIAMON_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AIRFLOW__API__PORT", raising=False)
    request.addfinalizer(lambda: drop_database(database_url, metadata_url))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("MEDIAMON_AIRFLOW_PORT", str(port))
        with monkeypatch.context() as embedded:  # no database configured: a new user's
            embedded.delenv("MEDIAMON_DATABASE_URL")
            embedded.delenv("MEDIAMON_AIRFLOW_DATABASE_URL")
            assert main(["run"]) == 2
    assert capsys.readouterr().err == (
        f"mediamon: MEDIAMON_AIRFLOW_PORT: 127.0.0.1:{port} is in use by another program;"
        " stop it or choose another port\n"
    )
    assert not (var / "airflow" / "services.pids").exists()
    assert not (var / "pgdata").exists()  # refused before the embedded database started

    # an earlier run's scheduler, still running (its command line names airflow)
    earlier = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "airflow", "scheduler"],
        start_new_session=True,
    )
    try:
        (var / "airflow").mkdir(parents=True, exist_ok=True)
        (var / "airflow" / "services.pids").write_text(f"{earlier.pid}\n")
        monkeypatch.setenv("MEDIAMON_AIRFLOW_PORT", str(free_port()))
        assert main(["run"]) == 2
        assert capsys.readouterr().err == (
            f"mediamon: the Airflow services of an earlier `mediamon run` still run (pids"
            f" {earlier.pid}); `mediamon stop` (`make stop`) stops them\n"
        )
        assert (var / "airflow" / "services.pids").read_text() == f"{earlier.pid}\n"
        assert main(["stop"]) == 0  # and `stop` still finds it
        assert earlier.wait(timeout=30) == -signal.SIGTERM
    finally:
        if earlier.poll() is None:
            earlier.kill()
