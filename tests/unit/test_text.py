"""The matching form, the stream-safe cut and untrusted text on one line (mediamon.text)."""

from __future__ import annotations

import unicodedata

import pytest

from mediamon.alerts.render import clean
from mediamon.ingest.fetch_errors import printable
from mediamon.text import _MARKS_END, BREAKS_A_LINE, MAX_NON_STARTERS, fold, one_line, stream_safe


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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a\nERROR forged", "a\\nERROR forged"),  # a second, forged line of the log
        ("a\r\x1b[2K", "a\\r\\x1b[2K"),  # C0: the terminal erases the line
        ("a\x85b\x9bc", "a\\x85b\\x9bc"),  # C1: NEL breaks the line for str.splitlines
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        ("txt.\u202eevil.html", "txt.\\u202eevil.html"),  # an override turns it around
        ("\u2066wire\u2069\u200f", "\\u2066wire\\u2069\\u200f"),  # isolates, a mark
        ("wire\u200b", "wire\\u200b"),  # invisible: not the name "wire"
        ("台湾新闻 é \U0001f600", "台湾新闻 é \U0001f600"),  # printable text as written
        (7, "7"),
    ],
)
def test_one_line_escapes_what_would_break_or_turn_the_line(value: object, shown: str) -> None:
    assert one_line(value) == shown


def test_one_line_cuts_long_values_before_escaping() -> None:
    # As the unknown-source error did: the first 60 characters, then escaped, no mark.
    assert one_line("n" * 100, limit=60) == "n" * 60
    assert one_line("\n" * 100, limit=3) == "\\n\\n\\n"
    assert one_line("short", limit=60) == "short"


def test_every_character_that_breaks_a_line_is_escaped_in_a_log_and_blanked_in_mail() -> None:
    breaking = [chr(c) for c in range(0x3000) if BREAKS_A_LINE.match(chr(c))]
    assert len(breaking) == 32 + 1 + 32 + 2 + 3 + 5 + 4
    for char in breaking:
        assert one_line(f"a{char}b") == f"a{ascii(char)[1:-1]}b"
        assert clean(f"a{char}b") == "a b"


def test_a_servers_words_keep_their_length_with_no_character_that_breaks_a_line() -> None:
    # The fetch log's error is cut to its cap before: one character for one.
    said = "HTTP 500 A\x00B \u202eRORRE\u2028x\x85"
    assert printable(said) == "HTTP 500 A\ufffdB \ufffdRORRE\ufffdx\ufffd"
    assert printable("台湾 \U0001f600 ok") == "台湾 \U0001f600 ok"
