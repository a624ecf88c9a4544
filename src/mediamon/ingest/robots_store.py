"""robots.txt cached in the database (table ``robots_txt``), shared by every task and
cycle, each file kept until it expires (RFC 9309 allows up to 24 hours)."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

logger = logging.getLogger(__name__)

ROBOTS_TTL = timedelta(hours=24)

robots_txt = sa.Table(  # created by sql/migrations/0007_robots_cache.sql
    "robots_txt",
    sa.MetaData(),
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("robots_url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


class DatabaseRobotsStore:
    """robots.txt bodies by origin; times are the database's clock, so every task and
    worker agrees on what has expired. A database error is logged and treated as a miss
    (the file is then read from the site, as without a cache)."""

    def __init__(self, engine: sa.Engine, ttl: timedelta = ROBOTS_TTL) -> None:
        self.engine = engine
        self.ttl = ttl

    def get(self, origin: str) -> str | None:
        """The stored body for ``origin`` if it has not expired, else None."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.select(robots_txt.c.body).where(
                        robots_txt.c.origin == origin, robots_txt.c.expires_at > sa.func.now()
                    )
                ).scalar_one_or_none()
        except sa.exc.SQLAlchemyError as error:
            logger.warning("robots.txt cache unreadable (%s); reading %s", error, origin)
            return None

    def put(self, origin: str, robots_url: str, body: str, status: int | None) -> None:
        """Store (or replace) the body read for ``origin``."""
        statement = insert(robots_txt).values(
            origin=origin,
            robots_url=robots_url,
            body=body,
            status=status,
            fetched_at=sa.func.now(),
            expires_at=sa.func.now() + self.ttl,
        )
        excluded = statement.excluded
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[robots_txt.c.origin],
                        set_={
                            c: excluded[c]
                            for c in ("robots_url", "body", "status", "fetched_at", "expires_at")
                        },
                    )
                )
        except sa.exc.SQLAlchemyError as error:
            logger.warning("robots.txt of %s not cached: %s", origin, error)
