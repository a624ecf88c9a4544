"""Shards: the due sources of one cycle split into a bounded number of task-sized groups.

One Airflow task per source costs more than the source's own work (task start-up, imports,
an extraction pool, a language model: ~2.5 s for 5 articles worth ~0.25 s), and Airflow
maps over at most ``max_map_length`` (1,024) values. A cycle therefore maps over shards:
each shard is a list of sources that one task ingests with one HTTP session and one
extraction pool. Sources are grouped by host first, so every request to one host goes
through one process and its politeness limiter (5 s and 2 connections per host) is exact;
the hosts are then packed into shards by their number of sources, largest first.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mediamon.ingest import netguard, politeness
from mediamon.ingest.sources import Source

logger = logging.getLogger(__name__)

# Airflow refuses to map over more values than [core] max_map_length (default 1,024).
MAX_SHARDS = 1024
LABEL_NAMES = 2  # source names spelled out in a shard's label; the rest are counted


@dataclass(frozen=True)
class Shard:
    """The sources one mapped task ingests, and a label naming them for the UI.

    Attributes:
        sources: Source names, grouped by host.
        label: e.g. ``rfi-cn, bbc-zh +12`` (Airflow's map_index_template shows it).
    """

    sources: tuple[str, ...]
    label: str

    def as_xcom(self, of: int) -> dict[str, object]:
        """The shard as the plain value a mapped task receives: names, the label, and
        how many shards the cycle has (``of``: to size the task's extraction pool)."""
        return {"sources": list(self.sources), "label": self.label, "of": of}


def host_key(source: Source) -> str:
    """What politeness is keyed on: the feed's host name as the fetcher sends it (ports
    share the limit, as in :class:`mediamon.ingest.politeness.HostLimiter`), so that
    ``例子.中国``, ``xn--fsqu00a.xn--fiqs8s`` and ``例子.中国.`` are one host in one shard,
    not three limits of their own; an archive folder is its own group."""
    if source.kind != "feed":
        return f"{source.kind}:{source.location}"
    try:
        host = netguard.check_url_syntax(source.location, check_length=False)[1]
    except netguard.BlockedURL:  # never fetched (its fetch log says why): alone
        return f"unfetchable:{source.location}"
    return politeness.same_host(host)


def shard_count(requested: int | None, parallelism: int | None = None) -> int:
    """How many shards to aim for: ``requested`` (``MEDIAMON_SHARDS``) when given, else
    the executor's parallelism, clamped to 1 … :data:`MAX_SHARDS`.

    Args:
        requested: An explicit number of shards, or None.
        parallelism: Airflow's ``[core] parallelism`` (task slots), or None.
    """
    wanted = requested if requested is not None else (parallelism or os.cpu_count() or 1)
    return max(1, min(int(wanted), MAX_SHARDS))


def requested_shards(environ: Mapping[str, str] | None = None) -> int | None:
    """``MEDIAMON_SHARDS`` as a number, or None when unset (see
    :func:`mediamon.settings.requested_shards`).

    Raises:
        SettingsError: the variable is set but is not a whole number above 0.
    """
    from mediamon.settings import requested_shards as read

    return read(environ if environ is not None else os.environ)


def plan_shards(sources: Sequence[Source], count: int) -> list[Shard]:
    """Split ``sources`` into at most ``count`` shards (and never more than
    :data:`MAX_SHARDS`), keeping each host's sources together.

    Hosts are placed largest first, each into the shard with the fewest sources so far
    (longest-processing-time scheduling), so shards come out even unless one host alone
    outweighs the rest. Within a shard, sources keep their configured order.

    Args:
        sources: The due sources, in configured order.
        count: Wanted number of shards (see :func:`shard_count`).
    """
    if not sources:
        return []
    groups: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        groups.setdefault(host_key(source), []).append(index)
    slots = max(1, min(count, MAX_SHARDS, len(groups)))
    heap: list[tuple[int, int]] = [(0, slot) for slot in range(slots)]  # (size, slot)
    members: list[list[int]] = [[] for _ in range(slots)]
    for indexes in sorted(groups.values(), key=len, reverse=True):
        size, slot = heapq.heappop(heap)
        members[slot].extend(indexes)
        heapq.heappush(heap, (size + len(indexes), slot))
    shards = []
    for indexes in members:
        names = tuple(sources[i].name for i in sorted(indexes))
        shards.append(Shard(names, shard_label(names)))
    shards.sort(key=lambda shard: -len(shard.sources))  # the longest start first
    return shards


def shard_label(names: Sequence[str]) -> str:
    """``a, b +12``: the first names and how many more, short enough for the grid view."""
    shown = ", ".join(names[:LABEL_NAMES])
    rest = len(names) - LABEL_NAMES
    return f"{shown} +{rest}" if rest > 0 else shown
