"""The chart of an alert mail: 7 days of hourly stories, the usual range, the alert window.

Drawn with matplotlib's Agg renderer (no pyplot, so no global state and no display) as a
PNG: mail clients block SVG. It is rendered at twice its display size, so it stays crisp
on high-DPI screens, and the mail shows it at ``max-width:100%`` so it shrinks to a phone's
width instead of running off it. Day ticks are local midnights in the recipient's time
zone. Chinese labels need a CJK font (Debian's fonts-noto-cjk); without one the chart
falls back to English words, and its dates are digits either way.

The same facts, as a small table for the plain-text part, come from :func:`day_table`.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from functools import cache
from typing import Literal

from mediamon.alerts.catalog import Catalog, number, usually_none, utc_offset

logger = logging.getLogger(__name__)

# Display size in CSS pixels; the PNG has SCALE times as many.
CHART_WIDTH = 560
CHART_HEIGHT = 320
SCALE = 2
BAR_COLOUR = "#6f8fb8"
WINDOW_COLOUR = "#c62828"
BAND_COLOUR = "#9e9e9e"
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
)
HOUR = timedelta(hours=1)
# The chart and its table show this many local days: the whole days before the alert's
# and that day up to the window's end. A series starting at the window's hour 7 days
# back began with a partial day (from 10:00), a row whose count disagreed with
# bi.topic_daily's, and, in a zone where that piece was short, a day without a label.
CHART_DAYS = 7
# A day with fewer hours is partial (23 and 25 are whole days at a DST change).
WHOLE_DAY_HOURS = 23
# A day's label is about LABEL_WIDTH_HOURS wide (12 pt "03-04", 43 px, at the chart's
# ~2.9 px an hour); the figure has about RIGHT_MARGIN_HOURS of room right of the axis.
LABEL_WIDTH_HOURS = 15
LABEL_GAP_HOURS = 2
RIGHT_MARGIN_HOURS = 3


@dataclass(frozen=True)
class ChartData:
    """What the chart shows, all counts per UTC hour, oldest first.

    Attributes:
        start: Start of the first hour (UTC).
        counts: Topic stories per hour.
        usual_low: Lowest count of the same hour of the week in the baseline weeks.
        usual_high: Highest count of the same hour of the week in the baseline weeks.
        usual_mean: Mean count of the same hour of the week in the baseline weeks.
        window_start: Start of the alert window (UTC).
        window_end: End of the alert window (UTC, exclusive).
        observed: Stories in the window.
        expected: Stories the detector expected in the window.
        baseline_weeks: How many weeks the usual range is drawn from.
    """

    start: datetime
    counts: tuple[int, ...]
    usual_low: tuple[float, ...]
    usual_high: tuple[float, ...]
    usual_mean: tuple[float, ...]
    window_start: datetime
    window_end: datetime
    observed: int
    expected: float
    baseline_weeks: int

    def hour_index(self, moment: datetime) -> int:
        return int((moment - self.start) // HOUR)


@dataclass(frozen=True)
class DayRow:
    """One local day of the chart, for the text table."""

    day: date
    stories: int
    usual: float
    peak_hour: datetime | None  # local start of the busiest hour (None: no stories)
    peak_stories: int
    start: datetime | None = None  # local start of its first hour on the chart
    end: datetime | None = None  # local end of its last hour on the chart
    hours: int = 24

    @property
    def partial(self) -> bool:
        return self.hours < WHOLE_DAY_HOURS


def local_days(data: ChartData, zone: tzinfo, days: int = CHART_DAYS) -> ChartData:
    """``data`` from the first hour of its last ``days`` local days in ``zone`` (an hour
    belongs to the local day it starts in, as in the table): whole days, then the day of
    the window's end up to that end. A series too short for that keeps all it has."""
    last_day = (data.start + (len(data.counts) - 1) * HOUR).astimezone(zone).date()
    first_day = last_day - timedelta(days=days - 1)
    skip = next(
        (
            i
            for i in range(len(data.counts))
            if (data.start + i * HOUR).astimezone(zone).date() >= first_day
        ),
        0,
    )
    return replace(
        data,
        start=data.start + skip * HOUR,
        counts=data.counts[skip:],
        usual_low=data.usual_low[skip:],
        usual_high=data.usual_high[skip:],
        usual_mean=data.usual_mean[skip:],
    )


def day_labels(
    data: ChartData, zone: tzinfo, catalog: Catalog
) -> list[tuple[float, str, Literal["left", "center", "right"]]]:
    """(x, label, alignment) of each local day of the (trimmed) chart: centred under the
    day; a day too short for that at either end of the axis is labelled from that end
    inwards, so every day has its label and none runs off the chart or over another
    (the last day is the alert's: an hour or two after local midnight, it is short)."""
    days: dict[date, list[int]] = {}
    for index in range(len(data.counts)):
        days.setdefault((data.start + index * HOUR).astimezone(zone).date(), []).append(index)
    labels: list[tuple[float, str, Literal["left", "center", "right"]]] = [
        (
            sum(indexes) / len(indexes),
            f"{catalog.weekday(datetime(d.year, d.month, d.day), short=True)}\n{d:%m-%d}",
            "center",
        )
        for d, indexes in days.items()
    ]
    half = LABEL_WIDTH_HOURS / 2
    end = len(data.counts) - 0.5
    if len(labels) > 1 and labels[-1][0] + half > end + RIGHT_MARGIN_HOURS:
        # Right-aligned at the axis' end; the labels before it move left as far as needed
        # to keep a gap (a day is 24 hours wide, a label about 15: rarely more than one).
        labels[-1] = (end, labels[-1][1], "right")
        limit = end - LABEL_WIDTH_HOURS - LABEL_GAP_HOURS
        for i in range(len(labels) - 2, -1, -1):
            if labels[i][0] + half <= limit:
                break
            labels[i] = (limit - half, labels[i][1], "center")
            limit -= LABEL_WIDTH_HOURS + LABEL_GAP_HOURS
    if len(labels) > 1 and labels[0][0] - half < -0.5:  # a short series: the mirror image
        labels[0] = (-0.5, labels[0][1], "left")
        limit = -0.5 + LABEL_WIDTH_HOURS + LABEL_GAP_HOURS
        for i in range(1, len(labels)):
            if labels[i][0] - half >= limit:
                break
            labels[i] = (limit + half, labels[i][1], "center")
            limit += LABEL_WIDTH_HOURS + LABEL_GAP_HOURS
    return labels


@cache
def cjk_font() -> str | None:
    """The family name of an installed CJK font, or None."""
    from matplotlib import font_manager

    def find() -> str | None:
        installed = {entry.name for entry in font_manager.fontManager.ttflist}
        return next((family for family in CJK_FAMILIES if family in installed), None)

    found = find()
    if found is None:
        # matplotlib caches its font list on first use: a CJK font installed after that
        # (`make browser` installs fonts-noto-cjk) is on disk but not in the list.
        for path in font_manager.findSystemFonts():
            if "CJK" in path or "SourceHan" in path:
                font_manager.fontManager.addfont(path)
        found = find()
    if found is None:
        logger.warning("no CJK font installed (fonts-noto-cjk): charts use English labels")
    return found


def render_chart(data: ChartData, zone: tzinfo, catalog: Catalog) -> bytes:
    """The chart as PNG bytes, ``CHART_WIDTH × CHART_HEIGHT`` CSS pixels at ``SCALE``×.

    Args:
        data: The series and the alert window.
        zone: Time zone of the day ticks.
        catalog: Words of the labels (English when the locale needs a missing CJK font).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    data = local_days(data, zone)
    font = cjk_font()
    if catalog.is_chinese and font is None:
        catalog = Catalog.for_locale("en")
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    dpi = 100
    figure = Figure(figsize=(CHART_WIDTH / dpi, CHART_HEIGHT / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.08, 0.21, 0.9, 0.64))
    hours = len(data.counts)
    xs = list(range(hours))
    first_window = max(0, data.hour_index(data.window_start))
    last_window = min(hours, data.hour_index(data.window_end))
    colours = [
        WINDOW_COLOUR if first_window <= i < last_window else BAR_COLOUR for i in range(hours)
    ]
    # The usual range as a step band behind the bars, hour by hour.
    axes.fill_between(
        [x - 0.5 for x in xs] + [hours - 0.5],
        list(data.usual_low) + [data.usual_low[-1] if hours else 0],
        list(data.usual_high) + [data.usual_high[-1] if hours else 0],
        step="post",
        color=BAND_COLOUR,
        alpha=0.35,
        linewidth=0,
        zorder=1,
    )
    axes.bar(xs, data.counts, width=0.9, color=colours, linewidth=0, zorder=2)
    axes.axvspan(first_window - 0.5, last_window - 0.5, color=WINDOW_COLOUR, alpha=0.12, zorder=0)

    # Lines at local midnight; each day's label under its day.
    midnights = [
        index - 0.5
        for index in range(1, hours)
        if (data.start + index * HOUR).astimezone(zone).hour == 0
    ]
    labels = day_labels(data, zone, catalog)
    for x in midnights:
        axes.axvline(x, color="#d0d0d0", linewidth=0.8, zorder=0)
    axes.set_xticks(midnights, [""] * len(midnights))
    axes.set_xticks(
        [x for x, _, _ in labels],
        [text for _, text, _ in labels],
        minor=True,
        fontsize=12,
        family=family,
    )
    for tick, (_, _, align) in zip(axes.get_xticklabels(minor=True), labels, strict=True):
        tick.set_horizontalalignment(align)
    axes.tick_params(axis="x", which="major", length=4)
    axes.tick_params(axis="x", which="minor", length=0, pad=3)
    axes.tick_params(axis="y", labelsize=12)
    axes.set_xlim(-0.5, hours - 0.5)
    peak = max([*data.counts, *data.usual_high, 1])
    axes.set_ylim(0, peak * 1.3)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", color="#eeeeee", linewidth=0.8, zorder=0)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)

    axes.annotate(
        window_label(data, catalog),
        xy=(last_window - 1, data.counts[last_window - 1] if last_window > 0 else 0),
        xytext=(-28, 0),
        textcoords="offset points",
        arrowprops={"arrowstyle": "->", "color": WINDOW_COLOUR, "linewidth": 1.2},
        ha="right",
        va="center",
        fontsize=13,
        fontweight="bold",
        color=WINDOW_COLOUR,
        family=family,
    )
    # The zone of the day labels, where a reader looks for it: at the end of the axis.
    axes.set_xlabel(
        utc_offset(data.window_end.astimezone(zone)), loc="right", fontsize=10, color="#666666"
    )
    figure.legend(
        handles=[
            Patch(color=BAR_COLOUR, label=catalog("table_stories")),
            Patch(color=BAND_COLOUR, alpha=0.35, label=catalog("chart_band")),
            Patch(color=WINDOW_COLOUR, label=catalog("chart_window")),
        ],
        loc="upper left",
        bbox_to_anchor=(0.05, 1.01),
        ncol=3,
        frameon=False,
        prop={"family": family, "size": 12},
        handlelength=1.2,
        columnspacing=1.2,
    )
    output = io.BytesIO()
    figure.savefig(output, format="png", dpi=dpi * SCALE, metadata={"Software": None})
    return output.getvalue()


def window_label(data: ChartData, catalog: Catalog) -> str:
    """The words by the alert window's bar: "9 observed vs 0.2 expected", or "9
    observed, usually none" where the mail's text says "usually none" (not "vs 0
    expected")."""
    if usually_none(data.expected):
        return catalog("chart_observed_new", observed=data.observed)
    return catalog("chart_observed", observed=data.observed, expected=number(data.expected))


def day_table(data: ChartData, zone: tzinfo) -> list[DayRow]:
    """The chart's facts per local day: stories, the usual count, the busiest hour (the
    days the chart shows: :func:`local_days`)."""
    data = local_days(data, zone)
    rows: dict[date, list[tuple[datetime, int, float]]] = {}
    for index, count in enumerate(data.counts):
        local = (data.start + index * HOUR).astimezone(zone)
        rows.setdefault(local.date(), []).append((local, count, data.usual_mean[index]))
    result = []
    for day, hours in rows.items():
        busiest = max(hours, key=lambda h: (h[1], h[0]))
        result.append(
            DayRow(
                day=day,
                stories=sum(h[1] for h in hours),
                usual=sum(h[2] for h in hours),
                peak_hour=busiest[0] if busiest[1] else None,
                peak_stories=busiest[1],
                start=hours[0][0],
                end=(hours[-1][0] + HOUR).astimezone(zone),
                hours=len(hours),
            )
        )
    return result


def _width(text: str) -> int:
    """Columns ``text`` takes in a fixed-width font (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def format_day_table(rows: Sequence[DayRow], catalog: Catalog) -> list[str]:
    """The table as fixed-width lines for the plain-text part."""
    cells = [(catalog("table_day"), catalog("table_stories"), catalog("table_usual"))]
    peaks = [catalog("table_peak")]
    for index, row in enumerate(rows):
        weekday = catalog.weekday(datetime(row.day.year, row.day.month, row.day.day), short=True)
        day = f"{row.day:%Y-%m-%d} {weekday}"
        # A partial day says so: its count is not the day's (bi.topic_daily's).
        if row.partial and index == len(rows) - 1 and row.end is not None:
            day += " " + catalog("table_until", time=f"{row.end:%H:%M}")
        elif row.partial and row.start is not None:
            day += " " + catalog("table_from", time=f"{row.start:%H:%M}")
        cells.append((day, str(row.stories), f"{row.usual:.1f}"))
        peaks.append(
            f"{row.peak_hour:%H:00} ({row.peak_stories})" if row.peak_hour is not None else "–"
        )
    widths = [max(_width(c[i]) for c in cells) for i in range(3)]
    return [
        f"{_pad(day, widths[0])}  {_pad(stories, widths[1], right=True)}  "
        f"{_pad(usual, widths[2], right=True)}  {peak}"
        for (day, stories, usual), peak in zip(cells, peaks, strict=True)
    ]
