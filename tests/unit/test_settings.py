"""Settings: every MEDIAMON_* variable typed, with one named error for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamon.cli import main
from mediamon.settings import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_SQL_DIR,
    Settings,
    SettingsError,
    validate_timezone,
)


def test_defaults_point_into_the_installed_package() -> None:
    settings = Settings.from_env({})
    assert settings.sources_path == DEFAULT_CONFIG_DIR / "sources.yaml"
    assert settings.topics_path.is_file() and settings.extraction_path.is_file()
    assert (DEFAULT_SQL_DIR / "migrations" / "0001_core_tables.sql").is_file()
    assert settings.database_url is None and settings.workers is None
    assert settings.var_dir == Path("var").absolute()
    assert (settings.http_retries, settings.http_backoff_s) == (3, 0.5)


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "MEDIAMON_DATABASE_URL": "postgresql://db/x",
            "MEDIAMON_SOURCES": "/s.yaml",
            "MEDIAMON_TOPICS": "/t.yaml",
            "MEDIAMON_EXTRACTION_CONFIG": "/e.yaml",
            "MEDIAMON_SQL_DIR": "/sql",
            "MEDIAMON_VAR_DIR": "/var/mm",
            "MEDIAMON_USER_AGENT": "bot/1",
            "MEDIAMON_HTTP_RETRIES": "5",
            "MEDIAMON_HTTP_BACKOFF": "0.25",
            "MEDIAMON_WORKERS": "2",
            "MEDIAMON_AIRFLOW_DATABASE_URL": "postgresql://db/af",
            "MEDIAMON_OPS_EMAIL": " ops@example.org, ,oncall@example.org ",
        }
    )
    assert settings == Settings(
        database_url="postgresql://db/x",
        sources_path=Path("/s.yaml"),
        var_dir=Path("/var/mm"),
        topics_path=Path("/t.yaml"),
        extraction_path=Path("/e.yaml"),
        sql_dir=Path("/sql"),
        user_agent="bot/1",
        http_retries=5,
        http_backoff_s=0.25,
        workers=2,
        airflow_database_url="postgresql://db/af",
        ops_emails=("ops@example.org", "oncall@example.org"),
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MEDIAMON_HTTP_RETRIES", "abc", "a whole number from 0 to 10"),
        ("MEDIAMON_HTTP_RETRIES", "-1", "a whole number from 0 to 10"),
        ("MEDIAMON_HTTP_RETRIES", "1000", "a whole number from 0 to 10"),
        ("MEDIAMON_HTTP_BACKOFF", "soon", "seconds"),
        ("MEDIAMON_HTTP_BACKOFF", "nan", "seconds from 0 to 60"),
        ("MEDIAMON_HTTP_BACKOFF", "inf", "seconds from 0 to 60"),
        ("MEDIAMON_WORKERS", "0", "processes from 1 to 64"),
        ("MEDIAMON_WORKERS", "1.5", "processes from 1 to 64"),
        ("MEDIAMON_WORKERS", "100000", "processes from 1 to 64"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_type(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}={value!r}: expected .*{expected}"):
        Settings.from_env({name: value})


def test_the_cli_prints_one_line_for_a_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDIAMON_HTTP_RETRIES", "abc")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err == "mediamon: MEDIAMON_HTTP_RETRIES='abc': expected a whole number from 0 to 10\n"


def test_display_timezone_is_validated_and_defaults_to_shanghai() -> None:
    assert Settings.from_env({}).timezone == "Asia/Shanghai"
    assert Settings.from_env({"MEDIAMON_TIMEZONE": "Europe/Paris"}).timezone == "Europe/Paris"
    with pytest.raises(SettingsError, match="MEDIAMON_TIMEZONE: 'CST8' is not an IANA time zone"):
        validate_timezone("CST8")
    with pytest.raises(SettingsError, match="MEDIAMON_TIMEZONE: 'Mars/Base' is not an IANA"):
        Settings.from_env({"MEDIAMON_TIMEZONE": "Mars/Base"})
