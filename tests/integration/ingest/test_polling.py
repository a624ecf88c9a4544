"""Conditional GET, unchanged-body detection and adaptive polling, on a real server and a
real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mediamon.ingest import polling
from mediamon.ingest.polling import failure_delay, next_interval
from tests.support.fault_server import FaultServer, conditional, fault_server, respond
from tests.support.faults import feed_source, item, page, rss, run_ingest, state

NOW = datetime(2024, 4, 20, 12, 0, tzinfo=UTC)
RSS = "application/rss+xml; charset=utf-8"
M = timedelta(minutes=1)


@pytest.fixture()
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


def feed_of(server: FaultServer, count: int, start: int = 0) -> bytes:
    for n in range(start, start + count):
        server.route(f"/a/{n}", respond(page(f"第{n}篇")))
    return rss([item(server.url(f"/a/{n}"), title=f"第{n}篇") for n in range(start, start + count)])


@pytest.mark.parametrize(
    ("items", "new", "expected"),
    [
        (10, 10, 7.5),  # most new: halve
        (10, 6, 7.5),
        (10, 5, 15),  # between the thresholds: keep
        (10, 2, 15),
        (10, 1, 22.5),  # few new: half as long again
        (0, 0, 22.5),  # unchanged feed
        (10, 0, 22.5),
    ],
)
def test_next_interval(items: int, new: int, expected: float) -> None:
    assert next_interval(15 * M, items, new, 4 * M, 120 * M) == expected * M


def test_interval_stays_within_floor_and_cap() -> None:
    assert next_interval(5 * M, 10, 10, 4 * M, 120 * M) == 4 * M
    assert next_interval(100 * M, 10, 0, 4 * M, 120 * M) == 120 * M
    assert [failure_delay(15 * M, n, 120 * M) for n in (1, 2, 3, 4, 10, 100)] == [
        30 * M, 60 * M, 120 * M, 120 * M, 120 * M, 120 * M,
    ]  # fmt: skip


def test_conditional_get_and_unchanged_feeds(engine: sa.Engine, server: FaultServer) -> None:
    body = feed_of(server, 3)
    server.route("/etag.xml", conditional(body, '"v1"', RSS))
    server.route("/plain.xml", respond(body, content_type=RSS))
    with_etag = feed_source("etag", server.url("/etag.xml"))
    without = feed_source("plain", server.url("/plain.xml"))
    ignoring = feed_source("ignoring", server.url("/etag.xml"), ignore_validators=True)
    first = run_ingest(engine, [with_etag, without, ignoring], NOW, "poll:1")
    assert first["etag"].new == 3 and first["plain"].already_known == 3
    assert {stats.poll for stats in first.values()} == {"polled"}
    assert state(engine, "etag")["etag"] == '"v1"'
    assert state(engine, "ignoring")["etag"] is None

    later = NOW + timedelta(hours=1)
    second = run_ingest(engine, [with_etag, without, ignoring], later, "poll:2")
    assert [
        server.requests[-3][2].get("if-none-match"),
        server.requests[-1][2].get("if-none-match"),
    ] == ['"v1"', None]
    assert state(engine, "etag")["last_outcome"] == "not_modified"
    assert state(engine, "plain")["last_outcome"] == "unchanged"  # same bytes, no validators
    assert state(engine, "ignoring")["last_outcome"] == "unchanged"
    for stats in second.values():
        assert stats.items == 0 and stats.already_known == 0  # nothing was parsed
    assert [second[name].poll for name in ("etag", "plain", "ignoring")] == [
        "not_modified",
        "unchanged",
        "unchanged",
    ]
    assert all(server.hits(f"/a/{n}") == 1 for n in range(3))
    with engine.connect() as conn:
        statuses = conn.execute(
            sa.text("select source, status from bi.fetch_log where run_key = 'poll:2'")
        ).all()
    assert sorted(statuses) == [("etag", 304), ("ignoring", 200), ("plain", 200)]


def test_a_changed_feed_is_read_again(engine: sa.Engine, server: FaultServer) -> None:
    server.route("/feed.xml", respond(feed_of(server, 2), content_type=RSS))
    source = feed_source("changing", server.url("/feed.xml"))
    run_ingest(engine, [source], NOW, "poll:1")
    server.route("/feed.xml", respond(feed_of(server, 3), content_type=RSS))
    stats = run_ingest(engine, [source], NOW + timedelta(hours=1), "poll:2")["changing"]
    assert stats.new == 1 and stats.already_known == 2
    row = state(engine, "changing")
    assert row["last_outcome"] == "polled" and (row["last_items"], row["last_new"]) == (3, 1)


def test_adaptive_interval_follows_the_share_of_new_items(
    engine: sa.Engine, server: FaultServer
) -> None:
    source = feed_source("adaptive", server.url("/feed.xml"), poll_interval=15 * M)
    server.route("/feed.xml", respond(feed_of(server, 8), content_type=RSS))
    run_ingest(engine, [source], NOW, "a:1")
    first = state(engine, "adaptive")
    assert first["poll_interval"] == 7.5 * M  # all new
    assert first["next_poll_at"] == NOW + 7.5 * M

    server.route("/feed.xml", respond(feed_of(server, 9), content_type=RSS))
    run_ingest(engine, [source], NOW + 10 * M, "a:2")
    assert state(engine, "adaptive")["poll_interval"] == 11.25 * M  # 1 of 9 new

    for n, run in enumerate(("a:3", "a:4", "a:5", "a:6", "a:7", "a:8", "a:9")):
        run_ingest(engine, [source], NOW + (n + 1) * 3 * 60 * M, run)  # unchanged feed
    assert state(engine, "adaptive")["poll_interval"] == 120 * M  # the cap (8 × 15 min)


def test_failing_source_backs_off_and_is_never_dropped(
    engine: sa.Engine, server: FaultServer
) -> None:
    server.route("/feed.xml", respond("down", "500 Internal Server Error"))
    source = feed_source("failing", server.url("/feed.xml"), poll_interval=15 * M)
    when = NOW
    delays = []
    for n in range(6):
        run_ingest(engine, [source], when, f"f:{n}", retries=0)
        row = state(engine, "failing")
        delays.append(row["next_poll_at"] - when)
        with engine.connect() as conn:
            ids = dict(conn.execute(sa.text("select name, source_id from sources")).all())
            assert polling.due(conn, [source], ids, row["next_poll_at"]) == [source]
            assert polling.due(conn, [source], ids, row["next_poll_at"] - M) == []
        when = row["next_poll_at"]
    assert delays == [30 * M, 60 * M, 120 * M, 120 * M, 120 * M, 120 * M]
    assert row["consecutive_failures"] == 6 and row["last_outcome"] == "failed"
    assert row["last_error"] == "HTTP 500 Internal Server Error"

    server.route("/feed.xml", respond(feed_of(server, 2), content_type=RSS))
    run_ingest(engine, [source], when, "f:ok")
    row = state(engine, "failing")
    assert row["consecutive_failures"] == 0 and row["last_outcome"] == "polled"
    assert row["last_success_at"] == when


def test_a_retried_run_leaves_the_state_as_the_first_attempt(
    engine: sa.Engine, server: FaultServer
) -> None:
    server.route("/feed.xml", conditional(feed_of(server, 3), '"v1"', RSS))
    source = feed_source("retried", server.url("/feed.xml"))
    run_ingest(engine, [source], NOW, "r:1")
    run_ingest(engine, [source], NOW + timedelta(hours=1), "r:2")  # 304
    with engine.connect() as conn:
        before = conn.execute(sa.text("select * from source_state")).mappings().one()
    run_ingest(engine, [source], NOW + timedelta(hours=1), "r:2")  # the retry
    with engine.connect() as conn:
        after = conn.execute(sa.text("select * from source_state")).mappings().one()
    assert after == before  # updated_at included: the row was not touched
    # The retry sent the validators the first attempt sent (those of r:1).
    assert [h.get("if-none-match") for _, p, h in server.requests if p == "/feed.xml"] == [
        None, '"v1"', '"v1"',
    ]  # fmt: skip


def test_due_sources_follow_the_state(engine: sa.Engine, server: FaultServer) -> None:
    server.route("/feed.xml", respond(feed_of(server, 2), content_type=RSS))
    source = feed_source("due", server.url("/feed.xml"), poll_interval=20 * M)
    fresh = feed_source("never-polled", server.url("/feed.xml"))
    run_ingest(engine, [source], NOW, "d:1")
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.text("select name, source_id from sources")).all())
        ids["never-polled"] = conn.execute(
            sa.text(
                "insert into sources (name, kind, location, poll_interval)"
                " values ('never-polled', 'feed', 'x', '15 minutes') returning source_id"
            )
        ).scalar_one()
        assert polling.due(conn, [source, fresh], ids, NOW + 9 * M) == [fresh]
        assert polling.due(conn, [source, fresh], ids, NOW + 10 * M) == [source, fresh]
        # The operator changed the configured interval: it applies from the last poll.
        longer = replace(source, poll_interval=60 * M)
        assert polling.due(conn, [longer], ids, NOW + 30 * M) == []
        assert polling.due(conn, [longer], ids, NOW + 60 * M) == [longer]


def test_a_source_polled_while_the_clock_ran_ahead_is_due_once_it_is_set_right(
    engine: sa.Engine, server: FaultServer
) -> None:
    """Before: a poll while the clock was a year ahead (a bad NTP step, a VM restored)
    set the next poll a year on, and once the clock was set right the source was not due
    in any run (a manually triggered one included) until the clock caught up."""
    server.route("/feed.xml", respond(feed_of(server, 2), content_type=RSS))
    source = feed_source("ahead", server.url("/feed.xml"))
    now = datetime.now(UTC)
    run_ingest(engine, [source], now + timedelta(days=365), "a:1")
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.text("select name, source_id from sources")).all())
        assert polling.due(conn, [source], ids, now) == [source]
    run_ingest(engine, [source], now, "a:2")  # polled at the true time: due as usual again
    with engine.begin() as conn:
        assert polling.due(conn, [source], ids, now + 10 * M) == []
        assert polling.due(conn, [source], ids, now + 15 * M) == [source]


def test_source_health_shows_the_polling_state(engine: sa.Engine, server: FaultServer) -> None:
    server.route("/feed.xml", respond(feed_of(server, 2), content_type=RSS))
    run_ingest(engine, [feed_source("healthy", server.url("/feed.xml"))], NOW, "h:1")
    with engine.connect() as conn:
        result = conn.execute(sa.text("select * from bi.source_health"))
        columns = list(result.keys())
        row = result.mappings().one()
    assert columns[:8] == [
        "source",
        "kind",
        "last_fetch",
        "last_success",
        "fetches_24h",
        "errors_24h",
        "error_rate_24h",
        "articles_24h",
    ]  # fmt: skip  - 0004's columns, in order
    assert row["poll_interval"] == 7.5 * M and row["next_poll_at"] == NOW + 7.5 * M
    assert row["last_poll_outcome"] == "polled" and row["last_poll_new_items"] == 2
    assert row["consecutive_failures"] == 0 and row["deferred_until"] is None


def test_not_modified_without_validators_is_an_error(
    engine: sa.Engine, server: FaultServer
) -> None:
    server.route("/feed.xml", respond(b"", "304 Not Modified"))
    stats = run_ingest(engine, [feed_source("bogus", server.url("/feed.xml"))], NOW)["bogus"]
    assert stats.errors == [
        f"{server.url('/feed.xml')}: HTTP 304 Not Modified to a request without validators"
    ]
    assert state(engine, "bogus")["last_outcome"] == "failed"


def test_a_source_whose_url_was_fixed_is_polled_afresh_at_the_next_run(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A source failing at its old URL backs off to its cap (8x poll_interval). Fixed in
    sources.yaml (same name, new URL), it waited out that backoff, and a new URL that
    failed once more went on from the old streak's backoff: ops fixed a URL and the
    source stayed "failing" for hours. Now the state belongs to the URL it was computed
    for: due at the next run, interval and backoff from the start, no validators of the
    old URL sent; the failure streak closes once the new URL polls fine."""
    server.route("/old.xml", conditional(feed_of(server, 2), '"old"', RSS))
    old = feed_source("moved", server.url("/old.xml"), poll_interval=15 * M)
    run_ingest(engine, [old], NOW, "m:0")
    server.route("/old.xml", respond("gone", "404 Not Found"))
    when = NOW + 15 * M
    for n in range(4):
        run_ingest(engine, [old], when, f"m:f{n}", retries=0)
        when = state(engine, "moved")["next_poll_at"]
    row = state(engine, "moved")
    assert (
        row["consecutive_failures"] == 4 and row["next_poll_at"] - row["last_polled_at"] == 120 * M
    )
    fixed = replace(old, location=server.url("/new.xml"))
    server.route("/new.xml", respond("still down", "503 Service Unavailable"))
    next_run = row["last_polled_at"] + 15 * M  # the next DAG run after the fix
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("select name, source_id from sources")).all())
        assert polling.due(conn, [old], ids, next_run) == []
        assert polling.due(conn, [fixed], ids, next_run) == [fixed]
    run_ingest(engine, [fixed], next_run, "m:new-fails", retries=0)
    row = state(engine, "moved")
    assert row["consecutive_failures"] == 5  # the streak goes on: the source still fails
    assert row["next_poll_at"] - next_run == 30 * M  # a first failure's backoff at this URL
    server.route("/new.xml", conditional(feed_of(server, 2, start=10), '"new"', RSS))
    run_ingest(engine, [fixed], row["next_poll_at"], "m:new-ok")
    row = state(engine, "moved")
    assert row["consecutive_failures"] == 0 and row["last_outcome"] == "polled"
    assert row["poll_interval"] <= 15 * M and row["etag"] == '"new"'
    requests_to = [(p, h.get("if-none-match")) for _, p, h in server.requests if "xml" in p]
    assert requests_to[0] == ("/old.xml", None) and requests_to[1] == ("/old.xml", '"old"')
    assert [h for p, h in requests_to if p == "/new.xml"] == [None, None]
