"""The topic rule language: a rule's syntax, parsed into a compiled matcher.

Pure: no database here (see :mod:`mediamon.topics.store`). The rule syntax is documented in
``docs/topics.md``; in short, each entry of a topic's ``terms`` is one rule::

    台湾                      a term (matched on the folded text: 臺灣, ｔａｉｗａｎ, ... alike)
    export control*           Latin words; * continues a Latin word (controls, controlled)
    限制 NEAR/8 出口           both within 8 characters (CJK) or 8 words (Latin), either order
    (限制|管制) NEAR/5 出口    alternatives in parentheses
    台海 NOT 台海网            drop occurrences that overlap an occurrence of 台海网
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cached_property
from itertools import islice

from mediamon.text import fold

logger = logging.getLogger(__name__)

MAX_NEAR = 200
# A term's occurrences in one text are counted up to here. A keyword-stuffed article (台湾
# 100,000 times, 200,000 characters) cost each topic naming it 0.7 s, to count hits no
# real article has; real articles name a topic a few dozen times at most.
MAX_TERM_HITS = 1_000
# One (a|b|…) is one regular expression: 100,000 alternatives took 37 s to compile and
# 16 s an article to match; real rules list a few dozen.
MAX_ALTERNATIVES = 500
# Letters and digits that form Latin, Greek or Cyrillic words (after case folding): a term
# that begins or ends with one must not continue a longer word (taiwan ≠ taiwanese).
ALNUM = "0-9a-z\u00c0-\u02af\u0370-\u03ff\u0400-\u04ff"
ALNUM_CHAR = re.compile(f"[{ALNUM}]")
CJK_CHAR = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]"
)
WORD = re.compile(r"\w+")
NON_SPACE = re.compile(r"\S")
TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"[^"]*")
      | (?P<near>NEAR/(?P<distance>\d+))(?=[\s("]|$)
      | (?P<not>NOT)(?=[\s("]|$)
      | (?P<reserved>AND|OR)(?=[\s("]|$)
      | (?P<open>\()
      | (?P<close>\))
      | (?P<bar>\|)
      | (?P<word>[^\s()|"]+)
    )""",
    re.VERBOSE,
)
# A rule quoted in an error is cut here.
MAX_SHOWN_CHARS = 80
# An operator written otherwise than NEAR/n or NOT: in lower case, or a NEAR whose distance
# is no number (NEAR/-1, NEAR/+3, NEAR/x). Read as text, such a rule was one phrase,
# "a near/-1 b", which no article holds: the topic matched nothing, without a word.
LOWER_OPERATOR = re.compile(r"(?i)^(near/.*|not)$|near/\d")
# NEAR in capitals without its distance ("台湾 NEAR 选举"): the same silent phrase.
BARE_NEAR = "NEAR"


class RuleError(ValueError):
    """A rule cannot be parsed; the message says why (the caller adds file and line)."""


@dataclass(frozen=True)
class Operand:
    """One side of a rule: a phrase, or alternatives ``(a|b|c)``, all folded."""

    phrases: tuple[str, ...]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        # Longest first, so the alternation prefers 台湾海峡 over 台湾 at the same place.
        ordered = sorted(self.phrases, key=lambda p: (-len(p), p))
        return re.compile("|".join(_phrase_regex(p) for p in ordered))

    @property
    def has_cjk(self) -> bool:
        return any(CJK_CHAR.search(p) for p in self.phrases)

    def canonical(self) -> str:
        quoted = [_quote(p) for p in self.phrases]
        return quoted[0] if len(quoted) == 1 else "(" + "|".join(quoted) + ")"


@dataclass(frozen=True)
class Rule:
    """A compiled rule: ``first [NEAR/n second] [NOT excluded ...]``.

    Attributes:
        first: The term, or the first side of a proximity rule.
        second: The other side of a proximity rule, else None.
        distance: The NEAR distance, else None.
        excluded: Occurrences overlapping any of these are dropped.
    """

    first: Operand
    second: Operand | None = None
    distance: int | None = None
    excluded: tuple[Operand, ...] = ()

    @property
    def unit(self) -> str:
        """``chars`` when either side has CJK text, else ``words``."""
        sides = [self.first] + ([self.second] if self.second else [])
        return "chars" if any(s.has_cjk for s in sides) else "words"

    def canonical(self) -> str:
        """The normalized text of the rule (the form that is hashed into the version)."""
        text = self.first.canonical()
        if self.second is not None:
            text += f" NEAR/{self.distance} {self.second.canonical()}"
        for operand in self.excluded:
            text += f" NOT {operand.canonical()}"
        return text

    @cached_property
    def needles(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Words the rule cannot occur without: one of the first side's, and one of the
        second's if it has one."""

        # A phrase cannot occur without its longest word: a plain substring test (in C)
        # rules out most texts before any regular expression runs.
        def words(operand: Operand | None) -> tuple[str, ...]:
            if operand is None:
                return ()
            return tuple({max(p.replace("*", "").split(" "), key=len) for p in operand.phrases})

        return words(self.first), words(self.second)

    def possible(self, text: str, present: AbstractSet[str] | None = None) -> bool:
        """False when the rule certainly does not occur in ``text`` (a cheap test).

        Args:
            text: The folded text.
            present: The needles found in ``text`` (:class:`mediamon.topics.prefilter.Needles`
                over this rule, among others); None: look for them here.
        """
        first, second = self.needles
        if present is None:
            return any(n in text for n in first) and (not second or any(n in text for n in second))
        return any(n in present for n in first) and (
            not second or any(n in present for n in second)
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Occurrences of the rule in a folded text, as (start, end) offsets; the first
        :data:`MAX_TERM_HITS` only, unless exclusions may drop some."""
        limit = MAX_TERM_HITS if not self.excluded else None
        firsts = (m.span() for m in self.first.pattern.finditer(text))
        if self.second is not None and self.distance is not None:
            # Both sides read only as far as the pairs need: a stuffed article's 100,000
            # pairs cost 0.7 s a rule, to count hits past the cap.
            others = (m.span() for m in self.second.pattern.finditer(text))
            found = _near(text, firsts, others, self.distance, self.unit, limit)
        else:
            found = list(islice(firsts, limit))
        for operand in self.excluded:
            if not found:
                break
            found = _not_overlapping(found, [m.span() for m in operand.pattern.finditer(text)])
        return found


def parse_rule(text: str) -> Rule:
    """Parse one rule (see ``docs/topics.md``).

    Raises:
        RuleError: the rule is empty, uses an unknown operator, or is malformed.
    """
    source = unicodedata.normalize("NFKC", text).strip()
    if not source:
        raise RuleError("empty rule")
    tokens = _tokenize(source)
    position = 0

    def operand() -> Operand:
        nonlocal position
        if position >= len(tokens):
            raise RuleError(f"{_shown(source)}: a term is missing at the end")
        kind, value = tokens[position]
        if kind == "phrase":
            position += 1
            return Operand((value,))
        if kind != "open":
            raise RuleError(f"{_shown(source)}: expected a term before {_shown(value)}")
        position += 1
        phrases: list[str] = []
        while True:
            if position >= len(tokens) or tokens[position][0] != "phrase":
                raise RuleError(f"{_shown(source)}: expected a term inside ( | )")
            phrases.append(tokens[position][1])
            position += 1
            if position >= len(tokens):
                raise RuleError(f"{_shown(source)}: ( without )")
            kind, value = tokens[position]
            position += 1
            if kind == "close":
                break
            if kind != "bar":
                raise RuleError(
                    f"{_shown(source)}: expected | or ) inside parentheses, got {_shown(value)}"
                )
            if len(phrases) >= MAX_ALTERNATIVES:
                raise RuleError(
                    f"{_shown(source)}: more than {MAX_ALTERNATIVES} alternatives in one ( | );"
                    " split them over several terms"
                )
        return Operand(tuple(sorted(set(phrases))))

    first = operand()
    second: Operand | None = None
    distance: int | None = None
    excluded: list[Operand] = []
    while position < len(tokens):
        kind, value = tokens[position]
        position += 1
        if kind == "near":
            if second is not None or excluded:
                raise RuleError(f"{_shown(source)}: only one NEAR per rule, before any NOT")
            # Few digits reach int(): 5,000 of them raised its ValueError (no RuleError,
            # so no line naming the file, and `mediamon ingest` refused to plan).
            distance = int(value) if len(value) <= len(str(MAX_NEAR)) else MAX_NEAR + 1
            if not 0 <= distance <= MAX_NEAR:
                raise RuleError(f"{_shown(source)}: NEAR distance must be 0 to {MAX_NEAR}")
            second = operand()
        elif kind == "not":
            excluded.append(operand())
        else:
            raise RuleError(f"{_shown(source)}: expected NEAR/n or NOT, got {_shown(value)}")
    return Rule(first, second, distance, tuple(excluded))


def _shown(source: str) -> str:
    """A rule quoted in an error, cut: a term may be a megabyte, and the error one line."""
    return repr(source) if len(source) <= MAX_SHOWN_CHARS else f"{source[:MAX_SHOWN_CHARS]!r}…"


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    words: list[str] = []

    def flush() -> None:
        if words:
            phrase = _fold_phrase(" ".join(words), source)
            tokens.append(("phrase", phrase))
            words.clear()

    position = 0
    while position < len(source):
        match = TOKEN.match(source, position)
        if match is None or match.end() == position:
            break  # only trailing whitespace is left
        position = match.end()
        if match.group("quoted") is not None:
            flush()
            inner = match.group("quoted")[1:-1]
            if not inner.strip():
                raise RuleError(f"{_shown(source)}: empty quotes")
            words.append(inner)
            flush()
        elif match.group("word") is not None:
            word = match.group("word")
            if word == BARE_NEAR or word.startswith(f"{BARE_NEAR}/"):
                raise RuleError(
                    f"{_shown(source)}: NEAR needs its distance, a whole number from 0 to"
                    f" {MAX_NEAR} such as NEAR/8 (within 8 characters or words), or quote the"
                    f" text; got {_shown(word)}"
                )
            if LOWER_OPERATOR.search(word):
                raise RuleError(
                    f"{_shown(source)}: write operators in capitals between spaces "
                    f"(NEAR/8, NOT), or quote the text; got {_shown(word)}"
                )
            words.append(word)
        elif match.group("reserved") is not None:
            raise RuleError(
                f"{_shown(source)}: {match.group('reserved')} is not an operator here: list "
                "alternatives as separate terms or (a|b), use NEAR/n for co-occurrence, "
                "or quote the word"
            )
        else:
            flush()
            kind = next(k for k in ("near", "not", "open", "close", "bar") if match.group(k))
            value = match.group("distance") if kind == "near" else match.group(kind)
            tokens.append((kind, value))
    flush()
    return tokens


def _fold_phrase(raw: str, source: str) -> str:
    phrase = " ".join(fold(raw).split())
    if not phrase:
        raise RuleError(f"{_shown(source)}: a term folds to nothing")
    # Letters, digits or symbols (emoji, ¥): a term of punctuation or combining marks
    # alone (。 , ! or U+0301) matches nearly every article, each sentence end a hit.
    if not any(unicodedata.category(c)[0] in "LNS" for c in phrase):
        raise RuleError(
            f"{_shown(source)}: a term needs a letter, digit or symbol; punctuation alone"
            f" ({phrase!r}) would match nearly every article"
        )
    for word in phrase.split(" "):
        stem = word[:-1] if word.endswith("*") else word
        if "*" in stem or (word.endswith("*") and not (stem and ALNUM_CHAR.match(stem[-1]))):
            raise RuleError(
                f"{_shown(source)}: * may only end a Latin word or number ({_shown(word)})"
            )
    return phrase


def _phrase_regex(phrase: str) -> str:
    words = phrase.split(" ")
    parts: list[str] = []
    for index, word in enumerate(words):
        if index:
            # Chinese needs no spaces: a space next to a CJK character is optional.
            between = words[index - 1][-1] + word[0]
            parts.append(r"\s*" if CJK_CHAR.search(between) else r"\s+")
        if word.endswith("*"):
            parts.append(re.escape(word[:-1]) + f"[{ALNUM}]*")
        else:
            parts.append(re.escape(word))
    pattern = "".join(parts)
    if ALNUM_CHAR.match(phrase[0]):
        pattern = f"(?<![{ALNUM}])" + pattern
    if ALNUM_CHAR.match(phrase[-1]) or phrase.endswith("*"):
        pattern += f"(?![{ALNUM}])"
    return pattern


def _quote(phrase: str) -> str:
    plain = (
        " " not in phrase
        and not any(c in phrase for c in '()|"')
        and not (LOWER_OPERATOR.search(phrase) or phrase in ("and", "or"))
    )
    return phrase if plain else f'"{phrase}"'


def _not_overlapping(
    spans: list[tuple[int, int]], blocked: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The spans that overlap none of ``blocked``, a regular expression's matches: in
    order and apart, so their ends are sorted too, and the one blocked span that can
    overlap a span is the first that ends after it starts (comparing every pair took a
    minute on a hostile article of 40,000 of each)."""
    starts = [start for start, _ in blocked]
    ends = [end for _, end in blocked]
    kept = []
    for start, end in spans:
        first = bisect.bisect_right(ends, start)
        if first == len(blocked) or starts[first] >= end:
            kept.append((start, end))
    return kept


def _gap_units(text: str, start: int, end: int, unit: str, limit: int) -> int:
    """The size of ``text[start:end]`` in words, or in characters other than whitespace,
    counted up to ``limit + 1`` only: with the whole gap counted, a hostile article of
    60,000 occurrences of the first term and one of the second, at its end, took 36 s."""
    units = (WORD if unit == "words" else NON_SPACE).finditer(text, start, end)
    return sum(1 for _ in islice(units, limit + 1))


def _near(
    text: str,
    firsts: Iterable[tuple[int, int]],
    seconds: Iterator[tuple[int, int]],
    distance: int,
    unit: str,
    limit: int | None = None,
) -> list[tuple[int, int]]:
    """Spans covering each first occurrence and its closest second within ``distance``;
    the first ``limit`` of them when a limit is given.

    Both sides are a regular expression's matches: in order and apart, so the seconds'
    starts and ends are sorted alike, and they are read only as far as the firsts reach.
    """
    starts: list[int] = []
    ends: list[int] = []
    read: list[tuple[int, int]] = []
    result: list[tuple[int, int]] = []
    for a_start, a_end in firsts:
        # Read the seconds up to the first one starting after this first occurrence.
        while not starts or starts[-1] < a_end:
            following = next(seconds, None)
            if following is None:
                break
            starts.append(following[0])
            ends.append(following[1])
            read.append(following)
        if not read:
            return []  # no second occurrence at all
        candidates: list[tuple[int, tuple[int, int]]] = []
        # The nearest second after the first starts first; the nearest before ends last.
        after = bisect.bisect_left(starts, a_end)
        if after < len(read):
            b_start, b_end = read[after]
            candidates.append((_gap_units(text, a_end, b_start, unit, distance), (a_start, b_end)))
        before = bisect.bisect_right(ends, a_start) - 1
        if before >= 0:
            b_start, b_end = read[before]
            candidates.append((_gap_units(text, b_end, a_start, unit, distance), (b_start, a_end)))
        if candidates:
            gap, span = min(candidates)
            if gap <= distance:
                result.append(span)
                if len(result) == limit:
                    break
    return result


def count_hits(spans: Iterable[tuple[int, int]]) -> int:
    """Occurrences counted once each: overlapping spans (台湾 inside 台湾海峡, two NEAR
    pairs sharing a word) merge into one."""
    count = 0
    last_end = -1
    for start, end in sorted(spans):
        if start >= last_end:
            count += 1
        last_end = max(last_end, end)
    return count


# ---------------------------------------------------------------------------------------
# Topics
