"""The mediamon page as a user sees it: a real Airflow api-server on a free loopback port
loads the plugin from ``plugins/``, refuses the page without Airflow's login, lists the
page in the UI's navigation, and serves it; headless Debian Chromium renders it and the
rendered page shows the 台湾 topic with its alert and the demo sources. The screenshot is
kept in ``var/test-artifacts/``."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from mediamon import db
from mediamon.alerts.unsubscribe import sign
from mediamon.devtools.airflow_env import airflow_command, airflow_environment
from mediamon.settings import Settings
from tests.support.bi_demo import DEMO_SOURCES, demo_database
from tests.support.browser import ARTIFACTS, Page, chromium

__all__ = ["demo_database"]  # a fixture, used by name

VIEWER, VIEWER_PASSWORD = "analyst", "s3cret-viewer"
# The unsubscribe page's key, made per run: no key is ever written in the repository.
UNSUBSCRIBE_KEY = secrets.token_urlsafe(32)
HEADER_TIMEOUT_S = 4  # the api-server's limit on a request's headers, short for the test
EVIL_TITLE = '<b id="evil">台湾</b><script>document.title="pwned"</script>'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(demo_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``airflow api-server`` with mediamon's plugins folder, on a free port; its base URL."""
    home = tmp_path_factory.mktemp("airflow_home")
    metadata_url = db.ensure_database(demo_database, f"airflow_page_{uuid.uuid4().hex[:8]}")
    settings = replace(Settings.from_env(), database_url=demo_database, var_dir=home)
    port = _free_port()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({VIEWER: VIEWER_PASSWORD}), encoding="utf-8")
    env = airflow_environment(
        settings, {**os.environ, "MEDIAMON_AIRFLOW_DATABASE_URL": metadata_url}
    )
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # A real login: one viewer with a password (Airflow 3.3 reads these from [core]).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__SIMPLE_AUTH_MANAGER__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{VIEWER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "MEDIAMON_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "MEDIAMON_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_KEY,
        }
    )
    log = (home / "api-server.log").open("wb")
    migrated = subprocess.run(
        airflow_command(["db", "migrate"]), env=env, stdout=log, stderr=log, check=False
    )
    assert migrated.returncode == 0, (home / "api-server.log").read_text()[-3000:]
    server = subprocess.Popen(
        airflow_command(["api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"]),
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its workers go with it: the group is stopped below
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "api-server did not answer within 180 s"
            time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        admin = sa.create_engine(db.normalize_url(demo_database), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = sa.make_url(metadata_url).database
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def _token(base: str, password: str = VIEWER_PASSWORD) -> str:
    """Log in the way the UI's login form does."""
    answer = requests.post(
        f"{base}/auth/token", json={"username": VIEWER, "password": password}, timeout=30
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["access_token"])


def test_page_needs_airflows_login(api_server: str) -> None:
    anonymous = requests.get(f"{api_server}/mediamon/", timeout=30)
    assert anonymous.status_code in (401, 403), anonymous.status_code
    assert "台湾" not in anonymous.text
    forged = requests.get(
        f"{api_server}/mediamon/", headers={"Authorization": "Bearer not-a-token"}, timeout=30
    )
    assert forged.status_code in (401, 403)
    wrong = requests.post(
        f"{api_server}/auth/token", json={"username": VIEWER, "password": "guess"}, timeout=30
    )
    assert wrong.status_code == 401


def test_the_unsubscribe_page_is_served_without_a_login(
    api_server: str, demo_database: str
) -> None:
    token = sign([UNSUBSCRIBE_KEY], "reader@example.org", "taiwan")
    page = f"{api_server}/mediamon-unsubscribe/?t={token}"
    asked = requests.get(page, timeout=30)  # no Authorization: recipients have no login
    assert asked.status_code == 200 and '<form method="post"' in asked.text
    version, _, mac = token.split(".")
    other = sign([UNSUBSCRIBE_KEY], "someone@example.org", "taiwan").split(".")[1]
    forged = f"{api_server}/mediamon-unsubscribe/?t={version}.{other}.{mac}"
    one_click = {"List-Unsubscribe": "One-Click"}
    assert requests.post(forged, data=one_click, timeout=30).status_code == 403
    done = requests.post(page, data=one_click, timeout=30, allow_redirects=False)
    assert done.status_code == 200, done.text
    engine = db.make_engine(demo_database)
    try:
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("select recipient, topic, state from mail_subscriptions")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in left] == [("reader@example.org", "taiwan", "unsubscribed")]
    # The reader's list ("Manage your alerts") under the same mount: their every-topic
    # token opens it, a topic's is refused.
    listed = f"{api_server}/mediamon-unsubscribe/alerts?t="
    mine = requests.get(listed + sign([UNSUBSCRIBE_KEY], "reader@example.org", "*"), timeout=30)
    assert mine.status_code == 200 and "Your mediamon alerts" in mine.text, mine.text
    assert requests.get(listed + token, timeout=30).status_code == 403


def test_plugin_is_in_the_navigation(api_server: str) -> None:
    answer = requests.get(
        f"{api_server}/api/v2/plugins",
        headers={"Authorization": f"Bearer {_token(api_server)}"},
        timeout=30,
    )
    assert answer.ok, answer.text
    plugins = {p["name"]: p for p in answer.json()["plugins"]}
    views = plugins["mediamon_dashboard"]["external_views"]
    assert [(v["href"], v["url_route"], v["destination"]) for v in views] == [
        ("/mediamon/", "mediamon", "nav")
    ]


def test_page_in_chromium(api_server: str, demo_database: str, tmp_path: Path) -> None:
    engine = db.make_engine(demo_database)
    with engine.begin() as conn:  # an article-supplied title that tries to run a script
        observed, expected = conn.execute(
            sa.text("select observed, expected from bi.alerts where topic_name = '台湾'")
        ).one()
        conn.execute(
            sa.text(
                # the alert's first story as the page ranks it (as the mail), so that the
                # page certainly shows the hostile title
                "update articles set title = :t where article_id = (select w.story_id"
                " from bi.alerts a cross join lateral"
                " bi.topic_window_stories(a.topic, a.window_start, a.window_end) w"
                " where a.topic_name = '台湾' order by w.story_rank limit 1)"
            ),
            {"t": EVIL_TITLE},
        )
    engine.dispose()
    direct = requests.get(
        f"{api_server}/mediamon/?days=14",
        headers={"Authorization": f"Bearer {_token(api_server)}"},
        timeout=60,
    )
    assert direct.status_code == 200, direct.text[-2000:]
    assert "script-src" not in direct.headers["Content-Security-Policy"]  # no script at all

    # The way a person arrives: Airflow's login leaves its token in a cookie, and the
    # browser sends it to the page (the UI shows the page in a frame, same origin).
    shot = ARTIFACTS / "mediamon_page.png"
    shot.unlink(missing_ok=True)
    with chromium() as browser:
        tab = browser.open("about:blank", width=1280)
        tab.call("Network.setCookie", name="_token", value=_token(api_server), url=api_server)
        _navigate(tab, f"{api_server}/mediamon/")
        dom = tab.evaluate("document.documentElement.outerHTML")
        injected = tab.evaluate("[document.getElementById('evil'), document.title]")
        tab.screenshot(shot)
        in_ui = _page_in_airflow_ui(tab, api_server)
        tab.screenshot(ARTIFACTS / "mediamon_in_airflow.png")
    assert in_ui == f"{api_server}/mediamon/"
    assert shot.stat().st_size > 20_000, "the screenshot is missing or blank"
    assert 'data-topic="taiwan"' in dom and "<h3><bdi>台湾</bdi>" in dom, dom[:2000]
    alert_row = dom[dom.index('<tr class="alert"') :]
    alert_row = alert_row[: alert_row.index("</tr>")]
    assert "台湾" in alert_row and f">{observed}<" in alert_row, alert_row
    assert f">{expected}<" in alert_row and str(expected) == f"{expected:.2f}", alert_row
    assert 'class="alert-marker"' in dom  # the alert's flag on the hourly chart
    assert f"{observed} / {expected}" in dom
    for source in DEMO_SOURCES:
        assert f'<tr class="source" data-source="{source}">' in dom, source
        assert f'<section class="card volume" data-source="{source}">' in dom, source
    # the title shows as text: no element made from it, no script run
    assert injected == [None, "mediamon — topics, alerts and sources"]
    assert "&lt;b id=" in dom and "&lt;script&gt;" in dom


def _navigate(tab: Page, url: str) -> None:
    tab.call("Page.navigate", url=url)
    tab.wait_for("Page.loadEventFired")


def _page_in_airflow_ui(tab: Page, base: str) -> str:
    """Open Airflow's UI, follow the navigation's "mediamon" entry, and return the address
    of the frame the UI shows it in."""
    _navigate(tab, f"{base}/")
    link = _wait_for(tab, "document.querySelector('a[href$=\"plugin/mediamon\"]')?.href")
    _navigate(tab, link)
    source = str(_wait_for(tab, "document.querySelector('iframe')?.src"))
    # the frame is same-origin: wait until the page inside it has rendered
    framed = "document.querySelector('iframe').contentDocument"
    _wait_for(tab, f"{framed}?.querySelector('h3')?.textContent")
    return source


def _wait_for(tab: Page, expression: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = tab.evaluate(expression)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{expression} stayed empty for {timeout} s")


def test_a_hostile_host_header_is_not_echoed(api_server: str) -> None:
    """Links and redirects of the page name no host a request made up: a ``Host`` (or
    ``X-Forwarded-Host``) of the attacker's is not written back, in a redirect or in the
    page (a poisoned cache or a reset link would send readers there)."""
    token = _token(api_server)
    hostile = {
        "Authorization": f"Bearer {token}",
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
    }
    for path in ("/mediamon", "/mediamon/", "/mediamon/?topic=nope&from=x&to=y", "/mediamon//"):
        answer = requests.get(
            f"{api_server}{path}", headers=hostile, allow_redirects=False, timeout=30
        )
        seen = f"{answer.status_code} {answer.headers.get('Location', '')} {answer.text}"
        assert "evil.example" not in seen, (path, seen[:500])


def _drip(port: int, stop: threading.Event, closed: list[float]) -> None:
    """A slowloris connection: a request line, then a header byte a second, never the
    blank line; when the server closes it, the seconds it was held."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.sendall(b"GET /mediamon/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.is_set():
            try:
                slow.sendall(b"X")
                slow.settimeout(1)
                if slow.recv(4096) == b"":
                    break  # the server closed it
            except TimeoutError:
                continue  # still open: drip on
            except OSError:
                break  # reset by the server
    if not stop.is_set():
        closed.append(time.monotonic() - started)


def test_slow_headers_are_cut_and_others_are_served(api_server: str) -> None:
    """Fifty connections dripping their headers a byte a second (slowloris), and a
    reader asking for the page meanwhile. Before: uvicorn kept every one for as long as
    it dripped (no limit before a request's headers are complete); thousands hold the
    api-server's file descriptors until nobody else is accepted. Now each is closed once
    its headers are not complete after the limit; the reader is served all along."""
    closed = _slow_clients_while_a_reader_is_served(api_server, _drip, count=50)
    assert len(closed) == 50, f"{len(closed)} of 50 slow connections cut"
    assert min(closed) >= HEADER_TIMEOUT_S - 1, closed  # not before the limit
    assert requests.get(f"{api_server}/api/v2/monitor/health", timeout=30).ok


def _slow_clients_while_a_reader_is_served(
    api_server: str, drip: Callable[[int, threading.Event, list[float]], None], count: int
) -> list[float]:
    """``count`` threads running ``drip`` against the api-server and, a second in, a
    logged-in reader who must be served the page; waits until every slow client is cut or
    ten times the limit has passed (far past it, however loaded the machine is). The
    seconds each slow client was kept, for those that were cut."""
    port = int(api_server.rsplit(":", 1)[1])
    stop = threading.Event()
    closed: list[float] = []
    slow = [threading.Thread(target=drip, args=(port, stop, closed)) for _ in range(count)]
    for thread in slow:
        thread.start()
    try:
        time.sleep(1)
        page = requests.get(
            f"{api_server}/mediamon/",
            headers={"Authorization": f"Bearer {_token(api_server)}"},
            timeout=60,
        )
        assert page.status_code == 200 and "mediamon" in page.text
        deadline = time.monotonic() + 10 * HEADER_TIMEOUT_S
        while len(closed) < count and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in slow:
            thread.join()
    return closed


def _drip_body(port: int, stop: threading.Event, closed: list[float]) -> None:
    """A slow-body ("R-U-Dead-Yet") connection: a POST to Airflow's login, which reads its
    body before any login is checked, whose headers promise 1,000 bytes, then a body byte
    a second; when the server closes it, the seconds since its headers were sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        while not stop.is_set():
            try:
                slow.sendall(b" ")
                slow.settimeout(1)
                if slow.recv(4096) == b"":
                    break  # the server closed it
            except TimeoutError:
                continue  # still open: drip on
            except OSError:
                break  # reset by the server
    if not stop.is_set():
        closed.append(time.monotonic() - started)


def test_slow_bodies_are_cut_and_others_are_served(api_server: str) -> None:
    """Twenty connections dripping a login's body a byte a second, and a reader asking for
    the page meanwhile. Before: the headers came in time, so nothing limited the body:
    each connection, and Airflow's handler awaiting it, was kept for as long as it dripped,
    without any login. Now each is closed once its body is not complete after the limit
    (a second more for every 500 bytes received); the reader is served all along."""
    closed = _slow_clients_while_a_reader_is_served(api_server, _drip_body, count=20)
    assert len(closed) == 20, f"{len(closed)} of 20 slow bodies cut"
    assert min(closed) >= HEADER_TIMEOUT_S - 1, closed  # not before the limit
    _token(api_server)  # a login whose body comes at once is served


def test_readers_held_up_leave_airflows_own_endpoints_answering(
    api_server: str, demo_database: str
) -> None:
    """Forty-five readers of the page at once while a maintenance task holds a table the
    page reads. Before: each held one of the api-server's threads, which Airflow's own
    endpoints share (anyio's 40), while it waited for the lock or for a connection of the
    pool: every thread taken, Airflow's health check (a plain def) had none until the
    waits ran out, 30 s on; its UI the same. Now the page renders on at most
    ``serving.PAGE_THREADS`` threads and the others wait without one: the health check
    answers while every reader still waits."""
    token = _token(api_server)
    finished: list[int] = []

    def read() -> None:
        answer = requests.get(
            f"{api_server}/mediamon/", headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        finished.append(answer.status_code)

    engine = db.make_engine(demo_database)
    readers = [threading.Thread(target=read) for _ in range(45)]
    try:
        with engine.connect() as holder:
            holder.exec_driver_sql("lock table bi.settings in access exclusive mode")
            for thread in readers:
                thread.start()
            waiting = (
                "select count(*) from pg_locks where not granted"
                " and relation = 'bi.settings'::regclass"
            )
            with engine.connect() as watcher:  # readers' queries queued behind the lock
                while watcher.exec_driver_sql(waiting).scalar_one() < 5 and not finished:
                    time.sleep(0.2)
            health = requests.get(f"{api_server}/api/v2/monitor/health", timeout=120)
            pending = len(readers) - len(finished)
            holder.rollback()
        for thread in readers:
            thread.join()
    finally:
        engine.dispose()
    assert health.ok
    gave_up = len(readers) - pending
    assert gave_up == 0, f"health answered only after {gave_up} readers gave up"
    assert finished == [200] * len(readers), finished
