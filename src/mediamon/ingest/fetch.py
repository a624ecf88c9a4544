"""HTTP fetching with one session per task: the SSRF guard, politeness, conditional GET,
timeouts with a total deadline, a size cap after decompression, accepted content types,
and redirects followed one checked hop at a time. One request and the reading of its
answer are :mod:`mediamon.ingest.exchange`; a page's robots.txt read is
:mod:`mediamon.ingest.robots_read`.

:func:`fetch` never raises for network, HTTP or content faults: they end up in
:attr:`FetchResult.error` with a short, stable description for the fetch log.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from mediamon.ingest import netguard, redirects, robots_read
from mediamon.ingest.decode import content_type_charset
from mediamon.ingest.exchange import MAX_BODY_READS as MAX_BODY_READS  # still importable here
from mediamon.ingest.exchange import WHOLE_ANSWER_STATUSES, Exchange, one_exchange
from mediamon.ingest.fetch_errors import describe, printable
from mediamon.ingest.normalize import without_userinfo
from mediamon.ingest.politeness import (
    MAX_CRAWL_DELAY_S,
    BudgetSpent,
    HostDeferred,
    HostLimits,
)
from mediamon.ingest.session import GuardedSession
from mediamon.limits import cap

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
# requests' read timeout applies to each read, so a slow-drip server could hold a
# download open forever; the deadline bounds each request from sending it to the last
# byte of the body (a watchdog breaks the connection when it passes).
DOWNLOAD_DEADLINE_S = 60.0
# The deadline above is per exchange; a whole fetch (its redirect hops, its retries of
# 5xx/429, the robots.txt reads and host waits between them) gets this many of them,
# counted from its first request. Each hop and retry used to get a fresh 60 s, so answers
# each coming just inside it held one fetch for (5 hops + 1 + 3 retries) x 60 s = 9 min,
# a shard's budget tail included. Twice, not once: a healthy feed behind one redirect
# (http -> https, a feed proxy) or a retry after a slow 503 still has a download's
# deadline for its body, as a feed fetched directly has.
FETCH_DEADLINE_FACTOR = 2.0
MAX_BYTES = 15 * 1024 * 1024
MAX_REDIRECTS = 5
# Retry-After up to this long is waited for inside the task; a longer one defers the
# host for the rest of the run (and the source's next poll, see mediamon.ingest.polling).
MAX_RETRY_AFTER_S = 30.0
# A longer Retry-After is read as this (a week); a source's max_poll_interval caps the
# deferral of its next poll further.
MAX_RETRY_AFTER_RECORDED_S = 7 * 24 * 3600.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Content types by what is fetched; "" is a response without Content-Type, "*+xml"
# and "*/xml" match any XML type. HTML and plain text are accepted for feeds because
# servers mislabel feeds; the parser reports a page that is not a feed.
FEED_TYPES = (
    "*/xml", "*+xml", "text/plain", "text/html", "application/octet-stream",
    "binary/octet-stream", "",
)  # fmt: skip
PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "")
# An ETag or Last-Modified is stored in the polling state and sent back as it came. One
# holding a NUL made PostgreSQL refuse the state (the task failed, at every run); one of
# 60 kB made every later poll a request the server refused for its header size (the
# source failed for good). Real ones are a few dozen printable ASCII characters; any
# other is not kept (the body's hash still finds an unchanged feed).
VALIDATOR = re.compile(r"[\x20-\x7e]{1,1024}")
# An error may quote what a server sent: a reason phrase or a content type of 60 kB went
# whole into the fetch log (a row per page, every run), the run's summary and its log
# line. Cut to this many characters (a redirect loop of six 2,048-character URLs is cut).
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Validators:
    """Conditional GET validators from the previous fetch of a URL."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass
class FetchResult:
    """What one GET produced. ``error`` is None exactly when the fetch succeeded; then
    ``content`` is the body, empty for a 304 Not Modified."""

    url: str
    final_url: str
    status: int | None
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: int = 0
    error: str | None = None
    redirects: tuple[str, ...] = ()  # the URLs redirected from, in order
    retry_after_s: float | None = None  # the host asked to be left alone this long
    not_started: bool = False  # no request (or hop) started before ``start_by``
    requested_at: float | None = None  # time.monotonic() its first request got a slot

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset parameter of the Content-Type header, if any."""
        return content_type_charset(self.headers.get("content-type"))

    @property
    def validators(self) -> Validators:
        """The response's validators, each only if it is fit to store and send back."""
        return Validators(
            _fit_validator(self.headers.get("etag")),
            _past_date(_fit_validator(self.headers.get("last-modified"))),
        )


def fetch(
    session: requests.Session,
    url: str,
    *,
    max_bytes: int = MAX_BYTES,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    allow_private_network: bool = False,
    private_hosts: Collection[str] | None = None,
    configured_url: bool = False,
    validators: Validators | None = None,
    accept_types: Collection[str] | None = None,
    limits: HostLimits | None = None,
    check_robots: bool = False,
    max_redirects: int = MAX_REDIRECTS,
    any_success: bool = False,
    follow_refresh: bool = False,
    start_by: float | None = None,
    end_by: float | None = None,
) -> FetchResult:
    """GET ``url``; never raises for network, HTTP or content failures (see ``error``).

    Args:
        session: From :func:`mediamon.ingest.session.make_session`.
        url: http(s) URL.
        max_bytes: Body size cap after decompression; larger bodies are an error.
        deadline_s: Bound on each request, from sending it to the body's last byte;
            the whole fetch (hops, retries, robots.txt reads and host waits after the
            first request, a robots.txt read's when it comes first) is bounded by
            FETCH_DEADLINE_FACTOR times it.
        timeout: Connect and per-read timeouts in seconds.
        allow_private_network: ``url``'s own host and port may be loopback or private
            (and only they: other hosts, ports and spellings stay refused on every hop).
        private_hosts: The ``host:port`` pairs that may be private, when the allowance
            is not ``url``'s own host (pages of a source: the source's host and its
            ``allow_hosts``, see :attr:`mediamon.sources.Source.private_hosts`);
            overrides ``allow_private_network``. Cloud-metadata addresses are refused
            whatever either says.
        configured_url: ``url`` is a source's own URL from the sources file: if its host
            is written as an IP address or ``localhost``, it is fetched even when private
            (the operator wrote it). Redirect hops are checked all the same.
        validators: Send If-None-Match / If-Modified-Since; a 304 answer is a success
            with empty content (:attr:`FetchResult.not_modified`).
        accept_types: Content types to download (see FEED_TYPES, PAGE_TYPES); others are
            an error without reading the body. None accepts any type.
        limits: Per-host politeness; None means the defaults.
        check_robots: Obey robots.txt (for article pages), on every redirect hop.
        max_redirects: Redirect hops followed before giving up.
        any_success: Read the body of any answer below 400 but a redirect or 304
            (robots.txt: RFC 9309 takes any 2xx for the file); else only a 200's or
            203's is the result, and another is an error, its body not read.
        follow_refresh: An HTML answer whose ``<meta http-equiv="refresh">`` sends the
            reader on at once is a redirect hop (article pages: aggregators' and CMSs'
            tracking links answer so), checked and counted as any other.
        start_by: ``time.monotonic()`` after which no request (a retry, a redirect hop)
            is started, however long it waited for its host: the result is then
            :attr:`FetchResult.not_started`. A page checked against its source's budget
            only before waiting for its host (4 page threads, 2 connections per host)
            started up to two downloads' deadlines (2 × 60 s) past the budget.
        end_by: ``time.monotonic()`` by which the whole fetch ends, however long its own
            deadline (a robots.txt read within the time left of the fetch it is read for);
            no request starts after it either.

    Raises:
        TypeError: ``session`` was not made by :func:`mediamon.ingest.session.make_session`.
    """
    if not isinstance(session, GuardedSession):
        raise TypeError("fetch() needs a session from mediamon.ingest.session.make_session")
    run = _Progress(url, FETCH_DEADLINE_FACTOR * deadline_s, validators, start_by, end_by)
    if private_hosts is None:
        private_hosts = _own_host(url) if allow_private_network else frozenset()
    options = _Options(
        limits=limits or HostLimits(),
        private_hosts=private_hosts,
        timeout=timeout,
        deadline_s=deadline_s,
        max_bytes=max_bytes,
        accept_types=accept_types,
        any_success=any_success,
    )
    while True:
        try:
            target = netguard.vet(
                run.current,
                private_ok=private_hosts,
                literal_ok=configured_url and len(run.chain) == 1,
            )
        except requests.RequestException as error:
            return run.result(error=describe(error))
        interval = options.limits.interval_for(target.is_loopback)
        if run.past_end():
            return run.result(error=run.overran())
        if run.past_start_by():  # before robots.txt too
            return run.not_started(target.host)
        if check_robots:
            obeyed = _obey_robots(session, options, run, target, interval)
            if isinstance(obeyed, FetchResult):
                return obeyed
            interval = obeyed
        answered = _request(session, options, run, target, interval)
        if isinstance(answered, FetchResult):
            return answered
        exchange, retry_after = answered
        location = exchange.location
        if location is None and follow_refresh and exchange.status in WHOLE_ANSWER_STATUSES:
            location = redirects.refresh_location(exchange, run.current)
        if location is not None:
            refused = run.redirect(location, max_redirects)
            if refused is not None:
                return run.result(status=exchange.status, headers=exchange.headers, error=refused)
            continue
        if exchange.status in RETRY_STATUSES and exchange.error is not None:
            if run.retry(session, retry_after):
                continue
            message = exchange.error
            if retry_after is not None:
                message += f"; Retry-After {retry_after:.0f} s"
            return run.result(
                status=exchange.status,
                headers=exchange.headers,
                error=message,
                retry_after_s=retry_after,
            )
        return run.result(
            status=exchange.status,
            headers=exchange.headers,
            content=exchange.content,
            error=exchange.error,
        )


@dataclass(frozen=True)
class _Options:
    """What :func:`fetch` was asked for that every hop and retry uses alike."""

    limits: HostLimits
    private_hosts: Collection[str]
    timeout: tuple[float, float]
    deadline_s: float
    max_bytes: int
    accept_types: Collection[str] | None
    any_success: bool


class _Progress:
    """One fetch's state across its redirect hops and retries: the URLs so far, the
    retries sent, and the whole fetch's deadline once its first request starts."""

    def __init__(
        self,
        url: str,
        whole_s: float,
        validators: Validators | None,
        start_by: float | None,
        end_by: float | None,
    ) -> None:
        self.started = time.monotonic()
        self.whole_s = whole_s
        self.end_by = end_by
        if end_by is not None:
            start_by = end_by if start_by is None else min(start_by, end_by)
        self.start_by = start_by
        # Set when the first request gets its host's slot: waiting in the queue for a busy
        # host (other pages' downloads) is the limiter's and the budget's to bound, not the
        # fetch's, or a page queued behind slow ones would lose its download time.
        self.ends: float | None = None
        self.requested_at: float | None = None
        # Every URL a result or error shows is without a user name and password; the one
        # requested may keep the first URL's own (see redirects.next_hop).
        self.chain: list[str] = [without_userinfo(url)]
        self.current = url
        self.attempt = 0
        self.sent = 0  # the retries that were sent (``attempt`` counts one waiting for its slot)
        self.headers = validators.headers() if validators else {}

    def result(self, **kwargs: Any) -> FetchResult:
        """The fetch's result, as far as it got: its URLs, its time, its first request's."""
        if kwargs.get("error"):
            kwargs["error"] = printable(cap(kwargs["error"], MAX_ERROR_CHARS))
        elapsed = int((time.monotonic() - self.started) * 1000)
        kwargs.setdefault("final_url", self.chain[-1])
        kwargs.setdefault("status", None)
        kwargs.setdefault("content", b"")
        kwargs.setdefault("requested_at", self.requested_at)
        chain = self.chain
        return FetchResult(url=chain[0], elapsed_ms=elapsed, redirects=tuple(chain[:-1]), **kwargs)

    def not_started(self, host: str) -> FetchResult:
        return self.result(error=str(BudgetSpent(host)), not_started=True)

    def overran(self) -> str:
        hops, retries = len(self.chain) - 1, self.sent
        spent = [f"{hops} redirect{'s' * (hops != 1)}"] if hops else []
        spent += [f"{retries} retr{'ies' if retries != 1 else 'y'}"] if retries else []
        return f"fetch took longer than {self.whole_s:g} s" + (
            " over " + " and ".join(spent) if spent else ""
        )

    def past_end(self) -> bool:
        return self.ends is not None and time.monotonic() >= self.ends

    def past_start_by(self) -> bool:
        return self.start_by is not None and time.monotonic() > self.start_by

    def first_request(self) -> float:
        """The first request got its host's slot: the whole deadline counts from now.
        Returns when the fetch ends."""
        self.requested_at = time.monotonic()
        whole_end = self.requested_at + self.whole_s
        self.ends = whole_end if self.end_by is None else min(whole_end, self.end_by)
        return self.ends

    def redirect(self, location: str, max_redirects: int) -> str | None:
        """Follow ``location`` on the next turn, or the error refusing it."""
        following = redirects.next_hop(self.chain, self.current, location, max_redirects)
        if isinstance(following, redirects.Refused):
            return following.error
        self.chain.append(without_userinfo(following))
        self.current = following
        self.headers = {}  # validators belong to the URL they were sent for
        return None

    def retry(self, session: GuardedSession, retry_after: float | None) -> bool:
        """Whether to ask again after a 5xx or 429; backs off first when the host set no
        Retry-After (a deferral makes the next slot() wait instead)."""
        retryable = retry_after is None or retry_after <= MAX_RETRY_AFTER_S
        if self.attempt >= session.retries or not retryable:
            return False
        self.attempt += 1
        if retry_after is None:
            pause = session.backoff_s * 2 ** (self.attempt - 1)
            ends = self.ends
            time.sleep(max(0.0, min(pause, ends - time.monotonic())) if ends else pause)
        return True


def _obey_robots(
    session: GuardedSession,
    options: _Options,
    run: _Progress,
    target: netguard.Target,
    interval: float,
) -> FetchResult | float:
    """The host's interval with robots.txt's Crawl-delay, or the result that ends the
    fetch: the page is disallowed, or the read used up the fetch's time or budget."""
    # The read is this fetch's first request when it comes first: the whole deadline
    # counts from it (before, the read's 2 x 30 s came on top of the page's 120 s). On a
    # later hop, and against start_by, it gets the time left; a read cut short by those is
    # not kept (it would be "unreachable: disallow all" for every page of the origin):
    # this fetch alone fails.
    rules, read_at = robots_read.read_rules(
        fetch, session, target, options.private_hosts, options.limits, options.timeout,
        deadline_s=min(robots_read.ROBOTS_DEADLINE_S, options.deadline_s),
        end_by=run.ends, start_by=run.start_by,
    )  # fmt: skip
    if run.ends is None and read_at is not None:
        run.requested_at, run.ends = read_at, read_at + run.whole_s
    if rules is None:
        if run.start_by is not None and time.monotonic() >= run.start_by and not run.past_end():
            return run.not_started(target.host)
        return run.result(error=run.overran())
    if not rules.allowed(run.current):
        return run.result(error=rules.refusal())
    if rules.crawl_delay_s:
        interval = max(interval, min(rules.crawl_delay_s, MAX_CRAWL_DELAY_S))
    if run.past_end():
        return run.result(error=run.overran())
    return interval


def _request(
    session: GuardedSession,
    options: _Options,
    run: _Progress,
    target: netguard.Target,
    interval: float,
) -> FetchResult | tuple[Exchange, float | None]:
    """One exchange once the host gives a slot, and the Retry-After of a 5xx or 429;
    or the result that ends the fetch: the host is deferred, the time or budget is up."""
    retry_after = None
    # The fetch's own end stops a later hop or retry waiting for its host (a
    # Retry-After, other pages' downloads) as the budget does, with its own error.
    own_end = run.ends is not None and (run.start_by is None or run.ends <= run.start_by)
    start_until = run.ends if own_end else run.start_by
    limits = options.limits
    try:
        with session.limiter.slot(
            target.host, interval, limits.max_connections, MAX_RETRY_AFTER_S, start_until
        ):
            ends = run.ends if run.ends is not None else run.first_request()
            left = ends - time.monotonic()
            if left <= 0:
                return run.result(error=run.overran())
            run.sent = run.attempt
            exchange = one_exchange(
                session,
                target,
                run.headers,
                options.timeout,
                min(options.deadline_s, left),
                run.overran() if left < options.deadline_s else None,
                options.max_bytes,
                options.accept_types,
                options.any_success,
            )
            if exchange.status in RETRY_STATUSES and exchange.error is not None:
                retry_after = _retry_after(exchange.headers)
                if retry_after is not None:
                    # Before the slot is freed: a request waiting for it must find
                    # the host deferred, not ask again the host that said to wait.
                    session.limiter.defer(target.host, retry_after)
    except HostDeferred as deferred:
        return run.result(error=str(deferred), retry_after_s=deferred.remaining_s)
    except BudgetSpent as spent:
        if own_end:
            return run.result(error=run.overran())
        return run.result(error=str(spent), not_started=True)
    return exchange, retry_after


def _fit_validator(value: str | None) -> str | None:
    return value if value is not None and VALIDATOR.fullmatch(value) else None


def _past_date(value: str | None) -> str | None:
    """A Last-Modified unless it is a date more than a day ahead of this machine's clock.
    Sent back as If-Modified-Since, a date in 2099 (a post dated ahead by a CMS, a server
    clock off by years) has a server comparing dates answer 304 until then: every poll
    "not modified", the feed's new items never read, the source healthy."""
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return value  # not a date: a server comparing dates ignores it, one matching text not
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Wall-clock time: what the server's clock says now, give or take a wrong zone.
    return None if when > datetime.now(UTC) + timedelta(days=1) else value


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), if any,
    clamped to 0 … MAX_RETRY_AFTER_RECORDED_S (the source's max_poll_interval caps it
    further, see mediamon.polling): the value comes from a stranger's server."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        # A 20-digit number is a valid header; compared as an int, never made a float.
        return float(min(int(value[:32]), int(MAX_RETRY_AFTER_RECORDED_S)))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Wall-clock time here paces HTTP requests; it decides no data.
    seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER_RECORDED_S)


def _own_host(url: str) -> frozenset[str]:
    try:
        return frozenset({netguard.url_host_key(url)})
    except netguard.BlockedURL:
        return frozenset()  # vet() refuses the URL with the reason
