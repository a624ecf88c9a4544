"""Feed parsing on real feeds (RSS 2.0, RSS 1.0/RDF, Atom) and on broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamon.feeds import MAX_ITEMS, FeedError, parse_feed


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("greatfire_nyt.xml", "RSS 2.0"),
        ("greatfire_dw.xml", "RSS 1.0/RDF"),
        ("greatfire_bbc.xml", "Atom"),
    ],
)
def test_real_chinese_feeds(shared_dir: Path, name: str, kind: str) -> None:
    content = (shared_dir / "corpora" / "feeds" / name).read_bytes()
    parsed = parse_feed(content, "https://example.com/feed")
    assert len(parsed.items) >= 5, kind
    for item in parsed.items:
        assert item.link.startswith(("http://", "https://"))
        assert item.title
        assert item.published_at is None or item.published_at.tzinfo is not None
    assert any(item.published_at for item in parsed.items)
    assert len({i.link for i in parsed.items}) == len(parsed.items)


def test_content_encoded_is_kept(shared_dir: Path) -> None:
    content = (shared_dir / "corpora" / "feeds" / "greatfire_cdt.xml").read_bytes()
    items = parse_feed(content, "https://example.com/feed").items
    assert any(item.content_html and len(item.content_html) > 200 for item in items)


def rss(items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.com/</link>{items}</channel></rss>"
    ).encode()


def test_items_without_link_are_reported_and_repeats_dropped() -> None:
    parsed = parse_feed(
        rss(
            "<item><title>无链接</title><description>x</description></item>"
            "<item><title>a</title><link>https://example.com/a</link></item>"
            "<item><title>a again</title><link>https://example.com/a</link></item>"
        ),
        "https://example.com/feed",
    )
    assert [i.link for i in parsed.items] == ["https://example.com/a"]
    assert parsed.skipped and "has no link" in parsed.skipped[0]


def test_items_past_the_cap_are_reported() -> None:
    many = "".join(
        f"<item><link>https://example.com/{n}</link></item>" for n in range(MAX_ITEMS + 3)
    )
    parsed = parse_feed(rss(many), "https://example.com/feed")
    assert len(parsed.items) == MAX_ITEMS
    assert "3 items past the cap" in parsed.skipped[-1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<rss><channel><title>broken", "malformed feed"),
        (b"<html><body>Not a feed</body></html>", "not a feed"),
        (rss(""), "feed has no items"),
        (b"", "not a feed"),
    ],
)
def test_broken_feeds_raise_a_clear_error(content: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(content, "https://example.com/feed")


def test_malformed_xml_with_recoverable_items_is_kept_and_reported() -> None:
    parsed = parse_feed(
        b"<rss version='2.0'><channel><item><title>a & b</title><link>https://example.com/a</link>"
        b"</item><item><title>cut",
        "https://example.com/feed",
    )
    assert [i.link for i in parsed.items] == ["https://example.com/a"]
    assert parsed.skipped[0].startswith("malformed feed, 2 items recovered")
    assert "has no link" in parsed.skipped[1]  # the cut item
