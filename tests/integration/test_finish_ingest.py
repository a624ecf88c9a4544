"""The verdict ``summarize`` gives an ingest run, with its ``ingest_runs`` row: a shard
task that raised has mailed its own failure, so the verdict does not fail (and mail) for
it again; a shard that said nothing (killed) and every source failing in green shards
still fail it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import sqlalchemy as sa

from mediamon.ops import runs
from mediamon.ops.service import finish_ingest
from mediamon.settings import Settings

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PLANNED = [{"sources": ["rfi"], "label": "rfi", "of": 1}]


def test_a_run_whose_only_shard_raised_is_not_failed_again_by_summarize(
    database_url: str, engine: sa.Engine
) -> None:
    settings = replace(Settings.from_env(), database_url=database_url)
    down = runs.shard_failure(["rfi"], "database unavailable: refused", ConnectionError("x"))
    said = finish_ingest(settings, "k:said", NOW, [None], PLANNED, [down])
    killed = finish_ingest(settings, "k:killed", NOW, [None], PLANNED, [None])
    polled = [[{"source": "rfi", "poll": "failed", "errors": ["connection failed"]}]]
    unreachable = finish_ingest(settings, "k:unreachable", NOW, polled, PLANNED, [None])
    # Before: "1 source(s) not ingested, its ingest task ended without reporting": a
    # second mail beside the shard's own.
    assert said.failure is None and said.summary["sources_failed"] == 1, said
    assert killed.failure is not None and killed.failure.startswith("1 source(s) not ingested")
    assert unreachable.failure == "all 1 due source(s) failed: rfi"
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("select run_key, sources_failed from ingest_runs")).all())
    assert rows == {"k:said": 1, "k:killed": 1, "k:unreachable": 1}
