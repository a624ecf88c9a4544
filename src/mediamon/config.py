"""Settings read from the environment, explicitly (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mediamon import __version__

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The BI views' and the page's local days and hours (and the alert mails' local times): the
# audience mostly follows Chinese-language news, so China's zone unless configured.
DEFAULT_TIMEZONE = "Asia/Shanghai"
# The embedded PostgreSQL's port on 127.0.0.1 (BI tools connect there): fixed, so a
# dashboard's connection keeps working, and away from a system server's 5432.
DEFAULT_PG_PORT = 54320
DEFAULT_USER_AGENT = (
    f"mediamon/{__version__} (+https://github.com/mediamon/mediamon; news monitoring bot)"
)


@dataclass(frozen=True)
class Settings:
    """Where mediamon finds its database, configuration and working files.

    Attributes:
        database_url: SQLAlchemy URL of the data database; None means the embedded server.
        sources_path: YAML file listing the sources.
        topics_path: YAML file defining the tracked topics.
        var_dir: Working directory for the embedded database and the demo.
        user_agent: User-Agent header sent with every request.
        http_retries: Retries of a request after a connection error or a 5xx answer.
        http_backoff_s: Base of the exponential backoff between those retries.
        timezone: IANA time zone of local days and hours (``MEDIAMON_TIMEZONE``).
        pg_port: Port of the embedded PostgreSQL on 127.0.0.1 and its socket; 0 means the
            socket only (``MEDIAMON_PG_PORT``).
    """

    database_url: str | None
    sources_path: Path
    var_dir: Path
    topics_path: Path = PROJECT_ROOT / "config" / "topics.yaml"
    user_agent: str = DEFAULT_USER_AGENT
    http_retries: int = 3
    http_backoff_s: float = 0.5
    timezone: str = DEFAULT_TIMEZONE
    pg_port: int = DEFAULT_PG_PORT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``MEDIAMON_*`` environment variables."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("MEDIAMON_DATABASE_URL") or None,
            sources_path=Path(
                env.get("MEDIAMON_SOURCES") or PROJECT_ROOT / "config" / "sources.yaml"
            ),
            var_dir=Path(env.get("MEDIAMON_VAR_DIR") or PROJECT_ROOT / "var"),
            topics_path=Path(env.get("MEDIAMON_TOPICS") or PROJECT_ROOT / "config" / "topics.yaml"),
            user_agent=env.get("MEDIAMON_USER_AGENT") or DEFAULT_USER_AGENT,
            http_retries=int(env.get("MEDIAMON_HTTP_RETRIES") or 3),
            http_backoff_s=float(env.get("MEDIAMON_HTTP_BACKOFF") or 0.5),
            timezone=validate_timezone(env.get("MEDIAMON_TIMEZONE") or DEFAULT_TIMEZONE),
            pg_port=_port(env.get("MEDIAMON_PG_PORT"), DEFAULT_PG_PORT),
        )


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone name (``Asia/Shanghai``, ``UTC``).

    Raises:
        ValueError: naming MEDIAMON_TIMEZONE and the value, when it is not one.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # zoneinfo also accepts some file paths; only names like Area/City or UTC pass here
        raise ValueError(
            f"MEDIAMON_TIMEZONE: {name!r} is not an IANA time zone name"
            " (e.g. Asia/Shanghai, Europe/Paris, UTC)"
        ) from None
    return name


def _port(value: str | None, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    if not value.strip().isdigit() or int(value) > 65535:
        raise ValueError(
            f"MEDIAMON_PG_PORT: {value!r} is not a port number (1-65535; 0: socket only)"
        )
    return int(value)
