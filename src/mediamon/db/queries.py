"""Named SQL queries, one file each in the package's ``sql/queries`` (package data)."""

from __future__ import annotations

import re
from functools import cache

import sqlalchemy as sa

from mediamon.settings import Settings

# A story's time, as in the index articles_story_time (migration 0003): keep the two
# identical, or the counts stop using the index. {a} is the articles alias.
STORY_TIME = "least(coalesce({a}.published_at, {a}.first_seen_at), {a}.first_seen_at)"


# In a query file, {story_time(r)} is STORY_TIME on the articles alias r.
STORY_TIME_MARK = re.compile(r"\{story_time\((\w+)\)\}")


@cache
def query(name: str) -> sa.TextClause:
    """The query in ``sql/queries/<name>.sql`` (``MEDIAMON_SQL_DIR`` overrides the folder)."""
    folder = Settings.from_env().sql_dir / "queries"
    text = (folder / f"{name}.sql").read_text("utf-8")
    return sa.text(STORY_TIME_MARK.sub(lambda m: STORY_TIME.format(a=m.group(1)), text))
