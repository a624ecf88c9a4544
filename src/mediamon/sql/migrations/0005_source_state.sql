-- Per-source polling state (mediamon.polling): the adaptive poll interval, when the source
-- is next due, its failure streak, and the conditional-GET validators and body hash of its
-- feed. One row per source, upserted after every poll (the natural key is source_id).

create table source_state (
    source_id             integer primary key references sources (source_id),
    feed_url              text,                  -- the URL the validators and hash belong to
    etag                  text,                  -- sent back as If-None-Match
    last_modified         text,                  -- sent back as If-Modified-Since
    body_sha256           bytea,                 -- the last feed body: equal means unchanged
    base_interval         interval not null,     -- the configured poll_interval
    poll_interval         interval not null,     -- the adaptive interval now in force
    next_poll_at          timestamptz not null,  -- the source is due from then on
    last_polled_at        timestamptz not null,
    last_success_at       timestamptz,
    last_outcome          text not null check (last_outcome in
                              ('polled', 'not_modified', 'unchanged', 'failed', 'deferred')),
    last_items            integer not null default 0,  -- items in the feed at the last poll
    last_new              integer not null default 0,  -- of which not seen before
    consecutive_failures  integer not null default 0,
    last_error            text,
    deferred_until        timestamptz,           -- a Retry-After answer asked us to wait
    -- The run that wrote the row and the state it started from (null: none), so a
    -- retry of that run starts from the same place instead of adapting twice.
    run_key                      text not null,
    feed_url_before              text,
    etag_before                  text,
    last_modified_before         text,
    body_sha256_before           bytea,
    base_interval_before         interval,
    poll_interval_before         interval,
    consecutive_failures_before  integer,
    last_success_at_before       timestamptz,
    updated_at                   timestamptz not null default now()
);
create index source_state_next_poll on source_state (next_poll_at);
