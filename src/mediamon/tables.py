"""SQLAlchemy Core descriptions of the tables the migrations create (never create_all)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("source_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("language", sa.Text),
    sa.Column("poll_interval", sa.Interval, nullable=False),
    sa.Column("settings", pg.JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

fetch_log = sa.Table(
    "fetch_log",
    metadata,
    sa.Column("fetch_id", sa.BigInteger, primary_key=True),
    sa.Column("run_key", sa.Text, nullable=False),
    sa.Column("source_id", sa.Integer, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("elapsed_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("article_id", sa.BigInteger, primary_key=True),
    sa.Column("url_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("canonical_url", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("source_id", sa.Integer, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("language", sa.Text),
    sa.Column("body_text", sa.Text, nullable=False),
    sa.Column("match_text", sa.Text, nullable=False),
    sa.Column("summary", sa.Text),
    sa.Column("image_url", sa.Text),
    sa.Column("categories", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("content_origin", sa.Text, nullable=False),
    sa.Column("content_hash", sa.LargeBinary, nullable=False),
    sa.Column("sentence_hashes", pg.ARRAY(sa.BigInteger), nullable=False),
    sa.Column("duplicate_of", sa.BigInteger),
    sa.Column("raw_sha256", sa.LargeBinary),
    sa.Column("raw_bytes", sa.Integer),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
