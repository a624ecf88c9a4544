"""Politeness: per-host interval and concurrency, Retry-After, robots.txt (RFC 9309)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mediamon.ingest.fetch import FetchResult, fetch
from mediamon.ingest.politeness import (
    DEFAULT_MIN_INTERVAL_S,
    HostDeferred,
    HostLimiter,
    HostLimits,
    RobotsRules,
)
from mediamon.ingest.run import fetch_options
from mediamon.ingest.session import make_session
from mediamon.ingest.sources import load_sources


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with make_session("mediamon/0.1 (+https://example.org)", retries=0) as s:
        yield s


def get(session: requests.Session, url: str, **kwargs: object) -> FetchResult:
    return fetch(session, url, allow_private_network=True, **kwargs)  # type: ignore[arg-type]


def test_defaults_and_the_loopback_rule() -> None:
    assert HostLimits().interval_for(loopback=False) == DEFAULT_MIN_INTERVAL_S == 5.0
    assert HostLimits().interval_for(loopback=True) == 0.0
    assert HostLimits(2.5).interval_for(loopback=True) == 2.5
    assert HostLimits().max_connections == 2


def test_per_source_settings_reach_the_fetcher(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: polite, url: 'https://example.com/feed', host_min_interval: 12s,"
        " host_max_connections: 1, max_bytes: 1000000, download_deadline: 30s}\n"
        "  - {name: plain, url: 'https://example.com/feed'}\n",
        "utf-8",
    )
    polite, plain = load_sources(path)
    options = fetch_options(polite)
    assert options["limits"] == HostLimits(12.0, 1)
    assert options["max_bytes"] == 1_000_000 and options["deadline_s"] == 30.0
    assert fetch_options(plain)["limits"] == HostLimits(None, 2)
    assert fetch_options(plain)["private_hosts"] == frozenset()


def test_min_interval_spaces_requests_to_one_host(
    httpserver: HTTPServer, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When each request is sent, not when the server saw it: on a loaded machine a
    # request can reach the server late and seem closer to the next than it was sent.
    sent: list[float] = []
    send = session.get

    def timed_get(*args: object, **kwargs: object) -> requests.Response:
        sent.append(time.monotonic())
        return send(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session, "get", timed_get)
    httpserver.expect_request("/p").respond_with_data("ok")
    limits = HostLimits(0.3, 2)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: get(session, httpserver.url_for("/p"), limits=limits), range(4))
        )
    assert all(r.ok for r in results) and len(httpserver.log) == 4
    sent.sort()
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 4 and min(gaps) >= 0.28, gaps


def test_concurrency_limit_per_host(session: requests.Session) -> None:
    active = [0]
    peak = [0]
    lock = threading.Lock()

    def slow(request: Request) -> Response:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.25)
        with lock:
            active[0] -= 1
        return Response("ok")

    threaded = HTTPServer(host="127.0.0.1", threaded=True)
    threaded.expect_request("/slow").respond_with_handler(slow)
    threaded.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(
                pool.map(
                    lambda _: get(session, threaded.url_for("/slow"), limits=HostLimits(0.0, 2)),
                    range(6),
                )
            )
    finally:
        threaded.clear()
        threaded.stop()
    assert all(r.ok for r in results)
    assert peak[0] == 2


def test_limiter_defers_a_host_and_refuses_long_waits() -> None:
    limiter = HostLimiter()
    limiter.defer("example.com", 60)
    with (
        pytest.raises(HostDeferred, match="asked us to wait 60 s more"),
        limiter.slot("Example.com", 0, 2, max_wait_s=30),
    ):
        pass
    limiter.defer("other.example", 0.2)
    started = time.monotonic()
    with limiter.slot("other.example", 0, 2, max_wait_s=30) as waited:
        assert waited >= 0.15
    assert time.monotonic() - started >= 0.15
    assert limiter.deferred_for("third.example") == 0.0
    # the root's trailing dot names the same host: one limit, not two
    limiter.defer("dotted.example.", 60)
    assert limiter.deferred_for("Dotted.example") > 59


@pytest.mark.parametrize("retry_after", ["3600", "in an hour"])
def test_long_retry_after_defers_the_host_for_the_run(
    httpserver: HTTPServer, session: requests.Session, retry_after: str
) -> None:
    if retry_after == "in an hour":  # the date is taken now, not when tests are collected
        retry_after = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    httpserver.expect_request("/busy").respond_with_data(
        "later", status=503, headers={"Retry-After": retry_after}
    )
    httpserver.expect_request("/other").respond_with_data("fine")
    first = get(session, httpserver.url_for("/busy"))
    assert first.status == 503 and first.retry_after_s is not None
    assert 3500 < first.retry_after_s <= 3600
    assert first.error and first.error.startswith("HTTP 503") and "Retry-After 3" in first.error
    second = get(session, httpserver.url_for("/other"))
    assert second.error and second.error.startswith("deferred: localhost asked us to wait")
    assert [r.path for r, _ in httpserver.log] == ["/busy"]  # /other was never asked


ROBOTS = """\
# Sites write rules for several crawlers.
User-agent: Googlebot
Disallow: /

User-agent: mediamon
User-agent: otherbot
Disallow: /private/
Allow: /private/press/
Disallow: /*.pdf$
Disallow: /search?
Disallow: /新闻/草稿
Crawl-delay: 2

User-agent: *
Disallow: /
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/news/1.html", True),
        ("/private/memo.html", False),
        ("/private/press/release.html", True),  # the longer allow wins
        ("/files/report.pdf", False),
        ("/files/report.pdf?x=1", True),  # $ anchors at the end
        ("/search?q=taiwan", False),
        ("/search/archive", True),
        ("/%E6%96%B0%E9%97%BB/%E8%8D%89%E7%A8%BF/1", False),  # percent-encoded the same
        ("/robots.txt", True),
    ],
)
def test_robots_rules_for_mediamon(path: str, allowed: bool) -> None:
    rules = RobotsRules.parse(ROBOTS, "https://example.com/robots.txt")
    assert rules.allowed("https://example.com" + path) is allowed
    assert rules.crawl_delay_s == 2.0


def test_robots_star_group_and_ties() -> None:
    star = RobotsRules.parse("User-agent: *\nDisallow: /a\nAllow: /a\n")
    assert star.allowed("http://x/a/b")  # same length: allow wins
    assert not RobotsRules.parse(ROBOTS, token="somebot").allowed("http://x/news")
    assert RobotsRules.parse("").allowed("http://x/anything")
    assert RobotsRules.parse("User-agent: *\nDisallow:\n").allowed("http://x/anything")


def test_robots_txt_is_obeyed_for_pages_and_read_once(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    httpserver.expect_request("/news/1.html").respond_with_data("<p>ok</p>")
    httpserver.expect_request("/private/2.html").respond_with_data("<p>secret</p>")
    allowed = get(session, httpserver.url_for("/news/1.html"), check_robots=True)
    refused = get(session, httpserver.url_for("/private/2.html"), check_robots=True)
    ignored = get(session, httpserver.url_for("/private/2.html"), check_robots=False)
    assert allowed.ok and ignored.ok
    assert refused.error == f"disallowed by robots.txt ({httpserver.url_for('/robots.txt')})"
    paths = [r.path for r, _ in httpserver.log]
    assert paths.count("/robots.txt") == 1 and paths.count("/private/2.html") == 1


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(404, True), (403, True), (500, False), (503, False), (429, False)],
)
def test_unreadable_robots_txt(
    httpserver: HTTPServer, session: requests.Session, status: int, allowed: bool
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=status)
    httpserver.expect_request("/page.html").respond_with_data("<p>ok</p>")
    result = get(session, httpserver.url_for("/page.html"), check_robots=True)
    assert result.ok is allowed
    if not allowed:
        assert result.error and result.error.startswith(
            "disallowed by robots.txt: robots.txt unreachable (HTTP"
        )


def test_crawl_delay_spaces_page_requests(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    starts: list[float] = []
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nCrawl-delay: 0.4\n")

    def record(request: Request) -> Response:
        starts.append(time.monotonic())
        return Response("ok")

    httpserver.expect_request("/p").respond_with_handler(record)
    for _ in range(3):
        assert get(session, httpserver.url_for("/p"), check_robots=True).ok
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.38, gaps


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("host_max_connections: 0", "host_max_connections: expected a whole number from 1 to 64"),
        ("max_items: many", "max_items: expected a whole number from 1 to 100000"),
        ("respect_robots_txt: 'no'", "respect_robots_txt: expected true or false"),
        ("ignore_validators: 1", "ignore_validators: expected true or false"),
        ("host_min_interval: soon", "host_min_interval: expected a duration"),
        ("download_deadline: 0s", "download_deadline: must be longer than 0 s"),
        ("min_poll_interval: 2h, max_poll_interval: 1h", "longer than max_poll_interval"),
    ],
)
def test_invalid_fetch_settings_are_named(tmp_path: Path, entry: str, message: str) -> None:
    from mediamon.ingest.sources import SourceConfigError

    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  - {{name: a, url: 'https://x/f', {entry}}}\n", "utf-8")
    with pytest.raises(SourceConfigError, match=message):
        load_sources(path)


def test_fetch_settings_defaults_and_poll_bounds(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: a, url: 'https://x/f', poll_interval: 20m}\n"
        "  - {name: b, url: 'https://x/g', min_poll_interval: 10m, max_poll_interval: 6h,"
        " host_min_interval: 0.5, respect_robots_txt: false, ignore_validators: true}\n",
        "utf-8",
    )
    a, b = load_sources(path)
    assert a.poll_bounds == (timedelta(minutes=5), timedelta(minutes=160))
    assert a.respect_robots_txt and not a.ignore_validators and a.host_min_interval is None
    assert a.max_bytes == 15 * 1024 * 1024 and a.max_items == 500
    assert b.poll_bounds == (timedelta(minutes=10), timedelta(hours=6))
    assert b.host_min_interval == timedelta(seconds=0.5)
    assert not b.respect_robots_txt and b.ignore_validators
