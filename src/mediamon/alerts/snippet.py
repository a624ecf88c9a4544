"""Snippets: the sentence (or two) around a topic's first hit in an article, with every hit
in it marked, cut from the text as published (not the folded text the matcher reads).

Pure. The matcher works on ``fold(text)`` (NFKC, case folding, traditional → simplified,
whitespace collapsed), whose offsets are not the original's. :func:`fold_with_offsets`
folds the original one character at a time instead, keeping where each folded character
came from, so a hit found there maps back to the words a reader sees (臺灣 stays 臺灣).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from mediamon.alerts.render import joins_previous
from mediamon.text import DOTTED_I, IGNORABLE, _t2s
from mediamon.topics.rules import Rule

# A snippet longer than this is cut around the hit (characters).
MAX_SNIPPET_CHARS = 160
# A first sentence shorter than this gets the next one too.
SHORT_SENTENCE = 40
# Only the beginning of very long bodies is searched: a snippet is for a mail.
MAX_SEARCH_CHARS = 50_000
# A snippet cut inside a word ("…ord word wor…") moves to the space before (after, at its
# start) when there is one within this many characters; text without spaces (Chinese,
# Japanese) is cut where it is, with its "…".
WORD_BACKOFF_CHARS = 20
# Where a sentence ends. Not at a semicolon, ";" or "；": it joins the clauses of one
# sentence (Chinese news: "他们建议，两岸应……减少误判风险；国际社会也应发挥建设性作用",
# the suggestion is both halves), and text of entities or lists ("台湾 &amp;amp; 美国",
# "a; b; c") holds one in every few words: the snippet was "台湾 &amp;amp;". A sentence
# long for it is cut around the hit anyway (MAX_SNIPPET_CHARS).
SENTENCE_END = re.compile(r"[。！？!?]+[”’」』）)]*|(?<=[.])\s+|\n+")


@dataclass(frozen=True)
class Snippet:
    """Text pieces in order; ``True`` marks a hit of the topic (shown highlighted).

    Attributes:
        parts: (text, is_hit) pairs; the text is untrusted (escape it for HTML).
        leading: The snippet starts inside a sentence (show "…" before it).
        trailing: The snippet stops inside a sentence (show "…" after it).
    """

    parts: tuple[tuple[str, bool], ...]
    leading: bool = False
    trailing: bool = False

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)

    @property
    def hits(self) -> tuple[str, ...]:
        return tuple(text for text, hit in self.parts if hit)


# A character and the combining marks after it are folded together, up to this many
# characters (clean_text keeps runs of 30 marks; a longer run's rest is folded alone).
MAX_CLUSTER_CHARS = 32


def fold_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """Fold ``text`` like :func:`mediamon.text.fold` (without collapsing whitespace:
    the rules accept any run of it), and give for each folded character where the
    original characters it came from start and end."""
    # Each piece is a character and the combining marks after it, as NFKC composes them
    # in fold: half-width ﾃﾞ folded one character at a time was テ and a combining
    # voiced mark, no hit of a term データ that fold(ﾃﾞｰﾀ) matches.
    pieces: list[str] = []
    bounds: list[tuple[int, int]] = []
    for index, char in enumerate(text):
        # An invisible character folds to nothing, as in fold (台\ufe00湾 is a hit of 台湾).
        piece = "" if IGNORABLE.match(char) else unicodedata.normalize("NFKC", char).casefold()
        piece = piece.replace(DOTTED_I, "i")  # İ is i, as in fold
        if (
            piece
            and pieces
            and unicodedata.combining(piece[0])
            and index - bounds[-1][0] < MAX_CLUSTER_CHARS
        ):
            pieces[-1] = unicodedata.normalize("NFKC", pieces[-1] + piece).replace(DOTTED_I, "i")
            bounds[-1] = (bounds[-1][0], index + 1)
        else:
            pieces.append(piece)
            bounds.append((index, index + 1))
    joined = "".join(pieces)
    converted: str = _t2s().convert(joined)  # type: ignore[attr-defined]
    if len(converted) != len(joined):
        # A phrase conversion changed the length: convert each piece on its own (slower,
        # and word-level choices are lost, but the offsets stay exact).
        pieces = [_t2s().convert(p) for p in pieces]  # type: ignore[attr-defined]
        converted = "".join(pieces)
    starts: list[int] = []
    ends: list[int] = []
    for (first, last), piece in zip(bounds, pieces, strict=True):
        starts.extend([first] * len(piece))
        ends.extend([last] * len(piece))
    return converted, starts, ends


def hit_spans(rules: Sequence[Rule], text: str) -> list[tuple[int, int]]:
    """Occurrences of ``rules`` in ``text`` as (start, end) offsets of the original text,
    overlapping ones merged, in order."""
    folded, starts, ends = fold_with_offsets(text[:MAX_SEARCH_CHARS])
    if not folded:
        return []
    found = sorted(s for rule in rules if rule.possible(folded) for s in rule.spans(folded))
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if end <= start:
            continue
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [(starts[start], ends[end - 1]) for start, end in merged]


def _sentences(text: str) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if match.end() > start:
            bounds.append((start, match.end()))
            start = match.end()
    if start < len(text):
        bounds.append((start, len(text)))
    return bounds


def _whole_words(text: str, start: int, end: int, hit: tuple[int, int]) -> tuple[int, int]:
    """``text[start:end]``'s bounds moved inward, never past the first ``hit``, so that
    the snippet neither splits a character a reader sees as one (an emoji family ended in
    "👨‍👩‍" and its dangling joiner, an "é" lost its accent: cut between the code points
    of one cluster) nor, in text written with spaces, a word ("wor…")."""
    while start < hit[0] and joins_previous(text, start):
        start += 1
    while end > hit[1] and end < len(text) and joins_previous(text, end):
        end -= 1
    if start > 0 and _inside_word(text, start):
        space = _first_space(text, start, min(hit[0], start + WORD_BACKOFF_CHARS))
        start = space + 1 if space >= 0 else start
    if end < len(text) and _inside_word(text, end):
        space = _last_space(text, max(hit[1], end - WORD_BACKOFF_CHARS), end)
        end = space if space >= 0 else end
    return start, end


def _inside_word(text: str, index: int) -> bool:
    """Whether ``index`` falls inside a word (or a URL) of a script written with spaces:
    between two characters that are no space, not between two Chinese characters, each
    a word of its own."""
    return all(
        not c.isspace() and unicodedata.east_asian_width(c) not in ("W", "F")
        for c in (text[index - 1], text[index])
    )


def _first_space(text: str, start: int, end: int) -> int:
    return next((i for i in range(start, end) if text[i].isspace()), -1)


def _last_space(text: str, start: int, end: int) -> int:
    return next((i for i in range(end - 1, start - 1, -1) if text[i].isspace()), -1)


def make_snippet(rules: Sequence[Rule], text: str | None) -> Snippet | None:
    """The sentence around the first hit of ``rules`` in ``text`` (two when the first is
    short), at most :data:`MAX_SNIPPET_CHARS` around the hit, hits marked; None when
    ``text`` has no hit."""
    if not text:
        return None
    spans = hit_spans(rules, text)
    if not spans:
        return None
    first_start, first_end = spans[0]
    sentences = _sentences(text)
    which = next(i for i, (s, e) in enumerate(sentences) if s <= first_start < e)
    start, end = sentences[which]
    if end - start < SHORT_SENTENCE and which + 1 < len(sentences):
        end = sentences[which + 1][1]
    leading = trailing = False
    if end - start > MAX_SNIPPET_CHARS:
        # Keep the hit about a third of the way in: the reader sees what leads up to it.
        room = MAX_SNIPPET_CHARS - (first_end - first_start)
        new_start = max(start, first_start - room // 3)
        new_end = min(end, new_start + MAX_SNIPPET_CHARS)
        new_start = max(start, min(new_start, new_end - MAX_SNIPPET_CHARS))
        new_start, new_end = _whole_words(text, new_start, new_end, (first_start, first_end))
        leading, trailing = new_start > start, new_end < end
        start, end = new_start, new_end
    parts: list[tuple[str, bool]] = []
    position = start
    for hit_start, hit_end in spans:
        if hit_end <= start or hit_start >= end:
            continue
        hit_start, hit_end = max(hit_start, start), min(hit_end, end)
        if hit_start > position:
            parts.append((text[position:hit_start], False))
        parts.append((text[hit_start:hit_end], True))
        position = hit_end
    if position < end:
        parts.append((text[position:end], False))
    # Whitespace at the edges (line breaks between sentences) means nothing in a mail.
    if parts and not parts[0][1]:
        parts[0] = (parts[0][0].lstrip(), False)
    if parts and not parts[-1][1]:
        parts[-1] = (parts[-1][0].rstrip(), False)
    return Snippet(tuple(p for p in parts if p[0]), leading, trailing)


def mark_hits(rules: Sequence[Rule], text: str | None) -> Snippet | None:
    """All of ``text`` (a title) with every hit of ``rules`` marked; None without a hit."""
    if not text:
        return None
    spans = hit_spans(rules, text)
    if not spans:
        return None
    parts: list[tuple[str, bool]] = []
    position = 0
    for start, end in spans:
        if start > position:
            parts.append((text[position:start], False))
        parts.append((text[start:end], True))
        position = end
    if position < len(text):
        parts.append((text[position:], False))
    return Snippet(tuple(parts))
