"""Politeness toward the sites mediamon reads: a minimum interval and a concurrency limit
per host, Retry-After deferrals, and robots.txt (RFC 9309) for article pages.

Airflow pools limit how many tasks run, not how fast one task talks to one host, so the
limits are enforced here, inside the task, by the :class:`HostLimiter` the HTTP session
carries (:func:`mediamon.ingest.session.make_session`). All fetches of a session share it: the
feed, its article pages, robots.txt and every redirect hop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

logger = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL_S = 5.0
DEFAULT_MAX_CONNECTIONS = 2
# Requests to this machine (the demo site, test servers) do not wait by default:
# politeness protects other people's servers. A source's host_min_interval overrides it.
LOOPBACK_MIN_INTERVAL_S = 0.0
MAX_CRAWL_DELAY_S = 30.0  # a robots.txt Crawl-delay above this is read as this
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
ROBOTS_TOKEN = "mediamon"


@dataclass(frozen=True)
class HostLimits:
    """Per-source politeness settings.

    Attributes:
        min_interval_s: Seconds between the starts of two requests to one host; None
            means the default (5 s, or 0 s for a loopback address).
        max_connections: Requests in flight to one host at once.
    """

    min_interval_s: float | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def interval_for(self, loopback: bool) -> float:
        if self.min_interval_s is not None:
            return self.min_interval_s
        return LOOPBACK_MIN_INTERVAL_S if loopback else DEFAULT_MIN_INTERVAL_S


class HostDeferred(Exception):
    """The host asked (Retry-After) to be left alone longer than we are willing to wait."""

    def __init__(self, host: str, remaining_s: float) -> None:
        super().__init__(
            f"deferred: {host} asked us to wait {remaining_s:.0f} s more (Retry-After);"
            " not fetched in this run"
        )
        self.host = host
        self.remaining_s = remaining_s


class BudgetSpent(Exception):
    """A request would have started after its caller's time budget ran out."""

    def __init__(self, host: str) -> None:
        super().__init__(f"not started: the time budget ran out while waiting for {host}")
        self.host = host


def same_host(host: str) -> str:
    """``host`` as politeness keys it: in lower case and without the root's trailing dot
    (``Example.com.`` is ``example.com``). Hosts come here in the ASCII form the fetcher
    sends (IDNA, see :func:`mediamon.ingest.netguard.check_url_syntax`)."""
    return host.lower().rstrip(".")


@dataclass
class _HostState:
    active: int = 0
    next_start: float = 0.0
    deferred_until: float = 0.0


class HostLimiter:
    """Minimum interval, concurrency and Retry-After deferral per host, for the threads of
    one process. Hosts are keyed by name (ports share the limit: same machine), see
    :func:`same_host`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._hosts: dict[str, _HostState] = {}

    @contextmanager
    def slot(
        self,
        host: str,
        min_interval_s: float,
        max_connections: int,
        max_wait_s: float,
        start_by: float | None = None,
    ) -> Iterator[float]:
        """Hold one of ``host``'s connections for the block; yields the seconds waited.

        Args:
            host: Host name.
            min_interval_s: Seconds between the starts of two requests to the host.
            max_connections: Requests in flight to the host at once (at least 1).
            max_wait_s: Give up at once if a Retry-After deferral lasts longer than this.
            start_by: ``time.monotonic()`` after which the request is not started.

        Raises:
            HostDeferred: the host deferred us for longer than ``max_wait_s``.
            BudgetSpent: the slot came (or would come) after ``start_by``.
        """
        host = same_host(host)
        started = time.monotonic()
        with self._cond:
            state = self._hosts.setdefault(host, _HostState())
            while True:
                now = time.monotonic()
                if state.deferred_until - now > max_wait_s:
                    raise HostDeferred(host, state.deferred_until - now)
                if start_by is not None and now > start_by:
                    raise BudgetSpent(host)
                start_at = max(state.next_start, state.deferred_until)
                if state.active < max(1, max_connections) and now >= start_at:
                    state.active += 1
                    state.next_start = now + min_interval_s
                    break
                wait = start_at - now if state.active < max(1, max_connections) else None
                if start_by is not None:  # wake up to refuse it then, not when a slot frees
                    wait = start_by - now if wait is None else min(wait, start_by - now)
                self._cond.wait(wait if wait is None or wait > 0 else 0.001)
        try:
            yield time.monotonic() - started
        finally:
            with self._cond:
                state.active -= 1
                self._cond.notify_all()

    def defer(self, host: str, seconds: float) -> None:
        """Start no request to ``host`` for ``seconds`` (a Retry-After answer)."""
        with self._cond:
            state = self._hosts.setdefault(same_host(host), _HostState())
            state.deferred_until = max(state.deferred_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def deferred_for(self, host: str) -> float:
        """Seconds until ``host`` may be asked again (0 when it may be asked now)."""
        with self._cond:
            state = self._hosts.get(same_host(host))
            return max(0.0, state.deferred_until - time.monotonic()) if state else 0.0


# ---------------------------------------------------------------------------- robots.txt


@dataclass(frozen=True)
class _Rule:
    allow: bool
    pattern: str  # normalized path pattern

    def matches(self, path: str) -> bool:
        """Whether ``path`` starts with a match of the pattern (``*`` any run of
        characters, a final ``$`` the end of the path).

        Each piece between stars is looked for at its earliest place after the one
        before (a piece matched later would leave less room for the rest, never more),
        so a path is scanned a bounded number of times per piece. The regex this
        replaced, ``.*`` for each star, backtracked: a robots.txt rule of eight stars,
        ``/*a*a*a*a*a*a*a*a*b``, took 56 s of the ingest thread for one 60-character
        path, and each star more multiplied it.
        """
        anchored = self.pattern.endswith("$")
        body = self.pattern[:-1] if anchored else self.pattern
        if "*" not in body:
            return path == body if anchored else path.startswith(body)
        first, *middle, last = body.split("*")
        if not path.startswith(first):
            return False
        position = len(first)
        for piece in middle:
            found = path.find(piece, position)
            if found < 0:
                return False
            position = found + len(piece)
        if anchored:
            return path.endswith(last) and len(path) - len(last) >= position
        return path.find(last, position) >= 0


@dataclass(frozen=True)
class RobotsRules:
    """The rules of one robots.txt that apply to mediamon (RFC 9309).

    The group naming mediamon's product token applies, else the ``*`` group; the longest
    matching pattern decides, and ``allow`` wins a tie.

    Attributes:
        rules: Allow/disallow rules of the matching group(s).
        crawl_delay_s: The group's Crawl-delay (non-standard, widely used), if any.
        disallow_all: The file could not be read (5xx, 429, network error): RFC 9309
            says to assume a complete disallow.
        source: What was read, for messages, e.g. ``https://host/robots.txt``.
        note: Why ``disallow_all`` is set.
    """

    rules: tuple[_Rule, ...] = ()
    crawl_delay_s: float | None = None
    disallow_all: bool = False
    source: str = ""
    note: str = ""

    @classmethod
    def parse(cls, text: str, source: str = "", token: str = ROBOTS_TOKEN) -> RobotsRules:
        """Parse robots.txt text and keep the rules for ``token``."""
        groups: list[tuple[list[str], list[tuple[str, str]]]] = []
        agents: list[str] = []
        lines: list[tuple[str, str]] = []
        in_rules = False
        # A UTF-8 byte order mark (Windows editors save one) made the first line's key
        # "\ufeffuser-agent": that group was skipped and its Disallow rules not obeyed.
        for raw_line in text.removeprefix("\ufeff").splitlines():
            line = raw_line.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if in_rules:
                    groups.append((agents, lines))
                    agents, lines, in_rules = [], [], False
                agents.append(value.split("/", 1)[0].strip().lower())
            elif key in ("allow", "disallow", "crawl-delay") and agents:
                in_rules = True
                lines.append((key, value))
        if agents:
            groups.append((agents, lines))
        token = token.lower()
        chosen = [rules for names, rules in groups if token in names]
        if not chosen:
            chosen = [rules for names, rules in groups if "*" in names]
        parsed: list[_Rule] = []
        delay: float | None = None
        for group in chosen:
            for key, value in group:
                if key == "crawl-delay":
                    try:
                        seconds = float(value)
                    except ValueError:
                        continue
                    if math.isfinite(seconds):  # "inf" and "nan" parse as floats too
                        delay = max(delay or 0.0, seconds)
                elif value:  # an empty Disallow: means nothing is disallowed
                    pattern = _normalize(value)
                    parsed.append(_Rule(key == "allow", pattern))
        return cls(rules=tuple(parsed), crawl_delay_s=delay, source=source)

    @classmethod
    def unreachable(cls, source: str, note: str) -> RobotsRules:
        return cls(disallow_all=True, source=source, note=note)

    def allowed(self, url: str) -> bool:
        """Whether mediamon may fetch ``url`` under these rules."""
        parts = urlsplit(url)
        path = _normalize((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        if path == "/robots.txt":
            return True
        if self.disallow_all:
            return False
        best: _Rule | None = None
        for rule in self.rules:
            if rule.matches(path) and (
                best is None
                or len(rule.pattern) > len(best.pattern)
                or (len(rule.pattern) == len(best.pattern) and rule.allow)
            ):
                best = rule
        return best is None or best.allow

    def refusal(self) -> str:
        """The fetch-log message for a URL these rules refuse."""
        if self.disallow_all:
            return f"disallowed by robots.txt: {self.note} ({self.source})"
        return f"disallowed by robots.txt ({self.source})"


def _normalize(path: str) -> str:
    """Percent-encode the same way on both sides so /新闻 and /%E6%96%B0%E9%97%BB match."""
    return quote(unquote(path), safe="/*$?=&;:@!,'()+~-._")


@dataclass
class RobotsCache:
    """robots.txt rules per origin for one session; each file is read once, even when
    several threads ask for it at the same time."""

    _rules: dict[str, RobotsRules] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def rules(
        self,
        origin: str,
        load: Callable[[], RobotsRules | None],
        wait_until: float | None = None,
    ) -> RobotsRules | None:
        """The rules for ``origin`` (``scheme://host:port``), loading them once.

        Returns None, keeping nothing, when ``load`` does (a read cut short by its
        caller's time) or when another thread's read of the file is still going at
        ``wait_until`` (``time.monotonic()``): a caller's time is its own to bound."""
        with self._guard:
            if origin in self._rules:
                return self._rules[origin]
            lock = self._locks.setdefault(origin, threading.Lock())
        timeout = -1.0 if wait_until is None else max(0.0, wait_until - time.monotonic())
        if not lock.acquire(timeout=timeout):
            return None
        try:
            with self._guard:
                if origin in self._rules:
                    return self._rules[origin]
            rules = load()
            if rules is not None:
                with self._guard:
                    self._rules[origin] = rules
            return rules
        finally:
            lock.release()
