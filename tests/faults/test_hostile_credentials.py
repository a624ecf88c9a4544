"""Credentials in URLs (an audit's finding): a redirect's ``Location`` holding a user name
and password, and a URL given with them. Real servers on 127.0.0.1 record the
Authorization header each request carried; the ingest tests run through a real
PostgreSQL. Each test names a row of docs/faults.md."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.ingest.fetch import fetch
from mediamon.ingest.session import make_session
from tests.support.dns_server import dns_server, resolver_command
from tests.support.fault_server import (
    Behaviour,
    Connection,
    FaultServer,
    fault_server,
    redirect,
    respond,
)
from tests.support.faults import NOW, RSS, articles, feed_source, item, page, rss, run_ingest


@pytest.fixture()
def other_server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


def _authorizations(server: FaultServer) -> dict[str, list[str]]:
    """The Authorization header each path was requested with ('' for none)."""
    sent: dict[str, list[str]] = {}
    for _method, path, headers in server.requests:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        sent.setdefault(path, []).append(value)
    return sent


def _stored_text(engine: sa.Engine) -> str:
    """Every row of every table and view of mediamon's schemas, as text."""
    with engine.connect() as conn:
        relations = conn.execute(
            sa.text(
                "select table_schema, table_name from information_schema.tables"
                " where table_schema in ('public', 'bi')"
            )
        ).all()
        rows = [
            str(row)
            for schema, name in relations
            for row in conn.execute(sa.text(f'select t::text from "{schema}"."{name}" t'))
        ]
    return "\n".join(rows)


def test_credentials_a_redirect_supplies_are_never_sent_nor_stored(
    engine: sa.Engine, server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed and an article page each redirecting to ``http://user:secret@host/…``
    (before: requests took the server's user name and password as Basic credentials
    and sent them on, to whatever host the Location named; the feed's final URL, with
    them, was the base its relative links were read against, and the fetch result's
    ``final_url`` kept them)."""
    port = server.port
    server.route("/feed-hop", redirect(f"http://feeduser:feedsecret@127.0.0.1:{port}/feed.xml"))
    server.route("/hop", redirect(f"http://pageuser:pagesecret@127.0.0.1:{port}/p"))
    server.route("/p", respond(page("跳转文章")))
    server.route("/rel", respond(page("相对链接")))
    items = [item(server.url("/hop"), title="跳转"), item("/rel", title="相对")]
    server.route("/feed.xml", respond(rss(items), content_type=RSS))
    with caplog.at_level("DEBUG", logger="mediamon"):
        stats = run_ingest(engine, [feed_source("creds", server.url("/feed-hop"))], NOW)
    assert stats["creds"].errors == []
    assert {path: set(sent) for path, sent in _authorizations(server).items()} == {
        "/feed-hop": {""},
        "/feed.xml": {""},
        "/hop": {""},
        "/p": {""},
        "/rel": {""},
        "/robots.txt": {""},
    }
    stored = articles(engine, "creds")
    assert {url: row["content_origin"] for url, row in stored.items()} == {
        server.url("/hop"): "page",
        server.url("/rel"): "page",
    }
    assert stored[server.url("/hop")]["canonical_url"] == server.url("/p")
    for secret in ("feedsecret", "pagesecret", "feeduser", "pageuser"):
        assert secret not in caplog.text
        assert secret not in _stored_text(engine)


def test_a_redirect_target_is_requested_and_reported_without_its_credentials(
    server: FaultServer,
) -> None:
    """The hop is followed without the user name and password the server put in it: not
    sent, not in ``final_url`` or ``redirects``, and not in an error naming the chain (a
    redirect loop through a spelling with credentials is the same URL, a loop)."""
    port = server.port
    server.route("/a", redirect(f"http://u:s3cret@127.0.0.1:{port}/b"))
    server.route("/b", respond(page("目标")))
    server.route("/loop", redirect(f"http://u:s3cret@127.0.0.1:{port}/loop"))
    with make_session("mediamon-test/1.0", retries=0) as session:
        followed = fetch(session, server.url("/a"), allow_private_network=True)
        looped = fetch(session, server.url("/loop"), allow_private_network=True)
    assert followed.ok and followed.final_url == server.url("/b")
    assert followed.redirects == (server.url("/a"),)
    assert looped.error == f"redirect loop: {server.url('/loop')} -> {server.url('/loop')}"
    assert server.hits("/loop") == 1
    assert set(_authorizations(server)["/b"]) == {""}


def test_credentials_of_the_url_asked_for_go_to_its_own_host_only(
    server: FaultServer, other_server: FaultServer
) -> None:
    """A URL given with a user name and password (an operator's, for a feed behind Basic
    auth) sends them to its own host, on every hop that stays there, and never to another
    host a redirect names; the result reports every URL without them."""
    server.route("/feed", redirect("/feed2"))
    server.route("/feed2", redirect(other_server.url("/elsewhere")))
    other_server.route("/elsewhere", respond(page("别处")))
    private = {f"127.0.0.1:{server.port}", f"127.0.0.1:{other_server.port}"}
    url = f"http://ops:pa55word@127.0.0.1:{server.port}/feed"
    with make_session("mediamon-test/1.0", retries=0) as session:
        result = fetch(session, url, private_hosts=private)
    basic = "Basic " + base64.b64encode(b"ops:pa55word").decode()
    assert _authorizations(server) == {"/feed": [basic], "/feed2": [basic]}
    assert _authorizations(other_server) == {"/elsewhere": [""]}
    assert result.ok and result.final_url == other_server.url("/elsewhere")
    assert result.redirects == (server.url("/feed"), server.url("/feed2"))
    assert "pa55word" not in repr(result)


# Run under a name server of the test's own (see tests.support.dns_server): two sites under
# the public suffix sh.cn (Shanghai's), both on the test server.
FETCH_TWO_SITES = """
import json, sys
from mediamon.ingest.fetch import fetch
from mediamon.ingest.session import make_session

port = sys.argv[1]
sites = {f"evil.sh.cn:{port}", f"news.sh.cn:{port}"}
with make_session("mediamon-faults/1.0", retries=0) as session:
    for url in ("evil.sh.cn/toss", "evil.sh.cn/own", "news.sh.cn/p", "evil.sh.cn/again"):
        result = fetch(session, f"http://{url.replace('/', f':{port}/', 1)}", private_hosts=sites)
        assert result.ok, result.error
print(json.dumps(sorted(c.domain for c in session.cookies)))
"""


def test_a_cookie_set_for_a_public_suffix_reaches_no_other_site(
    server: FaultServer, tmp_path: Path
) -> None:
    """A page on evil.sh.cn setting ``Domain=.sh.cn`` (sh.cn is a public suffix, as
    com.cn is; before: http.cookiejar refuses only ``.co.uk``-like domains of a short
    list, so the cookie was kept and sent with every request to every site under sh.cn,
    bj.cn, github.io, blogspot.com …: up to 50 cookies of 4 KB, 200 KB a request, which
    nginx and Apache refuse, and a session cookie of the tosser's choosing). Ignored, as
    browsers ignore it (the Public Suffix List); a cookie for the site's own domain is
    kept and sent back."""
    server.route("/toss", respond(page("甲"), headers={"Set-Cookie": "tossed=1; Domain=.sh.cn"}))
    server.route("/own", respond(page("乙"), headers={"Set-Cookie": "own=1; Domain=.evil.sh.cn"}))
    server.route("/p", respond(page("丙")))
    server.route("/again", respond(page("丁")))
    names = {"evil.sh.cn": ["127.0.0.1"], "news.sh.cn": ["127.0.0.1"]}
    with dns_server(names) as name_server:
        argv = [sys.executable, "-c", FETCH_TWO_SITES, str(server.port)]
        command = resolver_command(name_server, tmp_path, argv, wait_s=5)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [".evil.sh.cn"]
    sent = {path: headers.get("cookie", "") for _, path, headers in server.requests}
    assert sent["/p"] == "" and sent["/again"] == "own=1"


def _locations(*values: str) -> Behaviour:
    """A 302 with one Location header for each of ``values``."""
    lines = "".join(f"Location: {v}\r\n" for v in values)
    head = f"HTTP/1.1 302 Found\r\n{lines}Content-Length: 0\r\n\r\n".encode()

    def behave(conn: Connection) -> None:
        conn.send(head)

    return behave


def test_a_location_sent_twice_is_followed_once_and_two_different_ones_are_an_error(
    server: FaultServer,
) -> None:
    """Location sent twice, as a CMS and its proxy each add it (before: the two arrived
    joined, ``/a, /a`` was requested, a 404: the page lost). The same URL twice is
    followed; two different ones are the fetch's error, as in browsers; a comma inside
    one Location is part of its URL."""
    server.route("/same", _locations("/a", "/a"))
    server.route("/different", _locations("/a", "/b"))
    server.route("/comma", _locations("/a,b"))
    for path in ("/a", "/b", "/a,b"):
        server.route(path, respond(page("目标")))
    with make_session("mediamon-test/1.0", retries=0) as session:
        same, different, comma = (
            fetch(session, server.url(path), allow_private_network=True)
            for path in ("/same", "/different", "/comma")
        )
    assert same.ok and same.final_url == server.url("/a")
    assert different.error == "HTTP 302 redirect with 2 different Location headers"
    assert comma.ok and comma.final_url == server.url("/a,b")
    assert server.hits("/b") == 0
