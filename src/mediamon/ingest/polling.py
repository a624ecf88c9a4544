"""Adaptive polling and conditional GET state per source, kept in ``source_state``.

After each poll a source's interval moves: it halves when most of the feed's items were
new (we are polling too rarely and might miss items that scroll off the feed), grows by
half when few were (we are polling too often), within a floor and a cap. A source that
fails backs off exponentially up to the cap but is always polled again. A Retry-After
answer pushes the next poll past the time the server asked for.

The state also keeps the feed's validators (ETag, Last-Modified) and the SHA-256 of its
last body, for conditional GET and for feeds whose body is unchanged although their
validators changed. It is written once, after every chunk of the poll was loaded, so a
poll that dies half-way is simply done again. The row also keeps what it was before the
run that wrote it: a retry of that run (same run key) starts again from there, so with
the same feed it leaves the row exactly as the first attempt did.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.tables import article_claims, articles
from mediamon.ingest import links as links_store
from mediamon.ingest.fetch import Validators
from mediamon.ingest.normalize import url_hash
from mediamon.ingest.sources import Source

logger = logging.getLogger(__name__)

SHORTEN_ABOVE = 0.5  # share of new items above which the interval shortens
LENGTHEN_BELOW = 0.2  # share of new items below which it lengthens
SHORTEN_FACTOR = 0.5  # missing news is worse than an extra request: react fast ...
LENGTHEN_FACTOR = 1.5  # ... and slow down gently

# The state a run starts from, kept beside the state it left (column name_before).
BEFORE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("feed_url", sa.Text),
    ("etag", sa.Text),
    ("last_modified", sa.Text),
    ("body_sha256", sa.LargeBinary),
    ("base_interval", sa.Interval),
    ("poll_interval", sa.Interval),
    ("consecutive_failures", sa.Integer),
    ("last_success_at", sa.DateTime(timezone=True)),
    ("polled_url", sa.Text),
    ("url_failures", sa.Integer),
)
# Created by sql/migrations/0005_source_state.sql (never create_all()).
source_state = sa.Table(
    "source_state",
    sa.MetaData(),
    sa.Column("source_id", sa.Integer, primary_key=True),
    sa.Column("feed_url", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("body_sha256", sa.LargeBinary),
    sa.Column("base_interval", sa.Interval, nullable=False),
    sa.Column("poll_interval", sa.Interval, nullable=False),
    sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("last_outcome", sa.Text, nullable=False),
    sa.Column("last_items", sa.Integer, nullable=False),
    sa.Column("last_new", sa.Integer, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("deferred_until", sa.DateTime(timezone=True)),
    sa.Column("run_key", sa.Text, nullable=False),
    # sql/migrations/0014_source_state_polled_url.sql
    sa.Column("polled_url", sa.Text),
    sa.Column("url_failures", sa.Integer, nullable=False),
    *(sa.Column(f"{name}_before", kind) for name, kind in BEFORE_COLUMNS),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class SourceState:
    """A row of ``source_state``."""

    feed_url: str | None
    etag: str | None
    last_modified: str | None
    body_sha256: bytes | None
    base_interval: timedelta
    poll_interval: timedelta
    next_poll_at: datetime
    last_polled_at: datetime
    last_success_at: datetime | None
    last_outcome: str
    last_items: int
    last_new: int
    consecutive_failures: int
    last_error: str | None
    deferred_until: datetime | None
    run_key: str
    # The source's URL when it was polled (None: a row from before migration 0014 not
    # matched to a source), and the failures in a row at that URL: the backoff counts
    # these, the watchdog's streak (consecutive_failures) all of them.
    polled_url: str | None = None
    url_failures: int = 0
    feed_url_before: str | None = None
    etag_before: str | None = None
    last_modified_before: str | None = None
    body_sha256_before: bytes | None = None
    base_interval_before: timedelta | None = None  # None: no state before that run
    poll_interval_before: timedelta | None = None
    consecutive_failures_before: int | None = None
    last_success_at_before: datetime | None = None
    polled_url_before: str | None = None
    url_failures_before: int | None = None

    def before(self, run_key: str) -> SourceState | None:
        """The state a poll under ``run_key`` starts from: this one, or, when this row
        was written by ``run_key`` itself (a retry), the state before it (None if the
        source had never been polled before)."""
        if self.run_key != run_key:
            return self
        if self.base_interval_before is None or self.poll_interval_before is None:
            return None
        return replace(
            self,
            feed_url=self.feed_url_before,
            etag=self.etag_before,
            last_modified=self.last_modified_before,
            body_sha256=self.body_sha256_before,
            base_interval=self.base_interval_before,
            poll_interval=self.poll_interval_before,
            consecutive_failures=self.consecutive_failures_before or 0,
            last_success_at=self.last_success_at_before,
            polled_url=self.polled_url_before,
            url_failures=self.url_failures_before or 0,
            run_key="",
        )

    def validators_for(self, url: str) -> Validators | None:
        """The stored validators, if they belong to ``url``."""
        if self.feed_url != url or not (self.etag or self.last_modified):
            return None
        return Validators(self.etag, self.last_modified)

    def moved_from(self, url: str) -> bool:
        """Whether this state was computed for another URL than ``url`` (the source's
        URL was changed in the sources file since)."""
        return self.polled_url is not None and self.polled_url != url


@dataclass
class PollOutcome:
    """What one poll of a source found; filled in while the source is ingested."""

    outcome: str = "polled"
    items: int = 0
    new: int = 0
    error: str | None = None
    feed_url: str | None = None
    validators: Validators | None = None
    body_sha256: bytes | None = None
    retry_after_s: float | None = None


def next_interval(
    current: timedelta, items: int, new: int, floor: timedelta, cap: timedelta
) -> timedelta:
    """The poll interval after a successful poll that saw ``items`` items, ``new`` new.

    Args:
        current: The interval before this poll.
        items: Items in the feed (after caps); 0 for an unchanged feed.
        new: Items not seen before this run.
        floor: Shortest interval.
        cap: Longest interval.
    """
    share = new / items if items else 0.0
    if share > SHORTEN_ABOVE:
        current = current * SHORTEN_FACTOR
    elif share < LENGTHEN_BELOW:
        current = current * LENGTHEN_FACTOR
    return min(max(current, floor), cap)


def failure_delay(interval: timedelta, failures: int, cap: timedelta) -> timedelta:
    """Time to the next poll of a source that failed ``failures`` times in a row."""
    return min(interval * (1 << min(failures, 16)), max(cap, interval))


def load_state(conn: sa.Connection, source_id: int) -> SourceState | None:
    """The source's polling state, or None before its first poll."""
    row = (
        conn.execute(sa.select(source_state).where(source_state.c.source_id == source_id))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return SourceState(**{f: row[f] for f in SourceState.__dataclass_fields__})


def seen_before(
    conn: sa.Connection,
    links: Mapping[str, str],
    now: datetime,
    source_id: int | None = None,
    items: Mapping[str, bytes | None] | None = None,
) -> tuple[set[str], set[str]]:
    """Of ``links`` (each item's link, as the feed wrote it, with its canonical URL):
    those whose article is stored, and those seen before this run's time: stored as an
    article, or as ``source_id``'s claim. An article is found by the link's canonical
    URL, or by the link itself: a link that redirects is stored under its page's final
    URL (``articles.url`` keeps the link), and was fetched again, and counted new, at
    every poll. ``articles.url`` keeps the first link only: another source's link to the
    same page is found among ``source_id``'s links (:mod:`mediamon.ingest.links`).

    An article first seen at ``now`` was loaded by an earlier attempt of this same run,
    so it still counts as new for adaptive polling. A claim is no article (its page is
    tried again at the next poll), but its item was seen: counted new at every poll, a
    feed of another site's links (an aggregator, a feed on a domain of its own) held its
    source at the shortest poll interval for good.

    ``items`` (each link's :func:`~mediamon.ingest.links.item_key`) tells a reused link:
    one of ``source_id``'s links that came from another feed item than the one now
    showing it is neither stored nor seen, so its page is fetched again (it may lead to
    another story now). A link recorded without its item is no evidence either way.
    """
    if not links:
        return set(), set()
    by_key: dict[str, list[str]] = {}
    for link, key in links.items():
        by_key.setdefault(key, []).append(link)
    rows = conn.execute(
        sa.select(articles.c.canonical_url, articles.c.url, articles.c.first_seen_at).where(
            sa.or_(
                articles.c.url_hash.in_([url_hash(key) for key in by_key]),
                articles.c.url.in_(list(links)),
            )
        )
    ).all()
    stored: set[str] = set()
    earlier: set[str] = set()
    for canonical, linked, first_seen in rows:
        found = {*by_key.get(canonical, ()), *([linked] if linked in links else [])}
        stored |= found
        if first_seen < now:
            earlier |= found
    if source_id is not None:
        # The source's links that led to an article stored under another key (a link
        # that redirects): articles.url keeps only the first source's link to it.
        renewed: set[str] = set()
        for key, known in links_store.linked(conn, source_id, by_key).items():
            for link in by_key[key]:
                if links_store.new_item(known.item_key, (items or {}).get(link)):
                    renewed.add(link)
                    continue
                stored.add(link)
                if known.first_linked_at < now:
                    earlier.add(link)
        claimed = conn.execute(
            sa.select(article_claims.c.canonical_url).where(
                article_claims.c.source_id == source_id,
                article_claims.c.url_hash.in_([url_hash(key) for key in by_key]),
                article_claims.c.first_claimed_at < now,
            )
        ).scalars()
        for canonical in claimed:
            earlier.update(by_key.get(canonical, ()))
        # Also when articles.url still holds the link: it is the story it led to first.
        stored -= renewed
        earlier -= renewed
    return stored, earlier


def record_poll(
    conn: sa.Connection,
    source: Source,
    source_id: int,
    run_key: str,
    now: datetime,
    before: SourceState | None,
    poll: PollOutcome,
) -> SourceState:
    """Compute and upsert the source's state after a poll; return it.

    Args:
        conn: Open connection; the caller owns the transaction.
        source: The source polled.
        source_id: Its id.
        run_key: The run that polled.
        now: The run's time.
        before: The state the poll started from (:meth:`SourceState.before`).
        poll: What the poll found.
    """
    floor, cap = source.poll_bounds
    # A source whose URL was changed (fixed) starts afresh at the new one: its interval,
    # backoff and validators belong to the old URL. Its failure streak goes on until the
    # new URL polls fine, so the watchdog sees the source recover, not a new source.
    moved = before is not None and before.moved_from(source.location)
    if before is not None and before.base_interval == source.poll_interval and not moved:
        interval = before.poll_interval
    else:  # first poll, new URL, or the configured interval changed: start from it
        interval = source.poll_interval
    interval = min(max(interval, floor), cap)
    failures = before.consecutive_failures if before else 0
    url_failures = before.url_failures if before is not None and not moved else 0
    last_success = before.last_success_at if before else None
    deferred_until = None
    if poll.retry_after_s is not None:
        # A server's Retry-After never pushes the next poll past max_poll_interval (a
        # date in year 9999 would otherwise retire the source for good).
        wait = min(max(poll.retry_after_s, 0.0), cap.total_seconds())
        deferred_until = now + timedelta(seconds=wait)
    # Validators and body hash of the last good fetch (kept through failures).
    validators = before.validators_for(source.location) if before else None
    body = before.body_sha256 if before and before.feed_url == source.location else None
    feed_url = source.location if before and (validators or body) else None
    if poll.outcome in ("failed", "deferred"):
        failures += 1
        url_failures += 1
        next_poll_at = now + failure_delay(interval, url_failures, cap)
    else:
        failures = url_failures = 0
        last_success = now
        interval = next_interval(interval, poll.items, poll.new, floor, cap)
        next_poll_at = now + interval
        if poll.outcome == "polled":
            validators, body = poll.validators, poll.body_sha256
        else:  # not_modified / unchanged: a fresh ETag may come with a 304
            validators = poll.validators or validators
            body = poll.body_sha256 or body
        feed_url = poll.feed_url
    if deferred_until is not None:
        next_poll_at = max(next_poll_at, deferred_until)
    state = SourceState(
        feed_url=feed_url,
        etag=validators.etag if validators else None,
        last_modified=validators.last_modified if validators else None,
        body_sha256=body,
        base_interval=source.poll_interval,
        poll_interval=interval,
        next_poll_at=next_poll_at,
        last_polled_at=now,
        last_success_at=last_success,
        last_outcome=poll.outcome,
        last_items=poll.items,
        last_new=poll.new,
        consecutive_failures=failures,
        last_error=poll.error,
        deferred_until=deferred_until,
        run_key=run_key,
        polled_url=source.location,
        url_failures=url_failures,
        **{
            f"{name}_before": getattr(before, name) if before is not None else None
            for name, _ in BEFORE_COLUMNS
        },
    )
    values = {f: getattr(state, f) for f in SourceState.__dataclass_fields__}
    statement = insert(source_state).values(source_id=source_id, **values)
    excluded = statement.excluded
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[source_state.c.source_id],
            set_={**{f: excluded[f] for f in values}, "updated_at": sa.func.now()},
            where=sa.or_(*(source_state.c[f].is_distinct_from(excluded[f]) for f in values)),
        )
    )
    logger.info(
        "source %s: %s, %d of %d items new; next poll in %s",
        source.name,
        poll.outcome,
        poll.new,
        poll.items,
        next_poll_at - now,
    )
    return state


def due(
    conn: sa.Connection, configured: Sequence[Source], ids: dict[str, int], now: datetime
) -> list[Source]:
    """The sources whose next poll time has come.

    A source never polled is due, and so is one whose URL changed since its last poll
    (the backoff and Retry-After it earned were the old URL's). One whose configured
    ``poll_interval`` changed since its last poll is due once that new interval has
    passed since then. So is one last polled after the clock's time now: it was polled
    while the clock ran ahead (a bad NTP step, a VM restored), then set right, and its
    next poll, counted from then, would have waited until the clock caught up.
    """
    clock = max(now, datetime.now(UTC))
    rows = {
        row.source_id: row
        for row in conn.execute(
            sa.select(
                source_state.c.source_id,
                source_state.c.base_interval,
                source_state.c.next_poll_at,
                source_state.c.last_polled_at,
                source_state.c.deferred_until,
                source_state.c.polled_url,
            ).where(source_state.c.source_id.in_([ids[s.name] for s in configured]))
        )
    }
    chosen: list[Source] = []
    for source in configured:
        row = rows.get(ids[source.name])
        if (
            row is None
            or (row.polled_url is not None and row.polled_url != source.location)
            or row.last_polled_at > clock
        ):
            chosen.append(source)
            continue
        when = row.next_poll_at
        if row.base_interval != source.poll_interval:
            when = row.last_polled_at + source.poll_interval
            if row.deferred_until is not None:
                when = max(when, row.deferred_until)
        if when <= now:
            chosen.append(source)
    return chosen
