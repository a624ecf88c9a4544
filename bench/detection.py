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
   (:func:`mediamon.spikes.episodes.replay` for mediamon, built on the production
   :func:`mediamon.spikes.episodes.decide`). A burst is found when an alert opens
   during it or within the window after it; any other alert is false.
2. **Timing.** 1M synthetic articles over 5 weeks (4 weeks of baseline, hourly),
   200 topics (an article mentions 0–3 of them; ~15 % are syndicated copies, which the
   counts skip). Timed separately: (a) turning the articles into hourly counts per topic
   and totals (numpy, the job the SQL in mediamon.spikes.counts does in PostgreSQL), (b) one
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from mediamon.spikes.episodes import replay
from mediamon.spikes.model import HOURS_PER_WEEK, HourlySeries, SpikeParams, assess
from mediamon.topics.definitions import Topic

START = datetime(2024, 1, 1, tzinfo=UTC)
WARMUP_WEEKS = 4
PARAMS = SpikeParams()
SIGMAS = (3.0, 5.0, 8.0)


@dataclass
class Burst:
    start: int
    hours: int
    extra: int  # stories added in the first hour


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
    # During an outage the sources still working have their own mix: the topic's share of
    # what is left may jump (up to 8 times), the trap for a share-based test.
    mix = np.where(outages < 1, rng.uniform(0.5, 8.0, hours), 1.0)
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
        first_extra = 0
        for h in range(position, position + length):
            extra = int(rng.poisson(factor * volume[h] * hourly_share[h] + base_extra))
            first_extra = first_extra or extra
            counts[h] += extra
            totals[h] += extra
        bursts.append(Burst(position, length, first_extra))
        position += length + 24
    return TopicSeries(counts, totals, bursts, outage_hours)


def outage_mask(rng: np.random.Generator, hours: int) -> np.ndarray:
    mask = np.ones(hours)
    for week in range(hours // HOURS_PER_WEEK + 1):
        if rng.random() < 0.35:
            start = week * HOURS_PER_WEEK + int(rng.integers(0, HOURS_PER_WEEK))
            mask[start : start + int(rng.integers(2, 9))] = rng.uniform(0, 0.3)
    return mask


def mean_ksigma(counts: Sequence[int], first: int, cooldown: int, k: float = 3.0) -> list[int]:
    """Plain rule: alert when an hour's count exceeds mean + kσ of the trailing four
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
        firing = value > mean + k * sd
        if in_episode:
            in_episode = value > mean + (k - 1) * sd
            continue
        if not firing or (last is not None and end - last < cooldown):
            continue
        alerts.append(end)
        in_episode = True
        last = end
    return alerts


BUCKETS = ("<4", "4-9", ">=10")


@dataclass
class Score:
    bursts: int = 0
    found: int = 0
    false_alerts: int = 0
    in_outages: int = 0
    by_size: dict[str, list[int]] = field(default_factory=lambda: {b: [0, 0] for b in BUCKETS})
    delays: list[int] = field(default_factory=list)

    def add(self, topic: TopicSeries, alert_ends: list[int], window: int) -> None:
        matched: set[int] = set()
        for burst in topic.bursts:
            self.bursts += 1
            size = "<4" if burst.extra < 4 else "4-9" if burst.extra < 10 else ">=10"
            self.by_size[size][1] += 1
            last = burst.start + burst.hours + window
            hit = [e for e in alert_ends if burst.start < e <= last]
            if hit:
                self.found += 1
                self.by_size[size][0] += 1
                self.delays.append(min(hit) - (burst.start + 1))
                matched.update(hit)
        self.false_alerts += sum(1 for e in alert_ends if e not in matched)
        self.in_outages += sum(1 for e in alert_ends if e - 1 in topic.outage_hours)


def evaluate(n_topics: int, eval_weeks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hours = (WARMUP_WEEKS + eval_weeks) * HOURS_PER_WEEK
    eval_from = WARMUP_WEEKS * HOURS_PER_WEEK
    volume = volume_curve(hours, 400.0, rng)
    outages = outage_mask(rng, hours)
    no_guard = replace(PARAMS, outage_ratio=0.0)
    names = ["mediamon", "mediamon, no outage guard", *(f"mean+{k:g}σ" for k in SIGMAS)]
    scores = {name: Score() for name in names}
    spent = dict.fromkeys(names, 0.0)
    windows = 0
    for index in range(n_topics):
        topic = make_topic(rng, hours, eval_from, volume, outages)
        windows += hours - eval_from
        for name in names:
            started = time.perf_counter()
            if name.startswith("mediamon"):
                series = HourlySeries(START, topic.counts.tolist(), topic.totals.tolist())
                params = PARAMS if name == "mediamon" else no_guard
                opened = replay(series, params, f"t{index}", first=eval_from + 1)
                ends = [series.index(s.window_end) for s in opened]
            else:
                k = float(name.removeprefix("mean+").removesuffix("σ"))
                ends = mean_ksigma(topic.counts.tolist(), eval_from + 1, PARAMS.cooldown_hours, k)
            spent[name] += time.perf_counter() - started
            scores[name].add(topic, ends, PARAMS.window_hours)
    topic_months = n_topics * eval_weeks * 7 / 30.4
    bursts = scores["mediamon"].bursts
    print(
        f"Replay: {n_topics} topics × {eval_weeks} weeks evaluated after a {WARMUP_WEEKS}-week "
        f"warm-up = {topic_months:.1f} topic-months; {bursts} injected bursts; seed {seed}"
    )
    print(f"mediamon thresholds: {PARAMS}")
    print()
    print(
        f"{'detector':<26} {'recall':>6} {'false/topic-month':>17} {'in outages':>10} "
        f"{'delay h':>7}  recall by stories added in the burst's first hour " + " / ".join(BUCKETS)
    )
    for name in names:
        score = scores[name]
        recall = score.found / score.bursts if score.bursts else float("nan")
        by_size = " / ".join(
            f"{found / n:.2f} ({n})" if n else "- (0)" for found, n in score.by_size.values()
        )
        delay = float(np.median(score.delays)) if score.delays else float("nan")
        print(
            f"{name:<26} {recall:>6.3f} {score.false_alerts / topic_months:>17.3f} "
            f"{score.in_outages:>10d} {delay:>7.1f}  {by_size}"
        )
    rate = windows / spent["mediamon"]
    print(f"\n(mediamon: {spent['mediamon']:.1f} s for {windows:,} hourly windows, {rate:,.0f}/s)")


@dataclass
class Corpus:
    """Synthetic articles in time order: article i is in hour ``hour_of[i]``; a copy's
    ``root_of`` is an earlier root (roots are their own root); mention k links article
    ``article_of[k]`` to topic ``topic_of[k]``."""

    hours: int
    hour_of: np.ndarray
    root_of: np.ndarray
    article_of: np.ndarray
    topic_of: np.ndarray
    n_topics: int

    @property
    def size(self) -> int:
        return len(self.hour_of)


def synthetic_corpus(n_articles: int, n_topics: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    hours = (WARMUP_WEEKS + 1) * HOURS_PER_WEEK
    weights = volume_curve(hours, 1.0, rng)
    hour_of = np.sort(rng.choice(hours, size=n_articles, p=weights / weights.sum()))
    root_of = np.arange(n_articles)
    copies = np.flatnonzero(rng.random(n_articles) < 0.15)
    copies = copies[copies > 0]
    # A copy points at an earlier article's root (copies of copies collapse to the root).
    root_of[copies] = (rng.random(len(copies)) * copies).astype(np.int64)
    root_of = root_of[root_of]
    shares = np.exp(rng.uniform(math.log(3e-4), math.log(0.05), n_topics))
    per_article = rng.poisson(shares.sum(), n_articles).clip(0, 3)
    article_of = np.repeat(np.arange(n_articles), per_article)
    topic_of = rng.choice(n_topics, size=len(article_of), p=shares / shares.sum())
    pairs = np.unique(article_of * n_topics + topic_of)  # one mention per (article, topic)
    return Corpus(hours, hour_of, root_of, pairs // n_topics, pairs % n_topics, n_topics)


def timing(n_articles: int, n_topics: int, seed: int, db_url: str | None = None) -> None:
    corpus = synthetic_corpus(n_articles, n_topics, seed)
    hours, n = corpus.hours, corpus.size
    started = time.perf_counter()
    is_root = corpus.root_of == np.arange(n)
    totals = np.bincount(corpus.hour_of[is_root], minlength=hours)
    stories = np.unique(corpus.topic_of * n + corpus.root_of[corpus.article_of])
    flat = np.bincount(
        (stories // n) * hours + corpus.hour_of[stories % n], minlength=n_topics * hours
    ).reshape(n_topics, hours)
    aggregate_seconds = time.perf_counter() - started

    at = START + timedelta(hours=hours)
    series = [HourlySeries(START, flat[t].tolist(), totals.tolist()) for t in range(n_topics)]
    started = time.perf_counter()
    results = [assess(s, at, PARAMS, f"t{i}") for i, s in enumerate(series)]
    detect_seconds = time.perf_counter() - started
    print(
        f"Timing: {n:,} articles over {hours} hours ({WARMUP_WEEKS} weeks of baseline + 1), "
        f"{n_topics} topics, {len(corpus.article_of):,} mentions, {int((~is_root).sum()):,} copies"
    )
    print(f"  (a) hourly counts per topic + totals, numpy:        {aggregate_seconds:7.2f} s")
    print(
        f"  (b) detection maths, assess() x {n_topics} at the latest hour: "
        f"{detect_seconds:7.3f} s ({sum(r.fired for r in results)} fired)"
    )
    if db_url:
        _db_timing(db_url, corpus, at, [r.expected for r in results])
    _matcher_speed(n_topics, seed, n)


def _db_timing(url: str, corpus: Corpus, at: datetime, expected: list[float]) -> None:
    """The same pass in PostgreSQL: load the corpus into a scratch database, then time
    mediamon.spikes.detect.assess_topics (the SQL hourly counts and totals, then the maths) and
    detect (the same, plus the alert bookkeeping)."""
    import hashlib

    import sqlalchemy as sa

    from mediamon import db
    from mediamon.db import migrate
    from mediamon.spikes import detect
    from mediamon.topics import store
    from mediamon.topics.definitions import TopicSet

    name = "mediamon_bench_detection"
    admin = sa.create_engine(db.normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        conn.execute(sa.text(f'create database "{name}"'))
    engine = db.make_engine(sa.make_url(db.normalize_url(url)).set(database=name)
                            .render_as_string(hide_password=False))  # fmt: skip
    try:
        migrate.upgrade(engine)
        topics = TopicSet(
            tuple(
                Topic(key=f"t{i}", name=f"T{i}", terms=(f"term{i}",))
                for i in range(corpus.n_topics)
            )
        )
        store.sync_topics(engine, topics)
        started = time.perf_counter()
        n = corpus.size
        with engine.begin() as conn:
            conn.execute(sa.text(
                "insert into sources (name, kind, location, poll_interval)"
                " select 'src' || g, 'feed', 'https://s' || g || '.example/', interval '15 minutes'"
                " from generate_series(1, 20) g"
            ))  # fmt: skip
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with (
                raw.cursor() as cursor,
                cursor.copy(
                    "copy articles (url_hash, canonical_url, url, source_id, published_at,"
                    " first_seen_at, language, body_text, match_text, content_origin,"
                    " content_hash, duplicate_of) from stdin"
                ) as copy,
            ):
                for i in range(n):
                    published = START + timedelta(hours=int(corpus.hour_of[i]), minutes=i % 60)
                    url = f"https://b.example/{i}"
                    digest = hashlib.sha256(url.encode()).digest()
                    root = int(corpus.root_of[i])
                    copy.write_row((
                        digest, url, url, 1 + i % 20, published,
                        published + timedelta(minutes=5), "zh", "", "", "page", digest,
                        root + 1 if root != i else None,
                    ))  # fmt: skip
            with (
                raw.cursor() as cursor,
                cursor.copy(
                    "copy mentions (article_id, topic, match_version, title_hits, body_hits)"
                    " from stdin"
                ) as copy,
            ):
                versions = {t.key: t.match_version for t in topics}
                for article, topic in zip(corpus.article_of, corpus.topic_of, strict=True):
                    key = f"t{topic}"
                    copy.write_row((int(article) + 1, key, versions[key], 0, 1))
        with engine.connect() as conn:
            conn.execute(sa.text("analyze articles"))
            conn.execute(sa.text("analyze mentions"))
            conn.commit()
        load_seconds = time.perf_counter() - started
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            spikes = detect.assess_topics(engine, topics, at)
            timings.append(time.perf_counter() - started)
        same = all(
            math.isclose(s.expected, e, rel_tol=1e-9) for s, e in zip(spikes, expected, strict=True)
        )
        started = time.perf_counter()
        created = detect.detect(engine, topics, at)
        detect_seconds = time.perf_counter() - started
        print(f"  (c) PostgreSQL ({name}): loaded in {load_seconds:.0f} s;")
        print(
            f"      assess_topics (SQL counts + maths), {corpus.n_topics} topics: "
            f"{timings[0]:.2f} s cold, {timings[1]:.2f} s warm; same numbers as numpy: {same}"
        )
        print(f"      detect (the same + alert bookkeeping): {detect_seconds:.2f} s, "
              f"{len(created)} alerts")  # fmt: skip
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


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
    parser.add_argument(
        "--db",
        metavar="URL",
        help="also time the pass in PostgreSQL: a scratch database is created on this "
        "server (e.g. postgresql://postgres@127.0.0.1:5432/postgres) and dropped after",
    )
    args = parser.parse_args(argv)
    run: list[Callable[[], None]]
    if args.quick:
        run = [lambda: evaluate(8, 2, args.seed), lambda: timing(50_000, 20, args.seed, args.db)]
    else:
        run = [
            lambda: evaluate(args.topics, args.weeks, args.seed),
            lambda: timing(1_000_000, 200, args.seed, args.db),
        ]
    for step in run:
        step()
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
