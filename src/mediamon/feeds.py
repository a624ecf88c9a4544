"""Feed parsing (RSS 2.0, RSS 1.0/RDF, Atom) into plain items, by feedparser."""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

MAX_ITEMS = 500


class FeedError(ValueError):
    """The document is not a usable feed."""


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed, or one archived item; HTML fields are as the feed gave them."""

    link: str
    title: str | None = None
    published_at: datetime | None = None
    author: str | None = None
    summary_html: str | None = None
    content_html: str | None = None
    language: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ParsedFeed:
    items: list[FeedItem]
    skipped: list[str]  # why entries were left out, for the fetch log
    title: str | None = None


def parse_feed(content: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document.

    Args:
        content: The raw bytes (feedparser reads the XML encoding declaration itself).
        url: The feed's URL, to resolve relative links.
        content_type: The HTTP Content-Type header, if any.

    Raises:
        FeedError: the document is not XML, is not a feed, or has no entries.
    """
    import feedparser

    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    parsed = feedparser.parse(content, response_headers=headers, sanitize_html=True)
    if not parsed.entries:
        if not parsed.get("version"):
            problem = f": {parsed.bozo_exception}" if parsed.bozo else ""
            raise FeedError(f"not a feed: no RSS or Atom root element{problem}")
        if parsed.bozo:
            raise FeedError(f"malformed feed: {parsed.bozo_exception}")
        raise FeedError("feed has no items")
    feed_language = parsed.feed.get("language")
    items: list[FeedItem] = []
    skipped: list[str] = []
    if parsed.bozo:
        # feedparser's lenient parser recovered entries from invalid XML: keep them, say so.
        skipped.append(
            f"malformed feed, {len(parsed.entries)} items recovered: {parsed.bozo_exception}"
        )
    seen: set[str] = set()
    for index, entry in enumerate(parsed.entries):
        if len(items) >= MAX_ITEMS:
            skipped.append(f"{len(parsed.entries) - index} items past the cap of {MAX_ITEMS}")
            break
        link = _link(entry)
        if not link:
            skipped.append(f"item {index} ({entry.get('title', 'untitled')!r}) has no link")
            continue
        if link in seen:
            continue  # the same item twice in one feed
        seen.add(link)
        items.append(
            FeedItem(
                link=link,
                title=entry.get("title") or None,
                published_at=_time(entry.get("published_parsed") or entry.get("updated_parsed")),
                author=entry.get("author") or None,
                summary_html=entry.get("summary") or None,
                content_html=_content(entry),
                language=(entry.get("language") or feed_language) or None,
                categories=tuple(t["term"] for t in entry.get("tags", []) if t.get("term")),
            )
        )
    return ParsedFeed(items=items, skipped=skipped, title=parsed.feed.get("title"))


def _link(entry: Any) -> str | None:
    link = entry.get("link")
    if not link and entry.get("guidislink"):
        link = entry.get("id")
    if isinstance(link, str) and link.startswith(("http://", "https://")):
        return link.strip()
    return None


def _content(entry: Any) -> str | None:
    """The longest full-content block (content:encoded, Atom content)."""
    blocks = [c.get("value", "") for c in entry.get("content", [])]
    blocks = [b for b in blocks if b and b.strip()]
    return max(blocks, key=len) if blocks else None


def _time(value: Any) -> datetime | None:
    """feedparser's parsed times are UTC struct_time."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None
