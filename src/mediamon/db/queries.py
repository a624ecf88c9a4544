"""Named SQL queries, one file each in the package's ``sql/queries`` (package data)."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from mediamon.settings import Settings

# A story's time, as in the index articles_story_time (migration 0003): keep the two
# identical, or the counts stop using the index. {a} is the articles alias.
STORY_TIME = "least(coalesce({a}.published_at, {a}.first_seen_at), {a}.first_seen_at)"


@cache
def query(name: str) -> sa.TextClause:
    """The query in ``sql/queries/<name>.sql`` (``MEDIAMON_SQL_DIR`` overrides the folder)."""
    folder = Settings.from_env().sql_dir / "queries"
    return sa.text((folder / f"{name}.sql").read_text("utf-8"))
