"""Load rate: mediamon's load path (upsert on the natural key, duplicate links, one
transaction per chunk) beside a plain COPY of the same rows into the same table.

    python -m bench.load [--rows 20000]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.common import scratch_database
from mediamon import db
from mediamon.db.tables import articles
from mediamon.ingest import load, normalize
from mediamon.ingest.run import CHUNK_SIZE
from mediamon.ingest.sources import Source
from mediamon.models import Article

# Common characters of news text: the synthetic bodies look like Chinese articles.
CHARACTERS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
    "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
    "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
    "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
    "几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器"
    "压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安"
    "场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
    "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
    "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
    "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属"
    "圆包火住调满县局照参红细引听该铁价严"
)


def synthetic_articles(count: int, seed: int = 7) -> list[Article]:
    """``count`` articles of ~1.3 kB text, 5 % of them syndicated copies of earlier ones."""
    rng = random.Random(seed)
    made: list[Article] = []
    for n in range(count):
        if made and rng.random() < 0.05:
            body = rng.choice(made).body_text
        else:
            body = "\n".join(
                "".join(rng.choices(CHARACTERS, k=rng.randint(40, 90))) + "。" for _ in range(6)
            )
        match = normalize.fold(body)
        text_hash, sentences = normalize.duplicate_keys(match)
        made.append(
            Article(
                canonical_url=f"https://news.example.com/{n}.html",
                url=f"https://news.example.com/{n}.html",
                title=f"标题 {n}",
                author=None,
                published_at=datetime(2024, 4, 1, tzinfo=UTC),
                language="zh",
                body_text=body,
                match_text=match,
                summary=None,
                image_url=None,
                categories=(),
                content_origin="page",
                content_hash=text_hash,
                sentence_hashes=sentences,
                raw_sha256=None,
                raw_bytes=None,
            )  # fmt: skip
        )
    return made


def copy_rate(engine: sa.Engine, rows: list[Article], source_id: int) -> float:
    columns = [c.name for c in articles.columns if c.name not in ("article_id", "duplicate_of")]
    now = datetime.now(UTC)
    values = [{**load.article_row(a, source_id, now), "updated_at": now} for a in rows]
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = raw.cursor()
        with cursor.copy(f"copy articles ({', '.join(columns)}) from stdin") as copy:  # type: ignore[attr-defined]
            for row in values:
                copy.write_row([row[c] for c in columns])
        raw.commit()
        return len(rows) / (time.perf_counter() - started)
    finally:
        raw.close()


def mediamon_rate(engine: sa.Engine, rows: list[Article], source_id: int) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, len(rows), CHUNK_SIZE):
        with engine.begin() as conn:
            load.upsert_articles(conn, source_id, rows[start : start + CHUNK_SIZE], now)
    return len(rows) / (time.perf_counter() - started)


def run(count: int) -> list[str]:
    rows = synthetic_articles(count)
    with scratch_database("mediamon_bench_load") as url:
        engine = db.make_engine(url)
        with engine.begin() as conn:
            sid = load.sync_sources(
                conn, [Source(name="bench", kind="feed", location="https://x/")]
            )["bench"]
        # Each twice, alternating, into an empty table; the faster run of each counts
        # (the machine's other work moved single runs by a quarter).
        copy_rates: list[float] = []
        upsert_rates: list[float] = []
        for _ in range(2):
            for rates, measure in ((copy_rates, copy_rate), (upsert_rates, mediamon_rate)):
                with engine.begin() as conn:
                    conn.execute(sa.text("truncate articles restart identity cascade"))
                # New connections: a connection's prepared statements keep the plans made
                # for the table before the truncation, and the lookups ran 4x slower.
                engine.dispose()
                rates.append(measure(engine, rows, sid))
        with engine.connect() as conn:
            copies = conn.execute(sa.text("select count(duplicate_of) from articles")).scalar_one()
        engine.dispose()
    copy, upsert = max(copy_rates), max(upsert_rates)
    return [
        f"Load ({count} articles of ~1.3 kB, {copies} syndicated copies linked)",
        f"  plain COPY into articles             : {copy:9.0f} rows/s",
        f"  mediamon upsert + dedup, {CHUNK_SIZE}/txn    : {upsert:9.0f} rows/s"
        f"  ({upsert / copy:.2f}x of COPY; target >= 0.5x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    print("\n".join(run(parser.parse_args().rows)))


if __name__ == "__main__":
    main()
