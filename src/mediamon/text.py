"""Text shared across the package: folding, the one matching form of text, shared by
ingest (``articles.match_text``) and topics (rules and titles are folded the same way, so
they match); and how untrusted text is shown on one line of a log, an error or a mail."""

from __future__ import annotations

import functools
import re
import unicodedata

HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")


@functools.cache
def _t2s() -> object:
    import opencc

    return opencc.OpenCC("t2s")


# Unicode's Stream-Safe Text Format (UAX #15) allows at most 30 combining marks
# (non-starters) in a row; real text has a few. CPython normalizes such a run in time
# growing with its square: a page's 40,000 stacked accents ("Zalgo" text) took 5 s in
# NFC, 160,000 minutes, outside any extraction time limit.
MAX_NON_STARTERS = 30
# Every combining mark is below this (Unicode 15: U+1E94A; a test checks the
# running Python's data), so the table below is built from 126,000 code points, not
# 1.1 million: 10 ms, once per process, when the first text is cleaned.
_MARKS_END = 0x1F000


@functools.cache
def _mark_runs() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns of runs longer than MAX_NON_STARTERS: BMP marks only (a compact class
    re searches quickly), and BMP or astral marks (slower: for text holding astral
    characters below _MARKS_END only, which emoji and CJK extensions are not)."""
    marks = [c for c in range(0x300, _MARKS_END) if unicodedata.combining(chr(c))]
    ranges: list[list[int]] = []
    for code in marks:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def members(astral: bool) -> str:
        return "".join(
            re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "")
            for a, b in ranges
            if (a >= 0x10000) is astral
        )

    run = f"{{{MAX_NON_STARTERS + 1},}}"
    bmp, astral = members(astral=False), members(astral=True)
    return re.compile(f"[{bmp}]{run}"), re.compile(f"(?:[{bmp}]|[{astral}]){run}")


_ASTRAL_WITH_MARKS = re.compile(f"[\U00010000-{chr(_MARKS_END - 1)}]")


def stream_safe(text: str) -> str:
    """``text`` with each run of combining marks cut to MAX_NON_STARTERS (the rest of
    the run dropped), so that normalizing it takes linear time."""
    bmp_runs, any_runs = _mark_runs()
    runs = any_runs if _ASTRAL_WITH_MARKS.search(text) else bmp_runs
    if runs.search(text) is None:
        return text
    return runs.sub(lambda m: m.group()[:MAX_NON_STARTERS], text)


# Unicode's Default_Ignorable_Code_Point characters (DerivedCoreProperties.txt): nothing
# to see, and a reader, or a search engine, reads 台\ufe00湾 or 台\U000e0100湾 as 台湾.
# Stored text keeps variation selectors, fillers and tags (they choose a glyph; clean_text
# drops the zero-width and bidi ones), so without this one of them inside a keyword hid
# it from every topic. Removed before NFKC, which produces none of them from other text.
IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)


# Case folding turns the capital dotted I (U+0130: İstanbul, İran, as Turkish outlets
# write them) into "i" and a combining dot above, so an article's "İstanbul" was no
# mention of a term "Istanbul" (nor of "İstanbul" written by a term of "istanbul"). The
# dot is dropped after an i, as search engines' folding does.
DOTTED_I = "i\u0307"


def fold(text: str) -> str:
    """The matching form: invisible characters removed, NFKC (full-width to ASCII),
    case-folded (a dotted capital İ is i), traditional Chinese folded to simplified,
    whitespace collapsed. Search on this, show the original."""
    text = unicodedata.normalize("NFKC", IGNORABLE.sub("", stream_safe(text))).casefold()
    text = text.replace(DOTTED_I, "i")
    text = _t2s().convert(text)  # type: ignore[attr-defined]
    return HORIZONTAL_SPACE.sub(" ", text).strip()


# What lets a value forge a second line or turn a line around: the controls (C0, DEL,
# C1: "\n", "\r", NEL "\x85", ESC sequences), the line and paragraph separators (line
# breaks to str.splitlines and to many viewers) and the bidirectional controls (marks,
# embeddings, overrides, isolates: U+202E turns "gpj.exe" into "exe.jpg"). Zero-width
# joiners and non-joiners are not here: scripts and emoji need them, and they move nothing.
BREAKS_A_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def one_line(value: object, limit: int | None = None) -> str:
    """Untrusted text (a file, source or setting's value, a server's words) for one line
    of a log or an error message, which an operator reads to find the thing named: cut to
    ``limit`` characters (no mark of the cut), then every character that is not printable
    written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``). That is each of
    :data:`BREAKS_A_LINE` and the other invisible ones (zero-width, no-break and other odd
    spaces, unassigned code points), so the line shows which of two look-alike names it
    means. Printable text (CJK, accents, emoji) stays as written.

    Mail and the page show text to readers instead: :func:`mediamon.alerts.render.clean`
    blanks :data:`BREAKS_A_LINE` and keeps the rest."""
    text = str(value)
    if limit is not None:
        text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
