"""The HTTP session every fetch of a task shares: connections through the SSRF guard,
urllib3's retries of connection errors, a bounded cookie jar, and the politeness state
(per-host limits, Retry-After deferrals, robots.txt rules) that :func:`mediamon.ingest.fetch.fetch`
reads and updates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.cookiejar import Cookie, CookieJar
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.cookies import MockRequest, RequestsCookieJar

from mediamon.ingest import netguard
from mediamon.ingest.politeness import HostLimiter, RobotsCache

# Cookies a session keeps (RFC 6265 §6.1's minimums for a browser). Without a bound,
# pages setting 90 cookies of 60 kB each grew the task's jar by 5 MB a page, and every
# later request to their host carried all of them: the host refused it (the pages after
# the second fell back to the feed's text) and memory grew with every page.
MAX_COOKIE_BYTES = 4096
MAX_COOKIES_PER_DOMAIN = 50
MAX_COOKIES = 3000
# The most a request's Cookie header carries. Servers refuse a request whose head is over
# 8 KiB (Tomcat, older Node.js in all; nginx and Apache a line), and 50 cookies of 4 KiB
# fit the limits above: a site setting them made each of its later pages a 400 or 431.
# 6 KiB leaves the rest of the head (a User-Agent of up to 1,000 characters) room.
MAX_COOKIE_HEADER_BYTES = 6144

logger = logging.getLogger(__name__)


class BoundedCookieJar(RequestsCookieJar):
    """A cookie jar that ignores a cookie over MAX_COOKIE_BYTES, one whose ``Domain`` is a
    public suffix, and new cookies past MAX_COOKIES_PER_DOMAIN for their domain or
    MAX_COOKIES in all (a cookie already kept may still be replaced)."""

    def set_cookie(self, cookie: Cookie, *args: Any, **kwargs: Any) -> None:
        if len(cookie.name) + len(cookie.value or "") > MAX_COOKIE_BYTES:
            return
        if cookie.domain_specified and is_public_suffix(cookie.domain):
            return
        with self._cookies_lock:  # type: ignore[attr-defined]
            kept: dict[str, dict[str, dict[str, Cookie]]] = self._cookies  # type: ignore[attr-defined]
            paths = kept.get(cookie.domain, {})
            if cookie.name not in paths.get(cookie.path, {}):
                in_domain = sum(len(names) for names in paths.values())
                total = sum(len(n) for p in kept.values() for n in p.values())
                if in_domain >= MAX_COOKIES_PER_DOMAIN or total >= MAX_COOKIES:
                    return
            super().set_cookie(cookie, *args, **kwargs)


def fit_cookie_header(jar: CookieJar, prepared: requests.PreparedRequest) -> tuple[int, int]:
    """Set ``prepared``'s Cookie header to the cookies of ``jar`` it would carry, leaving
    out the largest (of equal ones, the oldest) until the header is within
    MAX_COOKIE_HEADER_BYTES, as few as that takes: a session id is small and stays.
    Returns how many cookies the request would carry and how many were left out."""
    request = MockRequest(prepared)
    cookies = list(jar._cookies_for_request(request))  # type: ignore[attr-defined]
    sizes = [len(jar._cookie_attrs([cookie])[-1].encode()) for cookie in cookies]  # type: ignore[attr-defined]
    total = sum(sizes) + 2 * (len(cookies) - 1)  # joined by "; "
    left_out: set[int] = set()
    # The jar's order is the order cookies were first set: the stable sort puts the oldest
    # of equal size first.
    for index in sorted(range(len(cookies)), key=lambda i: -sizes[i]):
        if total <= MAX_COOKIE_HEADER_BYTES:
            break
        left_out.add(index)
        total -= sizes[index] + 2
    kept = [cookie for index, cookie in enumerate(cookies) if index not in left_out]
    if kept:
        prepared.headers["Cookie"] = "; ".join(jar._cookie_attrs(kept))  # type: ignore[attr-defined]
    else:
        del prepared.headers["Cookie"]
    return len(cookies), len(left_out)


def is_public_suffix(domain: str) -> bool:
    """Whether a cookie's ``Domain`` is a public suffix (the Public Suffix List, as
    browsers read it: ``sh.cn``, ``github.io``). http.cookiejar refuses only domains
    like ``.co.uk`` (a short list of second levels under two-letter ones), so a page on
    evil.sh.cn set cookies that every request to every site under sh.cn carried: up to
    MAX_COOKIES_PER_DOMAIN of MAX_COOKIE_BYTES, more than servers take in a request."""
    from tld import get_tld

    name = domain.strip(".").lower()
    found = get_tld(f"http://{name}/", fail_silently=True, as_object=True)
    # A name under no known suffix (an intranet's "corp.internal") is left to cookiejar.
    return found is not None and getattr(found, "tld", None) == name


class GuardedSession(requests.Session):
    """A session whose every connection goes through the SSRF guard, carrying the
    politeness state (per-host limits, Retry-After deferrals, robots.txt rules) that all
    fetches made with it share."""

    def __init__(self, retries: int = 3, backoff_s: float = 0.5) -> None:
        super().__init__()
        self.retries = retries
        self.backoff_s = backoff_s
        self.cookies = BoundedCookieJar()
        self.limiter = HostLimiter()
        self.robots = RobotsCache()
        # Shared across tasks when set (mediamon.ingest.robots_store); the RobotsCache above
        # still makes each origin one lookup per session.
        self.robots_store: RobotsStore | None = None
        self.cookies_cut_for: set[str] = set()  # hosts whose Cookie header was cut, logged

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' request, its Cookie header cut to MAX_COOKIE_HEADER_BYTES (see
        :func:`fit_cookie_header`) when the jar made it; a caller's own is left alone."""
        prepared = super().prepare_request(request)
        header = prepared.headers.get("Cookie")
        given = {name.lower() for name in (request.headers or {})}
        if header and "cookie" not in given and len(header.encode()) > MAX_COOKIE_HEADER_BYTES:
            jar = prepared._cookies  # type: ignore[attr-defined]  # the jar requests read
            dropped = fit_cookie_header(jar, prepared)
            host = urlsplit(prepared.url or "").hostname or "?"
            if host not in self.cookies_cut_for:  # once a host: a task fetches many pages
                self.cookies_cut_for.add(host)
                logger.warning(
                    "cookies of %s: %d, %d bytes in all, more than a request may carry "
                    "(%d); its requests leave out the %d largest (logged once per host and task)",
                    host,
                    dropped[0],
                    len(header.encode()),
                    MAX_COOKIE_HEADER_BYTES,
                    dropped[1],
                )
        return prepared

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Nothing: :func:`fetch` follows redirects itself, one checked hop at a time.
        requests, even with redirects off, walked one hop to fill ``Response.next``: it
        read the redirect's whole body into memory, decoded and with no cap (a 302 whose
        gzip body held 500 MB of zeros took 500 MB, the size cap never applied), and
        parsed its Location unguarded (``http://[::1`` raised ValueError out of fetch,
        and the source's poll ended with it)."""
        return iter(())


class RobotsStore(Protocol):
    """robots.txt bodies kept beyond one session (see mediamon.ingest.robots_store)."""

    def get(self, origin: str) -> str | None: ...

    def put(self, origin: str, robots_url: str, body: str, status: int | None) -> None: ...


def make_session(user_agent: str, retries: int = 3, backoff_s: float = 0.5) -> requests.Session:
    """A guarded session (a :class:`GuardedSession`) for :func:`fetch`.

    Connection errors are retried by urllib3 with backoff; 5xx and 429 answers are
    retried by :func:`fetch`, through the politeness limits and honouring Retry-After.
    Proxy settings from the environment are ignored: a proxy resolves names itself, so
    the guard could not check the address it connects to.

    Args:
        user_agent: Sent with every request so sites can identify and contact us; its
            first word is also the name robots.txt rules are matched against.
        retries: Attempts after the first, for connection errors and retryable answers.
        backoff_s: Base of the exponential backoff between attempts.
    """
    session = GuardedSession(retries, backoff_s)
    session.trust_env = False
    retry = netguard.RefusalsFinal(
        total=retries,
        connect=retries,
        read=retries,
        status=0,
        redirect=False,
        backoff_factor=backoff_s,
        allowed_methods=("GET", "HEAD"),
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    adapter = netguard.GuardedAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "User-Agent": user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml, "
            "text/xml, text/html;q=0.9, */*;q=0.5",
            "Accept-Language": "zh, en;q=0.5",
            # Only what BodyDecoder undoes (it checks the stream is complete).
            "Accept-Encoding": "gzip, deflate",
        }
    )
    return session
