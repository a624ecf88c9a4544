"""Topic matching as the number of topics grows: CPU per article with every rule's words
found in one pass (``mediamon.topics.prefilter``, what ``match_articles`` does) beside each
rule looking for its own words, the way it was before, on the same articles and topics.

    python -m bench.matching [--articles 300] [--topics 10,100,1000]
"""

from __future__ import annotations

import argparse
import random
import time

from bench.load import CHARACTERS, synthetic_articles
from mediamon.topics.definitions import Topic, topic_from_dict
from mediamon.topics.match import match_article, needles_of


def topics(count: int, seed: int = 11) -> list[Topic]:
    """Topics of four rules each, as users write them: a name, a NEAR pair, alternatives,
    an exclusion; words of two or three common characters, so some occur in the text."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choices(CHARACTERS, k=rng.choice((2, 3))))

    return [
        topic_from_dict({
            "key": f"topic{n}",
            "name": f"topic {n}",
            "terms": [word(), f"{word()} NEAR/10 {word()}", f"({word()}|{word()})",
                      "export control*"],
            "exclude": [f"{word()}{word()}"],
        })
        for n in range(count)
    ]  # fmt: skip


def run(articles: int = 300, sizes: tuple[int, ...] = (10, 100, 1_000)) -> list[str]:
    texts = [(a.title, a.match_text) for a in synthetic_articles(articles)]
    lines = [
        f"{articles} articles; CPU per article in ms",
        f"{'topics':>7} {'one pass':>9} {'per rule (before)':>18} {'ratio':>6} {'mentions':>9}",
    ]
    for size in sizes:
        chosen = topics(size)
        needles = needles_of(chosen)
        timings, mentions = [], []
        for given in (needles, None):
            started = time.process_time()
            found = [match_article(chosen, title, text, "zh", "s", given) for title, text in texts]
            timings.append((time.process_time() - started) / len(texts) * 1000)
            mentions.append(sum(len(f) for f in found))
        assert mentions[0] == mentions[1], mentions  # the same answers, or the figure is void
        lines.append(
            f"{size:>7,} {timings[0]:>9.2f} {timings[1]:>18.2f}"
            f" {timings[0] / max(timings[1], 1e-9):>6.2f} {mentions[0]:>9,}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--topics", default="10,100,1000", help="comma-separated counts")
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.topics.split(","))
    print("\n".join(run(max(1, args.articles), sizes)))


if __name__ == "__main__":
    main()
