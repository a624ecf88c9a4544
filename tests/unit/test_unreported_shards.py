"""The sources of a shard whose task ended without a summary (killed out of memory) are
named and counted failed, never dropped from the run's counts."""

from __future__ import annotations

from mediamon.ops import runs


def test_a_shard_without_summaries_is_named_and_its_sources_counted_failed() -> None:
    planned = [
        {"sources": ["rfi", "bbc"], "label": "rfi, bbc", "of": 2},
        {"sources": ["heavy"], "label": "heavy", "of": 2},
    ]
    summaries = [[{"source": "rfi", "poll": "ok"}, {"source": "bbc", "poll": "ok"}]]
    lost = runs.unreported(planned, summaries)
    assert lost == [("heavy", ["heavy"])]
    run = runs.summarize([*summaries, *runs.died_summaries(lost)])
    assert (run.sources, run.sources_failed, run.failed_sources) == (3, 1, ["heavy"])
    reason = runs.died_reason(lost)
    assert reason is not None and reason.startswith("1 source(s) not ingested, its ingest task")
    assert reason.endswith(": heavy (task ingest_shard 'heavy')"), reason


def test_nothing_is_unreported_when_planning_failed_or_every_shard_reported() -> None:
    assert runs.unreported(None, []) == []  # plan_sources failed: its own mail says why
    planned = [{"sources": ["rfi"], "label": "rfi", "of": 1}]
    assert runs.unreported(planned, [[{"source": "rfi", "poll": "failed"}]]) == []
    assert runs.died_reason([]) is None
