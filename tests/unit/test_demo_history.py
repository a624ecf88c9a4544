"""The demo's invented history: what `make demo`'s mails list must read as news."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from mediamon.devtools.demo_history import BACKGROUND, TAIWAN, write_history

_TITLE_LINE = re.compile(r"^\[(?P<title>[^\]]+)\]\(", re.MULTILINE)


def _as_pattern(template: str) -> str:
    return "".join(
        ".+?" if part.startswith("{") else re.escape(part)
        for part in re.split(r"({\w+})", template)
        if part
    )


def test_every_story_is_titled_by_a_whole_headline(tmp_path: Path) -> None:
    """Titles were the first 18 characters of the text behind a label
    ("台海动态：台海航运业者称，受台海紧张影响，部分"): the demo's alert mail listed
    headlines cut mid-phrase, three of them the same words."""
    burst_end = datetime(2024, 4, 17, 2, tzinfo=UTC)
    write_history(tmp_path, burst_end, weeks=1)
    headline = re.compile("|".join(f"(?:{_as_pattern(h)})" for h, _ in (*BACKGROUND, *TAIWAN)))
    files = sorted(tmp_path.glob("*.txt"))
    titles = [m.group("title") for f in files if (m := _TITLE_LINE.search(f.read_text("utf-8")))]
    assert len(titles) == len(files) > 100
    assert all(headline.fullmatch(t) for t in titles), [
        t for t in titles if not headline.fullmatch(t)
    ][:3]
    burst = titles[-9:]  # the nine Taiwan stories of the last hour
    assert len(set(burst)) == 9
