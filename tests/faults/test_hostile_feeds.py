"""Hostile feeds, archives and fetcher input (the held-out attack run on ingest): each
test replays one finding against servers on 127.0.0.1 and a real PostgreSQL, and names
the docs/faults.md row it proves.

1. validators unfit to store or send back       -> test_validators_*
2. an unbounded cookie jar; a Cookie header    -> test_cookies_*
   over what servers take
3. archive file names that are not UTF-8        -> test_archive_file_names_*
4. a key given twice in sources.yaml            -> test_a_field_given_twice_*
5. robots.txt rules that backtrack, or a BOM   -> test_robots_txt_*
6. a date padded with spaces; long titles      -> test_a_date_padded_*, test_notes_*
7. a Location header in raw UTF-8               -> test_a_redirect_*
8. endless empty gzip members                   -> test_a_gzip_body_of_empty_members_*
9. requests' own look at a redirect             -> test_a_redirects_body_*, test_a_redirect_to_*
10. 60 kB a server writes into an error         -> test_errors_quoting_*
11. dates written with a sign first            -> test_dates_written_with_a_sign_*
12. items whose links redirect                 -> test_items_whose_links_redirect_*
13. a Content-Type sent twice                  -> test_a_content_type_sent_twice_*
14. interim (1xx) answers                     -> test_interim_answers_*
15. items a source claimed, seen again        -> test_items_a_source_claimed_*
16. a source's language tag (zh-CN)          -> test_a_sources_language_tag_*
17. elements outside the items              -> test_a_feed_of_more_elements_*
18. a Last-Modified in the future            -> test_a_last_modified_in_the_future_*
19. a link's scheme in capitals              -> test_item_links_whose_scheme_*
20. archive links out, FIFOs, empty files     -> test_an_archive_folders_links_*
21. an author of a long run of letters        -> test_authors_of_long_runs_*
22. a paragraph past the parser's buffer       -> test_a_paragraph_past_the_parsers_*
"""

from __future__ import annotations

import gzip
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from mediamon.ingest.feeds import parse_feed
from mediamon.ingest.fetch import MAX_ERROR_CHARS, PAGE_TYPES, fetch
from mediamon.ingest.session import (
    MAX_COOKIE_BYTES,
    MAX_COOKIE_HEADER_BYTES,
    MAX_COOKIES_PER_DOMAIN,
    make_session,
)
from mediamon.ingest.sources import Source, SourceConfigError, load_sources
from tests.support.cpu import least_cpu
from tests.support.fault_server import Behaviour, Connection, FaultServer, respond
from tests.support.faults import (
    NOW,
    PARAGRAPH,
    RSS,
    USER_AGENT,
    articles,
    feed_source,
    fetch_log,
    item,
    page,
    rss,
    run_ingest,
)
from tests.support.faults import state as source_state

# ------------------------------------------------------------------- 1. validators


@pytest.mark.parametrize("validator", ['"a\x00b"', '"' + "x" * 60_000 + '"'], ids=["nul", "60-kb"])
def test_validators_unfit_to_store_or_send_back_are_not_kept(
    engine: sa.Engine, server: FaultServer, validator: str
) -> None:
    """An ETag with a NUL made PostgreSQL refuse the polling state (the task failed at
    every run); one of 60 kB was sent back at every poll, a request the server refused
    (the source failed for good). Neither is kept; the body's hash still finds the feed
    unchanged."""
    server.route("/p", respond(page("验证器")))
    headers = {"ETag": validator, "Last-Modified": validator}
    feed = rss([item(server.url("/p"))])
    server.route("/feed.xml", respond(feed, content_type=RSS, headers=headers))
    source = feed_source("validators", server.url("/feed.xml"))
    assert run_ingest(engine, [source], NOW)["validators"].new == 1
    state = source_state(engine, "validators")
    assert state["etag"] is None and state["last_modified"] is None
    assert state["last_outcome"] == "polled"
    again = run_ingest(engine, [source], NOW, run_key="faults:2")["validators"]
    assert again.poll == "unchanged" and not again.errors
    assert "if-none-match" not in server.requests[-1][2]


def test_validators_that_are_ordinary_are_kept(engine: sa.Engine, server: FaultServer) -> None:
    etag, modified = 'W/"5f3-1a2b"', "Sat, 20 Apr 2024 08:00:00 GMT"
    server.route("/p", respond(page("验证器")))
    headers = {"ETag": etag, "Last-Modified": modified}
    feed = rss([item(server.url("/p"))])
    server.route("/feed.xml", respond(feed, content_type=RSS, headers=headers))
    source = feed_source("validators", server.url("/feed.xml"))
    run_ingest(engine, [source], NOW)
    state = source_state(engine, "validators")
    assert (state["etag"], state["last_modified"]) == (etag, modified)


# ---------------------------------------------------------------------- 2. cookies


def _cookie_page(count: int, size: int) -> Behaviour:
    """A page setting ``count`` new cookies of ``size`` bytes each (names differ per path)."""
    body = page("饼干").encode()

    def behave(conn: Connection) -> None:
        tag = conn.path.strip("/")
        cookies = "".join(f"Set-Cookie: {tag}_{n}={'v' * size}; Path=/\r\n" for n in range(count))
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{cookies}\r\n"
        )
        conn.send(head.encode() + body)

    return behave


def test_cookies_a_host_sets_are_bounded_and_its_other_pages_still_load(
    engine: sa.Engine, server: FaultServer
) -> None:
    """Pages setting 90 cookies of 60 kB each: before, the task's jar grew 5 MB a page and
    every later request to the host carried all of them, so the host refused it and the
    pages after the second fell back to the feed's text."""
    links = []
    for n in range(6):
        server.route(f"/p{n}", _cookie_page(90, 60_000))
        links.append(server.url(f"/p{n}"))
    feed = rss([item(u, title=f"第{n}条", description=f"摘要{n}") for n, u in enumerate(links)])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("cookies", server.url("/feed.xml"))], NOW)
    assert stats["cookies"].new == 6
    log = fetch_log(engine, "cookies")
    assert all(log[u]["error"] is None for u in links), [log[u]["error"] for u in links]
    assert all(articles(engine)[u]["content_origin"] == "page" for u in links)


def test_cookies_are_kept_within_browser_limits(server: FaultServer) -> None:
    """Cookies of up to MAX_COOKIE_BYTES are kept, up to MAX_COOKIES_PER_DOMAIN a
    domain (a cookie already kept may still change); larger ones are ignored. A request
    carries those that fit in MAX_COOKIE_HEADER_BYTES (here 6 of about 1 kB)."""
    server.route("/many", _cookie_page(80, 1_000))
    server.route("/big", _cookie_page(1, MAX_COOKIE_BYTES + 1))
    with make_session(USER_AGENT, retries=0) as session:
        for path in ("/many", "/big", "/many"):
            result = fetch(
                session, server.url(path), allow_private_network=True, accept_types=PAGE_TYPES
            )
            assert result.ok, result.error
        assert len(session.cookies) == MAX_COOKIES_PER_DOMAIN
        assert "big_0" not in session.cookies
    sent = server.requests[-1][2]["cookie"]
    assert len(sent) <= MAX_COOKIE_HEADER_BYTES
    # The largest left out first (many_10 to many_49 are a byte longer), then the oldest.
    assert [c.split("=")[0] for c in sent.split("; ")] == [f"many_{n}" for n in range(4, 10)]


def _refusing_long_heads(behaviour: Behaviour, limit: int = 8192) -> Behaviour:
    """``behaviour``, unless the request's head is over ``limit`` bytes: then 431, as
    Tomcat and older Node.js answer (nginx and Apache answer 400 for a line that long)."""

    def behave(conn: Connection) -> None:
        head = sum(len(k) + len(v) + 4 for k, v in conn.headers.items()) + len(conn.path) + 16
        if head > limit:
            respond(b"too large", "431 Request Header Fields Too Large")(conn)
        else:
            behaviour(conn)

    return behave


def test_cookies_a_host_sets_never_make_its_requests_too_large_to_take(
    engine: sa.Engine, server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages setting 10 cookies of 1,000 bytes each, all within the jar's limits, on a
    server refusing a request head over 8 KiB: before, the second page's request carried
    10 kB of cookies and every page after the first was a 431 and fell back to the feed's
    text. The Cookie header stays within MAX_COOKIE_HEADER_BYTES (the largest, then the
    oldest left out; the small session id stays), logged once for the host."""
    server.route(
        "/login",
        _refusing_long_heads(respond(page("登录"), headers={"Set-Cookie": "sid=42; Path=/"})),
    )
    links = [server.url("/login")]
    for n in range(6):
        server.route(f"/p{n}", _refusing_long_heads(_cookie_page(10, 1_000)))
        links.append(server.url(f"/p{n}"))
    feed = rss([item(u, title=f"第{n}条", description=f"摘要{n}") for n, u in enumerate(links)])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    with caplog.at_level("WARNING", logger="mediamon.ingest.session"):
        stats = run_ingest(engine, [feed_source("cookies", server.url("/feed.xml"))], NOW)
    assert stats["cookies"].new == 7
    log = fetch_log(engine, "cookies")
    assert all(log[u]["error"] is None for u in links), [log[u]["error"] for u in links]
    assert all(articles(engine)[u]["content_origin"] == "page" for u in links)
    sent = [headers.get("cookie", "") for _, _, headers in server.requests]
    assert max(len(cookie) for cookie in sent) <= MAX_COOKIE_HEADER_BYTES
    assert "sid=42" in sent[-1]  # the last request, with the most cookies kept
    cut = [
        r.getMessage() for r in caplog.records if "more than a request may carry" in r.getMessage()
    ]
    assert len(cut) == 1 and "cookies of 127.0.0.1:" in cut[0], cut


# ------------------------------------------------------------------- 3. archives


def test_archive_file_names_that_are_not_utf8_are_named_and_the_rest_loads(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """A malformed file whose name is not UTF-8 (Latin-1 é): before, its error, holding
    the name's lone surrogates, could not be encoded for the fetch log, and the import
    failed (its chunk, good files included, rolled back) at every run."""
    folder = tmp_path / "archive"
    folder.mkdir()
    good = folder / "a-good.txt"
    good.write_text(
        f"<!--1712090701000-->\n[好文件](https://example.com/good)\n------\n<p>{PARAGRAPH}</p>\n",
        "utf-8",
    )
    bad = folder / os.fsdecode(b"b-\xe9t\xe9.txt")
    bad.write_bytes(b"not an archived item")
    stats = run_ingest(engine, [Source(name="arch", kind="archive", location=str(folder))], NOW)
    assert stats["arch"].new == 1 and stats["arch"].failed == 1
    message = "b-\\xe9t\\xe9.txt: line 1 must be <!--epoch milliseconds-->"
    assert stats["arch"].errors == [message]
    log = fetch_log(engine, "arch")
    assert log[bad.as_uri()]["error"] == message and log[good.as_uri()]["error"] is None
    assert "https://example.com/good" in articles(engine, "arch")


def test_an_archive_file_with_an_unusable_link_fails_alone(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """Before: a link URL canonicalization refuses (a port of 99999) raised out of the
    import, `mediamon: Port out of range 0-65535`: no file of the folder loaded, at every
    run; credentials in a link were stored and shown as written."""
    folder = tmp_path / "archive"
    folder.mkdir()
    for name, link in [
        ("a-good.txt", "https://example.com/good"),
        ("b-port.txt", "http://example.com:99999/x"),
        ("c-creds.txt", "https://www.example.com:pw@evil.example/p"),
    ]:
        (folder / name).write_text(
            f"<!--1712090701000-->\n[标题]({link})\n------\n<p>{PARAGRAPH}</p>\n", "utf-8"
        )
    stats = run_ingest(engine, [Source(name="arch", kind="archive", location=str(folder))], NOW)
    assert stats["arch"].new == 2 and stats["arch"].failed == 1
    assert sorted(stats["arch"].errors) == [
        "b-port.txt: line 2 link 'http://example.com:99999/x' is not a valid http(s) URL",
        "c-creds.txt: link had a user name or password; removed",
    ]
    assert sorted(articles(engine, "arch")) == [
        "https://evil.example/p",
        "https://example.com/good",
    ]


def test_an_archive_folders_links_fifos_and_empty_files_are_each_named_and_the_rest_loads(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """Before: a symbolic link out of the folder was followed (an archived item in
    another folder was stored as this source's article; /etc/passwd was read, its error
    `line 1 must be …`); a FIFO, a device, a link that loops or leads nowhere were left
    out without a word; an empty file was `line 1 must be <!--epoch milliseconds-->`;
    and a malformed file named `…\\nERROR …` wrote a second, forged line into the log."""
    folder, elsewhere = tmp_path / "archive", tmp_path / "elsewhere"
    (folder / "sub").mkdir(parents=True)
    elsewhere.mkdir()

    def archived(path: Path, slug: str) -> None:
        path.write_text(
            f"<!--1712090701000-->\n[{slug}](https://example.com/{slug})\n------\n"
            f"<p>{slug} {PARAGRAPH}</p>\n",
            "utf-8",
        )

    archived(folder / "a-good.txt", "good")
    archived(folder / "sub" / "kept.txt", "kept")  # read through the link below only
    (folder / "b-inside.txt").symlink_to(folder / "sub" / "kept.txt")
    archived(elsewhere / "secret.txt", "secret")
    (folder / "c-out.txt").symlink_to(elsewhere / "secret.txt")
    (folder / "d-loop.txt").symlink_to(folder / "d-loop.txt")
    os.mkfifo(folder / "e-fifo.txt")
    (folder / "f-empty.txt").write_bytes(b"")
    with (folder / "g-sparse.txt").open("wb") as file:  # 2 GB, sparse: costs no disk
        file.truncate(2 * 1024**3)
    (folder / "h-x.txt\nERROR all sources failed.txt").write_text("not an item", "utf-8")
    (folder / "i-passwd.txt").symlink_to("/etc/passwd")
    (folder / "j-zero.txt").symlink_to("/dev/zero")
    (folder / "k-gone.txt").symlink_to(folder / "nothing.txt")
    (folder / "l-self.txt").symlink_to(folder)
    archived(folder / "z-good.txt", "last")
    source = Source(name="arch", kind="archive", location=str(folder))
    started = time.monotonic()
    stats = run_ingest(engine, [source], NOW)["arch"]
    assert time.monotonic() - started < 20
    outside = "a symbolic link to a file outside the folder; not read"
    assert stats.errors == [
        f"c-out.txt: {outside}",
        "d-loop.txt: a symbolic link that loops; not read",
        "e-fifo.txt: not a regular file; not read",
        "f-empty.txt: empty file; nothing to load",
        "g-sparse.txt: file larger than 15728640 bytes; not read",
        "h-x.txt\\nERROR all sources failed.txt: line 1 must be <!--epoch milliseconds-->",
        f"i-passwd.txt: {outside}",
        f"j-zero.txt: {outside}",
        "k-gone.txt: gone, or a symbolic link to nothing; not read",
        "l-self.txt: not a regular file; not read",
    ]
    assert stats.new == 3 and stats.failed == 10
    assert sorted(articles(engine, "arch")) == [
        "https://example.com/good",
        "https://example.com/kept",
        "https://example.com/last",
    ]
    logged = fetch_log(engine, "arch")
    assert logged[(folder / "c-out.txt").as_uri()]["error"] == f"c-out.txt: {outside}"


@pytest.mark.parametrize("chunk_size", [100, 1])  # the two files in one chunk, or two
def test_archive_files_of_one_article_and_unbelievable_dates_are_noted(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    """Before: a second file of the same article replaced the first's text, and a file
    dated in 2286 was dated by its import, both without a word; a feed's items get a
    line for each."""
    from mediamon.ingest import run

    monkeypatch.setattr(run, "CHUNK_SIZE", chunk_size)
    folder = tmp_path / "archive"
    folder.mkdir()
    for name, epoch, text in [
        ("1-first.txt", 1712090701000, "第一份"),
        ("2-again.txt", 1712090702000, "第二份"),
        ("3-epoch.txt", 9999999999999, "第三份"),
    ]:
        url = "https://example.com/other" if name.startswith("3") else "https://example.com/a?b=1"
        (folder / name).write_text(
            f"<!--{epoch}-->\n[标题]({url})\n------\n<p>{text}{PARAGRAPH}</p>\n", "utf-8"
        )
    stats = run_ingest(engine, [Source(name="arch", kind="archive", location=str(folder))], NOW)
    assert stats["arch"].errors == [
        "2-again.txt: same article as 1-first.txt (https://example.com/a?b=1); this file's"
        " text kept",
        "3-epoch.txt: date 2286-11-20T17:46:39.999000+00:00 is in the future; first-seen time used",
    ]
    stored = articles(engine, "arch")
    assert stored["https://example.com/a?b=1"]["body_text"].startswith("第二份")
    undated = stored["https://example.com/other"]
    assert undated["published_at"] is None and undated["first_seen_at"] == NOW


# ------------------------------------------------------------------ 4. sources.yaml


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "sources:\n- {name: a, url: 'https://a.example/f', url: 'https://b.example/g'}\n",
            "'url' given twice in one mapping (line 2, column 41)",
        ),
        (
            "sources:\n- name: a\n  url: https://a.example/f\n  enabled: true\n"
            "  language: zh\n  enabled: false\n",
            "'enabled' given twice in one mapping (line 6, column 3)",
        ),
    ],
    ids=["url", "enabled"],
)
def test_a_field_given_twice_in_sources_yaml_is_refused(
    tmp_path: Path, text: str, where: str
) -> None:
    """Before: PyYAML kept the last value silently (the source polled the second URL;
    the source stayed disabled whatever the first line said)."""
    path = tmp_path / "sources.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(SourceConfigError) as refused:
        load_sources(path)
    assert str(refused.value) == f"{path}: not valid YAML: {where}"


def test_a_merged_field_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "base: &base {poll_interval: 1h, url: 'https://a.example/f'}\n"
        "sources:\n- {<<: *base, name: a, url: 'https://b.example/g'}\n",
        "utf-8",
    )
    (source,) = load_sources(path)
    assert source.location == "https://b.example/g" and source.poll_interval.seconds == 3600


# --------------------------------------------------------------------- 5. robots.txt


def test_robots_txt_rules_of_many_stars_are_matched_in_linear_time(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A rule of eight stars, ``/*a*a*a*a*a*a*a*a*b``, against a 48-character path: the
    regex it became backtracked (10 s of the ingest thread per page; 56 s at 60
    characters, each star more multiplying it). Now matched piece by piece."""
    rule = "/" + "*a" * 8 + "*b"
    server.route(
        "/robots.txt", respond(f"User-agent: *\nDisallow: {rule}\n", content_type="text/plain")
    )
    kept, refused = server.url("/" + "a" * 48), server.url("/" + "a" * 8 + "b")
    server.route("/" + "a" * 48, respond(page("通配符")))
    feed = rss([item(kept, title="允许"), item(refused, title="禁止")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    started = time.monotonic()
    stats = run_ingest(engine, [feed_source("robots", server.url("/feed.xml"))], NOW)
    assert time.monotonic() - started < 3
    assert stats["robots"].new == 2
    log = fetch_log(engine, "robots")
    assert log[kept]["error"] is None
    assert str(log[refused]["error"]).startswith("page not fetched (disallowed by robots.txt")
    assert server.hits("/" + "a" * 8 + "b") == 0


def test_robots_txt_with_a_byte_order_mark_is_obeyed(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A robots.txt saved with a UTF-8 byte order mark: before, its first line read as
    the unknown key "\ufeffuser-agent", so the group was skipped and the disallowed page
    was fetched."""
    rules = "\ufeffUser-agent: *\nDisallow: /private\n".encode()
    server.route("/robots.txt", respond(rules, content_type="text/plain; charset=utf-8"))
    server.route("/private/a", respond(page("不许抓取")))
    server.route("/public/b", respond(page("可以抓取")))
    links = [server.url("/private/a"), server.url("/public/b")]
    feed = rss([item(u, title=f"第{n}条", description=f"摘要{n}") for n, u in enumerate(links)])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("bom", server.url("/feed.xml"))], NOW)
    assert stats["bom"].new == 2
    assert server.hits("/private/a") == 0 and server.hits("/public/b") == 1
    assert str(fetch_log(engine, "bom")[links[0]]["error"]).startswith(
        "page not fetched (disallowed by robots.txt"
    )


# -------------------------------------------------------------------------- 6. dates


def test_a_date_padded_with_spaces_is_read_in_linear_time() -> None:
    """``2024-04-20`` then 50,000 spaces and a letter: the search for a final GMT or UTC
    read the rest of the spaces from each of them (4.3 s at 20,000 spaces, 27 s at
    50,000, for one item's date; a 15 MB feed holds hundreds of such dates)."""
    date = "2024-04-20T08:00:00" + " " * 50_000 + "x"
    feed = rss([item("https://example.com/a", date=date), item("https://example.com/b")])
    started = time.monotonic()
    parsed = parse_feed(feed, "https://example.com/feed.xml")
    assert time.monotonic() - started < 2
    assert [i.link for i in parsed.items] == ["https://example.com/a", "https://example.com/b"]
    assert parsed.items[1].published_at == datetime(2024, 4, 20, 0, 0, tzinfo=UTC)


def test_notes_about_an_item_quote_its_title_cut() -> None:
    """Twenty items of 600 kB titles and no link: each note quoted its whole title, and
    the notes (the run's summary keeps 20, in its WARNING line, the CLI's output and the
    task's XCom) held 12 MB."""
    title = "标" * 200_000
    feed = rss([item(None, title=f"{title}{n}") for n in range(20)] + [item("https://e.com/a")])
    parsed = parse_feed(feed, "https://example.com/feed.xml")
    assert len(parsed.items) == 1 and len(parsed.skipped) == 20
    assert max(len(note) for note in parsed.skipped) < 120
    assert parsed.skipped[0] == f"item 0 ('{'标' * 79}…') has no link"


# ---------------------------------------------------------------------- 7. redirects


def test_a_redirect_to_a_location_in_raw_utf8_is_followed_as_written(
    engine: sa.Engine, server: FaultServer
) -> None:
    """``Location: /新闻/文章`` in raw UTF-8, as PHP and nginx sites send it: read as
    Latin-1 (and its last byte, U+00A0 in Latin-1, stripped as a space) it was followed
    as ``/%C3%A6%C2%96…``, a 404, and the page was lost (the feed's text used)."""
    target = "/新闻/文章"
    server.route(quote(target), respond(page("中文路径的文章")))

    def moved(conn: Connection) -> None:
        location = target.encode("utf-8")
        conn.send(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    server.route("/p", moved)
    feed = rss([item(server.url("/p"), title="跳转")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("moved", server.url("/feed.xml"))], NOW)
    assert stats["moved"].new == 1
    assert fetch_log(engine, "moved")[server.url("/p")]["error"] is None
    assert server.hits(quote(target)) == 1
    assert articles(engine)[server.url("/p")]["content_origin"] == "page"


# ----------------------------------------------------------------------- 8. encodings


def test_a_gzip_body_of_empty_members_stops_at_the_size_cap(server: FaultServer) -> None:
    """A gzip body of endless empty members decodes to nothing, so the cap on the decoded
    size never stopped it: the request took the whole deadline of CPU (the default 60 s)
    decoding what the server streamed, about 8 MB a second."""
    block = gzip.compress(b"") * 50_000

    def endless(conn: Connection) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n"
        if conn.send(head.encode()):
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and conn.send(block):
                pass

    server.route("/p", endless)
    with make_session(USER_AGENT, retries=0) as session:
        started = time.monotonic()
        result = fetch(
            session,
            server.url("/p"),
            allow_private_network=True,
            accept_types=PAGE_TYPES,
            max_bytes=1_000_000,
            deadline_s=5,
        )
    assert time.monotonic() - started < 2
    assert result.error == "compressed body larger than 1000000 bytes"


# ------------------------------------------------------- 9. requests' look at redirects


def test_a_redirects_body_is_never_read(server: FaultServer) -> None:
    """A 302 with an endless body. requests, even with redirects off, read a redirect's
    whole body (decoded, with no cap) to prepare ``Response.next``: this one until the
    deadline, and a 302 whose gzip body held 500 MB of zeros raised the process's
    memory by 500 MB. Now the body is not read and the Location is followed at once."""

    def endless(conn: Connection) -> None:
        head = "HTTP/1.1 302 Found\r\nLocation: /q\r\nContent-Type: text/html\r\n\r\n"
        if conn.send(head.encode()):
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and conn.send(b"x" * 65536):
                pass

    server.route("/p", endless)
    server.route("/q", respond(page("跳转之后")))
    with make_session(USER_AGENT, retries=0) as session:
        started = time.monotonic()
        result = fetch(
            session, server.url("/p"), allow_private_network=True, accept_types=PAGE_TYPES,
            deadline_s=4,
        )  # fmt: skip
    assert time.monotonic() - started < 2
    assert result.ok and result.final_url == server.url("/q"), result.error


@pytest.mark.parametrize("location", ["http://[::1", "//[zz]/"])
def test_a_redirect_to_a_location_urlsplit_cannot_read_fails_that_fetch_only(
    engine: sa.Engine, server: FaultServer, location: str
) -> None:
    """Before: requests parsed the Location to prepare ``Response.next`` and its
    ValueError left fetch(): the page's source ended its poll with a traceback, its
    other items not loaded."""
    server.route("/p", respond(b"", "302 Found", headers={"Location": location}))
    server.route("/q", respond(page("好页")))
    server.route("/moved.xml", respond(b"", "302 Found", headers={"Location": location}))
    feed = rss([item(server.url("/p"), title="坏跳转"), item(server.url("/q"), title="好页")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    sources = [
        feed_source("pages", server.url("/feed.xml")),
        feed_source("moved", server.url("/moved.xml")),
    ]
    stats = run_ingest(engine, sources, NOW)
    message = f"redirect to a URL that cannot be read: {location!r}"
    assert stats["pages"].new == 2 and stats["moved"].poll == "failed"
    assert stats["moved"].errors == [f"{server.url('/moved.xml')}: {message}"]
    log = fetch_log(engine)
    assert log[server.url("/p")]["error"] == f"page not fetched ({message}); used feed_summary"
    assert articles(engine)[server.url("/q")]["content_origin"] == "page"


# ------------------------------------------------------------ 10. long server words


def _raw(head: str) -> Behaviour:
    def behave(conn: Connection) -> None:
        conn.send(head.encode("latin-1") + b"Content-Length: 0\r\n\r\n")

    return behave


@pytest.mark.parametrize(
    "head",
    [
        "HTTP/1.1 404 " + "R" * 60_000 + "\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: video/" + "m" * 60_000 + "\r\n",
    ],
    ids=["reason-phrase", "content-type"],
)
def test_errors_quoting_what_a_server_sent_are_cut(server: FaultServer, head: str) -> None:
    """A 60 kB reason phrase or content type: the error quoted it whole, into the fetch
    log (a row per page, every run), the run's summary and its WARNING line."""
    server.route("/p", _raw(head))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(
            session, server.url("/p"), allow_private_network=True, accept_types=PAGE_TYPES
        )
    assert result.error is not None and len(result.error) <= MAX_ERROR_CHARS
    assert result.error.startswith(("HTTP 404 RRR", "content type video/mmm"))
    assert result.error.endswith("…")


# ------------------------------------------------------------ 11. dates with a sign


def test_dates_written_with_a_sign_first_are_not_believed(
    engine: sa.Engine, server: FaultServer
) -> None:
    """feedparser reads a date that starts with a sign as one of ISO 8601's truncated
    forms and takes what it lacks from today's clock: PHP's zero date
    ``-0001-11-30T00:00:00+00:00`` (a MySQL ``0000-00-00`` formatted by PHP, common in
    WordPress feeds) was stored as 2000-01-01, ``--11-30`` as the 30th of November of
    the current year, ``-24`` as the 1st of the current month, without a word."""
    dates = {
        "/php-zero": "-0001-11-30T00:00:00+00:00",
        "/no-year": "--11-30",
        "/two-digits": "-24",
        "/day-only": "---20",
        "/fine": "2024-04-20T08:00:00+08:00",
    }
    feed = rss([item(server.url(p), title=p, date=d) for p, d in dates.items()])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(
        engine, [feed_source("signed", server.url("/feed.xml"), fetch_pages=False)], NOW
    )
    assert stats["signed"].new == len(dates)
    stored = articles(engine)
    published = {p: stored[server.url(p)]["published_at"] for p in dates}
    assert published == {**dict.fromkeys(dates), "/fine": datetime(2024, 4, 20, tzinfo=UTC)}
    assert (
        "item 0 ('/php-zero') date '-0001-11-30T00:00:00+00:00' is not a date (no whole year,"
        " or a year before 1); first-seen time used" in stats["signed"].errors
    )
    assert sum("is not a date (no whole year" in note for note in stats["signed"].errors) == 4


# ------------------------------------------------------------- 12. redirected links


def test_items_whose_links_redirect_are_known_at_the_next_poll(
    engine: sa.Engine, server: FaultServer
) -> None:
    """Items whose links redirect (http to https, a feed proxy, a trailing slash) are
    stored under their pages' final URLs, and were looked up by their links alone: at
    every poll of a changed feed each was fetched and built again and counted as new, so
    the poll interval halved (15 to 7.5 minutes here, down to its floor in a few polls);
    when its page then failed, the feed's text was stored as a second article."""
    links = []
    for n in range(3):
        server.route(f"/new/a{n}", respond(page(f"跳转后的文章{n}", text=f"{n}{PARAGRAPH}")))
        server.route(f"/a{n}", respond(b"", "301 Moved", headers={"Location": f"/new/a{n}"}))
        links.append(server.url(f"/a{n}"))
    source = feed_source("moved", server.url("/feed.xml"))
    server.route("/feed.xml", respond(rss([item(u) for u in links]), content_type=RSS))
    assert run_ingest(engine, [source], NOW)["moved"].new == 3
    interval = source_state(engine, "moved")["poll_interval"]  # halved: all were new
    # The feed changes (a fourth item); one of the moved pages fails meanwhile.
    server.route("/a3", respond(page("新的文章")))
    server.route("/new/a0", respond(b"", "500 Internal Server Error"))
    links.append(server.url("/a3"))
    server.route("/feed.xml", respond(rss([item(u) for u in links]), content_type=RSS))
    later = NOW + timedelta(hours=1)
    stats = run_ingest(engine, [source], later, run_key="faults:2")["moved"]
    assert (stats.new, stats.already_known, stats.failed) == (1, 3, 0)
    assert [server.hits(f"/new/a{n}") for n in range(3)] == [1, 1, 1]
    assert source_state(engine, "moved")["poll_interval"] == interval  # 1 of 4 new
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select url, canonical_url from articles")).all()
    assert sorted(stored) == [
        (server.url(f"/a{n}"), server.url(f"/new/a{n}")) for n in range(3)
    ] + [(server.url("/a3"), server.url("/a3"))]


# ------------------------------------------------------ 13. Content-Type sent twice


def _typed_twice(body: bytes, *types: str) -> Behaviour:
    """An answer carrying one Content-Type header per type."""

    def behave(conn: Connection) -> None:
        head = "".join(f"Content-Type: {t}\r\n" for t in types)
        head = f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        conn.send(head.encode("latin-1") + body)

    return behave


def test_a_content_type_sent_twice_is_read_as_browsers_read_it(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A CMS and its web server (or a proxy) each sending Content-Type: the two arrive
    joined by a comma, ``text/html, text/html; charset=gbk``, which was read as one type
    and refused, ``content type text/html, text/html not accepted``: the page was never
    read, the feed's text stored instead. As browsers do (the Fetch standard), the last
    type wins, with the charset an earlier part gave the same type."""
    gbk = page("两个类型", charset="gbk").replace('<meta charset="gbk">', "")
    server.route(
        "/p", _typed_twice(page("两个类型").encode(), "text/html", "text/html; charset=utf-8")
    )
    server.route("/q", _typed_twice(gbk.encode("gbk"), "text/html; charset=gbk", "text/html"))
    server.route("/v", _typed_twice(b"\x00\x00", "text/html", "video/mp4"))
    links = [server.url(p) for p in ("/p", "/q", "/v")]
    feed = rss([item(u, title="两个类型") for u in links])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("typed", server.url("/feed.xml"))], NOW)["typed"]
    assert stats.new == 3
    log, stored = fetch_log(engine, "typed"), articles(engine, "typed")
    assert [log[u]["error"] for u in links[:2]] == [None, None]
    assert [stored[u]["content_origin"] for u in links] == ["page", "page", "feed_summary"]
    assert "记者从有关部门获悉" in str(stored[links[1]]["body_text"])
    assert log[links[2]]["error"] == (
        "page not fetched (content type video/mp4 not accepted); used feed_summary"
    )


# ----------------------------------------------------------- 14. interim answers


def _after_interim(body: bytes, content_type: str, *interim: str) -> Behaviour:
    """The answer, after one interim (1xx) answer per status line in ``interim``."""

    def behave(conn: Connection) -> None:
        ahead = "".join(f"HTTP/1.1 {s}\r\nLink: </s.css>; rel=preload\r\n\r\n" for s in interim)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}"
        conn.send(f"{ahead}{head}\r\n\r\n".encode() + body)

    return behave


def _endless_interim(conn: Connection) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and conn.send(b"HTTP/1.1 103 Early Hints\r\n\r\n"):
        pass


def test_interim_answers_before_the_answer_are_read_past(
    engine: sa.Engine, server: FaultServer
) -> None:
    """103 Early Hints (Node's writeEarlyHints, H2O, some CDNs) or 102 Processing ahead
    of the answer, which RFC 9110 asks a client to read past: http.client reads past 100
    only and took the 103 for the answer, without a body, so the feed's poll failed
    (``not a feed``) and a page was lost (``no article text found in the page``, the
    feed's text used). An endless run of them, or a 101, is one page's error."""
    early = ("103 Early Hints",)
    server.route("/p", _after_interim(page("早期提示").encode(), "text/html", *early))
    processing = ("102 Processing", "103 Early Hints", "100 Continue")
    server.route("/q", _after_interim(page("处理中").encode(), "text/html", *processing))
    server.route("/x", _endless_interim)
    server.route("/s", lambda conn: conn.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    links = [server.url(p) for p in ("/p", "/q", "/x", "/s")]
    feed = rss([item(u, title=u[-2:]) for u in links])
    server.route("/feed.xml", _after_interim(feed, RSS, *early))
    stats = run_ingest(engine, [feed_source("early", server.url("/feed.xml"))], NOW)["early"]
    assert (stats.poll, stats.new) == ("polled", 4)
    stored, log = articles(engine, "early"), fetch_log(engine, "early")
    origins = [stored[u]["content_origin"] for u in links]
    assert origins == ["page", "page", "feed_summary", "feed_summary"]
    assert "more than 20 interim (1xx) answers" in str(log[links[2]]["error"])
    assert log[links[3]]["error"] == (
        "page not fetched (HTTP 101 Switching Protocols (an interim answer; none followed));"
        " used feed_summary"
    )


# ------------------------------------------------------------ 15. claims seen again


def test_items_a_source_claimed_before_are_not_new_again(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A feed of another site's links (an aggregator, or a feed on a domain of its own)
    whose text is kept as claims: every item was counted new at every poll, so the poll
    interval halved after the first poll and stayed at its floor for good (225 s of
    900 here), however few items were new."""
    links = [server.url(f"/a{n}", host="localhost") for n in range(5)]
    source = feed_source("aggregator", server.url("/feed.xml"), fetch_pages=False)
    server.route("/feed.xml", respond(rss([item(u) for u in links[:4]]), content_type=RSS))
    assert run_ingest(engine, [source], NOW)["aggregator"].claims == 4
    halved = source_state(engine, "aggregator")["poll_interval"]  # all four were new
    assert halved == source.poll_interval / 2
    server.route("/feed.xml", respond(rss([item(u) for u in links]), content_type=RSS))
    later = NOW + timedelta(hours=1)
    stats = run_ingest(engine, [source], later, run_key="faults:2")["aggregator"]
    assert (stats.claims, stats.new) == (5, 0)
    state = source_state(engine, "aggregator")
    assert (state["last_items"], state["last_new"], state["poll_interval"]) == (5, 1, halved)


# ------------------------------------------------------ 16. a source's language tag


def test_a_sources_language_tag_gives_its_articles_the_language_alone(
    engine: sa.Engine, server: FaultServer, tmp_path: Path
) -> None:
    """``language: zh-CN`` in sources.yaml, a BCP 47 tag as the file asks (and as feeds
    write theirs): the articles of items without a language of their own were stored
    as ``zh-cn``, where a feed's ``zh-CN`` gives ``zh``, so no topic scoped to
    ``languages: [zh]`` ever matched them, nor a BI filter on zh. A value that is no
    tag (``Chinese``) was kept as written; it is refused now, naming the field."""
    path = tmp_path / "sources.yaml"
    url = server.url("/feed.xml")
    path.write_text(
        f"sources:\n- {{name: tagged, url: '{url}', language: zh-CN, fetch_pages: false}}\n"
        f"- {{name: hant, url: '{url}', language: zh_Hant_TW, fetch_pages: false}}\n",
        "utf-8",
    )
    tagged, hant = (replace(s, allow_private_network=True) for s in load_sources(path))
    server.route("/feed.xml", respond(rss([item(server.url("/a"))]), content_type=RSS))
    run_ingest(engine, [tagged], NOW)
    assert articles(engine)[server.url("/a")]["language"] == "zh"
    server.route("/feed.xml", respond(rss([item(server.url("/b"))]), content_type=RSS))
    run_ingest(engine, [hant], NOW)
    assert articles(engine)[server.url("/b")]["language"] == "zh"
    path.write_text(f"sources:\n- {{name: a, url: '{url}', language: Chinese}}\n", "utf-8")
    with pytest.raises(SourceConfigError) as refused:
        load_sources(path)
    assert str(refused.value) == (
        f"{path}: source 'a'.language: expected a language tag such as zh or zh-CN, got 'Chinese'"
    )


# ------------------------------------------------- 17. elements outside the items


@pytest.mark.parametrize(
    ("before", "inside"),
    [("<a/>" * 600_000, ""), ("", "<x>" + "<a/>" * 600_000 + "</x>")],
    ids=["outside-items", "in-an-items-child"],
)
def test_a_feed_of_more_elements_than_feedparser_reads_quickly_is_refused(
    engine: sa.Engine, server: FaultServer, before: str, inside: str
) -> None:
    """Feedparser costs ~40 µs an element wherever it stands, and the checks on an item's
    direct children did not see elements outside the items or deeper in one: 2.4 MB of
    ``<a/>`` took 23 s of one poll, the 15 MB a feed may have 185 s and 1 GB (the lxml
    tree alone 400 MB). Counted first, without a tree, the feed is refused in well
    under a second, and the next source loads."""
    link = server.url("/p")
    feed = rss(before + item(link).replace("</item>", inside + "</item>"))
    server.route("/feed.xml", respond(feed, content_type=RSS))
    server.route("/good.xml", respond(rss([item(server.url("/q"))]), content_type=RSS))
    server.route("/q", respond(page("好文章")))
    sources = [
        feed_source("elements", server.url("/feed.xml"), fetch_pages=False),
        feed_source("good", server.url("/good.xml")),
    ]
    started = time.monotonic()
    stats = run_ingest(engine, sources, NOW)
    # The refusal below is what fails the old code; the bound only guards against a
    # count as slow as feedparser (600,000 elements: 24 s on a quiet machine), with room
    # for a machine busy with other suites (5 s was exceeded once in CI that way).
    assert time.monotonic() - started < 20
    assert stats["elements"].errors == [
        f"{server.url('/feed.xml')}: feed refused: more than 500,000 elements for feedparser"
        " to read (in its first 2,000 items and outside items)"
    ]
    assert stats["good"].new == 1


# ----------------------------------------------- 18. a Last-Modified in the future


def test_a_last_modified_in_the_future_is_not_sent_back(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A feed whose Last-Modified is in 2099 (a post a CMS dated ahead, whose date it
    gives the feed; a server clock off by years). Sent back as If-Modified-Since, a
    server comparing dates (Django's, most CMSs') answered 304 to every later poll:
    the source stayed healthy, ``not_modified``, and its new items were never read."""
    ahead = "Thu, 31 Dec 2099 23:59:59 GMT"
    feeds = [rss([item(server.url("/a"))]), rss([item(server.url("/a")), item(server.url("/b"))])]

    def by_date(conn: Connection) -> None:  # 304 unless modified after If-Modified-Since
        since = conn.headers.get("if-modified-since")
        if since is not None and since >= ahead:
            respond(b"", "304 Not Modified", headers={"Last-Modified": ahead})(conn)
        else:
            respond(feeds[0], content_type=RSS, headers={"Last-Modified": ahead})(conn)

    server.route("/feed.xml", by_date)
    source = feed_source("ahead", server.url("/feed.xml"), fetch_pages=False)
    assert run_ingest(engine, [source], NOW)["ahead"].new == 1
    feeds.pop(0)  # a new item
    stats = run_ingest(engine, [source], NOW + timedelta(hours=1), run_key="faults:2")["ahead"]
    assert (stats.poll, stats.new) == ("polled", 1)
    assert set(articles(engine, "ahead")) == {server.url("/a"), server.url("/b")}
    assert "if-modified-since" not in server.requests[-1][2]
    assert source_state(engine, "ahead")["last_modified"] is None


# --------------------------------------------- 19. a link's scheme in capitals


def test_item_links_whose_scheme_is_in_capitals_are_fetched(
    engine: sa.Engine, server: FaultServer
) -> None:
    """``Http://`` and ``HTTP://``, as editors type them, in a feed read at an https URL
    (its ``xml:base`` here): a scheme is case-insensitive (RFC 3986), but such items were
    skipped, ``link 'HTTP://…' is not a valid http(s) URL``, and lost (feedparser lowers
    a link's scheme only when it is the feed's own)."""
    for path in ("/a", "/b"):
        server.route(path, respond(page(f"大写{path}")))
    links = [server.url("/a").replace("http:", "Http:"), server.url("/b").replace("http:", "HTTP:")]
    feed = rss([item(u) for u in links]).replace(
        b'<rss version="2.0">', b'<rss version="2.0" xml:base="https://example.com/">'
    )
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("capitals", server.url("/feed.xml"))], NOW)
    assert (stats["capitals"].new, stats["capitals"].errors) == (2, [])
    stored = articles(engine, "capitals")
    assert [stored[server.url(p)]["content_origin"] for p in ("/a", "/b")] == ["page", "page"]


# --------------------------------------------- 21. an author of a long run of letters

AUTHOR_ELEMENTS = ("author", "dc:creator", "managingEditor", "webMaster", "itunes:author")


@pytest.mark.parametrize("element", AUTHOR_ELEMENTS)
def test_authors_of_long_runs_of_letters_are_read_in_linear_time(
    engine: sa.Engine, server: FaultServer, element: str
) -> None:
    """An author's text of 60,000 letters: feedparser looks for an e-mail address in it
    with a pattern that reads the run again from each of its letters, 40 s of the
    ingest process for 100,000 (hours for the 15 MB a feed may have), before any time
    budget is looked at. Read like a title of the same length now (measured just before,
    so that a slow spell of the machine slows both; before: hundreds of times as long),
    the item loads with its author cut, and the next source loads."""
    prolog = (
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
    )
    run = "a" * 60_000

    def feed(author: str, title: str = "长作者") -> bytes:
        extra = f"<{element}>{author}</{element}>"
        body = item(server.url("/p"), title=title).replace("</item>", extra + "</item>")
        return rss(body).replace(b'<rss version="2.0">', f'<rss version="2.0"{prolog}>'.encode())

    baseline = least_cpu(lambda: parse_feed(feed("x", run), "https://e.com/f"), runs=2)
    hostile = least_cpu(lambda: parse_feed(feed(run), "https://e.com/f"), runs=1)
    assert hostile < 10 * baseline + 0.5, (hostile, baseline)  # before: 15 s and more
    server.route("/feed.xml", respond(feed(run), content_type=RSS))
    server.route("/good.xml", respond(rss([item(server.url("/q"))]), content_type=RSS))
    sources = [
        feed_source("authors", server.url("/feed.xml"), fetch_pages=False),
        feed_source("good", server.url("/good.xml"), fetch_pages=False),
    ]
    stats = run_ingest(engine, sources, NOW)
    assert (stats["authors"].new, stats["good"].new) == (1, 1)
    if element in ("author", "dc:creator", "itunes:author"):  # the item's; the others the feed's
        stored = articles(engine, "authors")[server.url("/p")]
        assert stored["author"] == "a" * 299 + "…"


def test_authors_with_addresses_are_read_as_feedparser_reads_them() -> None:
    """The linear search finds the address feedparser's own search finds, wherever it
    stands, and the name around it is kept the same way."""
    from mediamon.ingest.feed_authors import EMAIL, find_email

    texts = [
        "jane@example.com (Jane Doe)", "Jane Doe <jane@example.com>", "a@b@c.example.org x",
        "no address", "x@y", "@example.com", "a.b-c+d@[10.0.0.1] z", "m@a.b.co?subject=hi x",
        "first@bad second@example.cn", "王@例子.中国 w@xn--fsqu00a.xn--fiqs8s", "a@b.c@d.ef",
        "..@...", "a@1.2.3.4", "-@-.-", "a" * 500 + "@" + "b." * 200 + "!",
    ]  # fmt: skip
    for text in texts:
        ours, theirs = find_email(text), EMAIL.search(text)
        assert (ours and (ours.span(), ours.group(0))) == (
            theirs and (theirs.span(), theirs.group(0))
        ), text
    feed = rss([item("https://e.com/a")]).replace(
        b"<item>", b"<item><author>jane@example.com (Jane Doe)</author>"
    )
    assert parse_feed(feed, "https://e.com/f").items[0].author == "jane@example.com (Jane Doe)"


# ----------------------------------------- 22. a paragraph past the parser's buffer


def test_a_paragraph_past_the_parsers_buffer_limit_is_named_as_such(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A page under the 15 MB cap whose article holds one paragraph of 10.2 MB (3.4
    million characters): libxml2 stops reading at a text of more than 10,000,000
    characters, with the error it gives for nesting past 256 elements, so the note said
    ``page nested deeper than 256 elements`` of a page nested five deep. The text read
    is kept, and the note names the long text."""
    lead = "".join(f"<p>第{n}段：{PARAGRAPH}</p>" for n in range(3))
    html = (
        f"<html><body><article>{lead}<p>{'字' * 3_400_000}</p><p>后文</p></article></body></html>"
    )
    server.route("/p", respond(html))
    server.route("/feed.xml", respond(rss([item(server.url("/p"))]), content_type=RSS))
    stats = run_ingest(engine, [feed_source("long-text", server.url("/feed.xml"))], NOW)
    assert stats["long-text"].new == 1
    stored = articles(engine, "long-text")[server.url("/p")]
    assert stored["content_origin"] == "page" and "第2段" in str(stored["body_text"])
    assert fetch_log(engine, "long-text")[server.url("/p")]["error"] == (
        "page holds a text or attribute value of more than 10,000,000 characters:"
        " its text from there on was not read"
    )
