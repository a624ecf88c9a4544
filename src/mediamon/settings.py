"""Settings: every ``MEDIAMON_*`` environment variable, read once, typed and validated.

Read explicitly (:meth:`Settings.from_env`), never at import. A bad value fails with a
:class:`SettingsError` naming the variable and what it expects. Defaults point into the
installed package (``default_config/``, ``sql/``), so a plain ``pip install`` works from
any directory; the working directory holds ``var/`` unless ``MEDIAMON_VAR_DIR`` says.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from mediamon import __version__
from mediamon.errors import ConfigError
from mediamon.ops.thresholds import HealthThresholds, QualityLimits
from mediamon.text import BREAKS_A_LINE

# A regular (unzipped) install: the package's data files are plain files on disk.
PACKAGE_DIR = Path(str(files("mediamon")))
DEFAULT_CONFIG_DIR = PACKAGE_DIR / "default_config"
DEFAULT_SQL_DIR = PACKAGE_DIR / "sql"
DEMO_DIR = PACKAGE_DIR / "devtools" / "demo"
# The BI views' and the page's local days and hours (and the alert mails' local times): the
# audience mostly follows Chinese-language news, so China's zone unless configured.
DEFAULT_TIMEZONE = "Asia/Shanghai"
# The embedded PostgreSQL's port on 127.0.0.1 (BI tools connect there): fixed, so a
# dashboard's connection keeps working, and away from a system server's 5432.
DEFAULT_PG_PORT = 54320
DEFAULT_UNSUBSCRIBE = "mediamon-unsubscribe@localhost"
DEFAULT_USER_AGENT = (
    f"mediamon/{__version__} (+https://github.com/mediamon/mediamon; news monitoring bot)"
)

logger = logging.getLogger(__name__)

T = TypeVar("T", int, float)


# Every number from the environment is clamped to a range before any arithmetic: a
# backoff of 0.5 × 2^1000 s overflows, a thousand workers would fork a thousand times.
MAX_HTTP_RETRIES = 10
MAX_HTTP_BACKOFF_S = 60.0
MAX_WORKERS = 64
# An ingest shard starts no source and no page this long after it began
# (mediamon.ingest.shard_runner): about two thirds of the ingest schedule's interval, so
# the cycle ends before the next (max_active_runs=1 skips a run that would overlap).
# Clamped, not refused: below a minute a shard starts little past its first sources;
# above 25 minutes its tail (one feed fetch, 2 x download_deadline) would reach the
# ingest task's 30-minute timeout, which kills the shard and its polling state with it.
DEFAULT_SHARD_TIME_BUDGET_S = 600.0
MIN_SHARD_TIME_BUDGET_S = 60.0
MAX_SHARD_TIME_BUDGET_S = 1500.0
# Control characters (C0, DEL, C1), line separators and bidi controls
# (mediamon.text.BREAKS_A_LINE): no setting needs one. In a value that ends up in an HTTP
# or mail header (User-Agent, List-Unsubscribe, To) a CR or LF would inject a header or
# make every request fail; a U+202E in the unsubscribe address or the base URL turned the
# List-Unsubscribe header and every mail's "more stories" link around as shown. NUL, in
# any variable, only fails later (a path, a driver). Refused, not shown escaped
# (mediamon.text.one_line, for what mediamon only reports): a setting is the operator's
# own to correct, and a value with one would be used as it is.
CONTROL_CHARACTER = BREAKS_A_LINE
# What the User-Agent header can carry: http.client sends headers as Latin-1 and
# requests refuses leading spaces, so printable ASCII only (stripped).
NOT_HEADER_ASCII = re.compile(r"[^\x20-\x7e]")
# Header values past these lengths are refused, not sent: web servers refuse header lines
# over 8 KiB (nginx, Apache; a 100,000-character User-Agent got HTTP 431 even from
# Python's server), so every source would fail every run; an address is at most 254
# characters (RFC 5321's path), and the base URL starts links that must stay within the
# 2,048 characters of a URL with their query.
MAX_HEADER_CHARS = {
    "MEDIAMON_USER_AGENT": 1_000,
    "MEDIAMON_UNSUBSCRIBE_ADDRESS": 254,
    "MEDIAMON_BASE_URL": 1_000,
    "MEDIAMON_PUBLIC_URL": 1_000,
}
# A mailbox for ``<mailto:…>``: no spaces, angle brackets or second @.
MAIL_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
# A recipient (topics.yaml, MEDIAMON_OPS_EMAIL), a bare address: letters, digits and RFC
# 5322's atext in the local part, a dotted domain. Anything looser reached the mail
# library, which reads "a:b@x" as a group (the mail went to b@x) and decodes
# "=?utf-8?q?…=0D=0A…?=" into a CR LF header break (every run then failed on that address).
RECIPIENT_ADDRESS = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-]+(\.[\w!#$%&'*+/=?^`{|}~-]+)*@[\w-]+(\.[\w-]+)+"
)
ENCODED_WORD = "=?"
SQL_SUBFOLDERS = ("migrations", "queries")


class SettingsError(ConfigError):
    """An environment variable holds a value mediamon cannot use (a ValueError too)."""


# Files of the tz database that zoneinfo reads but that are no zone of their own:
# ``localtime`` is a link to this machine's /etc/localtime (a setting meaning whatever the
# machine says), ``posixrules`` the rules of POSIX TZ strings, ``Factory`` a placeholder
# ("-00"). The embedded PostgreSQL does not know the first two.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zone_names(tzpath: tuple[str, ...]) -> frozenset[str]:
    # Keyed on the search path, which zoneinfo.reset_tzpath may change; about 60 ms.
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def is_zone_name(name: str) -> bool:
    """Whether ``name`` is an IANA time zone of this machine's tz database.

    Only the names ``zoneinfo.available_timezones()`` lists, less :data:`NOT_ZONES`:
    ``ZoneInfo()`` also opens any file under the search path (``posix/Europe/Paris``,
    ``localtime``), and raises IsADirectoryError for a folder such as ``America``.
    """
    return name in _zone_names(tuple(zoneinfo.TZPATH))


def is_recipient_address(address: str) -> bool:
    """Whether mediamon mails ``address`` (see :data:`RECIPIENT_ADDRESS`)."""
    return bool(RECIPIENT_ADDRESS.fullmatch(address)) and ENCODED_WORD not in address


def _ops_emails(raw: str) -> tuple[str, ...]:
    """``MEDIAMON_OPS_EMAIL``: recipients separated by commas (blank entries skipped)."""
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    for address in addresses:
        if not is_recipient_address(address):
            raise SettingsError(
                f"MEDIAMON_OPS_EMAIL={raw!r}: {address!r} is not a mail address; expected"
                " addresses such as ops@example.org, separated by commas"
            )
    return addresses


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone name (``Asia/Shanghai``, ``UTC``).

    Raises:
        SettingsError: naming MEDIAMON_TIMEZONE and the value, when it is not one.
    """
    if not is_zone_name(name):
        raise SettingsError(
            f"MEDIAMON_TIMEZONE: {name!r} is not an IANA time zone name"
            " (e.g. Asia/Shanghai, Europe/Paris, UTC)"
        )
    return name


def _refuse_control_characters(name: str, raw: str, *, show: bool = True) -> None:
    """Raise a :class:`SettingsError` naming ``name`` (and, when ``show``, the value) if
    ``raw`` holds a control character."""
    bad = CONTROL_CHARACTER.search(raw)
    if bad:
        where = f"{name}={raw!r}" if show else name
        kind = "control" if unicodedata.category(bad.group()) == "Cc" else "bidi or line-separator"
        raise SettingsError(
            f"{where}: {kind} character U+{ord(bad.group()):04X} (at position {bad.start()})"
            " is not allowed"
        )


def _sql_dir(raw: str) -> Path:
    """``MEDIAMON_SQL_DIR``: an existing folder holding ``migrations/`` and ``queries/``."""
    folder = Path(raw)
    try:
        if not folder.exists():
            problem = "it does not exist"
        elif not folder.is_dir():
            problem = "it is not a folder"
        else:
            missing = [f"{sub}/" for sub in SQL_SUBFOLDERS if not (folder / sub).is_dir()]
            problem = f"it has no {' or '.join(missing)}" if missing else ""
    except OSError as error:
        problem = f"it cannot be read: {error.strerror or type(error).__name__}"
    if problem:
        raise SettingsError(
            f"MEDIAMON_SQL_DIR={raw!r}: expected a folder holding migrations/ and queries/"
            f" ({problem})"
        )
    return folder


def _var_dir(raw: str) -> Path:
    """``MEDIAMON_VAR_DIR``: a folder, or a path where one can be made (it is created when
    first needed, see :func:`make_var_dir`); a file or device there is refused now."""
    folder = Path(raw)
    try:
        problem = "" if folder.is_dir() or not folder.exists() else "it is not a folder"
    except OSError as error:  # exists() lets a name too long or a folder we may not list out
        problem = f"it cannot be read: {error.strerror or type(error).__name__}"
    if problem:
        raise SettingsError(
            f"MEDIAMON_VAR_DIR={raw!r}: expected a folder for mediamon's working files ({problem})"
        )
    return folder


def make_var_dir(folder: Path) -> Path:
    """Create ``folder`` (``MEDIAMON_VAR_DIR`` or a folder in it) if missing; return it.

    Raises:
        SettingsError: naming MEDIAMON_VAR_DIR, when it cannot be created (a parent that
            is a file, a read-only or virtual file system such as /proc, no permission).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(
            f"MEDIAMON_VAR_DIR: cannot create the folder {str(folder)!r} for mediamon's"
            f" working files: {error.strerror or type(error).__name__}"
        ) from None
    return folder


# Every MEDIAMON_* variable mediamon, its tests, benchmarks and tools read: a name not
# here is a typo (a misspelt MEDIAMON_DATABASE_URL silently left the data in the embedded
# database).
KNOWN_VARIABLES = frozenset(
    f"MEDIAMON_{name}"
    for name in (
        "DATABASE_URL",
        "AIRFLOW_DATABASE_URL",
        "SOURCES",
        "TOPICS",
        "EXTRACTION_CONFIG",
        "SQL_DIR",
        "VAR_DIR",
        "USER_AGENT",
        "HTTP_RETRIES",
        "HTTP_BACKOFF",
        "WORKERS",
        "SHARDS",
        "SHARD_TIME_BUDGET_S",
        "OPS_EMAIL",
        "AIRFLOW_PORT",
        "HEADER_TIMEOUT_S",  # read by the api-server's plugin: mediamon.bi.header_timeout
        "TIMEZONE",
        "BASE_URL",
        "PUBLIC_URL",
        "UNSUBSCRIBE_ADDRESS",
        "UNSUBSCRIBE_SECRET",
        "PG_PORT",
        "BI_PASSWORD",
        "BI_LOGIN",
        "WRITER_ROLE",
        "WRITER_PASSWORD",
        "SUPERSET_DB_URL",
        "HEALTH_FAILING_POLLS",
        "HEALTH_SILENT_FACTOR",
        "HEALTH_MIN_SILENCE_MINUTES",
        "HEALTH_HISTORY_MINUTES",
        "HEALTH_MIN_ARRIVALS",
        "HEALTH_VOLUME_WINDOW_MINUTES",
        "HEALTH_VOLUME_RATIO",
        "HEALTH_MIN_VOLUME",
        "HEALTH_ALERT_AGE_MINUTES",
        "HEALTH_STALE_AFTER_MINUTES",
        "HEALTH_FLAP_MINUTES",
        "QUALITY_FUTURE_TOLERANCE_MINUTES",
        "QUALITY_MAX_EMPTY_RATE",
        "QUALITY_MAX_DUPLICATE_RATE",
        "QUALITY_MIN_ITEMS",
        # tests, benchmarks and deployment tools
        "TEST_DATABASE_URL",
        "TEST_REDIS_URL",
        "BENCH_DATABASE_URL",
        "CHROMIUM",
        "CORPORA",
        "WORKER_NAME",
    )
)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``MEDIAMON_*`` variable mediamon does not read, with the known
    name it most resembles."""
    import difflib

    warnings = []
    for name in sorted(key for key in env if key.startswith("MEDIAMON_")):
        if name in KNOWN_VARIABLES:
            continue
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{name} is not a mediamon variable: ignored{hint}")
    return warnings


def requested_shards(env: Mapping[str, str]) -> int | None:
    """``MEDIAMON_SHARDS`` as a number, or None when unset or blank.

    Raises:
        SettingsError: the variable is set but is not a whole number above 0.
    """
    raw = env.get("MEDIAMON_SHARDS", "").strip()
    if not raw:
        return None
    # ASCII digits only ("²".isdigit() is true, int("²") fails), and few enough of them
    # that int() need not read thousands (the count is clamped to MAX_SHARDS anyway).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise SettingsError(f"MEDIAMON_SHARDS={raw[:40]!r}: expected a whole number above 0")
    return int(raw)


def shard_time_budget(env: Mapping[str, str]) -> float:
    """``MEDIAMON_SHARD_TIME_BUDGET_S``: seconds an ingest shard starts sources for,
    clamped to MIN_SHARD_TIME_BUDGET_S..MAX_SHARD_TIME_BUDGET_S (one WARNING line says
    so); DEFAULT_SHARD_TIME_BUDGET_S when unset or blank.

    Raises:
        SettingsError: the variable is set but is not a finite number of seconds.
    """
    raw = env.get("MEDIAMON_SHARD_TIME_BUDGET_S", "").strip()
    if not raw:
        return DEFAULT_SHARD_TIME_BUDGET_S
    expected = (
        f"expected seconds ({MIN_SHARD_TIME_BUDGET_S:g} to {MAX_SHARD_TIME_BUDGET_S:g}) an"
        " ingest shard starts sources for, about two thirds of the schedule's interval"
    )
    try:
        seconds = float(raw[:40])  # a number needs no more; float() of 10**6 digits is slow
    except ValueError:
        raise SettingsError(f"MEDIAMON_SHARD_TIME_BUDGET_S={raw[:40]!r}: {expected}") from None
    if len(raw) > 40 or not math.isfinite(seconds):
        raise SettingsError(f"MEDIAMON_SHARD_TIME_BUDGET_S={raw[:40]!r}: {expected}")
    clamped = min(max(seconds, MIN_SHARD_TIME_BUDGET_S), MAX_SHARD_TIME_BUDGET_S)
    if clamped != seconds:
        logger.warning(
            "MEDIAMON_SHARD_TIME_BUDGET_S=%s is outside %g to %g s: using %g s",
            raw[:40], MIN_SHARD_TIME_BUDGET_S, MAX_SHARD_TIME_BUDGET_S, clamped,
        )  # fmt: skip
    return clamped


def _site_url(raw: str, schemes: frozenset[str]) -> str | None:
    """``raw`` as a site's URL: a scheme of ``schemes``, a host, a numeric port if any, no
    spaces, query or fragment (mails append paths and queries to it), trailing slashes
    removed; None when it is not one. http counts only on a loopback host when ``schemes``
    holds ``https`` alone."""
    url = raw.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        loopback_http = scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        usable = (
            (scheme in schemes or loopback_http)
            and bool(parts.hostname)
            and not any(c.isspace() for c in url)
            and not (parts.query or parts.fragment or "?" in url or "#" in url)
        )
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        usable = False
    return url if usable else None


def _base_url(raw: str) -> str:
    """``MEDIAMON_BASE_URL``: where readers open the mediamon page (mails append
    ``/mediamon/?…`` to it): an http(s) URL."""
    url = _site_url(raw, frozenset({"http", "https"}))
    if url is None:
        raise SettingsError(
            f"MEDIAMON_BASE_URL={raw!r}: expected an http(s) URL without query or fragment,"
            " such as https://mediamon.example.org"
        )
    return url


# Hosts where a plain http:// public URL is accepted: a test or a demo on this machine.
# Anywhere else RFC 8058 asks for https (a one-click URI in clear text would hand the
# token to anyone on the path, and Gmail does not POST to http).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# An HMAC key shorter than this is guessable offline from one unsubscribe link (the
# link holds both the message and its MAC): 32 characters of secrets.token_urlsafe
# carry 192 bits.
MIN_SECRET_CHARS = 32


def _public_url(raw: str) -> str:
    """``MEDIAMON_PUBLIC_URL``: where the api-server's unsubscribe page is reachable from
    the internet: an https URL (http only on loopback)."""
    url = _site_url(raw, frozenset({"https"}))
    if url is None:
        raise SettingsError(
            f"MEDIAMON_PUBLIC_URL={raw!r}: expected an https URL without query or fragment,"
            " such as https://mediamon.example.org (http only on 127.0.0.1 or localhost)"
        )
    return url


def unsubscribe_secrets(raw: str) -> tuple[str, ...]:
    """``MEDIAMON_UNSUBSCRIBE_SECRET``: HMAC keys separated by commas, the first signing,
    every one verifying (rotation: put the new key first, drop the old one once the
    mails that carry it no longer matter). The value is never shown: it is a secret."""
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    for position, key in enumerate(keys, 1):
        if len(key) < MIN_SECRET_CHARS:
            raise SettingsError(
                f"MEDIAMON_UNSUBSCRIBE_SECRET: key {position} has {len(key)} characters; at"
                f" least {MIN_SECRET_CHARS} (make one with: python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))')"
            )
    return keys


@dataclass(frozen=True)
class Settings:
    """Where mediamon finds its database, configuration and working files.

    Attributes:
        database_url: ``MEDIAMON_DATABASE_URL``, the data database; None means the
            embedded server.
        sources_path: ``MEDIAMON_SOURCES``, the YAML file listing the sources.
        var_dir: ``MEDIAMON_VAR_DIR``, the working directory of the embedded database
            and the demo (default ``./var``).
        topics_path: ``MEDIAMON_TOPICS``, the YAML file defining the tracked topics.
        extraction_path: ``MEDIAMON_EXTRACTION_CONFIG``, optional per-site extraction rules.
        sql_dir: ``MEDIAMON_SQL_DIR``, the folder holding ``migrations/`` and ``queries/``.
        user_agent: ``MEDIAMON_USER_AGENT``, the User-Agent header of every request.
        http_retries: ``MEDIAMON_HTTP_RETRIES``, retries of a request after a connection
            error or a 5xx answer.
        http_backoff_s: ``MEDIAMON_HTTP_BACKOFF``, base of the exponential backoff between
            those retries, in seconds.
        workers: ``MEDIAMON_WORKERS``, extraction processes; None means one per core.
        airflow_database_url: ``MEDIAMON_AIRFLOW_DATABASE_URL``, Airflow's metadata
            database for ``mediamon run``/``demo``; None means the embedded server.
        ops_emails: ``MEDIAMON_OPS_EMAIL`` (comma-separated), who gets ops mail: incidents,
            recoveries, the weekly source-health report, task failures.
        airflow_port: ``MEDIAMON_AIRFLOW_PORT``, the port of the UI ``mediamon run`` starts.
        health: ``MEDIAMON_HEALTH_*``, the watchdog's thresholds.
        quality: ``MEDIAMON_QUALITY_*``, the data-quality checks' thresholds.
        timezone: ``MEDIAMON_TIMEZONE``, the IANA zone of local days and hours: mails show
            times in it (with the UTC offset) unless a recipient chooses another.
        base_url: ``MEDIAMON_BASE_URL``, where mediamon's pages are served, for "more
            stories" links in mails; None: mails link only to articles.
        unsubscribe_address: ``MEDIAMON_UNSUBSCRIBE_ADDRESS``, the mailbox named in every
            mail's ``List-Unsubscribe``.
        public_url: ``MEDIAMON_PUBLIC_URL``, where recipients (and their mail providers)
            reach the api-server's unsubscribe page; None: mails offer the mailbox only.
        unsubscribe_secrets: ``MEDIAMON_UNSUBSCRIBE_SECRET``, the HMAC keys of the
            unsubscribe links (the first signs); empty: no links.
        pg_port: ``MEDIAMON_PG_PORT``, the embedded PostgreSQL's port on 127.0.0.1 (and
            its socket); 0 means the socket only.
        shards: ``MEDIAMON_SHARDS``, shards per ingest cycle; None: Airflow's parallelism.
        shard_time_budget_s: ``MEDIAMON_SHARD_TIME_BUDGET_S``, seconds after its start past
            which an ingest shard starts no source and no page (clamped, see
            :func:`shard_time_budget`).
        database_source: where ``database_url`` came from, as messages name it: the
            variable, or the Airflow connection ``mediamon_db`` (``mediamon_airflow``).
    """

    database_url: str | None
    sources_path: Path
    var_dir: Path
    topics_path: Path = DEFAULT_CONFIG_DIR / "topics.yaml"
    extraction_path: Path = DEFAULT_CONFIG_DIR / "extraction.yaml"
    sql_dir: Path = DEFAULT_SQL_DIR
    user_agent: str = DEFAULT_USER_AGENT
    http_retries: int = 3
    http_backoff_s: float = 0.5
    workers: int | None = None
    airflow_database_url: str | None = None
    ops_emails: tuple[str, ...] = ()
    airflow_port: int = 8080
    health: HealthThresholds = field(default_factory=HealthThresholds)
    quality: QualityLimits = field(default_factory=QualityLimits)
    timezone: str = DEFAULT_TIMEZONE
    base_url: str | None = None
    unsubscribe_address: str = DEFAULT_UNSUBSCRIBE
    pg_port: int = DEFAULT_PG_PORT
    shards: int | None = None
    shard_time_budget_s: float = DEFAULT_SHARD_TIME_BUDGET_S
    public_url: str | None = None
    unsubscribe_secrets: tuple[str, ...] = field(default=(), repr=False)
    database_source: str = "MEDIAMON_DATABASE_URL"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``MEDIAMON_*`` environment variables.

        Raises:
            SettingsError: a variable holds a value of the wrong type or range.
        """
        env = os.environ if environ is None else environ
        # NUL in any variable (os.environ cannot hold one, a mapping can); the value is
        # not shown, it may be a password.
        for key, value in env.items():
            if key.startswith("MEDIAMON_") and "\x00" in value:
                _refuse_control_characters(key, value, show=False)

        def text(name: str) -> str | None:
            return env.get(name) or None

        def header_text(name: str) -> str | None:
            """A value that ends up in an HTTP or mail header: no control characters;
            stripped, None when unset or blank."""
            raw = env.get(name)
            if not raw:
                return None
            _refuse_control_characters(name, raw)
            return raw.strip() or None

        def path(name: str, default: Path) -> Path:
            return Path(env.get(name) or default)

        def number(name: str, parse: Callable[[str], T], kind: str, default: T, high: float) -> T:
            """The variable as a number from 0 to ``high`` (NaN and infinity refused)."""
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = parse(raw.strip())
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected {kind}") from None
            if not 0 <= value <= high:
                raise SettingsError(f"{name}={raw!r}: expected {kind}")
            return value

        workers = number(
            "MEDIAMON_WORKERS", int, "a whole number of processes from 1 to 64", 0, MAX_WORKERS
        )
        if env.get("MEDIAMON_WORKERS") and workers < 1:
            raise SettingsError(
                f"MEDIAMON_WORKERS={env['MEDIAMON_WORKERS']!r}: expected a whole number of"
                " processes from 1 to 64"
            )
        for name, longest in MAX_HEADER_CHARS.items():
            if len(value := env.get(name, "").strip()) > longest:
                raise SettingsError(
                    f"{name}={value[:40]!r}…: {len(value)} characters; at most {longest} (it is"
                    " sent in every request or mail)"
                )
        ops = header_text("MEDIAMON_OPS_EMAIL") or ""
        user_agent = header_text("MEDIAMON_USER_AGENT")
        if user_agent is not None:
            raw = env["MEDIAMON_USER_AGENT"]
            bad = NOT_HEADER_ASCII.search(raw)
            if bad:
                raise SettingsError(
                    f"MEDIAMON_USER_AGENT={raw!r}: character U+{ord(bad.group()):04X} (at"
                    f" position {bad.start()}) is not allowed; an HTTP header is printable ASCII"
                )
        unsubscribe = header_text("MEDIAMON_UNSUBSCRIBE_ADDRESS")
        if unsubscribe is not None and not MAIL_ADDRESS.fullmatch(unsubscribe):
            raise SettingsError(
                f"MEDIAMON_UNSUBSCRIBE_ADDRESS={env['MEDIAMON_UNSUBSCRIBE_ADDRESS']!r}:"
                " expected a mail address such as unsubscribe@example.org"
            )
        base_url = header_text("MEDIAMON_BASE_URL")
        public_url = header_text("MEDIAMON_PUBLIC_URL")
        # Not shown in a refusal (a secret); control characters are refused all the same.
        secret = env.get("MEDIAMON_UNSUBSCRIBE_SECRET", "")
        if CONTROL_CHARACTER.search(secret):
            raise SettingsError(
                "MEDIAMON_UNSUBSCRIBE_SECRET: holds a control, bidi or line-separator"
                " character; expected keys such as secrets.token_urlsafe(32) makes"
            )
        pg_port = number(
            "MEDIAMON_PG_PORT", int, "a port number (1-65535; 0: socket only)",
            DEFAULT_PG_PORT, 65535,
        )  # fmt: skip
        return cls(
            database_url=text("MEDIAMON_DATABASE_URL"),
            sources_path=path("MEDIAMON_SOURCES", DEFAULT_CONFIG_DIR / "sources.yaml"),
            var_dir=_var_dir(env["MEDIAMON_VAR_DIR"])
            if env.get("MEDIAMON_VAR_DIR")
            else Path("var").absolute(),
            topics_path=path("MEDIAMON_TOPICS", DEFAULT_CONFIG_DIR / "topics.yaml"),
            extraction_path=path(
                "MEDIAMON_EXTRACTION_CONFIG", DEFAULT_CONFIG_DIR / "extraction.yaml"
            ),
            sql_dir=_sql_dir(env["MEDIAMON_SQL_DIR"])
            if env.get("MEDIAMON_SQL_DIR")
            else DEFAULT_SQL_DIR,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            http_retries=number(
                "MEDIAMON_HTTP_RETRIES", int, "a whole number from 0 to 10", 3, MAX_HTTP_RETRIES
            ),
            http_backoff_s=number(
                "MEDIAMON_HTTP_BACKOFF", float, "seconds from 0 to 60", 0.5, MAX_HTTP_BACKOFF_S
            ),
            workers=workers or None,
            airflow_database_url=text("MEDIAMON_AIRFLOW_DATABASE_URL"),
            ops_emails=_ops_emails(ops),
            airflow_port=number("MEDIAMON_AIRFLOW_PORT", int, "a port from 1 to 65535", 8080, 65535)
            or 8080,
            health=HealthThresholds.from_env(env),
            quality=QualityLimits.from_env(env),
            timezone=validate_timezone(env.get("MEDIAMON_TIMEZONE") or DEFAULT_TIMEZONE),
            base_url=_base_url(env["MEDIAMON_BASE_URL"]) if base_url else None,
            unsubscribe_address=unsubscribe or DEFAULT_UNSUBSCRIBE,
            pg_port=pg_port,
            # read here, so a bad value stops every command (`mediamon run` too), not each
            # ingest run's plan_sources after its retries
            shards=requested_shards(env),
            shard_time_budget_s=shard_time_budget(env),
            public_url=_public_url(env["MEDIAMON_PUBLIC_URL"]) if public_url else None,
            unsubscribe_secrets=unsubscribe_secrets(secret),
        )
