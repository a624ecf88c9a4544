"""The topics file checks each rule by compiling it, and its topics keep the compiled
rules: each was compiled again for the match version (every sync) and for matching, 50,000
rules of 10,000 topics twice at every alerts and digests run."""

from __future__ import annotations

from typing import Any

import pytest

from mediamon.topics import definitions, file
from mediamon.topics.file import parse_topics
from mediamon.topics.rules import parse_rule

TOPICS = """\
version: 1
topics:
  - {key: taiwan, name: 台湾, terms: [台湾, 'Taiwan NEAR/5 strait*'], exclude: [台湾啤酒]}
  - {key: trade, name: 贸易, terms: ['(出口|进口) NEAR/8 管制', 'export control*']}
"""


def test_each_rule_of_the_file_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []

    def counting(text: str) -> Any:
        compiled.append(text)
        return parse_rule(text)  # the real compiler: this only counts its calls

    monkeypatch.setattr(file, "parse_rule", counting)
    monkeypatch.setattr(definitions, "parse_rule", counting)
    topics = parse_topics(TOPICS)
    for topic in topics:  # what syncing and matching use
        assert topic.match_version and topic.needles
        assert [r.canonical() for r in topic.rules] == [
            parse_rule(t).canonical() for t in topic.terms
        ]
        assert len(topic.exclusions) == len(topic.exclude)
    written = [t for topic in topics for t in (*topic.terms, *topic.exclude)]
    assert sorted(compiled) == sorted(written)


def test_a_topic_takes_only_its_own_number_of_compiled_rules() -> None:
    (topic,) = parse_topics(TOPICS.replace(TOPICS.splitlines()[-1], ""))
    with pytest.raises(ValueError, match="one compiled rule per term"):
        topic.compiled(topic.rules[:1], topic.exclusions)
