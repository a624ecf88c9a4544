-- robots.txt kept across tasks: a cycle with many shards would otherwise read each site's
-- robots.txt once per task (and once per cycle). RFC 9309 lets a crawler cache it for up
-- to 24 hours; mediamon.ingest.robots_store reads a row while expires_at is ahead. Unreachable
-- files (5xx, network errors) are not stored: the next task asks again.
create table robots_txt (
    origin      text primary key,          -- scheme://host:port
    robots_url  text not null,
    body        text not null,             -- '' when the site has none (4xx): all allowed
    status      integer,
    fetched_at  timestamptz not null,
    expires_at  timestamptz not null
);

-- fetch_log retention deletes by time: without this index a year of rows is scanned.
create index fetch_log_fetched_at on fetch_log (fetched_at);
