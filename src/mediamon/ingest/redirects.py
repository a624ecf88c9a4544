"""Redirect targets: where a hop leads (a ``Location``, a page's meta refresh), checked
before :func:`mediamon.ingest.fetch.fetch` follows it one guarded hop at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

from mediamon.ingest import netguard
from mediamon.ingest.normalize import userinfo_split, without_userinfo
from mediamon.ingest.sniff import refresh_target

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    """A hop not followed, and the fetch's error saying why."""

    error: str


def next_hop(chain: list[str], current: str, location: str, max_redirects: int) -> str | Refused:
    """The URL to request for ``location`` (read against ``current``, the URL just
    requested), or why it is not followed: a URL urlsplit cannot read, one already in
    ``chain`` (the URLs requested, the first asked for first, without user names and
    passwords), or a hop past ``max_redirects``.

    A user name and password in the target are kept only when they are the first URL's
    own and the hop stays on its host and port (a relative hop on a feed an operator
    gave with them): requests sends a URL's userinfo as Basic credentials, so one that
    a server wrote into a ``Location`` (``http://user:secret@internal/``) was sent to
    whatever host it named. Such a target is requested without them.
    """
    try:
        following = urljoin(current, location)
    except ValueError:  # urlsplit refuses it: "http://[::1", "//[zz]/"
        shown = without_userinfo(location[:200])
        return Refused(f"redirect to a URL that cannot be read: {shown!r}")
    credentials, shown = userinfo_split(following)
    if credentials and not _asked_with(chain[0], credentials, following, current):
        following = shown
    if shown in chain:
        return Refused("redirect loop: " + " -> ".join([*chain, shown]))
    if len(chain) > max_redirects:
        return Refused(
            f"too many redirects (more than {max_redirects}): {chain[0]} -> … -> {shown}"
        )
    return following


def _asked_with(first: str, credentials: str, following: str, current: str) -> bool:
    """Whether ``following`` carries the credentials the fetch was asked with (``current``
    holds them only then: the first URL's are never added back), on the same host."""
    if userinfo_split(current)[0] != credentials:
        return False
    try:
        return netguard.url_host_key(following) == netguard.url_host_key(first)
    except netguard.BlockedURL:
        return False  # vet() refuses it, saying why


class Answer(Protocol):
    """What :func:`refresh_location` reads of an exchange (an ``exchange.Exchange``)."""

    headers: dict[str, str]
    content: bytes
    error: str | None


def refresh_location(answer: Answer, current: str) -> str | None:
    """Where a whole answer's meta refresh sends its reader at once, if it is a page
    that does and not to itself (a page reloading itself is read as it is). Before, the
    stub was the article: the feed's text stored under the tracking link, and the story
    a second time under its own URL by the site's source."""
    if answer.error is not None:
        return None
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/html", "application/xhtml+xml", ""):
        return None
    target = refresh_target(answer.content)
    try:
        if target is None or urljoin(current, target).split("#")[0] == current.split("#")[0]:
            return None
    except ValueError:
        return target  # refused as a Location urlsplit cannot read
    return target


def location_of(status: int, values: list[str]) -> tuple[str | None, str | None]:
    """The Location of a redirect answer and None, or None and the fetch's error.
    ``values`` are the answer's Location headers, one each: sent twice, as a CMS and its
    proxy each add it, they arrived joined (``/a, /a``) and that was requested, a 404
    and the page lost. The same URL twice is that URL; two different ones are an error,
    as in browsers (the Fetch standard's "location URL")."""
    found = list(dict.fromkeys(v for v in (utf8_header(v).strip() for v in values) if v))
    if not found:
        return None, f"HTTP {status} redirect without a Location header"
    if len(found) > 1:
        return None, f"HTTP {status} redirect with {len(found)} different Location headers"
    return found[0], None


def utf8_header(value: str) -> str:
    """A header value as its bytes read in UTF-8, when they are UTF-8. http.client reads
    header bytes as Latin-1, but sites send a Location of raw UTF-8 far more often
    (``Location: /新闻/文章`` from PHP and nginx): read as Latin-1 it was followed as
    ``/æ\\x96°é\\x97»/…``, a 404, and the page was lost. requests repairs it the same way
    when it follows redirects itself; mediamon follows them one checked hop at a time."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not Latin-1 text, or its bytes are not UTF-8: as it came
        return value
