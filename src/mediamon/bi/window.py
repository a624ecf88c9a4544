"""One topic's window on the mediamon page: ``/?topic=KEY&from=TIME&to=TIME``, where a
mail's "N more stories" link leads. Every story of the topic in [from, to), ranked as the
mail ranks them (``bi.topic_window_stories``), :data:`PAGE_SIZE` a page.

The parameters come from anyone's address bar: each is checked, and a bad one gets a 400
page that says what is wrong (:class:`WindowRequestError`), never a server error. Read as
``mediamon_bi`` in a read-only transaction, like the rest of the page
(:func:`mediamon.bi.dashboard.read_only`); rendered with Jinja2's autoescape, and only
http(s) URLs become links.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from mediamon.alerts.render import safe_link
from mediamon.bi.dashboard import read_only, templates
from mediamon.db.queries import query

# Stories a page lists: a busy topic's month has thousands.
PAGE_SIZE = 100
# The longest window shown: a weekly digest's period, or one caught up after two missed
# weeks, fits; a year of a topic is what the dashboards' charts are for.
MAX_WINDOW = timedelta(days=31)
# The times a window may span, as `alerts run --at` accepts: the page shows them in
# bi.settings' zone, and a time at year 9999 (or year 1) moved to a zone ahead of (or
# behind) UTC is past what datetime holds.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# A topic key as the topics file allows it (mediamon.topics.file).
TOPIC_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")


class WindowRequestError(ValueError):
    """A parameter the page cannot show: the message says which and why (HTTP 400)."""


class UnknownTopicError(LookupError):
    """No stories were ever stored for the topic key (HTTP 404)."""


@dataclass(frozen=True)
class WindowRequest:
    """The checked parameters."""

    topic: str
    start: datetime
    end: datetime
    page: int = 1


@dataclass(frozen=True)
class WindowPage:
    """What the window's template shows."""

    request: WindowRequest
    topic_name: str
    timezone: str
    start_local: datetime
    end_local: datetime
    total: int
    page: int
    pages: int
    stories: list[dict[str, Any]]
    generated_at: datetime

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1

    @property
    def last(self) -> int:
        return self.first + len(self.stories) - 1

    def page_link(self, page: int) -> str:
        """The address of another page of this window (relative: the app's own path)."""
        values = {
            "topic": self.request.topic,
            "from": self.request.start.isoformat(),
            "to": self.request.end.isoformat(),
            "page": str(page),
        }
        return "?" + urlencode(values, quote_via=quote)


def _moment(name: str, value: str | None) -> datetime:
    if not value:
        raise WindowRequestError(f"{name}: missing; give topic, from and to together")
    # An unencoded "+" of an offset arrives as a space (form encoding): put it back.
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    try:
        # CPython's fromisoformat stops at a NUL: "…T10:00Z\x00junk" read as 10:00.
        moment = None if "\x00" in text else datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise WindowRequestError(
            f"{name}: expected an ISO 8601 time with its UTC offset, such as"
            f" 2024-04-17T01:00:00+00:00; got {value[:60]!r}"
        )
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 at a positive offset is before the first UTC instant
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise WindowRequestError(
            f"{name}: out of range: {value[:60]!r} (the page shows times from"
            f" {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})"
        )
    return moment


def parse_request(
    topic: str | None, start: str | None, end: str | None, page: str | None = None
) -> WindowRequest:
    """The window the parameters ask for.

    Raises:
        WindowRequestError: a parameter is missing or malformed, ``from`` is not before
            ``to``, or the window is longer than :data:`MAX_WINDOW`.
    """
    if not topic or not TOPIC_KEY.fullmatch(topic):
        raise WindowRequestError(
            f"topic: expected a topic key (lower-case letters, digits, - and _); got {topic[:60]!r}"
            if topic
            else "topic: missing; give topic, from and to together"
        )
    first, last = _moment("from", start), _moment("to", end)
    if first >= last:
        raise WindowRequestError("from must be before to")
    if last - first > MAX_WINDOW:
        raise WindowRequestError(
            f"the window is {(last - first) / timedelta(days=1):.1f} days long; at most"
            f" {MAX_WINDOW.days} days are shown at once (the dashboards chart longer periods)"
        )
    try:
        number = int(page or 1)
    except ValueError:
        number = 1  # a page number is a convenience: a bad one shows the first page
    return WindowRequest(topic, first, last, max(number, 1))


def load_window(conn: sa.Connection, request: WindowRequest, now: datetime) -> WindowPage:
    """Read one page of the window (a page past the last shows the last).

    Raises:
        UnknownTopicError: no story ever mentioned the topic.
    """
    name = conn.execute(
        sa.text("select topic_name from bi.topic_mentions where topic = :t limit 1"),
        {"t": request.topic},
    ).scalar()
    if name is None:
        raise UnknownTopicError(request.topic)
    timezone = str(conn.execute(sa.text("select timezone from bi.settings")).scalar_one())
    params = {"topic": request.topic, "start": request.start, "end": request.end}

    def stories_of(page: int) -> list[dict[str, Any]]:
        rows = conn.execute(
            query("window_stories"),
            {**params, "offset": (page - 1) * PAGE_SIZE, "limit": PAGE_SIZE},
        ).mappings()
        return [{**row, "link": safe_link(row["url"])} for row in rows]

    page, stories = request.page, stories_of(request.page)
    # A page holds the window's count; an empty one (a page past the last, an empty
    # window) asks for it.
    total = (
        int(stories[0]["total"])
        if stories
        else int(conn.execute(query("window_story_count"), params).scalar_one())
    )
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if not stories:  # the last page (the first, of an empty window)
        page, stories = pages, stories_of(pages) if total else []
    zone = ZoneInfo(timezone)
    return WindowPage(
        request=request,
        topic_name=str(name),
        timezone=timezone,
        start_local=request.start.astimezone(zone),
        end_local=request.end.astimezone(zone),
        total=total,
        page=page,
        pages=pages,
        stories=stories,
        generated_at=now,
    )


def render(page: WindowPage) -> str:
    """The window's page as HTML (Jinja2, autoescaped)."""
    return str(templates().get_template("window.html").render(page=page, size=PAGE_SIZE))


def error_html(message: str, *, about_window: bool = True) -> str:
    """The page of a request that cannot be shown: what is wrong, the way back and, when
    the window's address is what is wrong, how one is written."""
    template = templates().get_template("window_error.html")
    return str(template.render(message=message, about_window=about_window))


def window_html(engine: sa.Engine, request: WindowRequest, now: datetime | None = None) -> str:
    """Read and render one page of the window (what the app's route returns)."""
    with read_only(engine) as conn:
        page = load_window(conn, request, now or datetime.now(UTC))
    return render(page)
