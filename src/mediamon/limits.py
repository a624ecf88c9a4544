"""Hard caps on what a source can make mediamon store or match, whatever it sends.

Every text field of an article is cut to a fixed length before it is stored, so a
hostile feed or page (an entity bomb that slipped through, a 10 MB title, a page of one
endless paragraph) can never make a row that later steps (topic matching, alert mail,
BI) choke on. The caps are far above what any real article needs; docs/faults.md lists
them. A cut is marked with an ellipsis so a reader sees the text did not end there.
"""

from __future__ import annotations

MAX_TITLE_CHARS = 1_000
MAX_AUTHOR_CHARS = 300
MAX_SUMMARY_CHARS = 5_000
MAX_BODY_CHARS = 200_000  # ~100 printed pages; the longest page of the corpora has 40,000
MAX_URL_CHARS = 2_048  # the fetcher refuses longer URLs (mediamon.ingest.netguard)
MAX_CATEGORIES = 50
MAX_CATEGORY_CHARS = 200
# HTML a feed item carries (content:encoded, description) before it is turned into
# text: enough for any article, small enough that parsing it stays quick.
MAX_FEED_HTML_CHARS = 1_000_000
ELLIPSIS = "…"


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (the last one an ellipsis when cut)."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def cap_optional(text: str | None, limit: int) -> str | None:
    return None if text is None else cap(text, limit)
