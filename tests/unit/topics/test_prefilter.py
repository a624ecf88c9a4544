"""Matching through every rule's words found in one pass: the same mentions as each rule
looking for its own, at a cost that follows the topics an article may mention, not all."""

from __future__ import annotations

import random

from mediamon.models import Article
from mediamon.settings import DEFAULT_CONFIG_DIR
from mediamon.text import fold
from mediamon.topics.definitions import Topic, topic_from_dict
from mediamon.topics.file import load_topics
from mediamon.topics.match import match_article
from mediamon.topics.prefilter import Needles, needles_of
from mediamon.topics.rules import parse_rule
from tests.support.cpu import least_cpu

# Characters the random rules and texts are made of: few, so that words recur.
ALPHABET = "台湾海峡出口管制限美国中芯片 abc"


def random_topics(rng: random.Random, count: int) -> list[Topic]:
    def word() -> str:
        return "".join(rng.choices(ALPHABET.replace(" ", ""), k=rng.randint(1, 3)))

    made = []
    for n in range(count):
        terms = [word(), f"{word()} NEAR/{rng.randint(0, 6)} {word()}",
                 f"({word()}|{rng.choice('abc')}*) NOT {word()}{word()}"]  # fmt: skip
        made.append(topic_from_dict({"key": f"t{n}", "name": "t", "terms": terms,
                                     "exclude": [word() + word()]}))  # fmt: skip
    return made


def test_one_pass_finds_what_each_rule_finds_on_random_rules_and_texts() -> None:
    rng = random.Random(2024)
    for _ in range(20):
        chosen = random_topics(rng, 25)
        needles = needles_of(chosen)
        for _ in range(25):
            title = "".join(rng.choices(ALPHABET, k=rng.randint(0, 12)))
            body = fold("".join(rng.choices(ALPHABET, k=rng.randint(0, 300))))
            assert match_article(chosen, title, body, "zh", "s", needles) == match_article(
                chosen, title, body, "zh", "s"
            ), (title, body, [t.terms for t in chosen])


def test_one_pass_finds_what_each_rule_finds_on_the_seed(built_seed: Article) -> None:
    shipped = list(load_topics(DEFAULT_CONFIG_DIR / "topics.yaml"))
    found = match_article(shipped, built_seed.title, built_seed.match_text, "zh", "rfi",
                          needles_of(shipped))  # fmt: skip
    assert found and found == match_article(
        shipped, built_seed.title, built_seed.match_text, "zh", "rfi"
    )


def test_needles_present_is_substring_containment() -> None:
    rules = [parse_rule("台湾"), parse_rule("湾 NEAR/3 海峡"), parse_rule("export control*")]
    needles = Needles(rules)
    for text in ("", "台", "台湾", "海峡台湾", "exportcontrol", "the export controls", "湾海"):
        words = {n for rule in rules for side in rule.needles for n in side}
        assert needles.present(text) == {n for n in words if n in text}, text


def test_matching_cost_follows_the_topics_an_article_may_mention_not_all() -> None:
    """Before, each rule of each topic read the article for its words: 1,000 topics cost
    an article 100 times what 10 did (0.2 s for an 11,000-character article; a cycle's
    5,000 articles 17 minutes). Now 1,000 topics none of whose words occur cost about
    what 10 do."""
    rng = random.Random(7)
    body = fold("".join(rng.choices("的一是在不了有和人这中大为上个国我以要他时来", k=10_000)))
    absent = [topic_from_dict({"key": f"t{n}", "name": "t",
                               "terms": [f"关税{n}", f"芯片{n} NEAR/5 出口", f"(稀土|锂矿{n})"]})
              for n in range(1_000)]  # fmt: skip
    few, many = absent[:10], absent
    few_needles, many_needles = needles_of(few), needles_of(many)
    match_article(few, "标题", body, "zh", "s", few_needles)  # warm up
    baseline = least_cpu(lambda: match_article(few, "标题", body, "zh", "s", few_needles))
    seconds = least_cpu(lambda: match_article(many, "标题", body, "zh", "s", many_needles))
    assert seconds < 8 * baseline + 0.005, (seconds, baseline)  # before: 100 times


def test_a_batch_of_short_articles_costs_the_topics_they_may_mention_not_all() -> None:
    """Even with every word found in one pass, each article went through every topic to
    rule it out (its words absent, in C): 0.6 ms an article per 1,000 topics, so short
    articles cost what the topics count, not their text (3,000 topics, a full re-match of
    20,000 articles: 40 s of that loop). Now only the topics one of whose words occurs
    are gone through: 5,000 topics that none of 50 short articles mentions cost about
    what 10 do; the mentions are the same."""
    rng = random.Random(11)
    texts = [
        (
            f"标题{n}",
            fold("".join(rng.choices("的一是在不了有和人这中大为上个国我以要他时来", k=300))),
        )
        for n in range(50)
    ]
    mentioned = topic_from_dict({"key": "common", "name": "c", "terms": ["中国"]})
    absent = [topic_from_dict({"key": f"t{n}", "name": "t",
                               "terms": [f"关税{n}", f"芯片{n} NEAR/5 出口", f"(稀土|锂矿{n})"]})
              for n in range(5_000)]  # fmt: skip
    few, many = [mentioned, *absent[:9]], [mentioned, *absent]
    few_needles, many_needles = needles_of(few), needles_of(many)

    def batch(topics: list[Topic], needles: Needles) -> list[dict[str, tuple[int, int]]]:
        return [match_article(topics, title, body, "zh", "s", needles) for title, body in texts]

    found = batch(few, few_needles)  # warm up
    assert (
        batch(many, many_needles)
        == found
        == [match_article(few, t, b, "zh", "s") for t, b in texts]
    )
    assert sum(bool(f) for f in found) > 10  # the common topic is found, the others not
    baseline = least_cpu(lambda: batch(few, few_needles))
    seconds = least_cpu(lambda: batch(many, many_needles))
    assert seconds < 4 * baseline + 0.004, (seconds, baseline)  # before: 60 times, 50 ms
