"""The mail's chart: a PNG at twice its display size with the alert window in red, and
the same facts as a text table."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from mediamon.alerts.catalog import Catalog
from mediamon.alerts.chart import (
    CHART_HEIGHT,
    CHART_WIDTH,
    CJK_FAMILIES,
    SCALE,
    ChartData,
    cjk_font,
    day_table,
    format_day_table,
    render_chart,
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


def test_day_table_matches_the_chart() -> None:
    data = chart(tuple(1 for _ in range(167)) + (9,))
    rows = day_table(data, SHANGHAI)
    assert sum(r.stories for r in rows) == 167 + 9
    assert rows[-1].day.isoformat() == "2024-04-17" and rows[-1].stories == 9 + 9  # 00:00–10:00
    assert rows[-1].peak_stories == 9 and rows[-1].peak_hour is not None
    assert rows[-1].peak_hour.hour == 9
    lines = format_day_table(rows, Catalog.for_locale("en"))
    assert lines[-1].startswith("2024-04-17 Wed") and "09:00 (9)" in lines[-1]


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
