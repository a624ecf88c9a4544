"""Folding: the one matching form of text, shared by ingest (``articles.match_text``)
and topics (rules and titles are folded the same way, so they match)."""

from __future__ import annotations

import functools
import re
import unicodedata

HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")


@functools.cache
def _t2s() -> object:
    import opencc

    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """The matching form: NFKC (full-width to ASCII), case-folded, traditional Chinese
    folded to simplified, whitespace collapsed. Search on this, show the original."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _t2s().convert(text)  # type: ignore[attr-defined]
    return HORIZONTAL_SPACE.sub(" ", text).strip()
