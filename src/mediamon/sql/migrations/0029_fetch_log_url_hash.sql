-- The fetch log's natural key held its URL whole in a b-tree, whose entries PostgreSQL
-- refuses past 2,704 bytes: a feed item linking 2,000 Chinese characters (a link of
-- 2,048 characters at most, but 6 kB of UTF-8) made it refuse the chunk's fetch log,
-- ProgramLimitExceeded, so the chunk and the source's task failed at every run. The key
-- now holds the URL's SHA-256 (as articles' url_hash does); the URL stays as it was, and
-- every program writing the table writes it as before.
--
-- sha256(convert_to(…)) is only stable (convert_to depends on the database's encoding,
-- which never changes for a database), so an index needs this immutable wrapper.
create function fetch_log_url_key(url text) returns bytea
language sql immutable strict parallel safe
return sha256(convert_to(url, 'UTF8'));

create unique index fetch_log_natural_key
    on fetch_log (run_key, source_id, fetch_log_url_key(url));
alter table fetch_log drop constraint fetch_log_run_key_source_id_url_key;
