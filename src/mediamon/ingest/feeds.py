"""Feed parsing (RSS 2.0, RSS 1.0/RDF, Atom) into plain items, by feedparser."""

from __future__ import annotations

import calendar
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

MAX_ITEMS = 500
MAX_URL_LENGTH = 2048  # the same cap the fetcher applies (mediamon.ingest.netguard)
# Entity-expansion bombs (billion laughs, quadratic blowup) and external entities live
# in the DTD's internal subset. feedparser strips some such declarations but not all, and
# then only expat's amplification limit (libexpat >= 2.4) stops the expansion after
# megabytes of work; mediamon removes an internal subset that declares entities before
# parsing, so references come out as literal "&name;" text whatever expat does.
DTD_SUBSET_END = re.compile(rb"\]\s*>")


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


def parse_feed(
    content: bytes, url: str, content_type: str | None = None, *, max_items: int = MAX_ITEMS
) -> ParsedFeed:
    """Parse a feed document.

    Entries without a usable link (none, not http(s), too long), repeats of an earlier
    entry's link and entries past ``max_items`` are left out; ``skipped`` says why.

    Args:
        content: The raw bytes (feedparser reads the XML encoding declaration itself).
        url: The feed's URL, to resolve relative links.
        content_type: The HTTP Content-Type header, if any.
        max_items: Keep at most this many items (the first ones, usually the newest).

    Raises:
        FeedError: the document is not XML, is not a feed, or has no usable entries.
    """
    import feedparser

    content, declared_entities = _without_entity_declarations(content)
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
    if declared_entities:
        skipped.append("feed declares XML entities in its DTD; they were not expanded")
    if parsed.bozo:
        # feedparser's lenient parser recovered entries from invalid XML: keep them, say so.
        skipped.append(
            f"malformed feed, {len(parsed.entries)} items recovered: {parsed.bozo_exception}"
        )
    seen: set[str] = set()
    for index, entry in enumerate(parsed.entries):
        if len(items) >= max_items:
            skipped.append(f"{len(parsed.entries) - index} items past the cap of {max_items}")
            break
        title = entry.get("title", "untitled")
        raw_link = entry.get("link") or (entry.get("id") if entry.get("guidislink") else None)
        link = _link(entry)
        if not link:
            if isinstance(raw_link, str) and raw_link.strip():
                skipped.append(
                    f"item {index} ({title!r}) link {raw_link.strip()[:80]!r} is not http(s)"
                )
            else:
                skipped.append(f"item {index} ({title!r}) has no link")
            continue
        if len(link) > MAX_URL_LENGTH:
            skipped.append(
                f"item {index} ({title!r}) link is longer than {MAX_URL_LENGTH} characters"
            )
            continue
        if link in seen:
            skipped.append(f"item {index} ({title!r}) repeats an earlier item's link {link}")
            continue
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
    if not items:
        raise FeedError("feed has no usable items: " + "; ".join(skipped)[:500])
    return ParsedFeed(items=items, skipped=skipped, title=parsed.feed.get("title"))


def _without_entity_declarations(content: bytes) -> tuple[bytes, bool]:
    """The document without its DTD's internal subset if that declares entities, and
    whether it did. (A UTF-16 feed is left to feedparser and expat's limits.)"""
    start = content.find(b"<!DOCTYPE")
    if start < 0:
        return content, False
    subset = content.find(b"[", start)
    tag_end = content.find(b">", start)
    if subset < 0 or 0 <= tag_end < subset:
        return content, False  # no internal subset, e.g. the RSS 0.91 public DTD
    match = DTD_SUBSET_END.search(content, subset)
    end = match.end() if match else len(content)
    if b"<!ENTITY" not in content[subset:end]:
        return content, False
    return content[:start] + content[end:], True


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
