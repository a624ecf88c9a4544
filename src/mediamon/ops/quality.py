"""Data-quality checks on the articles one ingest run loaded.

Plain SQL over mediamon's own tables rather than Airflow's common-sql check operators:
the operators need an Airflow connection to mediamon's database and keep their verdict in
Airflow's metadata only, while these results are stored on the run's ``ingest_runs`` row,
where the watchdog (and its mail) and ``bi`` readers see them; the DAG still shows them
as a task of their own that fails when a check does.

Scope: articles first seen at the run's time (``first_seen_at`` is the run's time for
every article it added) and the run's per-source counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mediamon.ops.thresholds import QualityLimits


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict; ``detail`` says what was measured and what failed."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(
    conn: sa.Connection, run_key: str, run_at: datetime, limits: QualityLimits
) -> list[CheckResult]:
    """Every check on the run ``run_key`` (its articles: first seen at ``run_at``)."""
    scope = {"run_at": run_at}
    missing = conn.execute(
        sa.text(
            "select count(*) filter (where btrim(canonical_url) = '' or btrim(url) = ''),"
            "       count(*) filter (where title is null or btrim(title) = ''),"
            "       count(*)"
            " from articles where first_seen_at = :run_at"
        ),
        scope,
    ).one()
    no_url, no_title, total = int(missing[0]), int(missing[1]), int(missing[2])
    results = [
        CheckResult(
            "urls_and_titles_present",
            no_url == 0 and no_title == 0,
            f"{total} new article(s): {no_url} without URL, {no_title} without title",
        )
    ]

    future = conn.execute(
        sa.text(
            "select count(*), max(published_at) from articles"
            " where first_seen_at = :run_at and published_at > :limit"
        ),
        {**scope, "limit": run_at + limits.future_tolerance},
    ).one()
    results.append(
        CheckResult(
            "no_future_publication",
            int(future[0]) == 0,
            f"{int(future[0])} article(s) published more than {limits.future_tolerance}"
            f" after the run's time" + (f" (latest {future[1].isoformat()})" if future[1] else ""),
        )
    )

    per_source = conn.execute(
        sa.text(
            "select s->>'source' as source,"
            "       coalesce((s->>'failed')::int, 0) as failed,"
            "       coalesce((s->>'failed')::int, 0) + coalesce((s->>'new')::int, 0)"
            "       + coalesce((s->>'updated')::int, 0) + coalesce((s->>'unchanged')::int, 0)"
            "       as attempted"
            " from ingest_runs r, jsonb_array_elements(r.sources) s"
            " where r.run_key = :run_key order by 1"
        ),
        {"run_key": run_key},
    ).all()
    too_empty = [
        f"{row.source} {row.failed}/{row.attempted}"
        for row in per_source
        if row.attempted >= limits.min_items and row.failed / row.attempted > limits.max_empty_rate
    ]
    judged = sum(1 for row in per_source if row.attempted >= limits.min_items)
    results.append(
        CheckResult(
            "empty_extraction_rate",
            not too_empty,
            (
                f"items without an article above {limits.max_empty_rate:.0%}: "
                + ", ".join(too_empty)
                if too_empty
                else f"{judged} source(s) with {limits.min_items}+ items, all at or under"
                f" {limits.max_empty_rate:.0%} without an article"
            ),
        )
    )

    copies = int(
        conn.execute(
            sa.text(
                "select count(*) from articles"
                " where first_seen_at = :run_at and duplicate_of is not null"
            ),
            scope,
        ).scalar_one()
    )
    rate = copies / total if total else 0.0
    results.append(
        CheckResult(
            "duplicate_rate",
            total < limits.min_items or rate <= limits.max_duplicate_rate,
            f"{copies} of {total} new article(s) are copies ({rate:.0%};"
            f" limit {limits.max_duplicate_rate:.0%} from {limits.min_items} articles)",
        )
    )
    return results
