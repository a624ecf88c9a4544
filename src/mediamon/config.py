"""Settings read from the environment, explicitly (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mediamon import __version__
from mediamon.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    """

    database_url: str | None
    sources_path: Path
    var_dir: Path
    topics_path: Path = PROJECT_ROOT / "config" / "topics.yaml"
    user_agent: str = DEFAULT_USER_AGENT
    http_retries: int = 3
    http_backoff_s: float = 0.5

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
            http_retries=int(env_number(env, "MEDIAMON_HTTP_RETRIES", 3, 0, 10, whole=True)),
            http_backoff_s=env_number(env, "MEDIAMON_HTTP_BACKOFF", 0.5, 0.0, 60.0),
        )


def env_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    whole: bool = False,
) -> float:
    """The number in environment variable ``name`` (``default`` when unset or empty).

    Raises:
        ConfigError: not a number, or outside ``low`` … ``high``; the message names the
            variable, the range and the value.
    """
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    kind = "a whole number" if whole else "a number"
    problem = ConfigError(f"{name}: expected {kind} from {low:g} to {high:g}, got {raw!r}")
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise problem from None
    if not low <= value <= high:  # NaN fails this too
        raise problem
    return value
