"""``make superset-check``'s look for article titles drawn as markup, on pages built like
the cells Superset 6.1's table chart drew in chromium for the seeded titles: with its
``allow_render_html`` at the default (true) the cells held the sanitizer's elements (an
``<img src="">``, an ``<a href="">``, a ``<b>``); with ``allow_render_html: false`` they held
the sanitized markup as text. And the export's tables all say false. And its hover over
the charts for a topic named with markup, on pages showing a tooltip as ECharts does."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from mediamon.bi import superset_export
from mediamon.devtools.superset_probe import (
    MARKUP_TITLES,
    MARKUP_TOPIC,
    markup_problems,
    tooltip_problems,
)
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


def _chart_with_tooltip(tmp_path: Path, tooltip: str) -> str:
    """A file URL of a page with a chart's canvas that shows ``tooltip`` (HTML) on hover,
    in a <div> appended to <body> as ECharts shows Superset's tooltips."""
    page = tmp_path / "tooltip.html"
    page.write_text(
        '<!doctype html><title>mediamon</title><div data-test="slice-container">'
        '<canvas width="600" height="300"></canvas></div><script>'
        "document.querySelector('canvas').addEventListener('mousemove', e => {"
        " if (e.offsetX < 300) return;"  # only part of the chart has data to show
        " const tip = document.createElement('div'); tip.style.zIndex = '9999999';"
        f" tip.innerHTML = {json.dumps(tooltip)}; document.body.appendChild(tip); }});"
        "</script>",
        encoding="utf-8",
    )
    return page.as_uri()


def test_a_tooltip_drawing_the_topic_name_as_markup_is_named(tmp_path: Path) -> None:
    """``make superset-check`` hovers over the charts (Superset 6.1 showed the seeded name
    as text: its series names are encoded before the tooltip's HTML is sanitized)."""
    row = "<table><tr><td>{}</td><td>0.25</td></tr></table>"
    sanitized = "<b>bold</b><img src> topic"  # what Superset's sanitizer would leave
    with Chromium() as browser:
        tab = browser.open(_chart_with_tooltip(tmp_path, row.format(sanitized)), width=1440)
        (problem,) = tooltip_problems(tab)
        assert "as markup" in problem and "<b>bold</b>" in problem
        tab = browser.open(
            _chart_with_tooltip(tmp_path, row.format(html.escape(MARKUP_TOPIC))), width=1440
        )
        assert tooltip_problems(tab) == []
        # a dashboard whose tooltips never show the seeded name is no proof: it fails
        tab = browser.open(_chart_with_tooltip(tmp_path, row.format("台湾")), width=1440)
        assert tooltip_problems(tab) == [
            f"no chart's tooltip showed the topic name {MARKUP_TOPIC!r} when hovered"
        ]
