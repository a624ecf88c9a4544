"""What the ``bi`` views need from mediamon's configuration: the local time zone and which
sources are still configured, written into the database where every BI tool sees them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psycopg
import sqlalchemy as sa

from mediamon.settings import SettingsError

logger = logging.getLogger(__name__)


def sync_timezone(conn: sa.Connection, timezone: str) -> bool:
    """Write ``timezone`` (validated by :func:`mediamon.settings.validate_timezone`) into
    ``bi.settings``; return whether it changed. A no-op write is skipped, so calling this on
    every database open costs one read.

    Raises:
        SettingsError: the database server's tz data lacks ``timezone`` (the table's check
            refuses it): a zone newer than the server's copy, which Python's may have.
    """
    try:
        # A savepoint: the caller's transaction stays usable after a refusal.
        with conn.begin_nested():
            changed = conn.execute(
                sa.text(
                    "update bi.settings set timezone = :tz, updated_at = now()"
                    " where timezone is distinct from :tz"
                ),
                {"tz": timezone},
            ).rowcount
    except sa.exc.DataError as error:
        if not isinstance(error.orig, psycopg.errors.InvalidParameterValue):
            raise
        raise SettingsError(
            f"MEDIAMON_TIMEZONE: the database server's time zone data lacks {timezone!r}"
            " (older than this machine's?); choose another zone or update the server's"
            " tz data"
        ) from None
    if changed:
        logger.info("bi views now use time zone %s", timezone)
    return bool(changed)


def mark_enabled_sources(conn: sa.Connection, configured: Iterable[str]) -> None:
    """Flag the sources in the sources file as enabled and every other stored source as
    disabled (their history stays; ``bi.source_health`` shows them as disabled)."""
    conn.execute(
        sa.text(
            "update sources set enabled = (name = any(:names))"
            " where enabled is distinct from (name = any(:names))"
        ),
        {"names": list(configured)},
    )
