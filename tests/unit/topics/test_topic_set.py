"""A topic set looked up by key: each look-up costs the same however many topics there are."""

from __future__ import annotations

from mediamon.topics.definitions import TopicSet, topic_from_dict
from tests.support.cpu import least_cpu


def test_looking_up_every_topic_grows_linearly_with_the_topics() -> None:
    """Each look-up scanned the topics: detection (once per topic tested) and the digest
    (once per topic of a recipient) were quadratic, 3,000 topics 4.5 million comparisons
    in each run. Now 6,000 topics cost about six times what 1,000 do, not 36."""
    made = [
        topic_from_dict({"key": f"t{n:05d}", "name": "t", "terms": ["词"]}) for n in range(6_000)
    ]
    few, many = TopicSet(tuple(made[:1_000])), TopicSet(tuple(made))

    def look_up_all(topics: TopicSet) -> list[object]:
        keys = [t.key for t in topics]
        return [topics.get(key) for key in keys]

    assert look_up_all(many) == made and many.get("missing") is None
    baseline = least_cpu(lambda: look_up_all(few))
    seconds = least_cpu(lambda: look_up_all(many))
    assert seconds < 14 * baseline + 0.002, (seconds, baseline)  # before: 25-36 times, 1 s


def test_the_first_of_two_topics_with_one_key_is_found_as_before() -> None:
    first, second = (topic_from_dict({"key": "k", "name": n, "terms": ["词"]}) for n in "ab")
    assert TopicSet((first, second)).get("k") is first
