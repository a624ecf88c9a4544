"""Article text and metadata from decoded HTML, by trafilatura."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extracted:
    """What trafilatura found in a page. Any field may be missing except ``text``."""

    text: str
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    language: str | None = None
    image: str | None = None
    description: str | None = None
    sitename: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)


def extract(html: str, url: str | None = None) -> Extracted | None:
    """Extract the main text and metadata of an article page.

    Args:
        html: The page, already decoded (see :mod:`mediamon.decode`): trafilatura
            guessing the charset itself garbles many GBK pages.
        url: The page's URL, which helps trafilatura resolve links and dates.

    Returns:
        The extraction, or None when the page has no article text.
    """
    import trafilatura

    result = trafilatura.extract(
        html,
        url=url,
        output_format="json",
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
    )
    if not result:
        return None
    data = json.loads(result)
    text = (data.get("text") or "").strip()
    if not text:
        return None
    return Extracted(
        text=text,
        title=_str(data.get("title")),
        author=_str(data.get("author")),
        published_at=_date(data.get("date")),
        language=_str(data.get("language")),
        image=_str(data.get("image")),
        description=_str(data.get("excerpt") or data.get("description")),
        sitename=_str(data.get("sitename")),
        categories=tuple(
            c.strip() for c in (data.get("categories") or "").split(";") if c.strip()
        ),
    )


def _str(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _date(value: object) -> datetime | None:
    """trafilatura gives a day (YYYY-MM-DD); midnight UTC stands for it."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
