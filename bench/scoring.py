"""Bag-of-tokens scoring of extracted text against a reference (see shared corpora README).

Per page, the output and the reference are bags of tokens: for Chinese and Japanese the
characters with all whitespace removed, otherwise the whitespace-split words. TP is the sum
over tokens of min(count in output, count in reference). Precision is averaged over pages
with non-empty output, recall over pages with non-empty reference, and F1 is the harmonic
mean of the two averages (the scrapinghub article-extraction-benchmark convention).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Corpora whose pages are Chinese when the reference does not name a language.
CHAR_CORPORA = frozenset({"cwced", "gne_silver", "readability_zh"})
CHAR_LANGUAGES = ("zh", "ja")
_WHITESPACE = re.compile(r"\s+")


def page_language(gt: dict[str, object], corpus: str) -> str:
    """Language of a page: the reference's ``lang`` field, else the corpus's language."""
    lang = gt.get("lang")
    if isinstance(lang, str) and lang:
        return lang
    return "zh" if corpus in CHAR_CORPORA else "other"


def is_char_language(lang: str) -> bool:
    """True for languages scored by characters (zh, zh-Hant, zh-CN, ja, ...)."""
    base = lang.lower().replace("_", "-").split("-", 1)[0]
    return base in CHAR_LANGUAGES


def tokens(text: str, lang: str) -> Counter[str]:
    """The bag of tokens of a text: characters for zh/ja, whitespace-split words otherwise."""
    if is_char_language(lang):
        return Counter(_WHITESPACE.sub("", text))
    return Counter(text.split())


@dataclass(frozen=True)
class PageScore:
    """Token counts for one page. Precision/recall are None when undefined."""

    tp: int
    output_tokens: int
    reference_tokens: int

    @property
    def precision(self) -> float | None:
        return self.tp / self.output_tokens if self.output_tokens else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.reference_tokens if self.reference_tokens else None

    @property
    def f1(self) -> float:
        """Per-page F1 (0 when either side is empty); not the corpus F1."""
        p, r = self.precision, self.recall
        if not p or not r:
            return 0.0
        return 2 * p * r / (p + r)


def score_page(output: str | None, reference: str | None, lang: str) -> PageScore:
    """Score one page's output against its reference."""
    out = tokens(output or "", lang)
    ref = tokens(reference or "", lang)
    tp = sum(min(count, ref[token]) for token, count in out.items() if token in ref)
    return PageScore(tp, sum(out.values()), sum(ref.values()))


@dataclass(frozen=True)
class CorpusScore:
    """Mean precision over pages with output, mean recall over pages with a reference."""

    precision: float
    recall: float
    pages: int
    empty_outputs: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def aggregate(scores: Iterable[PageScore]) -> CorpusScore:
    """Corpus precision, recall and F1 from per-page scores."""
    precisions: list[float] = []
    recalls: list[float] = []
    pages = empty = 0
    for score in scores:
        pages += 1
        if score.precision is not None:
            precisions.append(score.precision)
        else:
            empty += 1
        if score.recall is not None:
            recalls.append(score.recall)
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return CorpusScore(p, r, pages, empty)


def paired_interval(
    ours: Sequence[PageScore],
    theirs: Sequence[PageScore],
    sites: Sequence[str],
    *,
    level: float = 0.9,
    draws: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """How far the corpus F1 difference ``ours - theirs`` could move on other sites of
    the same kind: the central ``level`` interval of a paired bootstrap that draws whole
    sites with replacement (pages of one site are not independent evidence). A corpus of
    four sites gives a wide interval, and a difference inside it is not a finding."""

    def columns(scores: Sequence[PageScore]) -> tuple[np.ndarray, ...]:
        precision = [s.precision for s in scores]
        recall = [s.recall for s in scores]
        return (
            np.array([p or 0.0 for p in precision]),
            np.array([p is not None for p in precision], dtype=float),
            np.array([r or 0.0 for r in recall]),
            np.array([r is not None for r in recall], dtype=float),
        )

    names = sorted(set(sites))
    if not names:  # a report row without pages (e.g. no Chinese page among those run)
        return math.nan, math.nan
    site_of_page = np.array([names.index(s) for s in sites])
    picks = np.random.default_rng(seed).integers(0, len(names), size=(draws, len(names)))
    counts = np.stack([np.bincount(row, minlength=len(names)) for row in picks])
    weights = counts[:, site_of_page]  # draws x pages: how often each page was drawn

    def f1(scores: Sequence[PageScore]) -> np.ndarray:
        p, has_p, r, has_r = columns(scores)
        mean_p = (weights @ p) / np.maximum(weights @ has_p, 1)
        mean_r = (weights @ r) / np.maximum(weights @ has_r, 1)
        total = mean_p + mean_r
        return np.where(total > 0, 2 * mean_p * mean_r / np.where(total > 0, total, 1), 0.0)

    difference = f1(ours) - f1(theirs)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(difference, [tail, 100 - tail])
    return float(low), float(high)
