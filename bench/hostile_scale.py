"""Hostile scale: one ingest cycle of N farm sites when some of them misbehave as sites on
the web do, beside the same cycle of the healthy farm, in the same run.

The hostile farm (bench.feedfarm's behaviours, sites picked at random with a fixed seed):
5 % drip their feed a byte a second, 5 % drip their article pages, 5 % accept and never
answer, 5 % answer 503 with Retry-After: 86400, and a few (``--many``) have 200 new
articles behind a 5 s politeness interval. The shards of the cycle run as Airflow runs
them, each in a process of its own at once (``service.ingest_shard``); the figures are
the cycle (the slowest shard), the ratio hostile / healthy, what each shard left for the
next cycle, and which sources the next cycle (15 minutes on) polls again.

    python -m bench.hostile_scale [--sources 200] [--shards 2] [--shard-budget 600]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.common import scratch_database
from bench.feedfarm import serve_farm
from mediamon import service
from mediamon.ingest.shard_runner import SHARD_TIME_BUDGET_S, ShardOptions
from mediamon.settings import Settings

ARTICLES = 5
SHARES = {"drip-feed": 0.05, "drip-pages": 0.05, "hang": 0.05, "defer": 0.05}
SEED = 7


def hostile_sites(sources: int, many: int) -> dict[int, str]:
    """Which sites misbehave, and how: SHARES of them, and ``many`` sites of 200 items."""
    order = random.Random(SEED).sample(range(sources), sources)
    chosen: dict[int, str] = {}
    for behaviour, share in SHARES.items():
        for _ in range(round(sources * share)):
            chosen[order[len(chosen)]] = behaviour
    for _ in range(min(many, sources - len(chosen))):
        chosen[order[len(chosen)]] = "many"
    return chosen


def _shard(
    settings: Settings, names: list[str], now: datetime, budget: float | None, out: Any
) -> None:
    started = time.monotonic()
    options = ShardOptions(workers=1, time_budget_s=budget)
    summaries = service.ingest_shard(settings, names, "hostile-scale", now, options)
    out.put((time.monotonic() - started, summaries))


@dataclass(frozen=True)
class Cycle:
    name: str
    cycle_s: float
    shard_s: list[float]
    polls: Counter[str]
    new: int
    left_for_next_poll: int
    due_next: Counter[str]  # behaviour -> sources the next cycle polls again

    def line(self) -> str:
        shards = ", ".join(f"{s:.0f}" for s in sorted(self.shard_s, reverse=True))
        polls = ", ".join(f"{k} {v}" for k, v in sorted(self.polls.items()))
        due = ", ".join(f"{k} {v}" for k, v in sorted(self.due_next.items()))
        return (
            f"  {self.name:<8} cycle {self.cycle_s:6.1f} s (shards {shards} s)  {self.new} new"
            f"  polls: {polls}  left for next poll: {self.left_for_next_poll}"
            f"\n           due again 15 min on: {due}"
        )


def cycle(
    name: str, sources: int, shards: int, budget: float | None, hostile: dict[int, str]
) -> Cycle:
    """One cycle of ``sources`` farm sites in ``shards`` shard processes at once."""
    context = multiprocessing.get_context("spawn")
    with (
        serve_farm(sources, ARTICLES, hostile=hostile) as farm,
        scratch_database("mediamon_hostile") as url,
        TemporaryDirectory(prefix="mediamon-hostile-") as tmp,
    ):
        path = Path(tmp) / "sources.yaml"
        farm.sources_yaml(path)
        settings = Settings(database_url=url, sources_path=path, var_dir=Path(tmp))
        now = datetime.now(UTC)
        planned = service.plan_shards(settings, now, force=True, shards=shards)
        out = context.Queue()
        started = time.monotonic()
        workers = [
            context.Process(target=_shard, args=(settings, list(s.sources), now, budget, out))
            for s in planned
        ]
        for worker in workers:
            worker.start()
        results = [out.get() for _ in workers]
        elapsed = time.monotonic() - started
        for worker in workers:
            worker.join()
        summaries = [summary for _, shard in results for summary in shard]
        due = service.plan_shards(settings, now + timedelta(minutes=15), shards=1)
        due_names = {name for shard in due for name in shard.sources}
    behaviour = {f"site-{i:04d}": hostile.get(i, "healthy") for i in range(sources)}
    return Cycle(
        name=name,
        cycle_s=elapsed,
        shard_s=[seconds for seconds, _ in results],
        polls=Counter(str(s["poll"]) for s in summaries),
        new=sum(int(s["new"]) for s in summaries),
        left_for_next_poll=sum(int(s["left_for_next_poll"]) for s in summaries),
        due_next=Counter(behaviour[name] for name in due_names),
    )


def run(sources: int, shards: int, budget: float | None, many: int) -> list[str]:
    hostile = hostile_sites(sources, many)
    shown = "none" if budget is None else f"{budget:g} s"
    lines = [
        f"Hostile scale: {sources} sites × {ARTICLES} articles, {shards} shard processes at once,"
        f" shard time budget {shown}; hostile: "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(hostile.values()).items()))
    ]
    healthy = cycle("healthy", sources, shards, budget, {})
    print(healthy.line(), flush=True)
    bad = cycle("hostile", sources, shards, budget, hostile)
    print(bad.line(), flush=True)
    lines += [healthy.line(), bad.line()]
    lines.append(
        f"  hostile / healthy cycle: {bad.cycle_s / max(healthy.cycle_s, 1e-9):.1f}×"
        f"  (bound: shard budget + one fetch's deadline and a chunk's load)"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument(
        "--shard-budget", type=float, default=SHARD_TIME_BUDGET_S,
        help="seconds; 0 for none (each source's own budget alone, as before)",
    )  # fmt: skip
    parser.add_argument("--many", type=int, default=3, help="sites of 200 articles at 5 s")
    args = parser.parse_args()
    budget = args.shard_budget if args.shard_budget > 0 else None
    print("\n".join(run(args.sources, args.shards, budget, args.many)))


if __name__ == "__main__":
    main()
