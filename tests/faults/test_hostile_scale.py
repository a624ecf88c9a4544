"""Hostile sources at scale (the held-out scale scenario): slow hosts in a shard, replayed
against a server on 127.0.0.1 and a real PostgreSQL, naming the docs/faults.md row each
proves.

1. slow sources queued behind slow sources  -> test_slow_sources_never_hold_a_shard_past_*
2. pages waiting for their host past budget -> test_a_page_waiting_for_its_host_starts_*
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from mediamon import settings
from mediamon.ingest import load, plan, shard_runner
from mediamon.ingest.session import make_session
from mediamon.ingest.shard_runner import ShardOptions, ingest_sources
from tests.support.fault_server import FaultServer, respond, silent
from tests.support.faults import NOW, RSS, USER_AGENT, feed_source, item, rss, run_ingest

# ------------------------------------------- 1. slow sources queued behind slow sources


def test_slow_sources_never_hold_a_shard_past_its_time_budget(
    engine: sa.Engine, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source's time budget counted from its own start, and nothing bounded the shard:
    sources queued behind slow ones (hosts that accept and never answer, each holding a
    thread to its download deadline) started with a fresh budget each, so a shard of 33
    slow sources on its 16 threads ran past the 15-minute cycle (the next one skipped)
    and into the task's timeout. Now a shard starts no source past its own budget: the
    sources left are not polled, their state untouched, and due again next cycle; the
    slow ones that ran back off."""
    monkeypatch.setattr(shard_runner, "SHARD_TIME_BUDGET_S", 1.5)
    server.route("/slow.xml", silent(limit_s=5.0))
    server.route("/p", respond("<html><body><p>正文</p></body></html>"))
    server.route("/fast.xml", respond(rss([item(server.url("/p"))]), content_type=RSS))
    slow_limits = {"read_timeout": timedelta(seconds=1), "download_deadline": timedelta(seconds=1)}
    sources = [
        *(feed_source(f"slow-{n}", server.url(f"/slow.xml?{n}"), **slow_limits) for n in range(4)),
        feed_source("late", server.url("/fast.xml")),  # healthy, queued behind the slow ones
    ]
    with engine.begin() as conn:
        ids = load.sync_sources(conn, sources)
    with make_session(USER_AGENT, retries=0, backoff_s=0.01) as session:
        summaries = ingest_sources(
            engine, sources, ids, session, "scale:1", NOW, ShardOptions(workers=0, source_threads=1)
        )
    by_name = {summary["source"]: summary for summary in summaries}
    assert by_name["slow-0"]["poll"] == "failed"  # the first always starts
    assert by_name["late"]["poll"] == "not_started"
    assert "shard's time budget of 1.5 s" in str(by_name["late"]["errors"])
    assert server.hits("/fast.xml") == 0 and server.hits("/slow.xml?3") == 0
    with engine.connect() as conn:
        polled = set(
            conn.execute(
                sa.text("select s.name from source_state join sources s using (source_id)")
            ).scalars()
        )
    assert "late" not in polled and "slow-0" in polled
    # The next cycle polls what was not started, and leaves the slow host that ran alone.
    due = {s.name for s in plan.plan_sources(engine, sources, NOW + timedelta(minutes=15))}
    assert "late" in due and "slow-3" in due and "slow-0" not in due


def test_the_shard_budget_follows_the_setting_for_a_shorter_schedule(
    engine: sa.Engine, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard's budget was a constant 600 s: with a 5-minute schedule every cycle's
    slow shards ran past the next two runs (skipped by max_active_runs=1). The DAG's
    shard options now take MEDIAMON_SHARD_TIME_BUDGET_S: a shard given a smaller budget
    starts no source past it. (The floor is lowered here so the test takes seconds; its
    clamp is tests/unit/test_settings.py's.)"""
    from mediamon_airflow import shard_options

    monkeypatch.setattr(settings, "MIN_SHARD_TIME_BUDGET_S", 0.5, raising=False)
    monkeypatch.setenv("MEDIAMON_SHARD_TIME_BUDGET_S", "1.5")
    options = replace(shard_options(1, refetch=False), workers=0, source_threads=1)
    server.route("/slow.xml", silent(limit_s=5.0))
    server.route("/fast.xml", respond(rss([]), content_type=RSS))
    slow_limits = {"read_timeout": timedelta(seconds=1), "download_deadline": timedelta(seconds=1)}
    sources = [
        *(feed_source(f"slow-{n}", server.url(f"/slow.xml?{n}"), **slow_limits) for n in range(3)),
        feed_source("late", server.url("/fast.xml")),
    ]
    with engine.begin() as conn:
        ids = load.sync_sources(conn, sources)
    with make_session(USER_AGENT, retries=0, backoff_s=0.01) as session:
        summaries = ingest_sources(engine, sources, ids, session, "scale:1", NOW, options)
    by_name = {summary["source"]: summary for summary in summaries}
    assert options.time_budget_s == 1.5
    assert by_name["slow-0"]["poll"] == "failed" and by_name["late"]["poll"] == "not_started"
    assert "shard's time budget of 1.5 s" in str(by_name["late"]["errors"])
    assert server.hits("/fast.xml") == 0


# ------------------------------------------- 2. pages waiting for their host past the budget


def test_a_page_waiting_for_its_host_starts_no_download_past_the_budget(
    engine: sa.Engine, server: FaultServer
) -> None:
    """A source's pages were checked against its time budget before they waited for their
    host's connection: four page threads, two connections per host, so with pages that
    hang to the download deadline, two more downloads started after the budget ran out,
    each for a whole deadline (2 × 60 s past a shard's budget in bench.hostile_scale).
    Now a page whose turn comes after the budget is not started and waits for the next
    poll, as the pages after it do."""
    links = [server.url(f"/slow/{n}") for n in range(4)]
    for link in links:
        server.route(link.removeprefix(server.url("")), silent(limit_s=5.0))
    server.route("/feed.xml", respond(rss([item(link) for link in links]), content_type=RSS))
    source = feed_source(
        "hanging-pages",
        server.url("/feed.xml"),
        host_max_connections=1,
        time_budget=timedelta(seconds=1),
        read_timeout=timedelta(seconds=2),
        download_deadline=timedelta(seconds=2),
        respect_robots_txt=False,
    )
    stats = run_ingest(engine, [source], NOW)["hanging-pages"]
    started = sum(server.hits(link.removeprefix(server.url(""))) for link in links)
    assert started == 1
    assert stats.left_for_next_poll == 3


def test_sources_a_budget_left_out_start_first_next_cycle(
    engine: sa.Engine, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources a shard's budget left unstarted kept their place in the shard, last,
    behind the same slow sources, which stay due when only their pages are slow: left out
    again next cycle, and the one after. Now a shard starts the sources that have waited
    longest first: what was left out one cycle is polled the next."""
    monkeypatch.setattr(shard_runner, "SHARD_TIME_BUDGET_S", 1.0)
    server.route("/slow.xml", silent(limit_s=5.0))
    server.route("/p", silent(limit_s=5.0))  # late's page: it runs past the budget too
    server.route("/fast.xml", respond(rss([item(server.url("/p"))]), content_type=RSS))
    slow_limits = {"read_timeout": timedelta(seconds=2), "download_deadline": timedelta(seconds=2)}
    sources = [
        feed_source("slow", server.url("/slow.xml"), **slow_limits),
        feed_source("late", server.url("/fast.xml"), respect_robots_txt=False, **slow_limits),
    ]
    with engine.begin() as conn:
        ids = load.sync_sources(conn, sources)
    with engine.begin() as conn:  # slow was polled before and is due again now
        conn.execute(
            sa.text(
                "insert into source_state (source_id, base_interval, poll_interval,"
                " next_poll_at, last_polled_at, last_outcome, run_key) values"
                " (:id, interval '15 minutes', interval '15 minutes', :due, :polled,"
                " 'polled', 'scale:0')"
            ),
            {"id": ids["slow"], "due": NOW - timedelta(minutes=1), "polled": NOW},
        )
    with make_session(USER_AGENT, retries=0, backoff_s=0.01) as session:
        summaries = ingest_sources(
            engine, sources, ids, session, "scale:1", NOW, ShardOptions(workers=0, source_threads=1)
        )
    by_name = {summary["source"]: summary for summary in summaries}
    assert [summary["source"] for summary in summaries] == ["slow", "late"]  # as given
    assert by_name["late"]["poll"] == "polled"  # never polled: it starts first
    assert by_name["slow"]["poll"] == "not_started"
    assert server.hits("/fast.xml") == 1 and server.hits("/slow.xml") == 0
