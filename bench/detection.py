"""Spike detection: mediamon's detector beside a plain mean+3σ rule, on a synthetic replay.

Run from the repository root::

    .venv/bin/python -m bench.detection [--quick] [--topics N] [--weeks N] [--seed N]

1. **Replay.** Hourly series for many topics over a 4-week warm-up plus the evaluation
   weeks: total story volume with a daily and a weekly cycle and Poisson noise; each topic
   a share of it (log-uniform, 0.03 % to 5 %), overdispersed from day to day (gamma,
   variance 0 to 0.3), a third of the topics with their own peak hours (briefings);
   occasional ingest outages (volume down to 0–30 % for 2–8 hours, the remaining sources
   with a different topic mix). Bursts are injected at random hours outside outages:
   1–6 hours of extra stories (Poisson, 1–6 times the usual count plus 2–8 stories).
   Both detectors run hour by hour with the same episode/cooldown rule
   (:func:`mediamon.spikes.replay` for mediamon). A burst is found when an alert opens
   during it or within the window after it; any other alert is false.
2. **Timing.** 1M synthetic articles over 5 weeks (4 weeks of baseline, hourly),
   200 topics (an article mentions 0–3 of them; ~15 % are syndicated copies, which the
   counts skip). Timed separately: (a) turning the articles into hourly counts per topic
   and totals (numpy, the job the SQL in topic_store does in PostgreSQL), (b) one
   detection pass: :func:`mediamon.spikes.assess` for 200 topics at the latest hour.
   Also the matcher's speed (:meth:`mediamon.topics.Topic.match` with 200 topics on
   synthetic Chinese articles), extrapolated to 1M articles.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from mediamon.spikes import HOURS_PER_WEEK, HourlySeries, SpikeParams, assess, replay
from mediamon.topics import Topic

START = datetime(2024, 1, 1, tzinfo=UTC)
WARMUP_WEEKS = 4
PARAMS = SpikeParams()


@dataclass
class Burst:
    start: int
    hours: int
    lift: float  # (usual + extra) / usual in the first hour, from the generator's truth


@dataclass
class TopicSeries:
    counts: np.ndarray
    totals: np.ndarray
    bursts: list[Burst]
    outage_hours: set[int] = field(default_factory=set)


def volume_curve(hours: int, base: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(hours)
    day = 0.55 + 0.45 * np.sin(2 * np.pi * ((t % 24) - 8) / 24)  # night trough ~10 %
    weekend = np.where((t // 24) % 7 >= 5, 0.65, 1.0)
    drift = np.repeat(rng.lognormal(0, 0.08, hours // 24 + 1), 24)[:hours]
    return base * day * weekend * drift


def make_topic(
    rng: np.random.Generator, hours: int, eval_from: int, volume: np.ndarray, outages: np.ndarray
) -> TopicSeries:
    share = math.exp(rng.uniform(math.log(3e-4), math.log(0.05)))
    phi = rng.uniform(0.0, 0.3)
    days = hours // 24 + 1
    daily = np.repeat(rng.gamma(1 / phi, phi, days) if phi > 0 else np.ones(days), 24)[:hours]
    profile = np.ones(24)
    if rng.random() < 1 / 3:  # a topic with its own peak hours (a morning briefing)
        profile[rng.integers(0, 24, 2)] = rng.uniform(2, 4)
    hourly_share = share * daily * profile[np.arange(hours) % 24]
    mix = np.where(outages < 1, rng.uniform(0.5, 3.0, hours), 1.0)  # remaining sources' mix
    totals = rng.poisson(volume * outages)
    usual = np.clip(hourly_share * mix, 0, 0.95)
    counts = rng.binomial(totals, usual)
    bursts: list[Burst] = []
    outage_hours = set(np.flatnonzero(outages < 1).tolist())
    position = eval_from + int(rng.integers(0, 48))
    while True:
        position += int(rng.exponential(24 * 14))  # about two bursts a month
        length = int(rng.integers(1, 7))
        if position + length >= hours:
            break
        if any(h in outage_hours for h in range(position - 2, position + length + 2)):
            continue
        factor = rng.uniform(1, 6)
        base_extra = rng.uniform(2, 8)
        expected_usual = volume[position] * hourly_share[position]
        for h in range(position, position + length):
            extra = int(rng.poisson(factor * volume[h] * hourly_share[h] + base_extra))
            counts[h] += extra
            totals[h] += extra
        lift = (expected_usual * (1 + factor) + base_extra) / max(expected_usual, 1e-9)
        bursts.append(Burst(position, length, lift))
        position += length + 24
    return TopicSeries(counts, totals, bursts, outage_hours)


def outage_mask(rng: np.random.Generator, hours: int) -> np.ndarray:
    mask = np.ones(hours)
    for week in range(hours // HOURS_PER_WEEK + 1):
        if rng.random() < 0.35:
            start = week * HOURS_PER_WEEK + int(rng.integers(0, HOURS_PER_WEEK))
            mask[start : start + int(rng.integers(2, 9))] = rng.uniform(0, 0.3)
    return mask


def mean_3sigma(counts: Sequence[int], first: int, cooldown: int) -> list[int]:
    """Plain rule: alert when an hour's count exceeds mean + 3σ of the trailing four
    weeks of hourly counts (no seasonality, no volume), with the same episode/cooldown
    rule as mediamon. Returns the window ends (exclusive) of the alerts."""
    x = np.asarray(counts, dtype=float)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    n = WARMUP_WEEKS * HOURS_PER_WEEK
    alerts: list[int] = []
    in_episode = False
    last: int | None = None
    for end in range(max(first, n + 1), len(x) + 1):
        lo, hi = end - 1 - n, end - 1
        mean = (s1[hi] - s1[lo]) / n
        sd = math.sqrt(max((s2[hi] - s2[lo]) / n - mean * mean, 0.0))
        value = x[end - 1]
        firing = value > mean + 3 * sd
        if in_episode:
            in_episode = value > mean + 2 * sd
            continue
        if not firing or (last is not None and end - last < cooldown):
            continue
        alerts.append(end)
        in_episode = True
        last = end
    return alerts


@dataclass
class Score:
    bursts: int = 0
    found: int = 0
    false_alerts: int = 0
    found_by_lift: dict[str, list[int]] = field(
        default_factory=lambda: {"<3x": [0, 0], "3-6x": [0, 0], ">6x": [0, 0]}
    )
    delays: list[int] = field(default_factory=list)

    def add(self, bursts: list[Burst], alert_ends: list[int], window: int) -> None:
        matched: set[int] = set()
        for burst in bursts:
            self.bursts += 1
            bucket = "<3x" if burst.lift < 3 else "3-6x" if burst.lift < 6 else ">6x"
            self.found_by_lift[bucket][1] += 1
            hit = [
                e for e in alert_ends if burst.start < e <= burst.start + burst.hours + window
            ]
            if hit:
                self.found += 1
                self.found_by_lift[bucket][0] += 1
                self.delays.append(min(hit) - (burst.start + 1))
                matched.update(hit)
        self.false_alerts += sum(1 for e in alert_ends if e not in matched)


def evaluate(n_topics: int, eval_weeks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hours = (WARMUP_WEEKS + eval_weeks) * HOURS_PER_WEEK
    eval_from = WARMUP_WEEKS * HOURS_PER_WEEK
    volume = volume_curve(hours, 400.0, rng)
    outages = outage_mask(rng, hours)
    ours, plain = Score(), Score()
    outage_alerts = {"mediamon": 0, "mean+3σ": 0}
    started = time.perf_counter()
    assessed = 0
    for index in range(n_topics):
        topic = make_topic(rng, hours, eval_from, volume, outages)
        series = HourlySeries(START, topic.counts.tolist(), topic.totals.tolist())
        opened = replay(series, PARAMS, f"t{index}", first=eval_from + 1)
        assessed += hours - eval_from
        ends = [series.index(s.window_end) for s in opened]
        ours.add(topic.bursts, ends, PARAMS.window_hours)
        baseline = mean_3sigma(topic.counts.tolist(), eval_from + 1, PARAMS.cooldown_hours)
        plain.add(topic.bursts, baseline, PARAMS.window_hours)
        outage_alerts["mediamon"] += sum(1 for e in ends if e - 1 in topic.outage_hours)
        outage_alerts["mean+3σ"] += sum(1 for e in baseline if e - 1 in topic.outage_hours)
    elapsed = time.perf_counter() - started
    topic_months = n_topics * eval_weeks * 7 / 30.4
    print(
        f"Replay: {n_topics} topics × {eval_weeks} weeks evaluated after a {WARMUP_WEEKS}-week "
        f"warm-up = {topic_months:.1f} topic-months; {ours.bursts} injected bursts; seed {seed}"
    )
    print(f"mediamon thresholds: {PARAMS}")
    print()
    header = f"{'detector':<10} {'recall':>7} {'false/topic-month':>18} {'false in outages':>17}"
    header += f" {'median delay h':>15}  recall by lift <3x / 3-6x / >6x"
    print(header)
    for name, score in (("mediamon", ours), ("mean+3σ", plain)):
        recall = score.found / score.bursts if score.bursts else float("nan")
        by_lift = " / ".join(
            f"{f / n:.2f} ({n})" if n else "- (0)" for f, n in score.found_by_lift.values()
        )
        delay = float(np.median(score.delays)) if score.delays else float("nan")
        print(
            f"{name:<10} {recall:>7.3f} {score.false_alerts / topic_months:>18.3f} "
            f"{outage_alerts[name]:>17d} {delay:>15.1f}  {by_lift}"
        )
    print(f"\n(replay time {elapsed:.1f} s, {assessed / elapsed:,.0f} mediamon windows/s incl. baseline)")


def timing(n_articles: int, n_topics: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hours = (WARMUP_WEEKS + 1) * HOURS_PER_WEEK
    weights = volume_curve(hours, 1.0, rng)
    hour_of = rng.choice(hours, size=n_articles, p=weights / weights.sum())
    is_copy = rng.random(n_articles) < 0.15
    shares = np.exp(rng.uniform(math.log(3e-4), math.log(0.05), n_topics))
    mentions_per_article = rng.poisson(shares.sum(), n_articles).clip(0, 3)
    article_of = np.repeat(np.arange(n_articles), mentions_per_article)
    topic_of = rng.choice(n_topics, size=len(article_of), p=shares / shares.sum())

    started = time.perf_counter()
    roots = ~is_copy
    totals = np.bincount(hour_of[roots], minlength=hours)
    keep = roots[article_of]
    pairs = np.unique(topic_of[keep] * n_articles + article_of[keep])  # distinct stories
    flat = np.bincount((pairs // n_articles) * hours + hour_of[pairs % n_articles],
                       minlength=n_topics * hours).reshape(n_topics, hours)  # fmt: skip
    aggregate_seconds = time.perf_counter() - started

    at = START + timedelta(hours=hours)
    series = [HourlySeries(START, flat[t].tolist(), totals.tolist()) for t in range(n_topics)]
    started = time.perf_counter()
    results = [assess(s, at, PARAMS, f"t{i}") for i, s in enumerate(series)]
    detect_seconds = time.perf_counter() - started
    print(
        f"Timing: {n_articles:,} articles over {hours} hours ({WARMUP_WEEKS} weeks of baseline "
        f"+ 1), {n_topics} topics, {len(article_of):,} mentions, {int(is_copy.sum()):,} copies"
    )
    print(f"  hourly counts per topic + totals (numpy): {aggregate_seconds * 1000:8.1f} ms")
    print(
        f"  detection pass, {n_topics} topics at the latest hour: "
        f"{detect_seconds * 1000:8.1f} ms ({sum(r.fired for r in results)} fired)"
    )
    _matcher_speed(n_topics, seed, n_articles)


CJK_FILLER = "经济政府发展国际会议表示今天美国中国记者合作市场企业研究社会问题安全"


def _matcher_speed(n_topics: int, seed: int, n_articles: int, sample: int = 300) -> None:
    """Matcher throughput on synthetic ~1,500-character Chinese articles."""
    rnd = random.Random(seed)
    words = ["台湾", "出口", "限制", "芯片", "选举", "关税", "能源", "Taiwan", "export"]
    topics = []
    for i in range(n_topics):
        a, b = rnd.sample(words[:7], 2)
        topics.append(
            Topic(key=f"t{i}", name=f"T{i}", terms=(f"{a}{i}", f"{b}{i}x", f"{a} NEAR/8 {b}{i}"))
        )
    texts = [
        "".join(rnd.choice(CJK_FILLER) for _ in range(1500)) + rnd.choice(words) * 3
        for _ in range(sample)
    ]
    started = time.perf_counter()
    for text in texts:
        for topic in topics:
            topic.match("", text)
    seconds = (time.perf_counter() - started) / sample
    print(
        f"  matcher: {seconds * 1000:.2f} ms per article for {n_topics} topics "
        f"(~{seconds * n_articles / 60:.0f} CPU-minutes for {n_articles:,} articles, "
        "a one-off re-match; hourly runs only match new articles)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: CI smoke run")
    parser.add_argument("--topics", type=int, default=150, help="topics in the replay")
    parser.add_argument("--weeks", type=int, default=8, help="evaluated weeks per topic")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    run: list[Callable[[], None]]
    if args.quick:
        run = [lambda: evaluate(8, 2, args.seed), lambda: timing(50_000, 20, args.seed)]
    else:
        run = [
            lambda: evaluate(args.topics, args.weeks, args.seed),
            lambda: timing(1_000_000, 200, args.seed),
        ]
    for step in run:
        step()
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
