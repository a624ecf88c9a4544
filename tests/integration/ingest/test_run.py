"""The ingest path end to end without Airflow: the demo site and broken sources served on
127.0.0.1, a real PostgreSQL, twice, to prove nothing is loaded twice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from mediamon import service
from mediamon.devtools.sitehost import serve_folder
from mediamon.settings import DEMO_DIR, Settings

NOW = datetime(2024, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture()
def broken_site(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "malformed.xml").write_text("<rss><channel><title>cut off", "utf-8")
    (folder / "empty.xml").write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>none</title></channel></rss>",
        "utf-8",
    )
    with serve_folder(folder) as base:
        yield base


@pytest.fixture()
def settings(
    tmp_path: Path, database_url: str, broken_site: str, httpserver: HTTPServer
) -> Iterator[Settings]:
    httpserver.expect_request("/feed.xml").respond_with_data("down", status=500)
    with serve_folder(DEMO_DIR / "site") as base:
        path = tmp_path / "sources.yaml"
        path.write_text(
            "sources:\n"
            f"  - {{name: demo-news, url: '{base}/feed.xml', language: zh,"
            " allow_private_network: true}\n"
            f"  - {{name: server-error, url: '{httpserver.url_for('/feed.xml')}'}}\n"
            f"  - {{name: malformed, url: '{broken_site}/malformed.xml'}}\n"
            f"  - {{name: empty, url: '{broken_site}/empty.xml'}}\n"
            "  - {name: no-dns, url: 'http://mediamon-test.invalid/feed.xml'}\n"
            f"  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n",
            "utf-8",
        )
        yield Settings(
            database_url=database_url, sources_path=path, var_dir=tmp_path, http_backoff_s=0.01
        )


def snapshot(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from articles order by article_id")).all()


def articles_by_path(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from articles")).mappings().all()
    return {row["canonical_url"].split("/", 3)[-1]: row for row in rows}


def test_ingest_loads_demo_site_and_records_broken_sources(
    engine: sa.Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    names = service.plan_sources(settings, NOW)
    assert len(names) == 6
    with caplog.at_level(logging.INFO, logger="mediamon.ingest.run"):
        summaries = service.ingest(settings, names, "test:1", NOW, workers=2)
    # The task log says why a source failed at the start of its line (before: the line was
    # the summary's dict, the reason at its end, off the UI's log viewer).
    # The task log says why a source failed at the start of its line (before: the line was
    # the summary's dict, the reason at its end, off the UI's log viewer, which does not wrap).
    failed = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    reasons = {
        "empty": ".xml: feed has no items",
        "malformed": ".xml: malformed feed: ",
        "no-dns": "http://mediamon-test.invalid/feed.xml: DNS lookup failed: ",
        "server-error": "/feed.xml: HTTP 500 INTERNAL SERVER ERROR",
    }
    assert len(failed) == len(reasons), failed
    for line, (name, reason) in zip(failed, sorted(reasons.items()), strict=True):
        assert line.startswith(f"source {name} failed: http") and reason in line.split("; {")[0]
    by_source = {s["source"]: s for s in summaries}
    assert by_source["demo-news"]["new"] == 6
    assert by_source["demo-news"]["duplicates"] == 1
    assert by_source["archive"]["new"] == 1
    polls = {name: summary["poll"] for name, summary in by_source.items()}
    assert polls == {
        "demo-news": "polled",
        "archive": "polled",
        "server-error": "failed",
        "malformed": "failed",
        "empty": "failed",
        "no-dns": "failed",
    }

    articles = articles_by_path(engine)
    original = articles["news/2024/04/taiwan-strait.html"]
    copy = articles["wire/2024/04/0402-taiwan-strait-copy.html"]  # tracking params gone
    assert copy["duplicate_of"] == original["article_id"]
    assert copy["url"].endswith("?utm_source=rss&utm_medium=feed#top")
    assert original["duplicate_of"] is None

    gbk = articles["news/2024/04/chip-export.html"]
    assert "出口管制" in gbk["body_text"] and "\ufffd" not in gbk["body_text"]
    assert gbk["content_origin"] == "page"
    assert gbk["published_at"] == datetime(2024, 4, 5, 2, 15, tzinfo=UTC)  # +0800 in the feed

    traditional = articles["news/2024/04/hk-tw-trade.html"]
    assert "臺灣" in traditional["body_text"] and "台湾" in traditional["match_text"]

    missing = articles["news/2024/04/ai-summit.html"]
    assert missing["content_origin"] == "feed_summary"
    assert missing["body_text"]

    for article in articles.values():
        assert "分享到" not in article["body_text"], "share links must not reach the body"
        assert article["language"] == "zh"

    with engine.connect() as conn:
        errors = dict(
            conn.execute(
                sa.text("select source, error from bi.fetch_log where kind = 'feed' and not ok")
            ).all()
        )
        page_404 = conn.execute(
            sa.text("select status, error from fetch_log where url like '%ai-summit%'")
        ).one()
    assert errors["server-error"] == "HTTP 500 INTERNAL SERVER ERROR"
    assert errors["malformed"].startswith("malformed feed")
    assert errors["empty"] == "feed has no items"
    assert errors["no-dns"].startswith("DNS lookup failed")
    assert "demo-news" not in errors
    assert page_404.status == 404 and "used feed_summary" in page_404.error


def test_second_run_of_the_same_interval_changes_nothing(
    engine: sa.Engine, settings: Settings
) -> None:
    names = service.plan_sources(settings, NOW)
    service.ingest(settings, names, "test:1", NOW, workers=1)
    before = snapshot(engine)
    with engine.connect() as conn:
        log_rows = conn.execute(sa.text("select count(*) from fetch_log")).scalar_one()

    again = service.ingest(settings, names, "test:1", NOW, workers=1)
    refetched = service.ingest(
        settings, ["demo-news"], "test:1", NOW, refetch_known=True, workers=1
    )

    assert snapshot(engine) == before
    assert {s["source"]: s["new"] for s in again}["demo-news"] == 0
    assert {s["source"]: s["already_known"] for s in again}["demo-news"] == 6
    assert refetched[0]["unchanged"] == 6 and refetched[0]["updated"] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from fetch_log")).scalar_one() == log_rows


def test_poll_interval_decides_what_is_due(engine: sa.Engine, settings: Settings) -> None:
    service.ingest(settings, ["demo-news"], "test:1", NOW, workers=1)
    due = service.plan_sources(settings, NOW)
    assert "demo-news" not in due and "archive" in due
    assert "demo-news" in service.plan_sources(settings, NOW.replace(hour=13))
    assert service.plan_sources(settings, NOW, only=["demo-news"], force=True) == ["demo-news"]
    with pytest.raises(ValueError, match="unknown source"):
        service.plan_sources(settings, NOW, only=["nope"])
