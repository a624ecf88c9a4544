"""Short Chinese texts in legacy encodings that declare no charset, through the real
ingest path into PostgreSQL: the source's configured language, or the document's own
``lang``, tells the charset detector which encodings to choose among. Names the
docs/faults.md row it proves."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.ingest.sources import Source
from tests.support.fault_server import FaultServer, respond
from tests.support.faults import NOW, RSS, articles, feed_source, item, rss, run_ingest

# Six characters of GBK without a declaration: charset_normalizer alone reads them as
# Korean (EUC-KR), 쏟휑莖폭헒읨.
SHORT_GBK = "今日天气晴朗"
KOREAN = "서울시는 오늘 새로운 교통 정책을 발표했다"
JAPANESE = "東京都は今日、新しい感染対策を発表しました"


def archive_file(folder: Path, name: str, text: str, encoding: str, wrap: str = "{}") -> None:
    """One archived item whose title and body are ``text``, saved in ``encoding``."""
    body = wrap.format(f"<p>{text}</p>")
    archived = f"<!--1712090701000-->\n[{text}](https://example.com/{name})\n------\n{body}\n"
    (folder / f"{name}.txt").write_bytes(archived.encode(encoding))


def stored(engine: sa.Engine, tmp_path: Path, language: str | None) -> dict[str, object]:
    folder = tmp_path / "archive"
    source = Source(name="arch", kind="archive", location=str(folder), language=language)
    stats = run_ingest(engine, [source], NOW)
    assert stats["arch"].failed == 0, stats["arch"].errors
    return {url: (row["title"], row["body_text"]) for url, row in articles(engine).items()}


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_a_short_undeclared_archive_file_is_chinese_when_the_source_says_zh(
    engine: sa.Engine, tmp_path: Path, encoding: str
) -> None:
    (tmp_path / "archive").mkdir()
    archive_file(tmp_path / "archive", "a", SHORT_GBK, encoding)
    title, body = stored(engine, tmp_path, "zh-CN")["https://example.com/a"]  # type: ignore[misc]
    assert title == SHORT_GBK and SHORT_GBK in body


def test_a_short_undeclared_archive_file_is_chinese_when_its_html_lang_says_zh(
    engine: sa.Engine, tmp_path: Path
) -> None:
    (tmp_path / "archive").mkdir()
    wrap = '<html lang="zh-CN"><body>{}</body></html>'
    archive_file(tmp_path / "archive", "a", SHORT_GBK, "gbk", wrap)
    title, body = stored(engine, tmp_path, None)["https://example.com/a"]  # type: ignore[misc]
    assert title == SHORT_GBK and SHORT_GBK in body


@pytest.mark.parametrize("language", ["zh", None])
def test_korean_and_japanese_files_stay_themselves_under_a_chinese_hint(
    engine: sa.Engine, tmp_path: Path, language: str | None
) -> None:
    """The hint narrows detection only when a Chinese encoding reads the bytes as such:
    EUC-KR and Shift_JIS still decode as themselves, and a document saying it is
    Japanese (html lang) overrides a source saying zh."""
    folder = tmp_path / "archive"
    folder.mkdir()
    archive_file(folder, "ko", KOREAN, "euc_kr")
    archive_file(folder, "ja", JAPANESE, "shift_jis")
    archive_file(folder, "ja-euc", JAPANESE, "euc_jp", '<html lang="ja"><body>{}</body></html>')
    found = stored(engine, tmp_path, language)
    assert found["https://example.com/ko"] == (KOREAN, KOREAN)
    assert found["https://example.com/ja"] == (JAPANESE, JAPANESE)
    assert found["https://example.com/ja-euc"] == (JAPANESE, JAPANESE)


@pytest.mark.parametrize(
    "content_type", ["application/rss+xml", "text/xml"], ids=["rss-type", "text-xml"]
)
def test_a_short_undeclared_gbk_feed_is_chinese_when_the_source_says_zh(
    engine: sa.Engine, server: FaultServer, content_type: str
) -> None:
    """A feed of one short item, no charset in HTTP or its XML declaration: before,
    detected as EUC-KR, its title stored as 쏟휑莖폭헒읨."""
    short_gbk_feed(engine, server, content_type, "", "zh")


def test_a_short_undeclared_gbk_feed_is_chinese_when_its_language_says_zh(
    engine: sa.Engine, server: FaultServer
) -> None:
    """The same feed from a source without a language, its channel saying zh-cn."""
    short_gbk_feed(engine, server, "application/rss+xml", "<language>zh-cn</language>", None)


def short_gbk_feed(
    engine: sa.Engine, server: FaultServer, content_type: str, head: str, language: str | None
) -> None:
    link = server.url("/a")
    feed = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>财经</title>{head}'
        f"<link>https://example.com/</link><item><title>{SHORT_GBK}</title>"
        f"<link>{link}</link><description>{SHORT_GBK}</description></item></channel></rss>"
    )
    server.route("/feed.xml", respond(feed.encode("gbk"), content_type=content_type))
    server.route("/a", respond(b"gone", status="404 Not Found"))
    run_ingest(engine, [feed_source("feed", server.url("/feed.xml"), language=language)], NOW)
    row = articles(engine, "feed")[link]
    assert row["title"] == SHORT_GBK and SHORT_GBK in str(row["body_text"])


TRADITIONAL = (
    "香港特區政府今日公佈經濟數據，本地生產總值按年增長。立法會議員對此表示歡迎，認為經濟正在復甦。"
)


@pytest.mark.parametrize("http_charset", ["", "; charset=big5"], ids=["no-http", "http-big5"])
def test_a_pages_meta_charset_outranks_its_xml_declaration_as_in_browsers(
    engine: sa.Engine, server: FaultServer, http_charset: str
) -> None:
    """An XHTML template's ``<?xml … encoding="gbk"?>`` before ``<meta charset="big5">``
    on a Big5 page: browsers ignore the XML declaration in text/html (WHATWG: BOM, HTTP,
    meta). Before, it was read first, and GBK reads Big5 bytes without an error: the
    page was stored as mojibake."""
    html = (
        '<?xml version="1.0" encoding="gbk"?><!DOCTYPE html><html><head>'
        f'<meta charset="big5"><title>經濟</title></head><body><article><h1>經濟數據</h1>'
        f"<p>{TRADITIONAL}</p><p>{TRADITIONAL}</p></article></body></html>"
    )
    content_type = "text/html" + http_charset
    server.route("/p", respond(html.encode("big5hkscs"), content_type=content_type))
    server.route("/feed.xml", respond(rss([item(server.url("/p"))]), content_type=RSS))
    run_ingest(engine, [feed_source("page", server.url("/feed.xml"))], NOW)
    row = articles(engine, "page")[server.url("/p")]
    assert row["content_origin"] == "page" and TRADITIONAL in str(row["body_text"])


@pytest.mark.parametrize(
    ("language", "wrap"),
    [("zh-TW", "{}"), ("zh-Hant-HK", "{}"), (None, '<html lang="zh-Hant"><body>{}</body></html>')],
    ids=["source-zh-tw", "source-zh-hant-hk", "html-lang-zh-hant"],
)
def test_a_short_undeclared_big5_file_is_big5_when_the_source_or_document_is_traditional(
    engine: sa.Engine, tmp_path: Path, language: str | None, wrap: str
) -> None:
    """Four characters of Big5 also read as GBK without an error, and the detector,
    even among the Chinese encodings alone, chose GBK: 臺灣總統 stored as 籓芖羆参."""
    (tmp_path / "archive").mkdir()
    archive_file(tmp_path / "archive", "a", "臺灣總統", "big5hkscs", wrap)
    title, body = stored(engine, tmp_path, language)["https://example.com/a"]  # type: ignore[misc]
    assert title == "臺灣總統" and "臺灣總統" in body


def test_a_meta_charset_in_a_feed_items_html_is_not_the_feeds_charset(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A GBK feed without a declared charset whose first item carries a whole page in
    CDATA, ``<meta charset="big5">`` and all: before, the meta was taken as the feed's
    charset, and Big5 read the GBK bytes without an error into mojibake. Feed readers
    read only the XML declaration."""
    link = server.url("/a")
    text = "今日天气晴朗，股市大涨"
    html = f'<html><head><meta charset="big5"></head><body><p>{text}</p></body></html>'
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>财经</title>'
        f"<link>https://example.com/</link><item><title>{text}</title><link>{link}</link>"
        f"<description><![CDATA[{html}]]></description></item></channel></rss>"
    )
    server.route("/feed.xml", respond(feed.encode("gbk"), content_type="application/rss+xml"))
    server.route("/a", respond(b"gone", status="404 Not Found"))
    run_ingest(engine, [feed_source("feed", server.url("/feed.xml"))], NOW)
    row = articles(engine, "feed")[link]
    assert row["title"] == text and text in str(row["body_text"])
