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

# A feed's text about an article on another site (0009_article_claims.sql).
article_claims = sa.Table(
    "article_claims",
    metadata,
    sa.Column("source_id", sa.Integer, primary_key=True),
    sa.Column("url_hash", sa.LargeBinary, primary_key=True),
    sa.Column("canonical_url", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("body_text", sa.Text, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("language", sa.Text),
    sa.Column("content_origin", sa.Text, nullable=False),
    sa.Column("first_claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Which article each source's link led to (0035_article_links.sql).
article_links = sa.Table(
    "article_links",
    metadata,
    sa.Column("source_id", sa.Integer, primary_key=True),
    sa.Column("link_hash", sa.LargeBinary, primary_key=True),
    sa.Column("link", sa.Text, nullable=False),
    sa.Column("article_id", sa.BigInteger, nullable=False),
    sa.Column("first_linked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("item_key", sa.LargeBinary),  # 0038_article_links_item.sql
)

# Topics, mentions and alerts (0003_topics.sql).
topics_table = sa.Table(
    "topics",
    metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("match_version", sa.Text, nullable=False),
    sa.Column("definition", pg.JSONB, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("matched_version", sa.Text),
    sa.Column("matched_through", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
topic_versions = sa.Table(
    "topic_versions",
    metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("match_version", sa.Text, nullable=False),
    sa.Column("definition", pg.JSONB, nullable=False),
)
mentions = sa.Table(
    "mentions",
    metadata,
    sa.Column("article_id", sa.BigInteger, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("match_version", sa.Text, nullable=False),
    sa.Column("title_hits", sa.Integer, nullable=False),
    sa.Column("body_hits", sa.Integer, nullable=False),
    sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
)
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.BigInteger, primary_key=True),
    sa.Column("dedupe_key", sa.Text, nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("topic_version", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("observed", sa.Integer, nullable=False),
    sa.Column("expected", sa.Float, nullable=False),
    sa.Column("lift", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("p_value", sa.Float, nullable=False),
    sa.Column("total_stories", sa.Integer, nullable=False),
    sa.Column("details", pg.JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("last_window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("peak_observed", sa.Integer, nullable=False),
    sa.Column("cleared_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("notified_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("alert_id", sa.BigInteger, primary_key=True),
    sa.Column("recipient", sa.Text, primary_key=True),
    sa.Column("mode", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)

mail_subscriptions = sa.Table(
    "mail_subscriptions",
    metadata,
    sa.Column("recipient", sa.Text, primary_key=True),  # lower case
    sa.Column("topic", sa.Text, primary_key=True),  # a topic key, or '*': every topic
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("via", sa.Text, nullable=False),
)

digest_deliveries = sa.Table(
    "digest_deliveries",
    metadata,
    sa.Column("recipient", sa.Text, primary_key=True),
    sa.Column("cadence", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("stories", sa.Integer, nullable=False),
    sa.Column("topics", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("message_id", sa.Text),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("selected_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("story_ids", pg.ARRAY(sa.BigInteger)),
    sa.Column("alert_ids", pg.ARRAY(sa.BigInteger)),  # its spikes (0016; bi.alerts counts them)
    sa.Column("note", sa.Text),  # why a digest was 'refused' (0018)
)
