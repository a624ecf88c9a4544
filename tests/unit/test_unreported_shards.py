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


def test_a_shard_task_that_raised_counts_what_it_loaded_and_is_not_reported_as_died() -> None:
    """A shard that raised left its failure (and the summaries of the sources it ran):
    its loaded source counts loaded, its crashed one failed, a source it never reached
    failed with its error; only the shard that said nothing is named as died."""
    from mediamon.ingest.shard_runner import ShardIncomplete

    planned = [
        {"sources": ["steady", "broken"], "label": "a", "of": 3},
        {"sources": ["unreached"], "label": "b", "of": 3},
        {"sources": ["heavy"], "label": "c", "of": 3},
    ]
    crashed = ShardIncomplete(
        {"broken": "disk full"},
        [{"source": "steady", "poll": "ok", "new": 2}, {"source": "broken", "poll": "failed"}],
    )
    failures = [
        runs.shard_failure(["steady", "broken"], "ShardIncomplete: disk full", crashed),
        runs.shard_failure(["unreached"], "database unavailable", ConnectionError("down")),
        None,  # the killed shard left nothing
    ]
    outcomes = runs.shard_outcomes(planned, [None, None, None], failures)
    assert outcomes.died == [("c", ["heavy"])]
    assert outcomes.failed_in_task == {"unreached": "database unavailable"}
    assert outcomes.in_failed_tasks == {"steady", "broken", "unreached"}
    run = runs.summarize([*outcomes.summaries, *runs.died_summaries(outcomes.died)])
    assert (run.sources, run.counts["new"]) == (4, 2)
    assert sorted(run.failed_sources) == ["broken", "heavy", "unreached"]
