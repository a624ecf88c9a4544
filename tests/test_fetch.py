"""Fetching against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mediamon.fetch import fetch, make_session


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with make_session("mediamon-test/1.0 (+https://example.org)", retries=2, backoff_s=0.01) as s:
        yield s


def test_ok_with_headers_and_user_agent(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request(
        "/feed.xml", headers={"User-Agent": "mediamon-test/1.0 (+https://example.org)"}
    ).respond_with_data(b"<rss/>", content_type="application/rss+xml; charset=GBK")
    result = fetch(session, httpserver.url_for("/feed.xml"))
    assert result.ok and result.status == 200 and result.content == b"<rss/>"
    assert result.content_type == "application/rss+xml"
    assert result.charset == "GBK"


def test_server_errors_are_retried_then_reported(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    calls: list[int] = []

    def flaky(request: Request) -> Response:
        calls.append(1)
        return Response("busy", status=503) if len(calls) < 3 else Response("ok", status=200)

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    assert fetch(session, httpserver.url_for("/flaky")).ok
    assert len(calls) == 3

    httpserver.expect_request("/down").respond_with_data("no", status=500)
    result = fetch(session, httpserver.url_for("/down"))
    assert not result.ok and result.status == 500
    assert result.error == "HTTP 500 INTERNAL SERVER ERROR"


def test_not_found_is_not_retried(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_oneshot_request("/gone").respond_with_data("", status=404)
    result = fetch(session, httpserver.url_for("/gone"))
    assert result.status == 404 and result.error and result.error.startswith("HTTP 404")


def test_size_cap(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 200_000)
    result = fetch(session, httpserver.url_for("/big"), max_bytes=100_000)
    assert not result.ok and result.content == b""
    assert result.error == "body larger than 100000 bytes"


def test_read_timeout(httpserver: HTTPServer, session: requests.Session) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()
    result = fetch(make_session("t", retries=0), httpserver.url_for("/slow"), timeout=(1.0, 0.3))
    assert result.error and result.error.startswith("read timeout")
    assert time.monotonic() - started < 1.0


def test_redirects_are_followed(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new")}
    )
    httpserver.expect_request("/new").respond_with_data("here")
    result = fetch(session, httpserver.url_for("/old"))
    assert result.ok and result.final_url == httpserver.url_for("/new")


def test_unreachable_hosts_are_reported(session: requests.Session) -> None:
    refused = fetch(session, "http://127.0.0.1:9/feed.xml")
    assert (
        refused.status is None and refused.error and refused.error.startswith("connection failed")
    )
    unresolvable = fetch(session, "http://mediamon-test.invalid/feed.xml")
    assert unresolvable.error and unresolvable.error.startswith("DNS lookup failed")
    assert fetch(session, "not a url").error
