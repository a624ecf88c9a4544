"""The mail's chart: a PNG at twice its display size with the alert window in red, and
the same facts as a text table."""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from mediamon.alerts.catalog import Catalog
from mediamon.alerts.chart import (
    CHART_HEIGHT,
    CHART_WIDTH,
    CJK_FAMILIES,
    LABEL_WIDTH_HOURS,
    SCALE,
    ChartData,
    cjk_font,
    day_labels,
    day_table,
    format_day_table,
    local_days,
    render_chart,
    window_label,
)

END = datetime(2024, 4, 17, 2, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
SHANGHAI = ZoneInfo("Asia/Shanghai")


def chart(counts: tuple[int, ...]) -> ChartData:
    start = END - timedelta(hours=len(counts))
    return ChartData(
        start=start,
        counts=counts,
        usual_low=tuple(0.0 for _ in counts),
        usual_high=tuple(2.0 for _ in counts),
        usual_mean=tuple(0.5 for _ in counts),
        window_start=END - timedelta(hours=1),
        window_end=END,
        observed=counts[-1],
        expected=0.2,
        baseline_weeks=4,
    )


def test_chart_png_is_double_size_with_the_window_in_red() -> None:
    data = chart(tuple(1 if i % 5 == 0 else 0 for i in range(167)) + (9,))
    png = render_chart(data, SHANGHAI, Catalog.for_locale("zh-CN"))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (CHART_WIDTH * SCALE, CHART_HEIGHT * SCALE)
    width, height = image.size

    def reddish(x: int, y: int) -> bool:
        r, g, b = image.getpixel((x, y))  # type: ignore[misc]
        return bool(r > 150 and g < 90 and b < 90)

    # The alert bar: red pixels in the rightmost tenth of the plot, none among the bars on
    # the left (the lower half: the red annotation above them is as long as its words, and
    # with English labels, where no CJK font is installed, it reaches past the middle).
    right = sum(reddish(x, y) for x in range(int(width * 0.9), width) for y in range(height))
    left = sum(
        reddish(x, y) for x in range(0, int(width * 0.5)) for y in range(height // 2, height)
    )
    assert right > 200 and left == 0


def test_the_window_label_says_usually_none_as_the_mails_text_does() -> None:
    """A topic whose expectation rounds to 0: the mail says "usually none", so the label
    by the red bar does too (it said "9 observed vs 0 expected")."""
    data = chart((0,) * 167 + (9,))
    english, chinese = Catalog.for_locale("en"), Catalog.for_locale("zh-CN")
    assert window_label(data, english) == "9 observed vs 0.2 expected"
    for expected in (0.0, 0.003, float("nan")):
        new = replace(data, expected=expected)
        assert window_label(new, english) == "9 observed, usually none"
        assert window_label(new, chinese) == "实际 9 篇，平常几乎没有"


def test_day_table_matches_the_chart() -> None:
    data = chart(tuple(1 for _ in range(191)) + (9,))  # 8 days, as content.chart_data reads
    rows = day_table(data, SHANGHAI)
    assert len(rows) == 7 and sum(r.stories for r in rows) == 6 * 24 + 9 + 9
    assert rows[-1].day.isoformat() == "2024-04-17" and rows[-1].stories == 9 + 9  # 00:00–10:00
    assert rows[-1].peak_stories == 9 and rows[-1].peak_hour is not None
    assert rows[-1].peak_hour.hour == 9
    lines = format_day_table(rows, Catalog.for_locale("en"))
    assert lines[-1].startswith("2024-04-17 Wed (to 10:00)") and "09:00 (9)" in lines[-1]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/Chicago", "Asia/Kolkata", "UTC"])
def test_seven_whole_local_days_then_the_alerts_day_up_to_its_window(zone: str) -> None:
    """The series began at the window's hour 7 days back: 8 rows, the first a partial day
    (from 10:00 in Shanghai) whose count disagreed with bi.topic_daily's, and in Chicago
    (3 hours of it) a first day without a label on the chart. Now 6 whole local days and
    the alert's day up to its window, each labelled; the partial one says so."""
    local = ZoneInfo(zone)
    data = chart(tuple(1 for _ in range(192)))
    rows = day_table(data, local)
    assert len(rows) == 7, [r.day for r in rows]
    assert all(not r.partial and r.stories == r.hours for r in rows[:-1]), rows
    assert all(r.hours == 24 for r in rows[:-1])
    end = END.astimezone(local)
    assert rows[-1].day == (END - timedelta(hours=1)).astimezone(local).date()
    for locale, mark in (("en", f"(to {end:%H:%M})"), ("zh-CN", f"（至 {end:%H:%M}）")):
        lines = format_day_table(rows, Catalog.for_locale(locale))
        assert len(lines) == 8 and (mark in lines[-1]) == rows[-1].partial, lines
        assert not any("(to" in line or "至" in line for line in lines[:-1])
    labels = day_labels(local_days(data, local), local, Catalog.for_locale("en"))
    assert [text.split("\n")[1] for _, text, _ in labels] == [f"{r.day:%m-%d}" for r in rows]
    hours = len(local_days(data, local).counts)
    assert all(-0.5 <= x <= hours - 0.5 for x, _, _ in labels)


@pytest.mark.parametrize("hours_before_end", [0, 1, 3, 5, 7, 12])
def test_day_labels_never_overlap_nor_leave_the_axis(hours_before_end: int) -> None:
    """A short last day (the alert an hour after local midnight) is labelled at the axis'
    end and the labels before it make room; so is a short first day of a short series."""
    end = END + timedelta(hours=hours_before_end)
    for zone in (SHANGHAI, ZoneInfo("America/Chicago"), ZoneInfo("Asia/Kolkata")):
        for length in (192, 168):
            data = local_days(
                replace(
                    chart(tuple(1 for _ in range(length))), start=end - timedelta(hours=length)
                ),
                zone,
            )
            labels = day_labels(data, zone, Catalog.for_locale("en"))
            spans = []
            for x, _, align in labels:
                left = {"center": x - LABEL_WIDTH_HOURS / 2, "right": x - LABEL_WIDTH_HOURS}.get(
                    align, x
                )
                spans.append((left, left + LABEL_WIDTH_HOURS))
            assert spans[0][0] >= -0.5 and spans[-1][1] <= len(data.counts) - 0.5 + 3, spans
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), (zone, length, labels)


def test_a_short_series_keeps_its_partial_first_day_marked() -> None:
    rows = day_table(chart(tuple(1 for _ in range(168))), SHANGHAI)
    assert len(rows) == 7 and rows[0].day.isoformat() == "2024-04-11"  # 04-10 left out
    short = day_table(chart(tuple(1 for _ in range(30))), SHANGHAI)
    lines = format_day_table(short, Catalog.for_locale("en"))
    assert lines[1].startswith("2024-04-16 Tue (from 04:00)") and "(to 10:00)" in lines[-1]


def test_a_cjk_font_installed_after_matplotlib_cached_its_font_list_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from matplotlib import font_manager

    # matplotlib's cached list from before fonts-noto-cjk was installed: no CJK entry
    without_cjk = [e for e in font_manager.fontManager.ttflist if "CJK" not in e.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without_cjk)
    cjk_font.cache_clear()
    try:
        assert cjk_font() in CJK_FAMILIES
    finally:
        cjk_font.cache_clear()
