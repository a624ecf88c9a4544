"""Fetching against a real HTTP server on 127.0.0.1.

The test servers are on loopback, so every call allows private networks; the guard
itself is tested in test_netguard.py and test_faults.py.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from functools import partial

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mediamon.ingest.fetch import PAGE_TYPES, Validators, fetch
from mediamon.ingest.session import make_session

get = partial(fetch, allow_private_network=True)


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with make_session("mediamon-test/1.0 (+https://example.org)", retries=2, backoff_s=0.01) as s:
        yield s


def test_ok_with_headers_and_user_agent(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request(
        "/feed.xml", headers={"User-Agent": "mediamon-test/1.0 (+https://example.org)"}
    ).respond_with_data(b"<rss/>", content_type="application/rss+xml; charset=GBK")
    result = get(session, httpserver.url_for("/feed.xml"))
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
    assert get(session, httpserver.url_for("/flaky")).ok
    assert len(calls) == 3

    httpserver.expect_request("/down").respond_with_data("no", status=500)
    result = get(session, httpserver.url_for("/down"))
    assert not result.ok and result.status == 500
    assert result.error == "HTTP 500 INTERNAL SERVER ERROR"


def test_not_found_is_not_retried(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_oneshot_request("/gone").respond_with_data("", status=404)
    result = get(session, httpserver.url_for("/gone"))
    assert result.status == 404 and result.error and result.error.startswith("HTTP 404")


def test_size_cap(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 200_000)
    result = get(session, httpserver.url_for("/big"), max_bytes=100_000)
    assert not result.ok and result.content == b""
    assert result.error == "body larger than 100000 bytes"


def test_size_cap_applies_after_decompression(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)  # 2 MB of zeros in about 2 kB
    httpserver.expect_request("/bomb").respond_with_data(
        bomb, headers={"Content-Encoding": "gzip"}, content_type="text/html"
    )
    result = get(session, httpserver.url_for("/bomb"), max_bytes=100_000)
    assert len(bomb) < 100_000
    assert result.error == "body larger than 100000 bytes"


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("gzip", lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as many servers send
    ],
)
def test_content_codings_are_decoded(
    httpserver: HTTPServer, session: requests.Session, coding: str, encode: object
) -> None:
    body = "<html><body>新闻正文 ".encode() * 50
    assert callable(encode)
    httpserver.expect_request("/coded").respond_with_data(
        encode(body), headers={"Content-Encoding": coding}, content_type="text/html"
    )
    result = get(session, httpserver.url_for("/coded"))
    assert result.ok and result.content == body


def test_read_timeout(httpserver: HTTPServer, session: requests.Session) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()
    result = get(make_session("t", retries=0), httpserver.url_for("/slow"), timeout=(1.0, 0.3))
    assert result.error and result.error.startswith("read timeout")
    assert time.monotonic() - started < 1.0


def test_redirects_are_followed(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new")}
    )
    httpserver.expect_request("/new").respond_with_data("here")
    result = get(session, httpserver.url_for("/old"))
    assert result.ok and result.final_url == httpserver.url_for("/new")
    assert result.redirects == (httpserver.url_for("/old"),)


def test_conditional_get_sends_validators_and_reports_not_modified(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request(
        "/feed.xml", headers={"If-None-Match": '"v1"', "If-Modified-Since": "Sat, 20 Apr 2024"}
    ).respond_with_data("", status=304)
    httpserver.expect_request("/feed.xml").respond_with_data(
        "<rss/>", headers={"ETag": '"v1"', "Last-Modified": "Sat, 20 Apr 2024"}
    )
    first = get(session, httpserver.url_for("/feed.xml"))
    assert first.ok and first.validators == Validators('"v1"', "Sat, 20 Apr 2024")
    second = get(session, httpserver.url_for("/feed.xml"), validators=first.validators)
    assert second.ok and second.not_modified and second.content == b""


def test_unaccepted_content_type_is_not_downloaded(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/video").respond_with_data(b"\0" * 1000, content_type="video/mp4")
    result = get(session, httpserver.url_for("/video"), accept_types=PAGE_TYPES)
    assert result.error == "content type video/mp4 not accepted" and result.content == b""


def test_short_retry_after_is_waited_for(httpserver: HTTPServer, session: requests.Session) -> None:
    seen: list[float] = []

    def limited(request: Request) -> Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response("ok")

    httpserver.expect_request("/limited").respond_with_handler(limited)
    result = get(session, httpserver.url_for("/limited"))
    assert result.ok and len(seen) == 2
    assert seen[1] - seen[0] >= 0.95


def test_only_sessions_from_make_session(httpserver: HTTPServer) -> None:
    with pytest.raises(TypeError, match="make_session"):
        fetch(requests.Session(), httpserver.url_for("/"))


def test_unreachable_hosts_are_reported(session: requests.Session) -> None:
    refused = get(session, "http://127.0.0.1:9/feed.xml")
    assert (
        refused.status is None and refused.error and refused.error.startswith("connection failed")
    )
    unresolvable = get(session, "http://mediamon-test.invalid/feed.xml")
    assert unresolvable.error and unresolvable.error.startswith("DNS lookup failed")
    assert get(session, "not a url").error


def test_url_length_cap_applies_to_the_link_as_written(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    path = "/" + "新闻" * 350  # 701 characters; percent-encoded over 6000
    httpserver.expect_request(path).respond_with_data("ok")
    assert get(session, httpserver.url_for(path)).ok
    too_long = get(session, httpserver.url_for("/" + "x" * 2100))
    assert too_long.error == "blocked: URL longer than 2048 characters"
