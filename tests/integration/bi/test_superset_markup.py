"""``make superset-check``'s look for article titles drawn as markup, on pages built like
the cells Superset 6.1's table chart drew in chromium for the seeded titles: with its
``allow_render_html`` at the default (true) the cells held the sanitizer's elements (an
``<img src="">``, an ``<a href="">``, a ``<b>``); with ``allow_render_html: false`` they held
the sanitized markup as text. And the export's tables all say false."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from mediamon.bi import superset_export
from mediamon.devtools.superset_probe import MARKUP_TITLES, markup_problems
from tests.support.browser import Chromium

# What Superset 6.1.0's sanitizer makes of MARKUP_TITLES: as elements, these drew the
# cells superset-check saw on an export without allow_render_html; as text, the table
# shows the same string (its cell renders the sanitizer's output as a text child)
SANITIZED = ("<img src>", "<a href>a javascript: link</a>", "<b>bold</b> in a title")


def _dashboard(tmp_path: Path, cells: list[str]) -> str:
    """A file URL of a page holding a chart's table whose cells are ``cells`` (HTML)."""
    rows = "".join(f"<tr><td>2</td><td>{cell}</td></tr>" for cell in cells)
    page = tmp_path / "dashboard.html"
    page.write_text(
        f'<!doctype html><title>mediamon</title><div data-test="slice-container">'
        f"<table><tbody>{rows}</tbody></table></div>",
        encoding="utf-8",
    )
    return page.as_uri()


def test_titles_drawn_as_markup_are_named(tmp_path: Path) -> None:
    with Chromium() as browser:
        tab = browser.open(_dashboard(tmp_path, list(SANITIZED)), width=1440)
        problems = markup_problems(tab)
    assert [p for p in problems if "is not shown as text" in p] == [
        f"the title {title!r} is not shown as text" for title in MARKUP_TITLES
    ]
    (drawn,) = [p for p in problems if p.startswith("table cells drawn as markup")]
    assert '<img src="">' in drawn and "<b>bold</b>" in drawn


def test_titles_shown_as_text_pass(tmp_path: Path) -> None:
    with Chromium() as browser:
        tab = browser.open(_dashboard(tmp_path, [html.escape(t) for t in SANITIZED]), width=1440)
        assert markup_problems(tab) == []
        # a dashboard without the seeded titles is no proof: it fails
        tab = browser.open(_dashboard(tmp_path, ["台海紧张"]), width=1440)
        assert len(markup_problems(tab)) == len(MARKUP_TITLES)


TABLES = [
    chart
    for chart in superset_export.load(superset_export.EXPORT_DIR, "charts")
    if chart["viz_type"] in ("table", "pivot_table_v2")
]


@pytest.mark.parametrize("chart", TABLES, ids=[c["slice_name"] for c in TABLES])
def test_tables_show_cells_as_text(chart: dict[str, Any]) -> None:
    """Superset 6.1's table and pivot table draw a cell that looks like HTML as HTML
    unless the chart's form says otherwise (the control defaults to true)."""
    assert chart["params"].get("allow_render_html") is False
