"""How an ingest run went, decided from its per-source summaries, and its ``ingest_runs``
row (the record the watchdog reads instead of asking Airflow).

A run fails when every due source failed (nothing could be fetched: the network, DNS or
the configuration is broken), when an ingest task failed or died (its row then says how
many of the due sources it did not ingest: the Airflow run is red, so is the row) or when
a data-quality check failed. One failing source among several does not fail the run — ops
would learn to ignore red — it is counted (``sources_failed``), logged at WARNING and
followed up by the watchdog.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger(__name__)

# Poll outcomes (mediamon.polling) that mean the source could not be read this time.
FAILED_POLLS = ("failed",)
PER_SOURCE = ("items", "new", "updated", "unchanged", "failed")
CHECKS_FAILED = "data-quality check(s) failed"
COUNTED = ("items", "new", "updated", "unchanged", "already_known", "failed", "duplicates")


@dataclass
class RunSummary:
    """What an ingest run did, summed over its sources; small enough for XCom.

    ``failed`` counts articles that could not be built (as before); ``sources_failed``
    counts sources whose poll failed.
    """

    sources: int = 0
    sources_failed: int = 0
    failed_sources: list[str] = field(default_factory=list)
    per_source: list[dict[str, object]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    @property
    def all_failed(self) -> bool:
        """Every due source failed (and there was at least one)."""
        return self.sources > 0 and self.sources_failed == self.sources

    @property
    def loaded(self) -> int:
        """Articles new or changed: what downstream DAGs have to look at."""
        return self.counts["new"] + self.counts["updated"]

    def as_dict(self) -> dict[str, object]:
        return {
            "sources": self.sources,
            "sources_failed": self.sources_failed,
            "failed_sources": self.failed_sources[:50],
            **self.counts,
        }


def flatten(summaries: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Per-source summaries from however the run's tasks grouped them: one dict per
    task, a list of dicts per task (shards), or None for a task that returned nothing."""
    flat: list[Mapping[str, Any]] = []
    for item in summaries:
        if isinstance(item, Mapping):
            flat.append(item)
        elif isinstance(item, Sequence) and not isinstance(item, str):
            flat.extend(flatten(item))
    return flat


# What a source that its ingest task never reported on is recorded with.
DIED_UNREPORTED = (
    "its ingest task ended without reporting (killed: SIGKILL, most often out of memory;"
    " or failed, see its log)"
)


def unreported(planned: Any, summaries: Iterable[Any]) -> list[tuple[str, list[str]]]:
    """The shards (label, sources) whose sources have no summary: their task died without
    returning (the kernel's OOM killer sends SIGKILL; Airflow runs no failure callback then,
    and the shard's sources were missing from the run's counts). ``planned``: the planned
    shards (``Shard.as_xcom``), or anything else when planning failed (nothing then)."""
    if not isinstance(planned, Sequence) or isinstance(planned, str):
        return []
    reported = {str(summary.get("source")) for summary in flatten(summaries)}
    lost = []
    for shard in planned:
        names = shard.get("sources") if isinstance(shard, Mapping) else None
        if not isinstance(names, Sequence) or isinstance(names, str):
            continue
        missing = [str(name) for name in names if str(name) not in reported]
        if missing:
            lost.append((str(shard.get("label", "")), missing))
    return lost


def shard_failure(sources: Sequence[str], error_text: str, error: BaseException) -> dict[str, Any]:
    """What a shard task that raised leaves for ``summarize`` (an XCom): its sources, its
    error's line and the summaries of the sources it ran (a :class:`ShardIncomplete
    <mediamon.ingest.shard_runner.ShardIncomplete>` carries them: those loaded were
    counted failed, 2 of 2 for 1 crashed source). Its own failure mail tells ops."""
    summaries = getattr(error, "summaries", None)
    return {
        "sources": [str(name) for name in sources],
        "error": error_text[:500],
        "summaries": list(flatten(summaries)) if isinstance(summaries, list) else [],
    }


@dataclass
class ShardOutcomes:
    """The run's per-source summaries, each source once, and the sources not ingested:
    those of shard tasks that failed and said so (each mailed its failure), and those of
    shards that died without a word (killed: nothing mailed)."""

    summaries: list[Mapping[str, Any]]
    failed_in_task: dict[str, str]  # source -> its task's error, for those not ingested
    in_failed_tasks: set[str]  # every source of a shard task that failed and said so
    died: list[tuple[str, list[str]]]
    failed_tasks: int = 0  # shard tasks that failed and said so


def shard_outcomes(
    planned: Any, summaries: Iterable[Any], failures: Iterable[Any]
) -> ShardOutcomes:
    """Sort the run's shards: ``summaries`` are the returned ones, ``failures`` what the
    failed shard tasks left (:func:`shard_failure`; None for the others). A source of a
    failed shard without a summary is a failed poll naming the task's error."""
    reports = [f for f in failures if isinstance(f, Mapping)]
    ran = flatten(summaries) + [s for r in reports for s in flatten(r.get("summaries") or [])]
    errors: dict[str, str] = {}
    for report in reports:
        names = report.get("sources")
        for name in names if isinstance(names, list) else []:
            errors.setdefault(str(name), str(report.get("error") or "no detail"))
    lost = unreported(planned, ran)
    failed_in_task = {name: errors[name] for _, names in lost for name in names if name in errors}
    died = [(label, [n for n in names if n not in errors]) for label, names in lost]
    ran += [
        {"source": name, "poll": FAILED_POLLS[0], "errors": [f"its ingest task failed: {error}"]}
        for name, error in failed_in_task.items()
    ]
    died = [(label, names) for label, names in died if names]
    return ShardOutcomes(ran, failed_in_task, set(errors), died, len(reports))


def died_summaries(lost: Sequence[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """A failed poll for each source of ``lost`` shards: counted, never dropped."""
    return [
        {"source": name, "poll": FAILED_POLLS[0], "errors": [DIED_UNREPORTED]}
        for _, names in lost
        for name in names
    ]


def died_reason(lost: Sequence[tuple[str, list[str]]]) -> str | None:
    """The run's failure naming the sources of shards that died, or None."""
    names = [name for _, shard_names in lost for name in shard_names]
    if not names:
        return None
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"{len(names)} source(s) not ingested, {DIED_UNREPORTED}: {shown}"
        f" (task ingest_shard {', '.join(repr(label) for label, _ in lost[:5])})"
    )


def failed_tasks_reason(run: RunSummary, outcomes: ShardOutcomes) -> str | None:
    """The run's failure line when shard tasks failed and said so, or None: how many of
    the due sources they did not ingest. Each task mailed its failure and the watcher
    turns the Airflow run red; the run's row must say failed with it (BI and the watchdog
    read the row), though the other shards loaded."""
    if not outcomes.failed_tasks:
        return None
    lost = [name for name in run.failed_sources if name in outcomes.in_failed_tasks]
    shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
    return (
        f"{outcomes.failed_tasks} ingest task(s) failed (their logs say why):"
        f" {len(lost)} of {run.sources} due source(s) not ingested" + (f": {shown}" if lost else "")
    )


def summarize(summaries: Iterable[Any]) -> RunSummary:
    """Add up per-source summaries (:meth:`mediamon.models.IngestStats.as_dict`) and count
    the sources whose poll failed; each of those is logged at WARNING."""
    run = RunSummary()
    for summary in flatten(summaries):
        run.sources += 1
        run.per_source.append(
            {"source": str(summary.get("source", "?")), "poll": str(summary.get("poll", ""))}
            | {key: _count(summary.get(key)) for key in PER_SOURCE}
        )
        for key in COUNTED:
            run.counts[key] += _count(summary.get(key))
        if summary.get("poll") in FAILED_POLLS:
            name = str(summary.get("source", "?"))
            run.sources_failed += 1
            run.failed_sources.append(name)
            errors = summary.get("errors") or []
            first = str(errors[0]) if isinstance(errors, list) and errors else "no detail"
            logger.warning("source %s failed: %s", name, first)
    return run


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def failure_reason(run: RunSummary) -> str | None:
    """Why this run must be marked failed, or None when it stands."""
    if run.all_failed:
        shown = ", ".join(run.failed_sources[:10])
        return f"all {run.sources} due source(s) failed: {shown}"
    return None


def record(
    conn: sa.Connection,
    run_key: str,
    run_at: datetime,
    run: RunSummary,
    *,
    error: str | None = None,
) -> str:
    """Upsert the run's row after its sources were ingested; return its status
    (``failed`` when ``error`` or :func:`failure_reason` says so, else ``loaded``: the
    checks are still to come). ``error`` may hold several causes, one line each. A re-run
    of the interval overwrites the row."""
    causes = [line for line in (failure_reason(run), error) if line]
    reason = "\n".join(dict.fromkeys(causes)) or None
    status = "failed" if reason else "loaded"
    conn.execute(
        sa.text(
            "insert into ingest_runs (run_key, run_at, finished_at, status, sources_due,"
            " sources_failed, failed_sources, articles_new, articles_updated, sources, checks,"
            " error)"
            " values (:key, :at, clock_timestamp(), :status, :due, :failed, :names, :new,"
            " :updated, cast(:sources as jsonb), null, :error)"
            " on conflict (run_key) do update set run_at = excluded.run_at,"
            " finished_at = excluded.finished_at, status = excluded.status,"
            " sources_due = excluded.sources_due, sources_failed = excluded.sources_failed,"
            " failed_sources = excluded.failed_sources, articles_new = excluded.articles_new,"
            " articles_updated = excluded.articles_updated, sources = excluded.sources,"
            " checks = null,"
            " error = excluded.error"
            # Planning failed (its row says why) and nothing was ingested: keep the cause.
            " where not (ingest_runs.status = 'failed' and excluded.sources_due = 0)"
        ),
        {
            "key": run_key,
            "at": run_at,
            "status": status,
            "due": run.sources,
            "failed": run.sources_failed,
            "names": run.failed_sources,
            "new": run.counts["new"],
            "updated": run.counts["updated"],
            "sources": json.dumps(run.per_source),
            "error": reason,
        },
    )
    return status


def record_checks(
    conn: sa.Connection, run_key: str, run_at: datetime, results: Sequence[Mapping[str, Any]]
) -> str:
    """Store the data-quality results on the run's row and settle its status: ``success``
    when the run had not failed and every check passed, else ``failed``. A run that was
    never summarized (checks run alone) gets a row of its own."""
    failed = [str(r["name"]) for r in results if not r["passed"]]
    row = conn.execute(
        sa.text(
            "insert into ingest_runs (run_key, run_at, finished_at, status, checks, error)"
            " values (:key, :at, clock_timestamp(), :status, cast(:checks as jsonb), :error)"
            " on conflict (run_key) do update set finished_at = excluded.finished_at,"
            " checks = excluded.checks,"
            " status = case when ingest_runs.status = 'failed' or :any_failed"
            "               then 'failed' else 'success' end,"
            " error = case when :any_failed"
            "              then concat_ws(E'\\n', ingest_runs.error, excluded.error)"
            "              else ingest_runs.error end"
            " returning status"
        ),
        {
            "key": run_key,
            "at": run_at,
            "status": "failed" if failed else "success",
            "checks": json.dumps(list(results), default=str),
            "error": f"{CHECKS_FAILED}: {', '.join(failed)}" if failed else None,
            "any_failed": bool(failed),
        },
    ).scalar_one()
    return str(row)
