"""Fault injection: servers on 127.0.0.1 that break every rule, hostile feeds, a database
restarted mid-load and an ingest killed with SIGKILL. Each test names a row of
docs/faults.md; each fault is recorded with a clear error and never stops other sources.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mediamon import db, service
from mediamon.db import migrate
from mediamon.devtools.sitehost import serve_folder
from mediamon.ingest import build, polling
from mediamon.ingest import run as pipeline
from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.fetch import MAX_BYTES, PAGE_TYPES, FetchResult, fetch
from mediamon.ingest.session import make_session
from mediamon.settings import DEMO_DIR, Settings
from tests.support.fault_server import (
    FaultServer,
    gzip_bomb,
    redirect,
    reset_mid_body,
    respond,
    short_body,
    silent,
    slow_drip,
    truncated_gzip,
)
from tests.support.faults import (
    NOW,
    PARAGRAPH,
    RSS,
    TRADITIONAL,
    USER_AGENT,
    articles,
    feed_source,
    fetch_log,
    item,
    page,
    rss,
    run_ingest,
    state,
)
from tests.support.server_folder import server_folder


def get(url: str, **kwargs: Any) -> FetchResult:
    kwargs.setdefault("allow_private_network", True)
    with make_session(USER_AGENT, retries=0) as session:
        return fetch(session, url, **kwargs)


# ------------------------------------------------------------------ transport faults


def test_connection_reset_mid_body(server: FaultServer) -> None:
    url = server.route("/reset", reset_mid_body(page("x").encode() * 20, after=500))
    result = get(url)
    assert result.error and result.error.startswith("connection broken mid-body")
    assert result.content == b""


def test_body_shorter_than_its_content_length(server: FaultServer) -> None:
    url = server.route("/short", short_body(b"<html>only this", declared=10_000))
    result = get(url)
    assert result.error and result.error.startswith("connection broken mid-body")
    assert "IncompleteRead" in result.error


def test_truncated_gzip_is_an_error_not_a_short_page(server: FaultServer) -> None:
    url = server.route("/cut.gz", truncated_gzip(page("截断", paragraphs=200).encode()))
    result = get(url)
    assert result.error == (
        "bad content encoding: truncated gzip stream (the body ends before the compressed data)"
    )


def test_corrupt_gzip_is_an_error(server: FaultServer) -> None:
    url = server.route(
        "/bad.gz", respond(b"\x1f\x8b\x08\x00garbage" * 10, headers={"Content-Encoding": "gzip"})
    )
    assert (get(url).error or "").startswith("bad content encoding")


def test_gzip_bomb_stops_at_the_default_cap(server: FaultServer) -> None:
    url = server.route("/bomb", gzip_bomb(MAX_BYTES + 1024 * 1024))
    started = time.monotonic()
    result = get(url)
    assert result.error == f"body larger than {MAX_BYTES} bytes"
    assert time.monotonic() - started < 5


def test_declared_oversize_body_is_refused_before_reading(server: FaultServer) -> None:
    url = server.route("/huge", respond(b"<html>", headers={"Content-Length": str(MAX_BYTES + 1)}))
    assert get(url).error == f"body larger than {MAX_BYTES} bytes"


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_slow_drip_hits_the_total_deadline(server: FaultServer, in_headers: bool) -> None:
    url = server.route("/drip", slow_drip(0.05, limit_s=5, in_headers=in_headers))
    started = time.monotonic()
    result = get(url, deadline_s=1.0, timeout=(1.0, 0.5))
    elapsed = time.monotonic() - started
    assert result.error == "download took longer than 1 s"
    assert 0.9 < elapsed < 3.0  # the drip would go on for 5 s


def test_silent_server_read_timeout(server: FaultServer) -> None:
    url = server.route("/silent", silent(limit_s=3))
    started = time.monotonic()
    result = get(url, timeout=(1.0, 0.4))
    assert result.error and result.error.startswith("read timeout")
    assert time.monotonic() - started < 2.9  # the server stays silent for 3 s


def test_redirect_loop(server: FaultServer) -> None:
    a = server.route("/a", redirect(server.url("/b")))
    server.route("/b", redirect("/a"))  # relative
    result = get(a)
    assert result.error == f"redirect loop: {a} -> {server.url('/b')} -> {a}"
    assert server.hits("/a") == 1 and server.hits("/b") == 1


def test_redirect_chain_too_long(server: FaultServer) -> None:
    for n in range(10):
        server.route(f"/r{n}", redirect(f"/r{n + 1}", "301 Moved Permanently"))
    result = get(server.url("/r0"))
    assert result.error and result.error.startswith("too many redirects (more than 5)")
    assert server.hits("/r6") == 0


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://localhost:{port}/internal", "localhost resolves to 127.0.0.1, which is loopback"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is cloud metadata"),
        ("http://10.0.0.1/admin", "10.0.0.1 is private"),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
    ],
)
def test_every_redirect_hop_is_checked(server: FaultServer, location: str, message: str) -> None:
    """The source's own URL on 127.0.0.1 is what the operator wrote; where it redirects
    is up to the server, and is checked."""
    server.route("/internal", respond("internal secrets"))
    url = server.route("/feed", redirect(location.format(port=server.port)))
    result = get(url, allow_private_network=False, configured_url=True)
    assert result.error and result.error.startswith("blocked: ") and message in result.error
    assert result.redirects == (url,)
    assert server.hits("/internal") == 0


def test_unaccepted_content_type_is_not_downloaded(server: FaultServer) -> None:
    url = server.route("/clip", respond(b"\0" * 100_000, content_type="video/mp4"))
    result = get(url, accept_types=PAGE_TYPES)
    assert result.error == "content type video/mp4 not accepted"


# ----------------------------------------------------------------------- feed faults


def raw_title_item(link: str, title: str) -> str:
    """An item whose title is markup as written: item() escapes it, and an escaped
    "&amp;lol9;" is no entity reference at all."""
    return f"<item><title>{title}</title><link>{link}</link><description>摘要</description></item>"


def test_entity_expansion_bombs_are_not_expanded(engine: sa.Engine, server: FaultServer) -> None:
    laughs = '<!DOCTYPE rss [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    )
    laughs += '<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    big = "A" * 50_000
    quadratic = f'<!DOCTYPE rss [<!ENTITY a "{big}">]>'
    server.route(
        "/laughs.xml",
        respond(
            rss([raw_title_item(server.url("/1"), "&lol9;&xxe;")], prolog=laughs),
            content_type=RSS,
        ),
    )
    server.route(
        "/quadratic.xml",
        respond(
            rss([raw_title_item(server.url("/2"), "&a;" * 1000)], prolog=quadratic),
            content_type=RSS,
        ),
    )
    sources = [
        feed_source("laughs", server.url("/laughs.xml"), fetch_pages=False),
        feed_source("quadratic", server.url("/quadratic.xml"), fetch_pages=False),
    ]
    started = time.monotonic()
    stats = run_ingest(engine, sources, NOW)
    assert time.monotonic() - started < 10
    for name in ("laughs", "quadratic"):
        assert (
            "feed declares a DTD or XML entities; removed before parsing, nothing expanded"
            in stats[name].errors
        )
    titles = {a["source"]: a["title"] for a in articles(engine).values()}
    assert "root:" not in str(titles["laughs"])  # no external entity either
    assert len(str(titles["laughs"])) < 100
    assert len(str(titles["quadratic"])) < 10_000  # 1000 × 50 kB were never built


def test_huge_feed_is_capped(engine: sa.Engine, server: FaultServer) -> None:
    many = rss([item(server.url(f"/n/{n}"), title=f"第{n}条") for n in range(6000)])
    server.route("/huge.xml", respond(many, content_type=RSS))
    server.route("/toobig.xml", respond(many * 3, content_type=RSS))
    sources = [
        feed_source("huge", server.url("/huge.xml"), fetch_pages=False, max_items=30),
        feed_source("toobig", server.url("/toobig.xml"), max_bytes=len(many) * 2),
    ]
    stats = run_ingest(engine, sources, NOW)
    assert stats["huge"].new == 30
    assert "5970 items past the cap of 30" in stats["huge"].errors
    assert stats["toobig"].errors == [
        f"{server.url('/toobig.xml')}: body larger than {len(many) * 2} bytes"
    ]


def test_items_without_link_or_date_and_with_bad_links(
    engine: sa.Engine, server: FaultServer
) -> None:
    feed = rss(
        [
            item(None, title="没有链接"),
            item("javascript:alert(1)", title="脚本链接"),
            item("file:///etc/passwd", title="文件链接"),
            item(server.url("/" + "x" * 2100), title="超长链接"),
            item(server.url("/undated"), title="没有日期", date=None),
            item(server.url("/dated"), title="有日期"),
        ]
    )
    server.route("/feed.xml", respond(feed, content_type=RSS))
    server.route("/undated", respond(page("没有日期")))
    server.route("/dated", respond(page("有日期")))
    stats = run_ingest(engine, [feed_source("links", server.url("/feed.xml"))], NOW)["links"]
    assert stats.new == 2 and stats.failed == 0
    assert "item 0 ('没有链接') has no link" in stats.errors
    assert (
        "item 1 ('脚本链接') link 'javascript:alert(1)' is not a valid http(s) URL" in stats.errors
    )
    # feedparser writes file:///etc/passwd as file://etc/passwd
    assert "item 2 ('文件链接') link 'file://etc/passwd' is not a valid http(s) URL" in stats.errors
    assert "item 3 ('超长链接') link is longer than 2048 characters" in stats.errors
    with engine.connect() as conn:
        published = dict(conn.execute(sa.text("select title, published_at from bi.articles")).all())
    assert published["没有日期"] == NOW  # first seen
    assert published["有日期"] == datetime(2024, 4, 20, 0, 0, tzinfo=UTC)


def test_dates_in_the_future_are_not_believed(engine: sa.Engine, server: FaultServer) -> None:
    server.route(
        "/feed.xml",
        respond(
            rss(
                [item(server.url("/later"), title="来自未来", date="Mon, 01 Jan 2035 00:00:00 GMT")]
            ),
            content_type=RSS,
        ),
    )
    server.route("/later", respond(page("来自未来")))
    stats = run_ingest(engine, [feed_source("future", server.url("/feed.xml"))], NOW)["future"]
    assert stats.new == 1
    assert (
        f"{server.url('/later')}: date 2035-01-01T00:00:00+00:00 is in the future;"
        " first-seen time used" in stats.errors
    )
    (article,) = articles(engine).values()
    assert article["published_at"] is None


def test_the_same_item_twice_in_a_feed(engine: sa.Engine, server: FaultServer) -> None:
    link = server.url("/same")
    server.route(
        "/feed.xml",
        respond(
            rss([item(link), item(link, title="再来一次"), item(link + "?utm_source=rss#top")]),
            content_type=RSS,
        ),
    )
    server.route("/same", respond(page("同一篇")))
    stats = run_ingest(engine, [feed_source("twice", server.url("/feed.xml"))], NOW)["twice"]
    assert stats.items == 1 and stats.new == 1
    assert f"item 1 ('再来一次') repeats an earlier item's link {link}" in stats.errors
    assert f"{link}?utm_source=rss#top: same article as an earlier item ({link})" in stats.errors
    assert server.hits("/same") == 1
    assert len(articles(engine)) == 1


def test_feed_supplied_links_to_private_addresses_are_refused(
    engine: sa.Engine, server: FaultServer
) -> None:
    server.route("/secret.html", respond(page("内部机密")))
    links = [
        f"http://localhost:{server.port}/secret.html",
        f"http://[::1]:{server.port}/secret.html",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/admin",
        f"http://2130706433:{server.port}/secret.html",
    ]
    server.route(
        "/feed.xml",
        respond(rss([item(u, title=f"第{n}条") for n, u in enumerate(links)]), content_type=RSS),
    )
    # The operator wrote 127.0.0.1 for the feed itself; the feed's links are not trusted.
    source = feed_source("ssrf", server.url("/feed.xml"), allow_private_network=False)
    stats = run_ingest(engine, [source], NOW)["ssrf"]
    # Other sites' URLs with the feed's own text: kept as the source's claims.
    assert (stats.new, stats.claims) == (0, len(links))
    log = fetch_log(engine, "ssrf")
    for url in links:
        assert str(log[url]["error"]).startswith("page not fetched (blocked: "), log[url]
        assert str(log[url]["error"]).endswith(
            "; used feed_summary; another site's URL: kept as this source's claim"
        )
    assert server.hits("/secret.html") == 0
    with engine.connect() as conn:
        origins = conn.execute(sa.text("select distinct content_origin from article_claims"))
        assert origins.scalars().all() == ["feed_summary"]


def test_robots_txt_for_article_pages(engine: sa.Engine, server: FaultServer) -> None:
    server.route(
        "/robots.txt", respond("User-agent: *\nDisallow: /members/\n", content_type="text/plain")
    )
    server.route("/members/1.html", respond(page("会员文章")))
    server.route("/news/2.html", respond(page("公开文章")))
    feed = rss([item(server.url("/members/1.html")), item(server.url("/news/2.html"))])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    source = feed_source("robots", server.url("/feed.xml"))
    run_ingest(engine, [source], NOW)
    log = fetch_log(engine, "robots")
    assert log[server.url("/members/1.html")]["error"] == (
        f"page not fetched (disallowed by robots.txt ({server.url('/robots.txt')}));"
        " used feed_summary"
    )
    assert log[server.url("/news/2.html")]["error"] is None
    assert server.hits("/members/1.html") == 0 and server.hits("/robots.txt") == 1

    ignoring = replace(source, name="robots-off", respect_robots_txt=False)
    run_ingest(engine, [ignoring], NOW, refetch_known=True)
    assert server.hits("/members/1.html") == 1


def test_long_retry_after_defers_the_source(engine: sa.Engine, server: FaultServer) -> None:
    server.route(
        "/feed.xml",
        respond("slow down", "503 Service Unavailable", headers={"Retry-After": "7200"}),
    )
    source = feed_source("busy", server.url("/feed.xml"))
    stats = run_ingest(engine, [source], NOW)["busy"]
    assert stats.errors == [
        f"{server.url('/feed.xml')}: HTTP 503 Service Unavailable; Retry-After 7200 s"
    ]
    row = state(engine, "busy")
    assert row["last_outcome"] == "deferred" and row["consecutive_failures"] == 1
    assert row["deferred_until"] == NOW + timedelta(hours=2)
    assert row["next_poll_at"] >= NOW + timedelta(hours=2)
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("select name, source_id from sources")).all())
        assert polling.due(conn, [source], ids, NOW + timedelta(hours=1)) == []
        assert polling.due(conn, [source], ids, NOW + timedelta(hours=2)) == [source]
    assert server.hits("/feed.xml") == 1  # not retried within the run


def test_page_host_asking_to_wait_is_left_alone(engine: sa.Engine, server: FaultServer) -> None:
    """The first page asked answers 429 with a long Retry-After: the other pages of that
    host are not requested in this run, and the feed's text is used. Every page would
    answer so, since which page's request goes first is the threads' choice (the test
    assumed /p/0 and failed under load); the host is deferred before its connection
    slot is freed, so no request waiting for the slot goes out after the answer."""
    for n in range(4):
        server.route(
            f"/p/{n}", respond("too many", "429 Too Many Requests", headers={"Retry-After": "600"})
        )
    pages = rss([item(f"http://localhost:{server.port}/p/{n}", title=f"第{n}篇") for n in range(4)])
    server.route("/feed.xml", respond(pages, content_type=RSS))
    # The feed on the pages' host: the allowance is that host:port as written.
    feed_url = f"http://localhost:{server.port}/feed.xml"
    source = feed_source("limited", feed_url, host_max_connections=1)
    stats = run_ingest(engine, [source], NOW)["limited"]
    assert stats.new == 4
    log = fetch_log(engine, "limited")
    (asked,) = [n for n in range(4) if server.hits(f"/p/{n}")]
    assert server.hits(f"/p/{asked}") == 1
    for n in range(4):
        error = str(log[f"http://localhost:{server.port}/p/{n}"]["error"])
        assert error.startswith(
            "page not fetched (HTTP 429 Too Many Requests; Retry-After 600 s)"
            if n == asked
            else "page not fetched (deferred: localhost asked us to wait"
        )


def test_extractor_crash_fails_one_item_only(
    engine: sa.Engine, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = build.extract

    def crashing(html: str, url: str | None = None, **options: Any) -> Any:
        if "炸弹" in html:
            raise RecursionError("maximum recursion depth exceeded")
        return real(html, url, **options)

    monkeypatch.setattr(build, "extract", crashing)
    server.route("/ok", respond(page("正常")))
    server.route("/bomb", respond(page("炸弹")))
    feed = rss(
        [
            item(server.url("/ok"), title="正常"),
            item(server.url("/bomb"), title="炸弹", description="炸弹"),
        ]
    )
    server.route("/feed.xml", respond(feed, content_type=RSS))
    stats = run_ingest(engine, [feed_source("crash", server.url("/feed.xml"))], NOW)["crash"]
    assert stats.new == 1 and stats.failed == 1
    assert any("extraction failed: RecursionError" in e for e in stats.errors)


# ------------------------------------------------------------------------- charsets


GBK_ONLY = "朱镕基与喆、堃、昇"  # 镕 喆 堃 are in GBK but not in GB2312
HKSCS = "𨋢噉嘢"  # Hong Kong characters Big5 alone lacks


@pytest.mark.parametrize(
    ("name", "body", "content_type", "expected"),
    [
        (
            "gb2312 label, GBK characters",
            page(GBK_ONLY, charset="gb2312").replace("新闻", GBK_ONLY).encode("gbk"),
            "text/html; charset=gb2312",
            GBK_ONLY,
        ),
        (
            "big5 label, HKSCS characters",
            page(HKSCS, charset="big5", text=TRADITIONAL).encode("big5hkscs"),
            "text/html; charset=big5",
            HKSCS,
        ),
        (
            "UTF-8 labelled GBK in HTTP",
            page("标签写错").encode("utf-8"),
            "text/html; charset=gbk",
            "标签写错",
        ),
        (
            "GBK labelled UTF-8 in HTTP",
            page("标签写反", charset="gbk").encode("gbk"),
            "text/html; charset=utf-8",
            "标签写反",
        ),
        (
            "UTF-8 BOM against a GBK header",
            b"\xef\xbb\xbf" + page("字节顺序标记").encode("utf-8"),
            "text/html; charset=gbk",
            "字节顺序标记",
        ),
        (
            "charset only in a meta tag",
            page("只有元标签", charset="gb18030").encode("gb18030"),
            "text/html",
            "只有元标签",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 and " " in v else "",
)
def test_chinese_charsets_arrive_without_mojibake(
    server: FaultServer, name: str, body: bytes, content_type: str, expected: str
) -> None:
    url = server.route("/page", respond(body, content_type=content_type))
    result = get(url, accept_types=PAGE_TYPES)
    assert result.ok
    job = build.ArticleJob(
        item=FeedItem(link=url, title=None),
        source_language="zh",
        drop_params=(),
        seen_at=NOW,
        page=result,
    )
    built = build.build_article(job)
    assert built.article is not None, built.note
    assert built.article.content_origin == "page"
    assert expected in built.article.body_text + (built.article.title or "")
    assert "\ufffd" not in built.article.body_text
    assert (TRADITIONAL if "big5" in content_type else PARAGRAPH)[:10] in built.article.body_text


# --------------------------------------------------- isolation: one run, many faults


def test_misbehaving_sources_leave_the_others_complete(
    engine: sa.Engine, server: FaultServer, tmp_path: Path, database_url: str
) -> None:
    good_pages = rss([item(server.url(f"/ok/{n}"), title=f"好新闻{n}") for n in range(3)])
    server.route("/good.xml", respond(good_pages, content_type=RSS))
    for n in range(3):
        server.route(f"/ok/{n}", respond(page(f"好新闻{n}")))
    server.route("/reset.xml", reset_mid_body(good_pages, after=200))
    server.route("/cut.xml", truncated_gzip(good_pages, content_type=RSS))
    server.route("/drip.xml", slow_drip(0.05, limit_s=4))
    server.route("/loop.xml", redirect("/loop.xml"))
    server.route("/bomb.xml", gzip_bomb(3_000_000, content_type=RSS))
    server.route("/broken.xml", respond(b"<rss><channel><item><title>cut", content_type=RSS))
    server.route("/video.xml", respond(b"\0" * 1000, content_type="video/mp4"))
    faulty = {
        "reset": ("/reset.xml", "connection broken mid-body"),
        "truncated-gzip": ("/cut.xml", "bad content encoding: truncated gzip stream"),
        "slow-drip": ("/drip.xml", "download took longer than 1 s"),
        "redirect-loop": ("/loop.xml", "redirect loop"),
        "gzip-bomb": ("/bomb.xml", "body larger than 1000000 bytes"),
        "malformed": ("/broken.xml", "malformed feed"),
        "not-a-feed": ("/video.xml", "content type video/mp4 not accepted"),
        "ssrf-feed": ("/ssrf", "blocked: 169.254.169.254 is cloud metadata"),
    }
    server.route("/ssrf", redirect("http://169.254.169.254/latest/"))
    lines = ["sources:"]
    with serve_folder(DEMO_DIR / "site") as demo:
        lines.append(
            f"  - {{name: demo-news, url: '{demo}/feed.xml', language: zh,"
            " allow_private_network: true}"
        )
        lines.append(f"  - {{name: good, url: '{server.url('/good.xml')}', language: zh}}")
        for name, (path, _) in faulty.items():
            # The reset is asked for by name: two sources run at once, and a connection
            # to 127.0.0.1 kept alive from before the extraction pool forked would be
            # reused, whose server end the worker holds too, so closing it resets nothing.
            host = "localhost" if name == "reset" else "127.0.0.1"
            lines.append(
                f"  - {{name: {name}, url: '{server.url(path, host)}', download_deadline: 1,"
                " read_timeout: 1, max_bytes: 1000000}"
            )
        sources_path = tmp_path / "sources.yaml"
        sources_path.write_text("\n".join(lines) + "\n", "utf-8")
        settings = Settings(
            database_url=database_url, sources_path=sources_path, var_dir=tmp_path,
            http_retries=0,
        )  # fmt: skip
        names = service.plan_sources(settings, NOW)
        started = time.monotonic()
        summaries = {
            s["source"]: s for s in service.ingest(settings, names, "iso:1", NOW, workers=1)
        }
        elapsed = time.monotonic() - started
    assert elapsed < 30
    assert summaries["demo-news"]["new"] == 6 and summaries["demo-news"]["duplicates"] == 1
    assert summaries["good"]["new"] == 3 and summaries["good"]["failed"] == 0
    with engine.connect() as conn:
        feed_errors = dict(
            conn.execute(
                sa.text("select source, error from bi.fetch_log where kind = 'feed'")
            ).all()
        )
        health = {
            r["source"]: r
            for r in conn.execute(sa.text("select * from bi.source_health")).mappings()
        }
        orphans = conn.execute(
            sa.text(
                "select count(*) from articles a where not exists (select 1 from fetch_log f"
                " where f.source_id = a.source_id and f.run_key = 'iso:1')"
            )
        ).scalar_one()
    for name, (_, message) in faulty.items():
        assert message in str(feed_errors[name]), (name, feed_errors[name])
        assert summaries[name]["new"] == 0
        assert health[name]["last_poll_outcome"] == "failed"
        assert health[name]["consecutive_failures"] == 1
        assert health[name]["next_poll_at"] > NOW
    assert feed_errors["good"] is None and health["good"]["last_poll_outcome"] == "polled"
    assert orphans == 0


# ----------------------------------------------------- the database restarts mid-load


@pytest.fixture()
def own_postgres() -> Iterator[tuple[str, Any]]:
    """A throwaway embedded PostgreSQL this test may restart; its URL and a restarter."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (harmless)
        import pgserver

    with server_folder("mediamon-restart-") as folder:
        yield from _restartable_postgres(pgserver, folder / "pgdata")


def _restartable_postgres(pgserver: Any, data: Path) -> Iterator[tuple[str, Any]]:
    pg = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    command = [
        str(pg_ctl),
        "-D",
        str(data),
        "-w",
        "-t",  # crash recovery after an immediate stop takes long on a loaded machine
        "180",
        "-m",
        "immediate",
        "-l",
        str(data / "restart.log"),
        "restart",
    ]
    if pg.system_user is not None:
        command = ["runuser", "-u", pg.system_user, "--", *command]

    def restart() -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        log = data / "restart.log"
        assert done.returncode == 0, (
            f"pg_ctl restart exited {done.returncode}: {done.stderr.strip()[-500:]}\n"
            + (log.read_text("utf-8", "replace")[-2000:] if log.exists() else "(no server log)")
        )

    url = db.ensure_database(str(pg.get_uri()), "mediamon")
    try:
        yield db.normalize_url(url), restart
    finally:
        pg.cleanup()


def test_database_restart_mid_load_leaves_no_partial_batch(
    own_postgres: tuple[str, Any], server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 2 items; the second chunk's transaction is stopped inside the article
    upsert (a lock holds it), then the server restarts. The first chunk stays, nothing of
    the second is visible, and the next run completes the source. (Chunk N loads while
    chunk N+1 is fetched, so the test holds the third chunk's first page until the table
    is locked.)"""
    url, restart = own_postgres
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 2)
    chunk_two = threading.Event()
    for n in range(6):

        def serve(conn: Any, n: int = n) -> None:
            if n == 4:
                chunk_two.wait(10)
            respond(page(f"第{n}篇"))(conn)

        server.route(f"/a/{n}", serve)
    server.route(
        "/feed.xml",
        respond(
            rss([item(server.url(f"/a/{n}"), title=f"第{n}篇") for n in range(6)]), content_type=RSS
        ),
    )
    source = feed_source("restart", server.url("/feed.xml"))
    outcome: dict[str, Any] = {}

    def ingest() -> None:
        try:
            outcome["stats"] = run_ingest(engine, [source], NOW, "restart:1")
        except Exception as error:  # the run must fail: the database went away
            outcome["error"] = error

    worker = threading.Thread(target=ingest, daemon=True)
    worker.start()
    blocker = db.make_engine(url).connect()
    try:
        _wait_for(lambda: _count(engine, "select count(*) from articles") == 2)
        blocker.execute(sa.text("lock table articles in share row exclusive mode"))
        chunk_two.set()
        _wait_for(
            lambda: (
                _count(
                    engine,
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                    " and query ilike 'copy articles%'",
                )
                == 1
            )
        )
        restart()
    finally:
        blocker.invalidate()
    worker.join(20)
    assert not worker.is_alive()
    assert "error" in outcome and isinstance(outcome["error"], sa.exc.DBAPIError)
    engine.dispose()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select url from articles order by url")).scalars().all()
        pages = (
            conn.execute(sa.text("select url from fetch_log where kind = 'page' order by url"))
            .scalars()
            .all()
        )
        polled = conn.execute(sa.text("select count(*) from source_state")).scalar_one()
    first_chunk = [server.url("/a/0"), server.url("/a/1")]
    assert stored == first_chunk and pages == first_chunk  # chunk two: all or nothing
    assert polled == 0  # the poll did not finish: its state was not written

    # The next scheduled run (another run key: no retry shortcut) completes the source.
    rerun = run_ingest(engine, [source], NOW + timedelta(minutes=15), "restart:2")["restart"]
    assert rerun.new == 4 and rerun.already_known == 2
    with engine.connect() as conn:
        assert _count(engine, "select count(*) from articles") == 6
        assert (
            conn.execute(
                sa.text("select count(distinct url) from fetch_log where kind = 'page'")
            ).scalar_one()
            == 6
        )
        # The failed run saw two of them first: four were new to this run.
        assert conn.execute(sa.text("select last_new from source_state")).scalar_one() == 4
    engine.dispose()


def _count(engine: sa.Engine, query: str) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    except sa.exc.OperationalError:
        return -1


def _wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# ------------------------------------------------- SIGKILL mid-ingest, then a retry


def test_sigkill_mid_ingest_then_retry(
    engine: sa.Engine, database_url: str, server: FaultServer, tmp_path: Path
) -> None:
    """An ingest in its own process group is killed with SIGKILL after its first chunk
    is loaded; the retry (the same run key, as an Airflow retry) completes the source:
    every item once, nothing lost, the fetch log one row per URL."""
    count = 10
    for n in range(count):

        def slow_page(conn: Any, n: int = n) -> None:
            time.sleep(0.15)
            respond(page(f"第{n}篇"))(conn)

        server.route(f"/k/{n}", slow_page)
    server.route(
        "/feed.xml",
        respond(
            rss([item(server.url(f"/k/{n}"), title=f"第{n}篇") for n in range(count)]),
            content_type=RSS,
        ),
    )
    sources_path = tmp_path / "sources.yaml"
    sources_path.write_text(
        f"sources:\n  - {{name: killed, url: '{server.url('/feed.xml')}', language: zh,"
        " allow_private_network: true}\n",
        "utf-8",
    )
    child = Path(__file__).parents[1] / "support" / "ingest_child.py"
    env = {
        **os.environ,
        "MEDIAMON_DATABASE_URL": database_url,
        "MEDIAMON_SOURCES": str(sources_path),
        "MEDIAMON_WORKERS": "1",
    }
    command = [sys.executable, str(child), "kill:1", NOW.isoformat()]
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for(lambda: _count(engine, "select count(*) from articles") >= 2, timeout=30)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert process.returncode == -signal.SIGKILL
    partial = _count(engine, "select count(*) from articles")
    assert 2 <= partial < count, "the kill must land mid-way"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with engine.connect() as conn:
        urls = conn.execute(sa.text("select url from articles")).scalars().all()
        log = conn.execute(
            sa.text("select url, count(*) from fetch_log where run_key = 'kill:1' group by url")
        ).all()
    assert sorted(urls) == sorted(server.url(f"/k/{n}") for n in range(count))
    assert all(n == 1 for _, n in log) and len(log) == count + 1  # pages and the feed
    assert state(engine, "killed")["last_new"] == count
