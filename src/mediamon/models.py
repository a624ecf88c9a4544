"""Plain records passed between the pipeline's steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Article:
    """A normalized article, ready to load. ``canonical_url`` is its natural key."""

    canonical_url: str
    url: str
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    body_text: str
    match_text: str
    summary: str | None
    image_url: str | None
    categories: tuple[str, ...]
    content_origin: str  # page | feed_content | feed_summary | archive
    content_hash: bytes
    sentence_hashes: tuple[int, ...]
    raw_sha256: bytes | None
    raw_bytes: int | None


@dataclass(frozen=True)
class FetchRecord:
    """One row of the fetch log."""

    url: str
    kind: str  # feed | page | file
    fetched_at: datetime
    status: int | None = None
    bytes: int = 0
    elapsed_ms: int = 0
    error: str | None = None


@dataclass
class IngestStats:
    """What one ingest of one source did; small enough for XCom."""

    source: str
    items: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    already_known: int = 0
    failed: int = 0
    duplicates: int = 0
    # Feed text about another site's URL whose page could not be fetched: kept as this
    # source's claim (mediamon.ingest.provenance), not as an article.
    claims: int = 0
    # Items not started when the source's time budget ran out; the next poll takes them.
    left_for_next_poll: int = 0
    # How the poll went (mediamon.ingest.polling): polled, or not_modified / unchanged when the
    # feed had nothing new (an HTTP 304, the same bytes), failed, deferred (Retry-After);
    # not_started: its shard's time budget ran out first (it is polled next cycle).
    poll: str = "polled"
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "items": self.items,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "already_known": self.already_known,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "claims": self.claims,
            "left_for_next_poll": self.left_for_next_poll,
            "poll": self.poll,
            "errors": self.errors[:20],
        }
