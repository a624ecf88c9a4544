"""Idempotent writes: every table is upserted on its natural key."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.db.queries import query
from mediamon.db.tables import articles, fetch_log, sources
from mediamon.ingest.normalize import MAX_SENTENCE_KEYS, url_hash
from mediamon.ingest.provenance import PAGE_ORIGINS, site_of
from mediamon.ingest.sources import Source
from mediamon.models import Article, FetchRecord

logger = logging.getLogger(__name__)

DUPLICATE_MIN_CHARS = 30
DUPLICATE_MIN_SENTENCES = 3
DUPLICATE_MIN_SHARED = 0.8  # of the shorter article's sentences
# ... and more than this share of the longer one's: a page holding several stories whole
# (a daily roundup, an aggregator's digest, a hostile page) is a copy of none of them and
# the root of none, since two stories sharing nothing cannot both hold more than half of
# one text (see docs/decisions.md).
DUPLICATE_MIN_SHARED_OF_LONGER = 0.5
# A sentence held by more stored roots than this is boilerplate, not looked up (roots are
# distinct stories; see sql/queries/root_candidates.sql).
COMMON_SENTENCE_ROOTS = 100
# Fields whose change makes a stored article count as updated.
ARTICLE_CONTENT_FIELDS = (
    "url", "title", "author", "published_at", "language", "body_text", "match_text",
    "summary", "image_url", "categories", "content_origin", "content_hash", "sentence_hashes",
    "raw_sha256", "raw_bytes",
)  # fmt: skip


WRITTEN_COLUMNS = (
    "url_hash",
    "canonical_url",
    "source_id",
    "first_seen_at",
    *ARTICLE_CONTENT_FIELDS,
)


def sync_sources(conn: sa.Connection, configured: Sequence[Source]) -> dict[str, int]:
    """Upsert the configured sources by name; return their ids by name."""
    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "location": s.location,
            "language": s.language,
            "poll_interval": s.poll_interval,
            "settings": s.settings,
        }
        for s in configured
    ]
    if rows:
        statement = insert(sources).values(rows)
        excluded = statement.excluded
        changed = ("kind", "location", "language", "poll_interval", "settings")
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[sources.c.name],
                set_={**{c: excluded[c] for c in changed}, "updated_at": sa.func.now()},
                where=sa.or_(*(sources.c[c].is_distinct_from(excluded[c]) for c in changed)),
            )
        )
    return dict(conn.execute(sa.select(sources.c.name, sources.c.source_id)).all())


def write_fetch_log(
    conn: sa.Connection, run_key: str, source_id: int, records: Iterable[FetchRecord]
) -> int:
    """Upsert fetch records on (run_key, source_id, url); a retry overwrites its rows.
    A NUL in a URL or an error (text a server or feed supplied) is dropped: PostgreSQL
    refuses it, and with it the whole chunk's transaction. The key's index holds the
    URL's SHA-256, not the URL: a b-tree refuses entries past 2,704 bytes, and a link of
    2,000 Chinese characters is 6 kB (migration 0029)."""
    rows = [
        {"run_key": run_key, "source_id": source_id,
         **{k: _without_nul(v) for k, v in asdict(r).items()}}
        for r in records
    ]  # fmt: skip
    if not rows:
        return 0
    unique: dict[str, dict[str, object]] = {str(r["url"]): r for r in rows}
    statement = insert(fetch_log)
    excluded = statement.excluded
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[
                fetch_log.c.run_key,
                fetch_log.c.source_id,
                sa.func.fetch_log_url_key(fetch_log.c.url),
            ],
            set_={
                c: excluded[c]
                for c in ("kind", "fetched_at", "status", "bytes", "elapsed_ms", "error")
            },
        ),
        list(unique.values()),
    )
    return len(unique)


@dataclass(frozen=True)
class Upserted:
    """What :func:`upsert_articles` wrote."""

    inserted: int
    updated: int
    article_ids: list[int]  # of the rows inserted or updated
    copies: int  # of those, how many are linked to an earlier article as a copy


@dataclass(frozen=True)
class Fingerprint:
    """What decides whether an article copies another."""

    article_id: int
    content_hash: bytes | None  # None when the text is too short for the exact rule
    sentences: frozenset[int]


def upsert_articles(
    conn: sa.Connection,
    source_id: int,
    batch: Sequence[Article],
    seen_at: object,
    *,
    own_site: str | None = None,
) -> Upserted:
    """Insert new articles and update changed ones, each linked to the first earlier
    article of which it is a syndicated copy (see :func:`copy_roots`); unchanged rows
    are not touched.

    New articles are COPYed with ids drawn beforehand, so their copy links are known
    before they are written; stored ones go through ``insert ... on conflict``. If
    another transaction stores one of the new URLs in between, the unique key refuses
    the COPY and the batch is looked up and written again.

    Args:
        conn: Open connection; the caller owns the transaction.
        source_id: The source that found these articles (kept from the first finder).
        batch: Articles, at most one per canonical URL (the last one wins).
        seen_at: When this batch was fetched (first_seen_at of new rows).
        own_site: The site of the source's feed (None: an archive, or not known). A
            page on another site that another source's page is stored for already is
            left as stored (see :func:`_update_stored_articles`).
    """
    by_url = {a.canonical_url: a for a in batch}
    if not by_url:
        return Upserted(0, 0, [], 0)
    rows = [article_row(a, source_id, seen_at) for a in by_url.values()]
    try:
        with conn.begin_nested():
            return _write_articles(conn, rows, own_site)
    except sa.exc.IntegrityError as error:
        if not isinstance(error.orig, psycopg.errors.UniqueViolation):
            raise
    with conn.begin_nested():  # another transaction stored one of the URLs meanwhile
        return _write_articles(conn, rows, own_site)


def _write_articles(
    conn: sa.Connection, rows: list[dict[str, object]], own_site: str | None = None
) -> Upserted:
    drawn = conn.execute(
        query("article_ids"), {"url_hashes": _hex_array(cast(bytes, r["url_hash"]) for r in rows)}
    )
    stored: dict[object, int] = {}
    new_ids: list[int] = []
    for key, stored_id, new_id in drawn:
        if stored_id is not None:
            stored[key] = stored_id
        else:
            new_ids.append(new_id)
    new = [r for r in rows if r["url_hash"] not in stored]
    # ascending in the batch's order, so that "earlier" means the same for every article
    ids: dict[object, int] = {
        **stored,
        **{r["url_hash"]: i for r, i in zip(new, sorted(new_ids), strict=True)},
    }
    fingerprints = [_fingerprint(ids[r["url_hash"]], r) for r in rows]
    roots = copy_roots(fingerprints, _root_candidates(conn, fingerprints))
    for row in rows:
        row["article_id"] = ids[row["url_hash"]]
        row["duplicate_of"] = roots[ids[row["url_hash"]]]

    # Rows go in natural-key order: two transactions writing overlapping URLs then wait
    # on each other's first shared one instead of each holding one the other needs.
    in_key_order = sorted(rows, key=lambda r: cast(bytes, r["url_hash"]))
    _copy_new_articles(conn, [r for r in in_key_order if r["url_hash"] not in stored])
    updated = _update_stored_articles(
        conn, [r for r in in_key_order if r["url_hash"] in stored], own_site
    )
    _relink_copies_of_changed_roots(conn, rows, ids, set(updated))
    written = [ids[r["url_hash"]] for r in new] + updated
    return Upserted(
        inserted=len(new),
        updated=len(updated),
        article_ids=written,
        copies=sum(1 for article_id in written if roots[article_id] is not None),
    )


def _relink_copies_of_changed_roots(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], ids: dict[object, int], updated: set[int]
) -> None:
    """The links of the copies of a stored root whose text changed are decided again, by
    the rule of :func:`copy_roots`: a root that became a copy of another story (a page's
    text replacing its feed's, a refetch) takes its copies with it when they copy that
    story too; a root rewritten as another story leaves its former copies to be roots or
    copies of another. Left on a root that became a copy, they made a second story of one
    (e ← r ← c: the spikes' hourly counts group by the article a copy links to)."""
    changed = [ids[row["url_hash"]] for row in rows if ids[row["url_hash"]] in updated]
    if not changed:
        return
    own = set(ids.values())  # the batch's links were decided with its new texts
    found = conn.execute(
        sa.text(
            "select article_id, content_hash, sentence_hashes,"
            " char_length(match_text) >= :min_chars as long_enough"
            " from articles where duplicate_of = any(:changed) order by article_id"
        ),
        {"changed": changed, "min_chars": DUPLICATE_MIN_CHARS},
    )
    copies = [
        Fingerprint(article_id, bytes(content) if long_enough else None, frozenset(hashes))
        for article_id, content, hashes, long_enough in found
        if article_id not in own
    ]
    if not copies:
        return
    roots = copy_roots(copies, _root_candidates(conn, copies))
    conn.execute(
        sa.text(
            "update articles set duplicate_of = :root, updated_at = now()"
            " where article_id = :copy and duplicate_of is distinct from :root"
        ),
        [{"copy": copy.article_id, "root": roots[copy.article_id]} for copy in copies],
    )


def _fingerprint(article_id: int, row: dict[str, Any]) -> Fingerprint:
    long_enough = len(row["match_text"]) >= DUPLICATE_MIN_CHARS
    return Fingerprint(
        article_id=article_id,
        content_hash=row["content_hash"] if long_enough else None,
        sentences=frozenset(row["sentence_hashes"]),
    )


def _root_candidates(conn: sa.Connection, batch: Sequence[Fingerprint]) -> list[Fingerprint]:
    """Stored roots sharing the text or a sentence with an article of ``batch``, but not
    the batch's own stored rows (their new text counts, not the stored one)."""
    sentences = sorted(
        {h for f in batch if len(f.sentences) >= DUPLICATE_MIN_SENTENCES for h in f.sentences}
    )
    content_hashes = [f.content_hash for f in batch if f.content_hash is not None]
    if not sentences and not content_hashes:
        return []
    found = conn.execute(
        query("root_candidates"),
        {
            "content_hashes": _hex_array(content_hashes),
            "sentence_hashes": _bigint_array(sentences),
            "min_sentences": DUPLICATE_MIN_SENTENCES,
            "common_roots": COMMON_SENTENCE_ROOTS,
        },
    )
    own = {f.article_id for f in batch}
    roots = {  # by id: a root with the same text and a shared sentence comes twice
        article_id: Fingerprint(article_id, content, frozenset(hashes))
        for article_id, content, hashes in found
        if article_id not in own
    }
    return list(roots.values())


def copy_roots(
    batch: Sequence[Fingerprint], stored_roots: Sequence[Fingerprint]
) -> dict[int, int | None]:
    """For each article of ``batch``, the id of the first earlier root it copies, or None.

    An article copies an earlier one with the same text (when long enough to tell), or
    when they share at least DUPLICATE_MIN_SHARED of the shorter one's sentences and more
    than DUPLICATE_MIN_SHARED_OF_LONGER of the longer one's (each having
    DUPLICATE_MIN_SENTENCES or more): a copy with its own byline, credit line or footer,
    or other paragraph breaks, but not a story that a roundup holds among others (the
    roundup would be the root of all of them). Only roots (articles that copy none) are linked
    to, and only earlier ones, so links never form a cycle. The batch's roots count for
    its later articles.

    Args:
        batch: The articles being written, with their ids.
        stored_roots: Stored roots that may be originals (:func:`_root_candidates`).
    """
    by_text: dict[bytes, list[int]] = {}
    by_sentence: dict[int, list[Fingerprint]] = {}
    in_order: dict[int, list[int]] = {}

    def ordered(fingerprint: Fingerprint) -> list[int]:
        if fingerprint.article_id not in in_order:
            in_order[fingerprint.article_id] = sorted(fingerprint.sentences)
        return in_order[fingerprint.article_id]

    def add(root: Fingerprint) -> None:
        if root.content_hash is not None:
            by_text.setdefault(root.content_hash, []).append(root.article_id)
        if len(root.sentences) >= DUPLICATE_MIN_SENTENCES:
            for h in root.sentences:
                by_sentence.setdefault(h, []).append(root)

    for root in stored_roots:
        add(root)
    roots: dict[int, int | None] = {}
    for article in sorted(batch, key=lambda f: f.article_id):
        originals = list(by_text.get(article.content_hash, ())) if article.content_hash else []
        if len(article.sentences) >= DUPLICATE_MIN_SENTENCES:
            shared: dict[int, int] = {}
            others: dict[int, Fingerprint] = {}
            for h in article.sentences:
                for other in by_sentence.get(h, ()):
                    shared[other.article_id] = shared.get(other.article_id, 0) + 1
                    others[other.article_id] = other
            for other_id, count in shared.items():
                shorter, longer = _compared_sizes(article, others[other_id], ordered)
                if (
                    count >= DUPLICATE_MIN_SHARED * shorter
                    and count > DUPLICATE_MIN_SHARED_OF_LONGER * longer
                ):
                    originals.append(other_id)
        earlier = [i for i in originals if i < article.article_id]
        roots[article.article_id] = min(earlier, default=None)
        if roots[article.article_id] is None:
            add(article)
    return roots


def _compared_sizes(
    article: Fingerprint, other: Fingerprint, ordered: Callable[[Fingerprint], list[int]]
) -> tuple[int, int]:
    """How many sentences of the shorter and of the longer of two articles their shared
    ones are weighed against. A text past MAX_SENTENCE_KEYS keeps only its smallest
    sentence hashes (a bottom-k sketch, mediamon.ingest.normalize.duplicate_keys): two
    such are compared below the smaller of their largest keys, where both hold every key
    they have, so a copy with a fifth of its own in front still shares all it can. Texts
    that keep every key are compared whole, as always."""
    if MAX_SENTENCE_KEYS not in (len(article.sentences), len(other.sentences)):
        smaller, larger = sorted((len(article.sentences), len(other.sentences)))
        return smaller, larger
    mine, theirs = ordered(article), ordered(other)
    below = min(mine[-1], theirs[-1])
    smaller, larger = sorted((bisect.bisect_right(mine, below), bisect.bisect_right(theirs, below)))
    return smaller, larger


def _copy_new_articles(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> None:
    """COPY rows that are not stored yet, ids and copy links included."""
    if not rows:
        return
    columns = ("article_id", *WRITTEN_COLUMNS, "duplicate_of")
    statement = f"copy articles ({', '.join(columns)}) from stdin"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.Error as error:  # as SQLAlchemy's own, like every other statement's
        raise sa.exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error


def _update_stored_articles(
    conn: sa.Connection, rows: Sequence[dict[str, object]], own_site: str | None = None
) -> list[int]:
    """Upsert rows whose URL is stored; return the ids of those that changed. (A refetch
    or a re-import: one multi-row statement per kind, slower per row than COPY but rare.)

    A feed source's page on another site than its feed's (``own_site``) is written only
    over its own row or over a feed's text: two sources each linking a story through a
    redirect of their own swapped its url, credited source and text at every fetch, and
    the story was loaded again each time. The site's own source still takes its story
    over from any other (as do archives, and sources whose site is not known)."""
    mine: list[dict[str, object]] = []
    others: list[dict[str, object]] = []
    for row in rows:  # each list stays in the rows' key order
        elsewhere = own_site is not None and site_of(str(row["canonical_url"])) != own_site
        (others if elsewhere else mine).append(row)
    if mine and others:
        # Two statements would lock the rows in two runs of key order: a writer taking
        # them in one run could hold a row the other needs while waiting for one it
        # holds. All of them first, in key order, as every chunk does.
        conn.execute(
            sa.text(
                "select 1 from articles where url_hash in (select decode(h, 'hex')"
                " from unnest(cast(:url_hashes as text[])) as h) order by url_hash for update"
            ),
            {"url_hashes": _hex_array(cast(bytes, r["url_hash"]) for r in rows)},
        )
    return _upsert_stored(conn, mine, keep_others=False) + _upsert_stored(
        conn, others, keep_others=True
    )


def _upsert_stored(
    conn: sa.Connection, rows: Sequence[dict[str, object]], *, keep_others: bool
) -> list[int]:
    """One multi-row upsert of stored rows; ``keep_others``: rows stored by another
    source from a page are left as they are."""
    if not rows:
        return []
    columns = (*WRITTEN_COLUMNS, "duplicate_of")
    changed = (*ARTICLE_CONTENT_FIELDS, "duplicate_of")
    statement = insert(articles).values([{c: r[c] for c in columns} for r in rows])
    excluded = statement.excluded
    # Provenance (mediamon.provenance): a page's text is attributed to the source that
    # fetched it, and a feed's text never replaces a page's.
    from_page = excluded.content_origin.in_(PAGE_ORIGINS)
    stored_page = articles.c.content_origin.in_(PAGE_ORIGINS)
    allowed = (
        sa.or_(articles.c.source_id == excluded.source_id, sa.and_(from_page, ~stored_page))
        if keep_others
        else sa.true()
    )
    result = conn.execute(
        statement.on_conflict_do_update(
            index_elements=[articles.c.url_hash],
            set_={
                **{f: excluded[f] for f in changed},
                "source_id": sa.case((from_page, excluded.source_id), else_=articles.c.source_id),
                "updated_at": sa.func.now(),
            },
            where=sa.and_(
                sa.or_(
                    *(articles.c[f].is_distinct_from(excluded[f]) for f in changed),
                    sa.and_(from_page, articles.c.source_id != excluded.source_id),
                ),
                sa.or_(from_page, articles.c.content_origin.not_in(PAGE_ORIGINS)),
                allowed,
            ),
        ).returning(articles.c.article_id)
    )
    return list(result.scalars())


def article_row(article: Article, source_id: int, seen_at: object) -> dict[str, object]:
    """The ``articles`` columns (all but the generated ones) for one article. PostgreSQL
    text cannot hold NUL: one that got this far (the builders clean every text field)
    is dropped here rather than failing the whole chunk's transaction."""
    canonical = article.canonical_url.replace("\x00", "")
    return {
        **{f: _without_nul(getattr(article, f)) for f in ARTICLE_CONTENT_FIELDS},
        "categories": [c.replace("\x00", "") for c in article.categories],
        "sentence_hashes": list(article.sentence_hashes),
        "canonical_url": canonical,
        "url_hash": url_hash(canonical),
        "source_id": source_id,
        "first_seen_at": seen_at,
    }


# The lookups' arrays go to PostgreSQL as one text literal each ("{1,2,3}", and hashes
# in hex for ``decode(h, 'hex')``): psycopg's array dumper checks every element with a
# regular expression, which cost as much as the GIN lookup itself on a chunk's 600
# sentence hashes (load 20,000 rows: the lookups 1.0 -> 0.5 s; ``python -m bench.load``).
def _bigint_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _hex_array(values: Iterable[bytes]) -> str:
    return "{" + ",".join(v.hex() for v in values) + "}"


def _without_nul(value: object) -> object:
    return value.replace("\x00", "") if isinstance(value, str) else value
