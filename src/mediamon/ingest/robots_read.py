"""Reading an origin's robots.txt for one page fetch: from the shared store, else from
the site, the read bounded by the page fetch's own deadline and budget.

The read is a fetch itself; :mod:`mediamon.ingest.fetch` passes its ``fetch`` in, so
this module needs no import of it (fetch imports this one to obey the rules).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mediamon.ingest import netguard
from mediamon.ingest.normalize import without_userinfo
from mediamon.ingest.politeness import ROBOTS_MAX_BYTES, HostLimits, RobotsRules
from mediamon.ingest.session import GuardedSession

if TYPE_CHECKING:
    from mediamon.ingest.fetch import FetchResult

# A robots.txt exchange's deadline, at most the page's own: the read counts as the page
# fetch's first request, so the page's whole deadline bounds the two together.
ROBOTS_DEADLINE_S = 30.0


def read_rules(
    fetch: Callable[..., FetchResult],
    session: GuardedSession,
    target: netguard.Target,
    private_hosts: Collection[str],
    limits: HostLimits,
    timeout: tuple[float, float],
    *,
    deadline_s: float,
    end_by: float | None,
    start_by: float | None,
) -> tuple[RobotsRules | None, float | None]:
    """The origin's rules (None: the read was cut by ``end_by`` or ``start_by``, this
    fetch's own, and not kept) and when the read's request started (None: not here)."""
    parts = urlsplit(target.url)
    origin = f"{target.scheme}://{target.host}:{target.port}"
    robots_url = without_userinfo(f"{parts.scheme}://{parts.netloc}/robots.txt")
    read_at: float | None = None

    def load() -> RobotsRules | None:
        nonlocal read_at
        store = session.robots_store
        stored = store.get(origin) if store is not None else None
        if stored is not None:
            return RobotsRules.parse(stored, robots_url)
        result = fetch(
            session,
            robots_url,
            private_hosts=private_hosts,
            limits=limits,
            timeout=timeout,
            max_bytes=ROBOTS_MAX_BYTES,
            deadline_s=deadline_s,
            any_success=True,
            start_by=start_by,
            end_by=end_by,
        )
        read_at = result.requested_at
        if result.not_started or (not result.ok and end_by and time.monotonic() >= end_by):
            return None
        if result.ok:
            body = result.content.decode("utf-8", "replace")
            if store is not None:
                store.put(origin, robots_url, body, result.status)
            return RobotsRules.parse(body, robots_url)
        if result.status is not None and 400 <= result.status < 500 and result.status != 429:
            if store is not None:
                store.put(origin, robots_url, "", result.status)
            return RobotsRules(source=robots_url)  # no robots.txt: everything is allowed
        # RFC 9309: an unreachable robots.txt (5xx, 429, network) means disallow all.
        return RobotsRules.unreachable(robots_url, f"robots.txt unreachable ({result.error})")

    bound = [t for t in (end_by, start_by) if t is not None]
    rules = session.robots.rules(origin, load, wait_until=min(bound) if bound else None)
    return rules, read_at
