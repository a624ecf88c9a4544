"""Bar charts as inline SVG, drawn on the server: the page works offline (no script, no
CDN), Chinese labels use the reader's CJK fonts, and every label is escaped."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

logger = logging.getLogger(__name__)

# Noto/Source Han first (Linux, fonts-noto-cjk), then the macOS and Windows CJK fonts.
FONT_STACK = (
    "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', "
    "'Microsoft YaHei', sans-serif"
)
BAR_COLOUR = "#3b6ea5"
LINE_COLOUR = "#d08000"
MARKER_COLOUR = "#c0392b"


@dataclass(frozen=True)
class Bar:
    """One bar: its value, the tick label under it ('' for none) and its tooltip."""

    value: float
    tick: str
    tooltip: str


@dataclass(frozen=True)
class Marker:
    """A flag over bar ``index`` (an alert), with a short label."""

    index: int
    label: str
    tooltip: str


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (at least 1): an axis top."""
    if value <= 1:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    y_label: str,
    markers: Sequence[Marker] = (),
    line: Sequence[float | None] | None = None,
    line_label: str = "",
    width: int = 760,
    height: int = 190,
) -> Markup:
    """An SVG bar chart, optionally with a second series as a line on its own 0–max scale
    (e.g. the share of all coverage) and flags over some bars (alerts)."""
    left, right, top, bottom = 44, 44 if line is not None else 12, 26, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(bars), 1)
    slot = plot_w / count
    y_max = _nice_max(max((b.value for b in bars), default=0.0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'font-family="{FONT_STACK}" font-size="11" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="12" fill="#333">{escape(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{_number(y_max * fraction)}</text>"
        )
    for index, bar in enumerate(bars):
        h = plot_h * (max(bar.value, 0.0) / y_max)
        x = left + index * slot
        parts.append(
            f'<rect x="{x + slot * 0.12:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{max(slot * 0.76, 1):.1f}" height="{h:.1f}" fill="{BAR_COLOUR}">'
            f"<title>{escape(bar.tooltip)}</title></rect>"
        )
        if bar.tick:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                f'fill="#555">{escape(bar.tick)}</text>'
            )
    if line is not None:
        parts.append(_line(line, line_label, left, top, plot_w, plot_h, slot))
    for marker in markers:
        if not 0 <= marker.index < len(bars):
            continue
        x = left + (marker.index + 0.5) * slot
        parts.append(
            f'<g class="alert-marker"><title>{escape(marker.tooltip)}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{MARKER_COLOUR}" stroke-dasharray="3,2"/>'
            f'<path d="M{x - 5:.1f},{top - 10} L{x + 5:.1f},{top - 10} L{x:.1f},{top - 2} Z" '
            f'fill="{MARKER_COLOUR}"/>'
            f'<text x="{x - 8:.1f}" y="{top - 12}" text-anchor="end" fill="{MARKER_COLOUR}" '
            f'font-weight="bold">{escape(marker.label)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _line(
    values: Sequence[float | None],
    label: str,
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    slot: float,
) -> str:
    known = [v for v in values if v is not None]
    y_max = max(known, default=0.0) or 1.0
    points = " ".join(
        f"{left + (i + 0.5) * slot:.1f},{top + plot_h * (1 - v / y_max):.1f}"
        for i, v in enumerate(values)
        if v is not None
    )
    axis_x = left + plot_w + 4
    return (
        f'<polyline points="{points}" fill="none" stroke="{LINE_COLOUR}" stroke-width="2"/>'
        f'<text x="{axis_x:.1f}" y="{top + 4}" fill="{LINE_COLOUR}">{_percent(y_max)}</text>'
        f'<text x="{axis_x:.1f}" y="{top + plot_h + 4}" fill="{LINE_COLOUR}">0%</text>'
        f'<text x="{left + plot_w:.1f}" y="14" text-anchor="end" fill="{LINE_COLOUR}" '
        f'font-size="12">{escape(label)}</text>'
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%" if fraction >= 0.1 else f"{fraction * 100:.1f}%"
