"""The demo's closing summary reads as sentences, not as a row of a table."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mediamon.devtools.demo import _alert_line, closing_line
from mediamon.settings import Settings


def test_an_alert_reads_as_a_sentence() -> None:
    alert = {
        "topic_name": "台湾",
        "window_start": datetime(2024, 4, 17, 1, tzinfo=UTC),
        "window_end": datetime(2024, 4, 17, 2, tzinfo=UTC),
        "observed": 9,
        "expected": 0.2149,
        "p_value": 1.6545286003494634e-10,
        "state": "notified",
        "mails_sent": 1,
    }
    assert _alert_line(alert) == (
        "台湾: 9 stories from 2024-04-17 01:00 to 02:00Z, 0.21 expected (p = 1.7e-10);"
        " notified, 1 mail sent"
    )
    assert _alert_line({**alert, "mails_sent": 0}).endswith("notified, 0 mails sent")


def test_the_closing_line_names_where_the_data_stays(tmp_path: Path) -> None:
    embedded = Settings.from_env({"MEDIAMON_VAR_DIR": str(tmp_path)})
    assert closing_line(embedded) == (
        f"\nThe database keeps running ({tmp_path / 'pgdata'}); `{sys.argv[0]} db stop` stops it."
    )
    # Before: the embedded server's line, with MEDIAMON_DATABASE_URL set too (no embedded
    # server ran; `db stop` said "not running"), and always var/pgdata.
    elsewhere = replace(embedded, database_url="postgresql://u:secret@db.example.org:6432/news")
    assert closing_line(elsewhere) == (
        "\nThe data stays in db.example.org:6432/news (MEDIAMON_DATABASE_URL)."
    )
