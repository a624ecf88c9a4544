"""The bench's interval for a corpus F1 difference (bench.scoring.paired_interval)."""

from __future__ import annotations

import math

import pytest

from bench.scoring import PageScore, aggregate, paired_interval


def page(tp: int) -> PageScore:
    return PageScore(tp=tp, output_tokens=100, reference_tokens=100)


def test_the_same_scores_differ_by_nothing() -> None:
    scores = [page(90), page(70), page(95)]
    assert paired_interval(scores, scores, ["a", "b", "c"]) == (0.0, 0.0)


def test_better_on_every_site_is_a_finding() -> None:
    ours, theirs = [page(95)] * 6, [page(90)] * 6
    low, high = paired_interval(ours, theirs, ["a", "b", "c", "d", "e", "f"])
    assert 0 < low <= high


def test_better_on_one_site_and_worse_on_another_is_not() -> None:
    ours = [page(99), page(80), page(90), page(90)]
    theirs = [page(80), page(99), page(90), page(90)]
    low, high = paired_interval(ours, theirs, ["a", "b", "c", "d"])
    assert low < 0 < high


def test_pages_of_one_site_are_drawn_together() -> None:
    """One site: every draw is the whole corpus, so the interval is the difference
    itself, however many pages the site has."""
    ours, theirs = [page(95), page(60), page(85)], [page(90), page(70), page(90)]
    expected = aggregate(ours).f1 - aggregate(theirs).f1
    low, high = paired_interval(ours, theirs, ["a", "a", "a"])
    assert low == pytest.approx(expected) and high == pytest.approx(expected)


def test_pages_without_output_count_as_the_corpus_f1_counts_them() -> None:
    """A page with no output has no precision: it lowers recall only, as in aggregate."""
    ours = [PageScore(0, 0, 100), page(90)]
    theirs = [page(50), page(90)]
    expected = aggregate(ours).f1 - aggregate(theirs).f1
    low, high = paired_interval(ours, theirs, ["a", "a"])
    assert low == pytest.approx(expected) and high == pytest.approx(expected)


def test_a_row_without_pages_has_no_interval() -> None:
    low, high = paired_interval([], [], [])
    assert math.isnan(low) and math.isnan(high)
