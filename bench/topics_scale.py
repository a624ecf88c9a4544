"""The topic chain as the number of topics grows (a power user tracks 500–3,000): each
step at 10 topics (the baseline) and at more, in the same run, on the same articles in
a real PostgreSQL. Every topic has four rules and one daily digest recipient, the same
address for all: one digest of every topic.

    python -m bench.topics_scale [--articles 5000] [--topics 10,1000,3000]

Steps: parse and validate topics.yaml (``mediamon topics check``); sync it into
``topics`` (first, then unchanged: every run); match every article (a first sync, all
topics new) then again with nothing new past the hour of overlap (each run); detect
spikes; read the stored topics (detection and delivery, every cycle); the digest (due,
built, composed) with its HTML size (Gmail clips past 102 kB).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import scratch_database
from bench.load import CHARACTERS, synthetic_articles
from mediamon import db
from mediamon.alerts.compose import MailOptions, Reader
from mediamon.alerts.content import stories_between
from mediamon.alerts.digest import build_digest, due_digests
from mediamon.alerts.digest_mail import DigestBudget, TopicStories, digest_message
from mediamon.ingest import load
from mediamon.ingest.run import CHUNK_SIZE
from mediamon.ingest.sources import Source
from mediamon.spikes.detect import KnownAlerts, Outlook, assess_topics, detect, outlook
from mediamon.topics.file import parse_topics
from mediamon.topics.match import match_articles
from mediamon.topics.store import stored_topics, sync_topics

STEPS = (
    "parse topics.yaml",
    "sync, first",
    "sync, unchanged",
    "match, all new",
    "match, nothing new",
    "detect spikes",
    "stored topics",
    "stored, compiled",
    "alert reads, batched",
    "alert reads, per topic",
    "digest of all",
    "digest, per topic",
)
# Beside the new paths, the ones they replaced, in the same run: the alert state read per
# topic (three to four statements each), a digest's stories read per topic, and the
# stored topics read with every rule compiled (as detection and delivery read them).
OLD_PATHS = {
    "stored topics": "stored, compiled",
    "alert reads, batched": "alert reads, per topic",
    "digest of all": "digest, per topic",
}


def topics_yaml(count: int, seed: int = 11) -> str:
    """``count`` topics as bench.matching writes them: a word, a NEAR pair, alternatives,
    an English phrase, an exclusion; one daily recipient for all."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choices(CHARACTERS, k=rng.choice((2, 3))))

    lines = [
        "version: 1",
        "defaults:",
        "  digest: {hour: 8, timezone: UTC}",
        "  recipients: [{address: desk@example.org, mode: daily}]",
        "topics:",
    ]
    for n in range(count):
        lines += [
            f"  - key: topic{n}",
            f"    name: topic {n}",
            f"    terms: [{word()}, '{word()} NEAR/10 {word()}', '({word()}|{word()})',"
            " export control*]",
            f"    exclude: ['{word()}{word()}']",
        ]
    return "\n".join(lines) + "\n"


def measure(count: int, articles: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds per step at ``count`` topics, and what the digest was."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    made = synthetic_articles(articles)
    seconds: dict[str, float] = {}
    facts: dict[str, Any] = {}

    def timed(step: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        seconds[step] = time.perf_counter() - started
        return result

    with scratch_database("mediamon_bench_topics") as url:
        engine = db.make_engine(url)
        with engine.begin() as conn:
            source = Source(name="bench", kind="feed", location="https://x/")
            sid = load.sync_sources(conn, [source])["bench"]
        # Published over the last 40 hours: the daily digest has a day of stories.
        made = [
            replace(a, published_at=now - timedelta(hours=1 + n % 40)) for n, a in enumerate(made)
        ]
        for start in range(0, len(made), CHUNK_SIZE):
            with engine.begin() as conn:
                load.upsert_articles(conn, sid, made[start : start + CHUNK_SIZE], now)
        text = topics_yaml(count)
        topics = timed("parse topics.yaml", lambda: parse_topics(text))
        timed("sync, first", lambda: sync_topics(engine, topics))
        timed("sync, unchanged", lambda: sync_topics(engine, topics))
        stats = timed("match, all new", lambda: match_articles(engine, topics))
        with engine.begin() as conn:  # past the hour of overlap: nothing new to match
            conn.execute(sa.text("update topics set matched_through = now() + interval '2 hours'"))
        timed("match, nothing new", lambda: match_articles(engine, topics))
        timed("detect spikes", lambda: detect(engine, topics, now))
        timed("stored topics", lambda: stored_topics(engine))
        timed("stored, compiled", lambda: stored_topics(engine, compile_rules=True))
        # The articles span 40 hours, no baseline: every window would be left untested
        # and nothing read. Taken as quiet windows, each topic's alert state is read.
        spikes = [replace(s, status="quiet") for s in assess_topics(engine, topics, now)]

        def outlooks(batched: bool) -> list[Outlook]:
            with engine.connect() as conn:
                known = KnownAlerts.read(conn, spikes, topics) if batched else None
                return [outlook(conn, s, topics.get(s.topic), known) for s in spikes]  # type: ignore[arg-type]

        same = timed("alert reads, batched", lambda: outlooks(True))
        if same != timed("alert reads, per topic", lambda: outlooks(False)):
            raise AssertionError("the batched alert reads decide otherwise than per topic")
        options = MailOptions(base_url="https://mediamon.example.org")

        def digest() -> Any:
            (plan,) = due_digests(engine, topics, now, options)
            with engine.connect() as conn:
                built = build_digest(conn, plan, topics)
            message = digest_message(built, Reader(plan.address), options, sender="m@x.org")
            return built, message

        built, message = timed("digest of all", digest)

        def digest_per_topic() -> list[TopicStories]:
            (plan,) = due_digests(engine, topics, now, options)
            budget = DigestBudget()
            sections = []
            with engine.connect() as conn:
                for key in plan.topics:
                    topic = topics.get(key)
                    stories = stories_between(
                        conn,
                        key,
                        topic,
                        plan.period_start,
                        plan.period_end,
                        snippets=budget.most_in_full(),
                    )
                    budget.take(len(stories))
                    if stories and topic is not None:
                        sections.append(
                            TopicStories(
                                key, topic.name, tuple(stories), topic.terms, topic.exclude
                            )
                        )
            return sections

        if timed("digest, per topic", digest_per_topic) != list(built.topics):
            raise AssertionError("the digest read per topic differs from the batched one")
        html_part = message.get_body(("html",))
        facts = {
            "mentions": stats.mentions,
            "digest_topics": len(built.topics),
            "html_kb": len(html_part.get_content().encode()) / 1024 if html_part else 0.0,
            "mail_kb": len(message.as_bytes()) / 1024,
        }
        engine.dispose()
    return seconds, facts


def run(articles: int = 5_000, sizes: tuple[int, ...] = (10, 1_000, 3_000)) -> list[str]:
    results = {size: measure(size, articles) for size in sizes}
    base = sizes[0]
    lines = [
        f"{articles:,} articles; seconds per step (wall clock, real PostgreSQL);"
        f" x: per topic, against {base} topics (1.0: linear)",
        f"{'step':<24}" + "".join(f"{f'{size:,} topics':>16}" for size in sizes),
    ]
    for step in STEPS:
        row = f"{step:<24}"
        for size in sizes:
            took = results[size][0][step]
            per_topic = (took / size) / max(results[base][0][step] / base, 1e-9)
            row += f"{took:>9.2f}" + (f" {per_topic:>5.2f}x" if size != base else " " * 7)
        lines.append(row)
    for new, old in OLD_PATHS.items():
        lines.append(
            f"{new + ' / old':<24}"
            + "".join(
                f"{results[size][0][new] / max(results[size][0][old], 1e-9):>15.2f}x"
                for size in sizes
            )
        )
    for fact in ("mentions", "digest_topics", "html_kb", "mail_kb"):
        lines.append(f"{fact:<24}" + "".join(f"{results[size][1][fact]:>16,.0f}" for size in sizes))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=5_000)
    parser.add_argument("--topics", default="10,1000,3000", help="comma-separated counts")
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.topics.split(","))
    print("\n".join(run(max(1, args.articles), sizes)))


if __name__ == "__main__":
    main()
