"""Ingesting a shard: sources read back from the table, one HTTP session, one extraction
pool started only for new articles, robots.txt cached in the database across tasks, and
one crashing source never stopping the others."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from mediamon import service
from mediamon.ingest import load
from mediamon.ingest.shard_runner import ShardIncomplete, ShardOptions
from mediamon.ingest.source_store import stored_sources
from mediamon.ingest.sources import load_sources
from mediamon.settings import Settings

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def feeds_on(httpserver: HTTPServer, names: list[str], items: int) -> str:
    """A sources file body: one feed per name on the test server, with pages."""
    for name in names:
        body = "".join(
            f"<item><title>{name} {i}</title><link>{httpserver.url_for(f'/{name}/{i}.html')}"
            f"</link><description>summary {name} {i}</description></item>"
            for i in range(items)
        )
        httpserver.expect_request(f"/{name}.xml").respond_with_data(
            f"<rss version='2.0'><channel><title>{name}</title>{body}</channel></rss>",
            content_type="application/rss+xml",
        )
        for i in range(items):
            text = f"<p>{name} story {i}: " + "今天的新闻内容很长。" * 20 + "</p>"
            httpserver.expect_request(f"/{name}/{i}.html").respond_with_data(
                f"<html><body><article><h1>{name} {i}</h1>{text}</article></body></html>",
                content_type="text/html",
            )
    return "sources:\n" + "".join(
        f"  - {{name: {n}, url: '{httpserver.url_for(f'/{n}.xml')}', language: zh,"
        " allow_private_network: true}\n"
        for n in names
    )


@pytest.fixture()
def settings(database_url: str, tmp_path: Path) -> Settings:
    return replace(
        Settings.from_env(),
        database_url=database_url,
        sources_path=tmp_path / "sources.yaml",
        var_dir=tmp_path,
        http_retries=0,
    )


def test_sources_read_back_from_the_table_equal_the_files(
    engine: sa.Engine, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: a, url: 'https://a.example/feed.xml', language: ZH, poll_interval: 30m,"
        " drop_query_params: [ref], fetch_pages: false, host_min_interval: 2s,"
        " host_max_connections: 1, respect_robots_txt: false, max_items: 40,"
        " read_timeout: 9s}\n"
        "  - {name: b, kind: archive, path: folder}\n",
        "utf-8",
    )
    configured = load_sources(path)
    with engine.begin() as conn:
        ids = load.sync_sources(conn, configured)
        stored, stored_ids = stored_sources(conn, ["b", "a"])
        with pytest.raises(ValueError, match="not in the sources table: nope"):
            stored_sources(conn, ["a", "nope"])
    assert stored == [configured[1], configured[0]]
    assert stored_ids == {"a": ids["a"], "b": ids["b"]}


def test_one_crashing_source_never_stops_its_shard(
    engine: sa.Engine, settings: Settings, httpserver: HTTPServer
) -> None:
    names = ["first", "broken", "last"]
    settings.sources_path.write_text(feeds_on(httpserver, names, 2), "utf-8")
    shard = service.plan_shards(settings, NOW, shards=4)
    assert [s.sources for s in shard] == [tuple(names)]  # one host: one shard
    with engine.begin() as conn:  # a real database error, for one source only
        broken_id = conn.execute(sa.text("select source_id from sources where name = 'broken'"))
        conn.execute(
            sa.text(
                "create function refuse_broken() returns trigger language plpgsql as $$"
                f" begin if new.source_id = {broken_id.scalar_one()} then"
                " raise exception 'disk full'; end if; return new; end $$;"
                " create trigger refuse_broken before insert on fetch_log for each row"
                " execute function refuse_broken()"
            )
        )
    try:
        with pytest.raises(ShardIncomplete, match=r"1 source\(s\) crashed \(broken\).*disk full"):
            service.ingest_shard(settings, names, "run-1", NOW, ShardOptions(workers=1))
        with engine.connect() as conn:
            loaded = dict(
                conn.execute(sa.text("select source, count(*) from bi.articles group by 1")).all()
            )
            polled = conn.execute(
                sa.text("select s.name from source_state join sources s using (source_id)")
            ).scalars()
            assert loaded == {"first": 2, "last": 2} and sorted(polled) == ["first", "last"]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("drop trigger refuse_broken on fetch_log"))
            conn.execute(sa.text("drop function refuse_broken"))


def test_pool_starts_only_for_new_articles_and_robots_txt_is_read_once_across_tasks(
    engine: sa.Engine,
    settings: Settings,
    httpserver: HTTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /x/\n")
    settings.sources_path.write_text(feeds_on(httpserver, ["news", "more"], 3), "utf-8")
    caplog.set_level(logging.INFO, logger="mediamon.ingest.shard_runner")
    caplog.set_level(logging.INFO, logger="mediamon.ingest.pool")  # alone, it was WARNING
    (shard,) = service.plan_shards(settings, NOW, shards=2)
    options = ShardOptions(workers=2)
    first = service.ingest_shard(settings, shard.sources, "run-1", NOW, options)
    assert [(s["source"], s["new"]) for s in first] == [("news", 3), ("more", 3)]
    assert "extraction pool of 2 processes started" in caplog.text
    assert "shard of 2 sources done; extraction pool used" in caplog.text
    caplog.clear()
    later = NOW + timedelta(hours=1)
    (shard,) = service.plan_shards(settings, later, shards=2)
    again = service.ingest_shard(settings, shard.sources, "run-2", later, options)
    assert [s["poll"] for s in again] == ["unchanged", "unchanged"]
    assert "extraction pool never started" in caplog.text
    assert "processes started" not in caplog.text
    paths = [request.path for request, _ in httpserver.log]
    assert paths.count("/robots.txt") == 1  # the second task found it in the database
    with engine.begin() as conn:  # once expired it is read again
        row = conn.execute(sa.text("select body, status from robots_txt")).one()
        assert row == ("User-agent: *\nDisallow: /x/\n", 200)
        conn.execute(sa.text("update robots_txt set expires_at = now() - interval '1 s'"))
    service.ingest_shard(
        settings, ["news"], "run-3", later, replace(options, refetch_known=True, workers=1)
    )
    assert [r.path for r, _ in httpserver.log].count("/robots.txt") == 2
