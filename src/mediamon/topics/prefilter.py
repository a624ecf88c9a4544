"""Which rules an article could match, from one pass over its text.

Each rule has needles, words it cannot occur without (:attr:`Rule.needles`). Looking for
every needle of every topic one ``in`` at a time read the article once per needle: 0.2 s an
article at 1,000 topics, a 15-minute cycle's 5,000 articles in 17 minutes. An Aho-Corasick
automaton over all of them (ahocorasick-rs) finds the ones present in a single pass, and
only rules whose needles are present run their regular expressions.

The automaton reports every needle at every place it ends, so its cost is the text's
length times the needles ending at one place: the needles that are suffixes of one another
(`湾`, `台湾`, `中国台湾`: three). Real word lists nest a few deep; a topics file of `台`,
`台台`, … 200 deep made one article of 200,000 `台` cost 90 s and 15 GB. Needles nested
deeper than :data:`MAX_NESTED` are looked for one ``in`` each instead, as before the
automaton, which bounds the automaton's reports at that many per character.

Over many topics (:class:`TopicNeedles`), the words found also say which topics to try:
only those one of whose words occurs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import ahocorasick_rs

from mediamon.topics.definitions import Topic
from mediamon.topics.rules import Rule

# Needles ending at one place of a text, at most, that the automaton reports.
MAX_NESTED = 16


class Needles:
    """The needles of a set of rules, searched for together."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        words = {n for rule in rules for side in rule.needles for n in side}
        # The empty word occurs in every text, and an automaton refuses it.
        self._always = frozenset(w for w in words if not w)
        self._nested = _nested_too_deep(w for w in words if w)
        searched = sorted(w for w in words if w and w not in self._nested)
        # store_patterns: a match is the stored needle, not a new slice of the text.
        # ContiguousNFA, not the library's choice: for a few needles it builds a DFA,
        # whose cost grows with the square of a needle's length when the needle repeats
        # itself (one term of 16,000 `台` in topics.yaml: 17 s, at every match run).
        self._automaton = (
            ahocorasick_rs.AhoCorasick(
                searched,
                matchkind=ahocorasick_rs.MatchKind.Standard,
                store_patterns=True,
                implementation=ahocorasick_rs.Implementation.ContiguousNFA,
            )
            if searched
            else None
        )

    def present(self, text: str) -> frozenset[str]:
        """The needles that occur in ``text`` (the same answer as ``needle in text``)."""
        if not text:
            return self._always
        found = self._always.union(w for w in self._nested if w in text)
        if self._automaton is None:
            return found
        return found.union(self._automaton.find_matches_as_strings(text, overlapping=True))


class TopicNeedles(Needles):
    """The words of every rule and exclusion of some topics, and which topics each word
    may bring in (a topic's :attr:`Topic.needles`, one of which occurs wherever it does)."""

    def __init__(self, topics: Iterable[Topic]) -> None:
        self._topics = tuple(topics)
        super().__init__(r for t in self._topics for r in (*t.rules, *t.exclusions))
        self._by_word: dict[str, list[int]] = defaultdict(list)
        for index, topic in enumerate(self._topics):
            for word in topic.needles:
                self._by_word[word].append(index)

    def topics_with(self, words: Iterable[str]) -> list[Topic]:
        """The topics one of whose words is among ``words``, in their given order."""
        chosen: set[int] = set()
        for word in words:
            chosen.update(self._by_word.get(word, ()))
        return [self._topics[i] for i in sorted(chosen)]


def needles_of(topics: Iterable[Topic]) -> TopicNeedles:
    """The words of every rule and exclusion of ``topics``, for
    :func:`mediamon.topics.match.match_article`."""
    return TopicNeedles(topics)


def _nested_too_deep(words: Iterable[str]) -> frozenset[str]:
    """The words that end with more than :data:`MAX_NESTED` - 1 of the other ``words``.

    Reversed, a word's suffixes are its prefixes, and in sorted order the words starting
    with a prefix follow it: a stack of the prefixes of the current word, in one pass.
    """
    prefixes: list[str] = []
    deep = set()
    for reversed_word in sorted(w[::-1] for w in words):
        while prefixes and not reversed_word.startswith(prefixes[-1]):
            prefixes.pop()
        prefixes.append(reversed_word)
        if len(prefixes) > MAX_NESTED:
            deep.add(reversed_word[::-1])
    return frozenset(deep)
