"""Hostile sources, pages and command-line input (a later attack run): each test replays
one finding against servers on 127.0.0.1 and a real PostgreSQL, and names the
docs/faults.md row it proves.

1. a link of 2,000 Chinese characters       -> test_a_link_of_thousands_of_chinese_*
2. an article ending in thousands of headings -> test_an_article_ending_in_*
3. `db url --database` as written           -> test_db_url_database_*
4. a title of invisible characters alone    -> test_a_feed_title_of_invisible_*
5. another site's story under a feed's title -> test_a_feed_never_titles_or_dates_*
6. a feed of pages as large as the cap        -> test_a_chunk_of_pages_as_large_*
7. a page labelled UTF-16 that is not        -> test_a_page_labelled_utf_16_*
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from mediamon import db
from mediamon.cli import main
from mediamon.ingest import load
from mediamon.ingest.build import ArticleJob
from mediamon.ingest.candidates import MAX_TRAILING_HEADINGS
from mediamon.ingest.feeds import FeedItem
from mediamon.ingest.run import CHUNK_PAGE_BYTES, archive_chunks, feed_chunks, fetch_options
from mediamon.ingest.session import make_session
from tests.faults.test_hostile_pages import build
from tests.support.cpu import least_cpu
from tests.support.fault_server import FaultServer, fault_server, redirect, respond
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

# ----------------------------------------------------- 1. a link of 2,000 Chinese characters


def test_a_link_of_thousands_of_chinese_characters_is_logged_and_loaded(
    engine: sa.Engine, server: FaultServer
) -> None:
    """The fetch log's natural key held the URL whole in a b-tree, which PostgreSQL
    refuses past 2,704 bytes. A link of 2,000 Chinese characters is within the 2,048
    characters a link may have, but 6 kB of UTF-8: PostgreSQL refused the chunk's fetch
    log (ProgramLimitExceeded: index row size 6056 exceeds btree version 4 maximum 2704),
    so the chunk and the source's run failed, at every run. Now the key holds the URL's
    hash: the item and the one beside it load, and a retried run overwrites its rows."""
    rng = random.Random(11)  # characters that do not compress, as a real path's
    path = "/" + "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(2_000))
    server.route("/short", respond(page("短链接的文章")))
    server.route(quote(path), respond(page("长链接的文章")))
    feed = rss([item(server.url("/short"), title="短"), item(server.url(path), title="长")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    source = feed_source("long-links", server.url("/feed.xml"))

    stats = run_ingest(engine, [source], NOW)["long-links"]
    assert (stats.new, stats.failed, stats.poll) == (2, 0, "polled"), stats
    stored = articles(engine)
    assert stored[server.url(path)]["title"] == "长"
    assert stored[server.url(path)]["content_origin"] == "page"
    logged = fetch_log(engine)
    assert logged[server.url(path)]["error"] is None
    assert len(server.url(path).encode()) > 6_000  # over the b-tree's 2,704 bytes

    run_ingest(engine, [source], NOW, refetch_known=True)  # the same run key: a retry
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select count(*) from fetch_log")).scalar_one()
    assert rows == 3  # the feed and the two pages, once each


# ------------------------------------------------- 2. an article ending in thousands of headings


def test_an_article_ending_in_thousands_of_headings_is_read_in_linear_time() -> None:
    """trafilatura (precision mode) deletes the headings an element ends with one at a
    time, and counts the element's children again for each: an article ending in 30,000
    headings each followed by a word cost the build 16 s (40,000: 29 s, past the
    extraction workers' CPU limit; 40,000 bare <h1>, <summary>s of a <details> or FAQ
    questions 8 to 12 s). Now a run of more than MAX_TRAILING_HEADINGS headings ending an
    element keeps its first ones, the words after the others kept after them: the page
    costs about what the same headings followed by a paragraph cost, and its text is
    the article's, as before."""
    article = "<html><head><title>标题</title></head><body><article>{}</article></body></html>"
    paragraph = f"<p>{PARAGRAPH}</p>"
    headings = "<h2>小标题</h2>词" * 30_000
    hostile = article.format(paragraph + headings)
    ordinary = article.format(headings + paragraph)  # the same headings, not at the end
    build(article.format(paragraph))  # warm up (models, folding tables)
    baseline = least_cpu(lambda: build(ordinary), runs=2)
    result, seconds = build(hostile)
    assert seconds < 4 * baseline + 0.5, (seconds, baseline)  # before: 16 s, 11 times
    built = result.article
    assert built is not None and built.content_origin == "page"
    assert built.body_text == build(article.format(paragraph))[0].article.body_text
    for tag in ("h1", "summary"):  # the other headings trafilatura reads
        page = article.format(paragraph + f"<details>{f'<{tag}>x</{tag}>' * 30_000}</details>")
        assert build(page)[1] < 4 * baseline + 0.5
    assert MAX_TRAILING_HEADINGS >= 22  # the corpora's longest run of headings


# ------------------------------------------------------ 3. `db url --database` as written


@pytest.mark.parametrize(
    ("name", "database_url", "message"),
    [
        (
            "x?host=evil.example&port=5432&",
            None,
            "mediamon: --database: expected one of mediamon, airflow,"
            " got 'x?host=evil.example&port=5432&'",
        ),
        (
            "a\nmediamon: forged line",
            None,
            "mediamon: --database: expected one of mediamon, airflow,"
            " got 'a\\nmediamon: forged line'",
        ),
        (
            "x" * 100_000,
            None,
            f"mediamon: --database: expected one of mediamon, airflow, got {'x' * 40!r}",
        ),
        (
            "airflow",
            "postgresql://postgres@127.0.0.1:5432/mediamon",
            "mediamon: --database airflow: MEDIAMON_DATABASE_URL is set, so there is no"
            " embedded server; the URL printed is mediamon's own database (run without"
            " --database)",
        ),
    ],
    ids=["query-in-the-name", "line-break", "100-kb", "airflow-beside-a-database-url"],
)
def test_db_url_database_is_one_of_the_embedded_servers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    database_url: str | None,
    message: str,
) -> None:
    """`mediamon db url --database NAME` put the name into the URL as written, after
    starting the embedded server: `x?host=evil.example&port=5432&` printed
    `postgresql://postgres@/x?host=evil.example&port=5432&?host=…/pgdata&port=5432`, a
    URL of two hosts for psql; a line break printed a second, forged line. With
    MEDIAMON_DATABASE_URL set the name was ignored without a word: `--database airflow`
    printed mediamon's own database, for a user about to work on Airflow's. Now the name
    is one of the embedded server's databases, checked before anything starts: one line,
    exit 2, the name cut to 40 characters."""
    var_dir = tmp_path / "var"
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(var_dir))
    if database_url is None:
        monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    try:
        assert main(["db", "url", "--database", name]) == 2
    finally:
        db.stop_embedded(var_dir)  # the former code started the server first
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == message
    assert not (var_dir / "pgdata" / "postmaster.pid").exists()  # nothing started


# ------------------------------------------------- 4. a title of invisible characters alone


def test_a_feed_title_of_invisible_characters_gives_way_to_the_pages(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A feed item's title of zero-width spaces, bidi controls and a byte order mark
    alone is no title once cleaned, but it counted as one: the page was not searched for
    its title, and the story was stored without any (shown untitled in mail and BI).
    Now the page's title is used, as for an item without a title."""
    invisible = "\u200b\u200e\u202e\u2066\ufeff\u2060"
    server.route("/p", respond(page("页面自己的标题")))
    server.route("/q", respond(page("另一页的标题")))
    feed = rss([item(server.url("/p"), title=invisible), item(server.url("/q"), title="真标题")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    run_ingest(engine, [feed_source("invisible", server.url("/feed.xml"))], NOW)
    stored = articles(engine)
    assert stored[server.url("/p")]["title"] == "页面自己的标题"
    assert stored[server.url("/q")]["title"] == "真标题"  # a feed's own title still first


# ------------------------------------------- 5. another site's story under a feed's title


@pytest.fixture()
def site_server() -> Iterator[FaultServer]:
    """A second site (another host:port, so another site to provenance)."""
    with fault_server() as running:
        yield running


def _dated_page(title: str, published: str) -> str:
    meta = f'<meta property="article:published_time" content="{published}">'
    return page(title).replace("<head>", f"<head>{meta}", 1)


def test_a_feed_never_titles_or_dates_another_sites_story(
    engine: sa.Engine, server: FaultServer, site_server: FaultServer
) -> None:
    """Any feed may list any site's story. A hostile one listed another site's story
    (directly, or through a redirect of its own) with a headline and a date of its own:
    the page's text was stored under the feed's headline ("伪造标题：某官员辞职") and
    dated a week back, out of every spike window, and the site's own source then skipped
    the story as known, so its real headline never replaced the fake one. Now, for a
    page on another site than the feed's, the page's own title, date, author, categories,
    summary and language come first (the feed's only where the page has none; its time
    where it falls on the page's date, which is read to the day); the feed's word still
    comes first for its own site's pages."""
    first = site_server.route("/story", respond(_dated_page("真实标题", "2024-04-19")))
    second = site_server.route("/story2", respond(_dated_page("第二篇真实标题", "2024-04-18")))
    third = site_server.route("/story3", respond(_dated_page("第三篇真实标题", "2024-04-17")))
    server.route("/r", redirect(second))
    server.route("/own", respond(page("页面上的标题")))
    week_ago = "Sat, 13 Apr 2024 08:00:00 +0000"
    hostile = rss(
        [
            item(first, title="伪造标题：某官员辞职", date=week_ago),
            item(server.url("/r"), title="伪造标题：第二篇", date=week_ago),
            item(server.url("/own"), title="自己网站的标题", date=week_ago),
            item(third, title="第三篇", date="Wed, 17 Apr 2024 10:30:00 +0000"),
        ]
    )
    server.route("/feed.xml", respond(hostile, content_type=RSS))
    site_feed = rss([item(first, title="真实标题"), item(second, title="第二篇真实标题")])
    site_server.route("/feed.xml", respond(site_feed, content_type=RSS))
    evil = feed_source(
        "evil", server.url("/feed.xml"), allow_hosts=[f"127.0.0.1:{site_server.port}"]
    )
    site = feed_source("site", site_server.url("/feed.xml"))

    run_ingest(engine, [evil], NOW)
    stats = run_ingest(engine, [site], NOW + timedelta(minutes=1), "faults:2")["site"]
    assert stats.already_known == 2  # as before: the pages were fetched and stored
    stored = {a["canonical_url"]: a for a in articles(engine).values()}
    assert stored[first]["title"] == "真实标题"
    assert stored[first]["published_at"] == datetime(2024, 4, 19, tzinfo=UTC)  # the page's day
    assert stored[second]["title"] == "第二篇真实标题"
    assert stored[second]["published_at"] == datetime(2024, 4, 18, tzinfo=UTC)
    # a feed's time on the page's date stands: the page's date is read to the day only
    assert stored[third]["published_at"] == datetime(2024, 4, 17, 10, 30, tzinfo=UTC)
    own = stored[server.url("/own")]  # the feed's own site: its word first, as before
    assert own["title"] == "自己网站的标题"
    assert own["published_at"] == datetime(2024, 4, 13, 8, tzinfo=UTC)


# ------------------------------------------------ 6. a feed of pages as large as the cap


def test_a_chunk_of_pages_as_large_as_the_cap_is_handed_on_in_parts(
    engine: sa.Engine, server: FaultServer
) -> None:
    """The pages of a chunk (100 items) were fetched all at once and held until the last
    came: a feed of 100 pages of 15 MB, the download cap, held 1.5 GB in the ingest
    process (measured: a peak RSS of 1,813 MB, from 108), and two chunks are in flight,
    enough for the kernel to kill the task at every run. Now pages are fetched at most a
    few ahead, and a chunk is handed on once its pages hold CHUNK_PAGE_BYTES: here 40
    pages of 8 MB come in parts of at most 64 MB and one page, every item in one part,
    in order, the chunk's counts once."""
    big = b"x" * (8 * 1024 * 1024)
    server.route("/big", respond(big, content_type="text/plain"))
    links = [server.url(f"/big?n={n}") for n in range(40)]
    source = feed_source("big", server.url("/feed.xml"))
    with engine.begin() as conn:
        source_id = load.sync_sources(conn, [source])["big"]
    job = ArticleJob(item=FeedItem(link=""), source_language="zh", drop_params=(), seen_at=NOW)
    items = [FeedItem(link=link, title="大页面") for link in links]
    with make_session(USER_AGENT, retries=0) as session:
        chunks = feed_chunks(
            engine, session, source, items, job, source_id=source_id, **fetch_options(source)
        )
        parts = []
        for chunk in chunks:  # as ingest_source takes them, each dropped once loaded
            held = sum(len(e.job.page.content) for e in chunk.entries if e.job and e.job.page)
            parts.append(
                (len(chunk.entries), held, chunk.new, [e.record.url for e in chunk.entries])
            )
    assert max(held for _, held, _, _ in parts) <= CHUNK_PAGE_BYTES + len(big)  # before: 320 MB
    assert len(parts) > 1
    assert [url for *_, urls in parts for url in urls] == links  # all, in order, once
    assert sum(new for _, _, new, _ in parts) == 40


def test_an_archive_folder_of_files_as_large_as_the_cap_is_handed_on_in_parts(
    tmp_path: Path,
) -> None:
    """An archive folder's files were read 100 to a chunk, each up to the 15 MB cap: 1.5
    GB held, as a feed's pages. They are handed on at CHUNK_PAGE_BYTES too: 20 files of
    8 MB in parts of at most 64 MB and one file, each file once, in order."""
    body = "<p>" + "x" * (8 * 1024 * 1024) + "</p>"
    for n in range(20):
        header = f"<!--1713600000000-->\n[第{n}篇](https://news.example.com/{n})\n------\n"
        (tmp_path / f"{n:02d}.txt").write_text(header + body, encoding="utf-8")
    job = ArticleJob(item=FeedItem(link=""), source_language="zh", drop_params=(), seen_at=NOW)
    files = sorted(tmp_path.iterdir())
    parts = [
        [e.job.item.link for e in chunk.entries if e.job is not None]
        for chunk in archive_chunks(files, job)
    ]
    largest = max(len(part) for part in parts)
    assert largest * (len(body) + 60) <= CHUNK_PAGE_BYTES + len(body) + 60  # before: 20
    assert [link for part in parts for link in part] == [
        f"https://news.example.com/{n}" for n in range(20)
    ]


# ----------------------------------------------------- 7. a page labelled UTF-16 that is not

FRENCH = (
    "Le gouvernement a annoncé mercredi une série de mesures destinées à soutenir les"
    " agriculteurs touchés par la sécheresse. Selon le ministère, près de deux mille"
    " exploitations ont déjà déposé une demande d'aide. « Nous ne laisserons personne de"
    " côté », a déclaré la ministre lors d'une conférence de presse à Paris. Les syndicats"
    " agricoles ont salué un premier pas, tout en réclamant des garanties supplémentaires."
)


@pytest.mark.parametrize("padding", ["", " "], ids=["as-is", "one-byte-more"])
def test_a_page_labelled_utf_16_without_a_nul_byte_is_not_read_as_utf_16(
    engine: sa.Engine, server: FaultServer, padding: str
) -> None:
    """A page in cp1252 whose template (or server) says UTF-16: read as UTF-16, its every
    two bytes one character, the French article was stored as CJK-looking mojibake
    ("慴瑩琠…") without one replacement character, so no other charset was tried, and
    counted as Chinese or Japanese. A document in UTF-16 or UTF-32 has NUL bytes in its
    markup; without any, the label is ignored (WHATWG reads a meta's UTF-16 as UTF-8
    for the same reason) and the page is read as an undeclared one. (Of an odd length,
    UTF-16 leaves one replacement character and another charset was tried: half the
    pages so labelled were lost.)"""
    html = (
        '<html><head><meta charset="utf-16"><title>Sécheresse</title></head><body><article>'
        + f"<p>{FRENCH}</p>" * 3
        + "</article></body></html>"
        + padding  # an odd length leaves UTF-16 a replacement character, an even none
    )
    server.route("/p", respond(html.encode("cp1252"), content_type="text/html"))
    feed = rss([item(server.url("/p"), title="Sécheresse", description="")])
    server.route("/feed.xml", respond(feed, content_type=RSS))
    run_ingest(engine, [feed_source("fr", server.url("/feed.xml"), language=None)], NOW)
    assert fetch_log(engine)[server.url("/p")]["error"] is None
    stored = articles(engine)[server.url("/p")]
    assert stored["content_origin"] == "page"
    body = str(stored["body_text"])
    assert "Selon le minist" in body and "agriculteurs touch" in body
    assert not any("\u3000" <= c <= "\uffff" for c in body), body[:80]  # no CJK mojibake
    assert stored["language"] == "fr"
