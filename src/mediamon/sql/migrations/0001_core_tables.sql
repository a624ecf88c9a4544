-- Core tables: the sources we poll, every fetch we make, and the articles we keep.
-- Raw HTML is not stored: articles keep its sha256 and size, so a changed page is
-- detectable, while the database stays small (see README, "Storage").

create table sources (
    source_id      integer generated always as identity primary key,
    name           text not null unique,
    kind           text not null check (kind in ('feed', 'archive')),
    location       text not null,           -- feed URL or archive folder
    language       text,
    poll_interval  interval not null,
    settings       jsonb not null default '{}'::jsonb,
    updated_at     timestamptz not null default now()
);

-- One row per fetch (feed, page or archive file) per ingest run. The natural key is
-- (run_key, source_id, url): a retried task overwrites its own rows instead of adding
-- more, so re-running an interval leaves the log the same size.
create table fetch_log (
    fetch_id     bigint generated always as identity primary key,
    run_key      text not null,
    source_id    integer not null references sources (source_id),
    url          text not null,
    kind         text not null check (kind in ('feed', 'page', 'file')),
    fetched_at   timestamptz not null,
    status       integer,                  -- HTTP status; null when no response
    bytes        integer not null default 0,
    elapsed_ms   integer not null default 0,
    error        text,                     -- null on success
    unique (run_key, source_id, url)
);
create index fetch_log_source_time on fetch_log (source_id, fetched_at desc);

create table articles (
    article_id       bigint generated always as identity primary key,
    url_hash         bytea not null unique,         -- sha256 of canonical_url: the natural key
    canonical_url    text not null,
    url              text not null,                 -- as linked by the source
    source_id        integer not null references sources (source_id),
    title            text,
    author           text,
    published_at     timestamptz,                   -- UTC; null when no source gave a time
    first_seen_at    timestamptz not null,
    language         text,
    body_text        text not null,                 -- as published (NFC, whitespace cleaned)
    match_text       text not null,                 -- NFKC, casefolded, traditional->simplified
    summary          text,
    image_url        text,
    categories       text[] not null default '{}',
    content_origin   text not null check (content_origin in
                         ('page', 'feed_content', 'feed_summary', 'archive')),
    content_hash     bytea not null,                -- exact-duplicate key over match_text
    sentence_hashes  bigint[] not null default '{}', -- near-duplicate key: one per sentence
    duplicate_of     bigint references articles (article_id),
    raw_sha256       bytea,
    raw_bytes        integer,
    updated_at       timestamptz not null default now()
);
create index articles_content_hash on articles (content_hash);
create index articles_published_at on articles (published_at);
create index articles_source on articles (source_id, first_seen_at desc);
-- A simhash within Hamming distance 3 of another agrees with it on at least one of
-- four 16-bit bands (pigeonhole), so these four indexes find every near-duplicate.
-- Copies that add a byline, a credit line or a footer, or break paragraphs elsewhere,
-- still share most sentences: the GIN index finds articles sharing any.
create index articles_sentence_hashes on articles using gin (sentence_hashes)
    with (fastupdate = off);  -- lookups scan a pending list linearly; ours look up often
