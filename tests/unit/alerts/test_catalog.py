"""The message catalogue (every key in every locale) and times shown with their offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mediamon.alerts.catalog import MESSAGES, local_span, local_time, number, p_value_text

END = datetime(2024, 4, 17, 2, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_every_message_exists_in_every_locale_with_the_same_placeholders() -> None:
    import string

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english = MESSAGES["en"]
    for locale, messages in MESSAGES.items():
        assert messages.keys() == english.keys(), locale
        for key, text in messages.items():
            assert fields(text) <= fields(english[key]) | {"weekday"}, (locale, key)


def test_times_carry_their_offset() -> None:
    assert local_time(END, SHANGHAI) == "2024-04-17 10:00 (UTC+08:00)"
    assert local_time(END, ZoneInfo("America/St_Johns")) == "2024-04-16 23:30 (UTC-02:30)"
    assert (
        local_span(END - timedelta(hours=1), END, SHANGHAI) == "2024-04-17 09:00–10:00 (UTC+08:00)"
    )
    assert [number(v) for v in (0.2, 0.04, 2.34, 45.2, 0)] == ["0.2", "0.04", "2.3", "45", "0"]


def test_numbers_never_read_inf_nan_or_p_zero() -> None:
    assert [number(v) for v in (45.2, 2.34, 0.2, 0.004, 0.0)] == ["45", "2.3", "0.2", "0", "0"]
    assert number(float("inf")) == number(float("nan")) == "–"
    assert p_value_text(1.7e-10) == "1.7e-10" and p_value_text(0.0) == "< 1e-300"
    assert p_value_text(float("nan")) == "–"
