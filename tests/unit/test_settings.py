"""Settings: every MEDIAMON_* variable typed, with one named error for a bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mediamon.cli import main
from mediamon.errors import ConfigError
from mediamon.settings import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_SQL_DIR,
    DEFAULT_USER_AGENT,
    KNOWN_VARIABLES,
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


def test_every_variable_is_read(tmp_path: Path) -> None:
    for sub in ("migrations", "queries"):
        (tmp_path / "sql" / sub).mkdir(parents=True)
    settings = Settings.from_env(
        {
            "MEDIAMON_DATABASE_URL": "postgresql://db/x",
            "MEDIAMON_SOURCES": "/s.yaml",
            "MEDIAMON_TOPICS": "/t.yaml",
            "MEDIAMON_EXTRACTION_CONFIG": "/e.yaml",
            "MEDIAMON_SQL_DIR": str(tmp_path / "sql"),
            "MEDIAMON_VAR_DIR": "/var/mm",
            "MEDIAMON_USER_AGENT": "bot/1",
            "MEDIAMON_HTTP_RETRIES": "5",
            "MEDIAMON_HTTP_BACKOFF": "0.25",
            "MEDIAMON_WORKERS": "2",
            "MEDIAMON_AIRFLOW_DATABASE_URL": "postgresql://db/af",
            "MEDIAMON_OPS_EMAIL": " ops@example.org, ,oncall@example.org ",
            "MEDIAMON_SHARDS": "6",
            "MEDIAMON_SHARD_TIME_BUDGET_S": "200",
        }
    )
    assert settings == Settings(
        database_url="postgresql://db/x",
        sources_path=Path("/s.yaml"),
        var_dir=Path("/var/mm"),
        topics_path=Path("/t.yaml"),
        extraction_path=Path("/e.yaml"),
        sql_dir=tmp_path / "sql",
        user_agent="bot/1",
        http_retries=5,
        http_backoff_s=0.25,
        workers=2,
        airflow_database_url="postgresql://db/af",
        ops_emails=("ops@example.org", "oncall@example.org"),
        shards=6,
        shard_time_budget_s=200.0,
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
        # before: read only by the ingest DAG's plan_sources, which failed on it at every
        # run after its retries; `mediamon run`, `status`, `ingest` said nothing
        ("MEDIAMON_SHARDS", "abc", "a whole number above 0"),
        ("MEDIAMON_SHARDS", "0", "a whole number above 0"),
        ("MEDIAMON_SHARDS", "-1", "a whole number above 0"),
        ("MEDIAMON_SHARD_TIME_BUDGET_S", "10m", "seconds \\(60 to 1500\\)"),
        ("MEDIAMON_SHARD_TIME_BUDGET_S", "nan", "seconds \\(60 to 1500\\)"),
        ("MEDIAMON_SHARD_TIME_BUDGET_S", "inf", "seconds \\(60 to 1500\\)"),
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


# The tester's findings: each bad value is one line naming the variable, never a
# traceback and never silently accepted.


@pytest.mark.parametrize("name", ["America", "Etc", "Asia", "Europe", "x" * 300])
def test_a_tz_database_folder_is_not_a_time_zone(name: str) -> None:
    # ZoneInfo("America") raises IsADirectoryError (an OSError), not ZoneInfoNotFoundError.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_TIMEZONE": name})
    assert str(caught.value) == (
        f"MEDIAMON_TIMEZONE: {name!r} is not an IANA time zone name"
        " (e.g. Asia/Shanghai, Europe/Paris, UTC)"
    )


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "posix/Europe/Paris"])
def test_a_tz_database_file_that_is_no_zone_is_refused(name: str) -> None:
    # zoneinfo reads each of them (localtime is this machine's zone); the embedded
    # PostgreSQL refused localtime and posixrules with a traceback at every command.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_TIMEZONE": name})
    assert str(caught.value) == (
        f"MEDIAMON_TIMEZONE: {name!r} is not an IANA time zone name"
        " (e.g. Asia/Shanghai, Europe/Paris, UTC)"
    )
    # the names of every zone still pass, links included
    for zone in ("UTC", "Etc/UTC", "GMT", "Asia/Shanghai", "US/Eastern", "America/New_York"):
        assert Settings.from_env({"MEDIAMON_TIMEZONE": zone}).timezone == zone


def test_the_cli_prints_one_line_for_a_tz_database_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDIAMON_TIMEZONE", "America")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "mediamon: MEDIAMON_TIMEZONE: 'America' is not an IANA time zone name"
        " (e.g. Asia/Shanghai, Europe/Paris, UTC)\n"
    )


@pytest.mark.parametrize("value", ["/dev/null", "{tmp}/file"])
def test_a_var_dir_that_is_not_a_folder_is_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "file").write_text("x", "utf-8")
    value = value.format(tmp=tmp_path)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_VAR_DIR": value})
    assert str(caught.value) == (
        f"MEDIAMON_VAR_DIR={value!r}: expected a folder for mediamon's working files"
        " (it is not a folder)"
    )
    # a folder, or a path where one can be made later, is fine
    for fine in (tmp_path, tmp_path / "new" / "var"):
        assert Settings.from_env({"MEDIAMON_VAR_DIR": str(fine)}).var_dir == fine


def test_a_var_dir_that_cannot_be_made_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: FileExistsError / NotADirectoryError tracebacks, or "[Errno 2] …" unnamed
    (tmp_path / "file").write_text("x", "utf-8")
    monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
    for value, why in (("/dev/null", "it is not a folder"), (f"{tmp_path}/file/var", "")):
        monkeypatch.setenv("MEDIAMON_VAR_DIR", value)
        assert main(["status"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mediamon: MEDIAMON_VAR_DIR")
        assert why in err
    assert err == (
        f"mediamon: MEDIAMON_VAR_DIR: cannot create the folder '{tmp_path}/file/var/pgdata'"
        " for mediamon's working files: Not a directory\n"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/dev/zero", "it is not a folder"),
        ("{tmp}/absent", "it does not exist"),
        ("{tmp}/empty", "it has no migrations/ or queries/"),
        ("{tmp}/sql", "it has no migrations/"),
        ("{tmp}/sql/queries", "it has no migrations/ or queries/"),
        ("/" + "x" * 300, "it cannot be read: File name too long"),
    ],
)
def test_an_sql_dir_that_is_not_a_folder_of_migrations_is_refused(
    tmp_path: Path, value: str, problem: str
) -> None:
    (tmp_path / "sql" / "queries").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    value = value.format(tmp=tmp_path)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_SQL_DIR": value})
    assert str(caught.value) == (
        f"MEDIAMON_SQL_DIR={value!r}: expected a folder holding migrations/ and queries/"
        f" ({problem})"
    )


def test_the_packaged_sql_dir_is_accepted_when_named() -> None:
    assert Settings.from_env({"MEDIAMON_SQL_DIR": str(DEFAULT_SQL_DIR)}).sql_dir == DEFAULT_SQL_DIR


@pytest.mark.parametrize(
    "name",
    [
        "MEDIAMON_HEALTH_SILENT_FACTOR",
        "MEDIAMON_HEALTH_VOLUME_RATIO",
        "MEDIAMON_QUALITY_MAX_EMPTY_RATE",
        "MEDIAMON_QUALITY_MAX_DUPLICATE_RATE",
        # int() of NaN failed without naming the variable; minutes became timedelta(nan).
        "MEDIAMON_HEALTH_FAILING_POLLS",
        "MEDIAMON_HEALTH_MIN_ARRIVALS",
        "MEDIAMON_HEALTH_MIN_VOLUME",
        "MEDIAMON_HEALTH_MIN_SILENCE_MINUTES",
        "MEDIAMON_HEALTH_HISTORY_MINUTES",
        "MEDIAMON_HEALTH_VOLUME_WINDOW_MINUTES",
        "MEDIAMON_HEALTH_ALERT_AGE_MINUTES",
        "MEDIAMON_HEALTH_STALE_AFTER_MINUTES",
        "MEDIAMON_QUALITY_MIN_ITEMS",
        "MEDIAMON_QUALITY_FUTURE_TOLERANCE_MINUTES",
    ],
)
@pytest.mark.parametrize("value", ["nan", "NaN", "-nan", "inf", "-Infinity"])
def test_thresholds_refuse_nan_and_infinity(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == f"{name}={value!r}: expected a finite number"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEDIAMON_HTTP_RETRIES", "nan"),
        ("MEDIAMON_HTTP_BACKOFF", "-inf"),
        ("MEDIAMON_WORKERS", "nan"),
        ("MEDIAMON_AIRFLOW_PORT", "nan"),
        ("MEDIAMON_PG_PORT", "inf"),
    ],
)
def test_the_other_numbers_refuse_nan_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}={value!r}: expected "):
        Settings.from_env({name: value})


def test_finite_thresholds_are_still_clamped() -> None:
    settings = Settings.from_env(
        {
            "MEDIAMON_HEALTH_SILENT_FACTOR": "1e300",
            "MEDIAMON_HEALTH_VOLUME_RATIO": "-5",
            "MEDIAMON_QUALITY_MAX_EMPTY_RATE": " 2 ",
            "MEDIAMON_QUALITY_MIN_ITEMS": "0",
        }
    )
    assert (settings.health.silent_factor, settings.health.volume_ratio) == (1000, 0)
    assert (settings.quality.max_empty_rate, settings.quality.min_items) == (1, 1)


@pytest.mark.parametrize(
    ("value", "seconds", "warned"),
    [("", 600.0, False), ("200", 200.0, False), ("5", 60.0, True), ("1e9", 1500.0, True)],
)
def test_the_shard_time_budget_is_clamped_with_one_warning(
    value: str, seconds: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The shard's budget was a constant 600 s, which no 5- or 30-minute schedule fits.
    MEDIAMON_SHARD_TIME_BUDGET_S sets it: under a minute a shard would start little more
    than its first sources, past 25 minutes it would reach the task's timeout."""
    settings = Settings.from_env({"MEDIAMON_SHARD_TIME_BUDGET_S": value})
    assert settings.shard_time_budget_s == seconds
    lines = [r.getMessage() for r in caplog.records if "SHARD_TIME_BUDGET" in r.getMessage()]
    expected = [
        f"MEDIAMON_SHARD_TIME_BUDGET_S={value} is outside 60 to 1500 s: using {seconds:g} s"
    ]
    assert lines == (expected if warned else [])


@pytest.mark.parametrize(
    ("name", "value", "position"),
    [
        ("MEDIAMON_USER_AGENT", "ua\r\nX-Evil: 1", "U+000D (at position 2)"),
        ("MEDIAMON_USER_AGENT", "ua\n", "U+000A (at position 2)"),
        ("MEDIAMON_USER_AGENT", "bot/1\tx", "U+0009 (at position 5)"),
        ("MEDIAMON_USER_AGENT", "bot\x85", "U+0085 (at position 3)"),
        ("MEDIAMON_UNSUBSCRIBE_ADDRESS", "u@x\r\nBcc: a@b", "U+000D (at position 3)"),
        ("MEDIAMON_BASE_URL", "https://m.example\r\nX: 1", "U+000D (at position 17)"),
        ("MEDIAMON_OPS_EMAIL", "ops@example.org\nBcc: a@b", "U+000A (at position 15)"),
    ],
)
def test_header_values_refuse_control_characters(name: str, value: str, position: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == f"{name}={value!r}: control character {position} is not allowed"


@pytest.mark.parametrize(
    ("name", "value", "position"),
    [
        ("MEDIAMON_UNSUBSCRIBE_ADDRESS", "u\u202e@example.org", "U+202E (at position 1)"),
        ("MEDIAMON_BASE_URL", "https://m.example/\u202egpj.exe", "U+202E (at position 18)"),
        ("MEDIAMON_BASE_URL", "https://m.example/\u2066a", "U+2066 (at position 18)"),
        ("MEDIAMON_UNSUBSCRIBE_ADDRESS", "u\u200f@example.org", "U+200F (at position 1)"),
    ],
)
def test_header_values_refuse_bidi_characters(name: str, value: str, position: str) -> None:
    """A U+202E in the unsubscribe address or the base URL would turn the List-Unsubscribe
    header and every mail's "more stories" link around as shown (before: accepted)."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == (
        f"{name}={value!r}: bidi or line-separator character {position} is not allowed"
    )


def test_the_user_agent_is_printable_ascii_and_stripped() -> None:
    value = "bot/1 (新闻)"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_USER_AGENT": value})
    assert str(caught.value) == (
        f"MEDIAMON_USER_AGENT={value!r}: character U+65B0 (at position 7) is not allowed;"
        " an HTTP header is printable ASCII"
    )
    assert Settings.from_env({"MEDIAMON_USER_AGENT": "  bot/2 "}).user_agent == "bot/2"
    # Empty or blank is unset: the default, never a header requests refuses.
    for blank in ("", "   "):
        assert Settings.from_env({"MEDIAMON_USER_AGENT": blank}).user_agent == DEFAULT_USER_AGENT


@pytest.mark.parametrize(
    ("name", "value", "longest"),
    [
        # Before: accepted; every request carried it, and web servers refuse header lines
        # over 8 KiB (Python's own at 64 KiB: HTTP 431), so every source failed every run.
        ("MEDIAMON_USER_AGENT", "mediamon/1 " + "x" * 100_000, 1000),
        ("MEDIAMON_UNSUBSCRIBE_ADDRESS", "u" * 300 + "@example.org", 254),
        ("MEDIAMON_BASE_URL", "https://mediamon.example.org/" + "a" * 5000, 1000),
    ],
    ids=["user-agent", "unsubscribe-address", "base-url"],
)
def test_header_values_too_long_to_send_are_refused(name: str, value: str, longest: int) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == (
        f"{name}={value[:40]!r}…: {len(value)} characters; at most {longest} (it is sent in"
        " every request or mail)"
    )
    assert Settings.from_env({name: value[: longest - 12] + "@example.org"})


@pytest.mark.parametrize("value", ["nobody", "a b@example.org", "<a@example.org>", "a@b@c"])
def test_the_unsubscribe_address_is_a_mail_address(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_UNSUBSCRIBE_ADDRESS": value})
    assert str(caught.value) == (
        f"MEDIAMON_UNSUBSCRIBE_ADDRESS={value!r}: expected a mail address such as"
        " unsubscribe@example.org"
    )
    address = Settings.from_env({"MEDIAMON_UNSUBSCRIBE_ADDRESS": " u@m.example "})
    assert address.unsubscribe_address == "u@m.example"


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("notanemail", "notanemail"),
        ("ops@example.org, oncall", "oncall"),
        ("ops@example.org; oncall@example.org", "ops@example.org; oncall@example.org"),
        ("a b@example.org", "a b@example.org"),
        ("<ops@example.org>", "<ops@example.org>"),
        ("ops@localhost", "ops@localhost"),
        ("a:b@example.org", "a:b@example.org"),  # a group: mailed to b@example.org
        ("=?utf-8?q?a=0D=0Abcc=3Aevil?=@example.org", "=?utf-8?q?a=0D=0Abcc=3Aevil?=@example.org"),
    ],
)
def test_the_ops_emails_are_mail_addresses(value: str, bad: str) -> None:
    # before: accepted, and every incident mail then failed or went astray
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_OPS_EMAIL": value})
    assert str(caught.value) == (
        f"MEDIAMON_OPS_EMAIL={value!r}: {bad!r} is not a mail address; expected addresses such"
        " as ops@example.org, separated by commas"
    )


@pytest.mark.parametrize(
    "value",
    [
        "mediamon.example.org",
        "ftp://mediamon.example.org",
        "https://",
        "https://m.example/a b",
        "https://m.example/?x=1",
        "https://m.example/#top",
        "https://m.example:port/",
        "http://[::1/",
        "/",
    ],
)
def test_the_base_url_is_an_http_url(value: str) -> None:
    # Before: accepted, and safe_link() silently dropped every "more stories" link.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_BASE_URL": value})
    assert str(caught.value) == (
        f"MEDIAMON_BASE_URL={value!r}: expected an http(s) URL without query or fragment,"
        " such as https://mediamon.example.org"
    )


def test_the_base_url_keeps_working_values() -> None:
    base = Settings.from_env({"MEDIAMON_BASE_URL": "https://m.example/news//"}).base_url
    assert base == "https://m.example/news"
    assert Settings.from_env({"MEDIAMON_BASE_URL": ""}).base_url is None


@pytest.mark.parametrize(
    "name",
    [
        "MEDIAMON_SOURCES",
        "MEDIAMON_VAR_DIR",
        "MEDIAMON_SQL_DIR",
        "MEDIAMON_TIMEZONE",
        "MEDIAMON_DATABASE_URL",
        "MEDIAMON_USER_AGENT",
        "MEDIAMON_HEALTH_FAILING_POLLS",
        "MEDIAMON_BI_PASSWORD",  # not read here, and never shown: it may be a secret
    ],
)
def test_nul_in_any_variable_is_one_line_without_the_value(name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: "s3cret\x00x"})
    assert str(caught.value) == f"{name}: control character U+0000 (at position 6) is not allowed"


def test_a_misspelt_variable_is_named_with_the_one_meant(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: ignored without a word; MEDIAMON_DATABSE_URL left the data in the embedded
    # database, MEDIAMON_OPS_EMIAL left incidents unmailed.
    monkeypatch.setenv("MEDIAMON_DATABSE_URL", "postgresql://db.example.org/news")
    monkeypatch.setenv("MEDIAMON_OPS_EMIAL", "ops@example.org")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(DEFAULT_CONFIG_DIR / "topics.yaml"))
    assert main(["topics", "check"]) == 0  # a warning, the command still runs
    assert capsys.readouterr().err == (
        "mediamon: warning: MEDIAMON_DATABSE_URL is not a mediamon variable: ignored"
        " (did you mean MEDIAMON_DATABASE_URL?)\n"
        "mediamon: warning: MEDIAMON_OPS_EMIAL is not a mediamon variable: ignored"
        " (did you mean MEDIAMON_OPS_EMAIL?)\n"
    )


def test_every_variable_the_project_names_is_known() -> None:
    # so the list of known names cannot fall behind a variable added to the code or docs
    root = Path(__file__).parents[2]
    named = set()
    for path in root.glob("**/*"):
        if (
            path.suffix in {".py", ".md", ".yml", ".yaml", ".example", ".txt"}
            and path.is_file()
            and not {".venv", "var", ".git"} & set(path.relative_to(root).parts)
            and path != Path(__file__)
        ):
            text = path.read_text("utf-8", "replace")
            named |= set(re.findall(r"(?<![A-Z_])MEDIAMON_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", text))
    assert named and named <= KNOWN_VARIABLES, sorted(named - KNOWN_VARIABLES)


@pytest.mark.parametrize(
    "value",
    [
        "http://mediamon.example.org",  # RFC 8058: one-click URIs are https
        "mediamon.example.org",
        "https://m.example/?x=1",
        "https://m.example/#top",
        "https://",
    ],
)
def test_the_public_url_is_https_but_on_loopback(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_PUBLIC_URL": value})
    assert str(caught.value) == (
        f"MEDIAMON_PUBLIC_URL={value!r}: expected an https URL without query or fragment,"
        " such as https://mediamon.example.org (http only on 127.0.0.1 or localhost)"
    )


def test_the_public_url_keeps_working_values() -> None:
    for value, kept in [
        ("https://m.example/airflow/", "https://m.example/airflow"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ]:
        assert Settings.from_env({"MEDIAMON_PUBLIC_URL": value}).public_url == kept


def test_unsubscribe_keys_are_long_comma_separated_and_never_shown() -> None:
    new, old = "n" * 40, "o" * 32
    settings = Settings.from_env({"MEDIAMON_UNSUBSCRIBE_SECRET": f" {new} ,{old},"})
    assert settings.unsubscribe_secrets == (new, old)
    assert new not in repr(settings)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MEDIAMON_UNSUBSCRIBE_SECRET": f"{new},short-secret"})
    assert "short-secret" not in str(caught.value)
    assert str(caught.value).startswith(
        "MEDIAMON_UNSUBSCRIBE_SECRET: key 2 has 12 characters; at least 32"
    )
