"""Which candidate text is the article: evidence that transfers across sites, not length.

Two extractors read every page (see :mod:`mediamon.ingest.candidates`): trafilatura in
precision mode and readability-lxml. Where they agree, either will do. Where they
differ, the lines one has and the other lacks decide: lines that are article text read
as sentences (sentence punctuation, few of them repeating the page's link texts), while
navigation, lists of other articles, tag clouds and comment widgets are short lines that
repeat what the page's links say. Each candidate's "own" lines are described by

* ``link``: the share of their characters in lines that are a link text of the page;
* ``prose``: the share of their characters in lines with sentence punctuation that are
  not link text;
* ``repeated``: the share of their characters in lines the candidate has more than once
  (a gallery's caption per slide, a teaser shown twice);
* ``comment``: the share of their characters in lines that lie in the page's blocks of
  readers' comments (class or id names, see :func:`mediamon.ingest.candidates.readability_read`):
  comments read as prose, and precision mode keeps a comment list on some sites;

and the choice is a logistic model over the difference of the two sides
(readability's own lines minus precision's), plus how much of each text the other one
covers. Its few coefficients are fit with leave-one-site-out cross-validation over the
development corpora (``python -m bench.extraction_cv``), which prints the
cross-validated F1 beside the in-sample F1; the ones below are the fit on all sites.

When readability's text wins, the lead paragraphs it missed (prose lines precision has
before the first line both share: some sites set the lead apart from the body) are put
back in front of it.

A candidate with no text at all loses to one with text; when both are empty the caller
runs trafilatura's balanced mode (the first two missed the text, that is evidence). A
short text is never replaced for being short: a brief news item of 150 characters that
both extractors find is the article, however long the page around it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

# Tokens compared between candidates: a CJK character, or a word of other scripts.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|\w+")
# A line that reads as a sentence: CJK sentence marks anywhere, the full stops and commas
# of other scripts (Arabic and Urdu ۔ ، ؟ ؛, Devanagari । ॥, Armenian ։, Ethiopic ።,
# Myanmar ။, Khmer ។) anywhere, Latin ones at a word end. Without the others, an Urdu
# article's paragraphs read as no prose at all and lost to a headline list.
_SENTENCE = re.compile(
    r"[。！？；，]|[\u06d4\u060c\u061f\u061b\u0964\u0965\u0589\u1362\u104b\u17d4]"
    r"|[.!?;,](?=\s|$|[\"'”’)])"
)
# Readability lacks a missed lead paragraph: it has less than _LACKING of the lead's runs
# of _SHINGLE characters (the lead's least length is the model's ``lead``).
_LACKING = 0.5
_SHINGLE = 8
# Link texts are indexed by their first characters (the shortest kept has four).
_PREFIX = 4
# A link text is the page's own headline when it is at least this long, lies inside the
# title and makes up at least half of it (the title may carry the site's name after it).
_HEADLINE_LINK_MIN_CHARS = 8
# The evidence is read from each text's first characters only: an article's beginning
# tells which block it is, and comparing lines costs time that grows with the square of
# the text (a hostile page of 50,000 lines took minutes). The longest candidate on the
# development pages has 53,000 characters; mediamon stores 200,000 at most.
MAX_COMPARED_CHARS = 100_000
# Editor and source credits of Chinese news ("责任编辑：张申", "本文来源：证券市场红周刊").
# The references keep them: stripping them at the text's edges raised no labelled corpus
# and lowered gne_silver and cwced (mediamon.ingest.extract keeps the kind, and the bench
# can toggle it). A credit whose value is a link (the source's name linked to its site)
# is no menu entry: :func:`drop_navigation` leaves it.
CREDIT_PATTERNS = (
    r"^[(（\[【]?\s*(责任编辑|责编|编辑|值班编辑|实习编辑|主编|审核|审校|校对|排版|监制|"
    r"本文来源|文章来源|稿件来源|新闻来源|来源)\s*[:：]",
    r"^[(（\[【]?\s*(责任编辑|责编)\s*\S{1,12}\s*[)）\]】]?$",
)
_CREDIT_LINE = re.compile("|".join(f"(?:{p})" for p in CREDIT_PATTERNS))


def is_credit(line: str) -> bool:
    """Whether a line is an editor's or a source's credit (CREDIT_PATTERNS)."""
    return bool(_CREDIT_LINE.match(line.strip()))


FEATURES = ("covered_p", "covered_r", "own_size", "prose", "link", "repeated", "comment")


@dataclass(frozen=True)
class Model:
    """The chooser's fitted parameters.

    Attributes:
        intercept, weights: The logistic model over :data:`FEATURES`: readability's text
            wins where ``intercept + weights·x > 0``.
        navigation: Lines whose link share (see :func:`link_share`) reaches this are
            dropped from both candidates first; None keeps them.
        l2: The ridge penalty the weights were fit with (a record of the fit).
        lead: The least length of a lead paragraph put back in front of readability's
            text (:func:`with_missed_lead`; shorter prose lines are datelines); None
            puts none back.
    """

    intercept: float
    weights: tuple[float, ...]
    navigation: float | None = None
    l2: float = 1.0
    lead: int | None = None

    def score(self, features: Sequence[float]) -> float:
        return self.intercept + sum(w * x for w, x in zip(self.weights, features, strict=True))


# The fit on all development sites that ``python -m bench.extraction_quality`` prints
# ("Fit on all sites", see the module documentation) beside its cross-validated figures.
MODEL = Model(
    intercept=-2.467,
    weights=(3.659, -0.537, -1.880, 4.157, 0.000, -3.303, -2.605),
    navigation=0.5,
    l2=0.3,
    lead=None,
)


@dataclass(frozen=True)
class Choice:
    """The chosen text, its candidate's name, and the features that chose it."""

    text: str
    name: str
    features: tuple[float, ...] | None = None


def _flat(text: str) -> str:
    """The text without whitespace (str.split's whitespace is the regex ``\\s``)."""
    return "".join(text.split())


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def _shared(a: Counter[str], b: Counter[str]) -> int:
    """How many tokens two texts have in common, with their counts (the smaller text's
    tokens are looked up in the larger's)."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(min(count, large[token]) for token, count in small.items())


def _own_lines(lines: list[str], other: str) -> list[str]:
    """Lines of a candidate that the other candidate does not contain."""
    # Most lines are lines of the other text too: a set answers those at once, and only
    # the rest are searched for in the whole text (a search per line made a page of
    # 50,000 lines take minutes).
    other_lines = {_flat(line) for line in other.splitlines()}
    other_flat = _flat(other)
    return [
        line
        for line in lines
        if (flat := _flat(line)) not in other_lines and flat not in other_flat
    ]


class LinkTexts:
    """The page's link texts (whitespace removed), indexed for :func:`link_share`."""

    def __init__(self, texts: frozenset[str]) -> None:
        self.texts = texts
        self._found: dict[str, int] = {}  # longest_in by line: both candidates share lines
        # The lengths of the link texts that begin with each prefix, longest first: a
        # line is searched for each length, not each text (10,000 links sharing their
        # first characters made every line position compare 10,000 texts).
        lengths: dict[str, set[int]] = {}
        self._longest = max(map(len, texts), default=0)
        for text in texts:
            lengths.setdefault(text[:_PREFIX], set()).add(len(text))
        self._lengths = {prefix: sorted(found, reverse=True) for prefix, found in lengths.items()}

    def __bool__(self) -> bool:
        return bool(self.texts)

    def longest_in(self, flat: str) -> int:
        """Length of the longest link text inside ``flat`` that is at least half of it."""
        found = self._found.get(flat)
        if found is None:
            found = self._found[flat] = self._longest_in(flat)
        return found

    def _longest_in(self, flat: str) -> int:
        if flat in self.texts:
            return len(flat)
        if len(flat) > 2 * self._longest:  # a paragraph longer than any link text allows
            return 0
        best = 0
        # a link text of at least half the line starts in its first half
        for start in range(len(flat) // 2 + 1):
            for length in self._lengths.get(flat[start : start + _PREFIX], ()):
                if length <= best or 2 * length < len(flat):
                    break
                if start + length <= len(flat) and flat[start : start + length] in self.texts:
                    best = length
                    break
        return best


def link_share(line: str, link_texts: LinkTexts) -> float:
    """Share of a line's characters that one link text of the page makes up (the longest
    link text inside the line, if it is at least half of it: a headline with its date)."""
    flat = _flat(line)
    return link_texts.longest_in(flat) / len(flat) if flat else 0.0


def not_the_headline(link_texts: frozenset[str], title: str) -> frozenset[str]:
    """The page's link texts without the article's own headline.

    Navigation lines are dropped for repeating a link text: a menu entry, another
    story's headline. Many pages also link their own headline (a share box, the
    breadcrumb's last step, a list of stories that holds this one), and a line of the
    article that quotes it is then taken for navigation: Sina's "原标题：…" line (the
    original headline the reference keeps). 34 of the 236 development pages link their
    headline so; leaving those links out changed the chosen text of one of them and
    lowered none (docs/extraction.md). Compared without whitespace, as link texts are
    kept; ``title`` is the feed's title, else the page's.
    """
    headline = "".join(title.split())
    if len(headline) < _HEADLINE_LINK_MIN_CHARS:
        return link_texts
    own = {
        text
        for text in link_texts
        if len(text) >= _HEADLINE_LINK_MIN_CHARS
        and 2 * len(text) >= len(headline)
        and text in headline
    }
    return link_texts - own if own else link_texts


def drop_navigation(text: str, link_texts: LinkTexts, threshold: float | None) -> str:
    """The text without lines that are mostly one of the page's link texts: navigation,
    lists of other articles (``threshold`` None keeps every line). A credit line stays
    (see CREDIT_PATTERNS): "本文来源：证券市场红周刊" is 58 % link text when the source's
    name is a link, and went as navigation on 163.com's pages."""
    if threshold is None or not link_texts:
        return text
    return "\n".join(
        line
        for line in text.splitlines()
        if link_share(line, link_texts) < threshold or is_credit(line)
    )


def _describe(
    lines: list[str], link_texts: LinkTexts, repeated: Collection[str], comments: str = ""
) -> tuple[float, float, float, float, int]:
    """(link share, prose share, repeated share, comment share, characters) of a
    candidate's own lines; ``repeated`` holds the lines its text has more than once,
    ``comments`` the page's comment blocks without whitespace."""
    total = link = prose = twice = commented = 0.0
    for line in lines:
        flat = _flat(line)
        size = len(flat)
        total += size
        if comments and flat and flat in comments:
            commented += size
        share = link_share(line, link_texts)
        link += share * size
        if share < 0.5 and _SENTENCE.search(line):
            prose += size
        if line in repeated:
            twice += size
    if not total:
        return 0.0, 0.0, 0.0, 0.0, 0
    return link / total, prose / total, twice / total, commented / total, int(total)


def _repeated(lines: list[str]) -> set[str]:
    return {line for line, count in Counter(lines).items() if count > 1}


def features(
    precision: str, readability: str, link_texts: LinkTexts, comments: str = ""
) -> tuple[float, ...]:
    """The evidence for readability's text over precision's (see the module docs).
    ``comments``: the page's comment blocks (candidates.comment_text)."""
    comments = comments[:MAX_COMPARED_CHARS]
    precision, readability = precision[:MAX_COMPARED_CHARS], readability[:MAX_COMPARED_CHARS]
    p_tokens, r_tokens = tokens(precision), tokens(readability)
    shared, p_total, r_total = _shared(p_tokens, r_tokens), p_tokens.total(), r_tokens.total()
    p_lines, r_lines = precision.splitlines(), readability.splitlines()
    p_link, p_prose, p_twice, p_comment, p_size = _describe(
        _own_lines(p_lines, readability), link_texts, _repeated(p_lines), comments
    )
    r_link, r_prose, r_twice, r_comment, r_size = _describe(
        _own_lines(r_lines, precision), link_texts, _repeated(r_lines), comments
    )
    # the own lines' sizes on a log scale: which side adds more, whatever the page's size
    own_size = math.log((r_size + 1) / (p_size + 1)) / 4
    return (
        shared / p_total if p_total else 0.0,  # share of precision's tokens readability has
        shared / r_total if r_total else 0.0,  # and of readability's that precision has
        own_size,
        r_prose * min(r_size, 400) / 400 - p_prose * min(p_size, 400) / 400,
        r_link - p_link,
        r_twice - p_twice,
        r_comment - p_comment,
    )


def choose(
    precision: str,
    readability: str,
    link_texts: frozenset[str],
    model: Model = MODEL,
    comments: str = "",
    title: str = "",
) -> Choice:
    """The precision or the readability text (cleaned), by the model: see the module
    documentation. An empty text is never chosen over one with tokens; both empty gives
    an empty Choice named "none". ``title``: the article's title, whose link on the page
    is not navigation (:func:`not_the_headline`)."""
    links = LinkTexts(not_the_headline(link_texts, title))
    precision = drop_navigation(precision, links, model.navigation)
    readability = drop_navigation(readability, links, model.navigation)
    has_precision, has_readability = (
        bool(_TOKEN.search(precision)),
        bool(_TOKEN.search(readability)),
    )
    if not has_readability:
        return Choice(precision, "precision" if has_precision else "none")
    if not has_precision:
        return Choice(readability, "readability")
    x = features(precision, readability, links, comments)
    if model.score(x) > 0:
        return Choice(with_missed_lead(precision, readability, links, model.lead), "readability", x)
    return Choice(precision, "precision", x)


def with_missed_lead(precision: str, readability: str, links: LinkTexts, least: int | None) -> str:
    """Readability's text with the lead paragraphs it missed: the prose lines that
    precision's text has before the first line the two share, and readability lacks
    (a lead set apart from the body, like RFI's chapo, is outside readability's block).
    Lacking is judged by runs of characters, not exact lines: the two extractors
    break lines differently, and a line holding readability's whole text is no lead.
    ``least``: a lead line's least length (None: no lead is put back)."""
    if least is None:
        return readability
    # From each text's first characters only, as features reads them: each line is
    # searched for in the other text, a time growing with the square of the texts (two
    # that share no line, of 1,000,000 characters each: a minute of the build's CPU).
    readability_flat = _flat(readability[:MAX_COMPARED_CHARS])
    lead: list[str] = []
    for line in precision[:MAX_COMPARED_CHARS].splitlines():
        flat = _flat(line)
        if flat and flat in readability_flat:
            break
        if (
            _shingles_in(flat, readability_flat) < _LACKING
            and _SENTENCE.search(line)
            and link_share(line, links) < 0.5
            and len(flat) >= least
        ):
            lead.append(line)
    else:
        return readability  # nothing shared: precision's lines are not a lead of this text
    return "\n".join([*lead, readability]) if lead else readability


def _shingles_in(flat: str, other: str) -> float:
    """Share of the runs of _SHINGLE characters of ``flat`` (every _SHINGLE-th) that
    ``other`` contains; for a shorter line, whether ``other`` contains it."""
    if len(flat) <= _SHINGLE:
        return 1.0 if flat in other else 0.0
    starts = range(0, len(flat) - _SHINGLE + 1, _SHINGLE)
    return sum(flat[i : i + _SHINGLE] in other for i in starts) / len(starts)
