"""Hostile payloads (held-out attack run, atkP): what a server says a body is against what
it is, through the real ingest path (a fault server on 127.0.0.1, a real PostgreSQL).
Each test is one finding and names its docs/faults.md row.
"""

from __future__ import annotations

import os
import zlib

import sqlalchemy as sa

from tests.support.fault_server import FaultServer, respond
from tests.support.faults import (
    NOW,
    PARAGRAPH,
    RSS,
    articles,
    feed_source,
    fetch_log,
    item,
    page,
    rss,
    run_ingest,
)


def pdf_report() -> bytes:
    """A PDF as a CMS's attachment is: a text header and dictionaries, then compressed
    streams (the text, an embedded image)."""
    contents = zlib.compress(b"BT /F1 12 Tf 72 712 Td (Quarterly report) Tj ET\n" * 200)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(contents)
        + contents
        + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Filter /DCTDecode >>\nstream\n"
        + os.urandom(200_000)
        + b"\nendstream",
    ]
    body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    for number, obj in enumerate(objects, 1):
        body += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def png_photo() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(100_000)


def test_a_page_that_is_a_pdf_or_image_keeps_its_feeds_text(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A feed linking a CMS's attachments served as text/html (a PDF report, a press
    photo), or without a type (a zipped dossier): before, their bytes were decoded as a
    page (the detector took them for GBK) and 100 to 150 kB of random CJK characters
    were stored as each article's text, in place of the feed's, and matched against the
    topics. Now the body's first bytes are read as the WHATWG's MIME sniffing reads them:
    the item keeps the feed's text and its note says what the page was; an ordinary
    page beside them, and one in UTF-16 (half its bytes NUL), are read as before."""
    summaries = {
        "/report": "财政部今日发布季度报告。" + PARAGRAPH,
        "/photo": "新闻图片：总理会见代表团。" + PARAGRAPH,
        "/dossier": "资料下载：政府工作报告全文。" + PARAGRAPH,
    }
    links = {path: server.url(path) for path in [*summaries, "/story", "/utf16"]}
    server.route("/feed.xml", respond(rss(
        [item(links[p], title=f"标题{p}", description=s) for p, s in summaries.items()]
        + [item(links["/story"], title="正文"), item(links["/utf16"], title="正文")]
    ), content_type=RSS))  # fmt: skip
    server.route("/report", respond(pdf_report(), content_type="text/html; charset=utf-8"))
    server.route("/photo", respond(png_photo(), content_type="text/html"))
    server.route("/dossier", respond(zlib.compress(os.urandom(60_000)), content_type=""))
    server.route("/story", respond(page("正文")))
    utf16 = page("正文").replace('<meta charset="utf-8">', "").encode("utf-16")
    server.route("/utf16", respond(utf16, content_type="text/html"))  # NULs, and text

    stats = run_ingest(engine, [feed_source("attachments", server.url("/feed.xml"))], NOW)

    assert stats["attachments"].failed == 0, stats["attachments"].errors
    stored = articles(engine, "attachments")
    for path, summary in summaries.items():
        row = stored[links[path]]
        assert row["content_origin"] == "feed_summary", (path, str(row["body_text"])[:80])
        assert row["body_text"] == summary  # before: 100,000 characters of mojibake
    assert stored[links["/story"]]["content_origin"] == "page"
    assert stored[links["/utf16"]]["content_origin"] == "page"
    log = fetch_log(engine, "attachments")
    assert str(log[links["/report"]]["error"]).startswith(
        "page is a PDF document, not HTML (served as text/html); used feed_summary"
    )
    assert str(log[links["/photo"]]["error"]).startswith("page is a PNG image, not HTML")
    assert str(log[links["/dossier"]]["error"]).startswith(
        "page is binary data, not HTML (served as no content type)"
    )


CHECK_TEXT = (
    "<p>JavaScript is disabled. In order to continue, we need to verify that you are not a"
    " robot. This requires JavaScript. Enable JavaScript and then reload the page.</p>"
)
BOT_CHECK = (
    "<!DOCTYPE html><html><head><title>Human Verification</title></head><body><main>"
    f"{CHECK_TEXT * 6}</main></body></html>"
)


def test_an_answer_that_is_not_the_whole_page_keeps_the_feeds_text(
    engine: sa.Engine, server: FaultServer
) -> None:
    """Successes that do not carry the page asked for: a 206 with the first 2,500 bytes
    of the page to a request without Range (a cache's bug), a bot check answered 202
    (as AWS WAF's challenge is), a 300 Multiple Choices (Apache's MultiViews), a 205.
    Before, each body was read as the page: the 206's first paragraphs (793 of 2,122
    characters) and the bot check's text were stored as the stories, without a note,
    and a page's text is never replaced by a feed's nor fetched again. Now only a 200 or
    203 answer's body is a page: the others are that item's error and it keeps the
    feed's text; a feed polled with a 206 fails that poll, the other source loads, and
    a robots.txt answered 204 is still an empty file (RFC 9309: any 2xx)."""
    full = page("正文", paragraphs=30).encode()
    answers = {
        "/part": respond(
            full[:2500],
            status="206 Partial Content",
            headers={"Content-Range": f"bytes 0-2499/{len(full)}"},
        ),
        "/check": respond(BOT_CHECK, status="202 Accepted"),
        "/choices": respond(full, status="300 Multiple Choices"),
        "/reset": respond(full, status="205 Reset Content"),
    }
    summary = "摘要：" + PARAGRAPH
    links = {path: server.url(path) for path in [*answers, "/story"]}
    feed = rss([item(links[p], title=f"标题{p}", description=summary) for p in links])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    server.route("/part-feed.xml", respond(feed[:300], "206 Partial Content", RSS))
    server.route("/robots.txt", respond(b"", status="204 No Content", content_type=""))
    for path, answer in answers.items():
        server.route(path, answer)
    server.route("/story", respond(page("正文")))
    sources = [
        feed_source("partial", server.url("/part-feed.xml")),
        feed_source("answers", server.url("/feed.xml")),
    ]

    stats = run_ingest(engine, sources, NOW)

    assert stats["partial"].poll == "failed"
    assert stats["answers"].failed == 0, stats["answers"].errors
    stored = articles(engine, "answers")
    for path in answers:
        row = stored[links[path]]
        assert row["content_origin"] == "feed_summary", (path, str(row["body_text"])[:80])
        assert row["body_text"] == summary  # before: the 206's part, the bot check's text
    assert stored[links["/story"]]["content_origin"] == "page"  # robots.txt 204: allowed
    log = fetch_log(engine)
    assert log[links["/part"]]["error"] == (
        "page not fetched (HTTP 206 Partial Content: not the whole resource (only a 200 or"
        " 203 answer carries it); not read); used feed_summary"
    )
    assert str(log[links["/check"]]["error"]).startswith("page not fetched (HTTP 202 Accepted")
    assert str(log[server.url("/part-feed.xml")]["error"]).startswith(
        "HTTP 206 Partial Content: not the whole resource"
    )


def refresh_stub(target: str) -> str:
    """A tracking link's answer: a page of a few hundred bytes sending its reader on."""
    return (
        f'<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url={target}">'
        f'<title>跳转中</title></head><body><a href="{target}">点击这里</a></body></html>'
    )


def test_a_tracking_link_that_redirects_by_meta_refresh_is_one_story(
    engine: sa.Engine, server: FaultServer
) -> None:
    """An aggregator's (or a CMS's) feed linking a tracking URL that answers 200 with a
    ``<meta http-equiv="refresh" content="0; url=…">`` stub: before, the stub was the
    page, no article text in it, so the feed's text was stored under the tracking URL,
    and the site's own source stored the story again under its URL with the page's
    text: one story, two articles, counted twice in spikes and digests (their texts
    differ, so no copy link joins them). Now a page's meta refresh within 5 s is a
    redirect hop, checked like any (loops, SSRF, the hop limit): the story is stored
    once, with the page's text, and the site's source finds it known. A page that
    reloads itself, or sends its reader on after minutes, or sends old browsers on from
    an IE conditional comment (qq.com's and CNN's pages do), is read as a page."""
    story = server.url("/news/1")
    server.route("/r/1", respond(refresh_stub("/news/1")))
    server.route("/r/loop-a", respond(refresh_stub(server.url("/r/loop-b"))))
    server.route("/r/loop-b", respond(refresh_stub("/r/loop-a")))
    server.route("/r/file", respond(refresh_stub("file:///etc/passwd")))
    reloads = '<head><meta http-equiv="refresh" content="60; url=/live">'
    server.route("/live", respond(page("直播").replace("<head>", reloads)))
    old_browsers = (
        '<head><!--[if lte IE 8]><meta http-equiv="refresh" content="0; url=/ie"><![endif]-->'
    )
    server.route("/news/1", respond(page("国务院发布新规").replace("<head>", old_browsers)))
    links = [server.url(p) for p in ("/r/1", "/r/loop-a", "/r/file", "/live")]
    server.route("/agg.xml", respond(rss([item(link) for link in links]), content_type=RSS))
    server.route("/site.xml", respond(rss([item(story)]), content_type=RSS))
    sources = [
        feed_source("aggregator", server.url("/agg.xml")),
        feed_source("site", server.url("/site.xml")),
    ]

    stats = run_ingest(engine, sources, NOW)

    assert stats["site"].already_known == 1, stats["site"]  # before: 0, stored again
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select canonical_url, content_origin from articles order by 1")
        ).all()
    assert sorted(rows) == sorted(
        [
            (story, "page"),  # before: also (…/r/1, feed_summary)
            (server.url("/r/loop-a"), "feed_summary"),
            (server.url("/r/file"), "feed_summary"),
            (server.url("/live"), "page"),
        ]
    )
    log = fetch_log(engine, "aggregator")
    assert str(log[server.url("/r/loop-a")]["error"]).startswith(
        f"page not fetched (redirect loop: {server.url('/r/loop-a')} -> "
    )
    assert str(log[server.url("/r/file")]["error"]).startswith(
        "page not fetched (blocked: scheme 'file' is not http or https)"
    )
    assert server.hits("/news/1") == 1
