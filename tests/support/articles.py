"""Articles made from a text as ingest makes them (folded for matching, with the keys that
find copies), for tests that load articles without fetching pages."""

from __future__ import annotations

from datetime import datetime

from mediamon.ingest import normalize
from mediamon.models import Article


def text_article(
    url: str,
    body: str,
    published_at: datetime | None,
    *,
    title: str = "标题",
    seen_url: str | None = None,
) -> Article:
    """A page's article at ``url`` (its canonical URL) with ``body`` as its text, in
    Chinese; ``seen_url`` is the link it was found by (default: ``url``)."""
    match = normalize.fold(body)
    content_hash, sentences = normalize.duplicate_keys(match)
    return Article(
        canonical_url=url,
        url=seen_url or url,
        title=title,
        author=None,
        published_at=published_at,
        language="zh",
        body_text=body,
        match_text=match,
        summary=None,
        image_url=None,
        categories=(),
        content_origin="page",
        content_hash=content_hash,
        sentence_hashes=sentences,
        raw_sha256=None,
        raw_bytes=None,
    )
