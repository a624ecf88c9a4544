"""The mediamon page's assembly without Airflow: an empty database renders a page that
says so, names an outsider supplies are escaped in the charts and tables, and the window
parameter is clamped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mediamon.bi import dashboard
from mediamon.bi.charts import Bar, Marker, bar_chart


def test_empty_database_renders(engine: sa.Engine) -> None:
    html = dashboard.page_html(engine, datetime(2026, 1, 1, tzinfo=UTC))
    assert "no stories yet" in html and "No alerts yet." in html and "No sources yet." in html


def test_page_reads_as_the_bi_role(engine: sa.Engine) -> None:
    with dashboard.read_only(engine) as conn:
        assert conn.execute(sa.text("select current_user")).scalar_one() == "mediamon_bi"
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("select count(*) from public.articles"))


def test_outside_names_are_escaped(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into sources (name, kind, location, poll_interval)"
                " values (:n, 'feed', 'https://example.invalid/feed', interval '15 minutes')"
            ),
            {"n": "<img src=x onerror=alert(1)>"},
        )
    html = dashboard.page_html(engine, datetime(2026, 1, 1, tzinfo=UTC))
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    chart = bar_chart(
        [Bar(3, "<b>", "</title><script>x</script>")],
        title='"><script>',
        y_label="台湾 & <i>",
        markers=[Marker(0, "<svg>", "<script>")],
    )
    assert "<script>" not in chart and "<b>" not in chart and "<i>" not in chart
    assert "台湾 &amp; &lt;i&gt;" in chart


@pytest.mark.parametrize(
    ("given", "days"), [("7", 7), ("0", 1), ("-5", 1), ("100000", 90), ("x", 14), ("", 14)]
)
def test_window_is_clamped(given: str, days: int) -> None:
    assert dashboard.clamp_days(given) == days
