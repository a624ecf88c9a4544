"""The matching form and the stream-safe cut (mediamon.text)."""

from __future__ import annotations

import unicodedata

import pytest

from mediamon.text import _MARKS_END, MAX_NON_STARTERS, fold, stream_safe


def test_every_combining_mark_is_below_the_tables_end() -> None:
    """The table of marks is built from the code points below _MARKS_END: a Unicode
    version adding marks above it must move the end."""
    marks = [c for c in range(0x110000) if unicodedata.combining(chr(c))]
    assert marks and max(marks) < _MARKS_END


@pytest.mark.parametrize(
    "mark",
    ["\u0301", "\u0316", "\u05b0", "\u093c", "\U0001d165", "\U0001e8d0"],  # astral last
)
def test_runs_of_combining_marks_are_cut_to_thirty(mark: str) -> None:
    run = mark * (MAX_NON_STARTERS + 500)
    assert stream_safe(f"x{run}y") == f"x{mark * MAX_NON_STARTERS}y"
    assert stream_safe(f"x{mark * MAX_NON_STARTERS}y") == f"x{mark * MAX_NON_STARTERS}y"
    assert len(fold(run)) <= MAX_NON_STARTERS


def test_ordinary_text_is_left_as_it_is() -> None:
    for text in ("台灣的「出口管制」", "Crème brûlée à la carte", "עִבְרִית", "हिन्दी", "😀 🇹🇼"):
        assert stream_safe(text) == text
    assert fold("ＴＡＩＷＡＮ 臺灣") == "taiwan 台湾"
