"""Sources as stored in the ``sources`` table: what ingest tasks read instead of parsing
the sources file again (``plan_sources`` syncs the file into the table once per cycle)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from mediamon.db.tables import sources
from mediamon.ingest.sources import Source, source_from_stored

logger = logging.getLogger(__name__)


def stored_sources(
    conn: sa.Connection, names: Sequence[str]
) -> tuple[list[Source], dict[str, int]]:
    """The named sources and their ids, in the order of ``names``.

    Raises:
        ValueError: a name is not in the table (the message lists them).
        SourceConfigError: a stored row no longer validates.
    """
    rows = {
        row.name: row
        for row in conn.execute(
            sa.select(
                sources.c.source_id,
                sources.c.name,
                sources.c.kind,
                sources.c.location,
                sources.c.language,
                sources.c.settings,
            ).where(sources.c.name.in_(list(names)))
        )
    }
    missing = [name for name in names if name not in rows]
    if missing:
        raise ValueError(f"source(s) not in the sources table: {', '.join(missing)}")
    found = [
        source_from_stored(r.name, r.kind, r.location, r.language, dict(r.settings))
        for r in (rows[name] for name in names)
    ]
    return found, {name: rows[name].source_id for name in names}
