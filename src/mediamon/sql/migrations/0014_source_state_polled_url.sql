-- The polling state belongs to the source's URL (mediamon.ingest.polling): a source whose
-- URL was changed in sources.yaml (same name, new URL) is due at the next run and its
-- interval starts from poll_interval, instead of waiting out the backoff the old URL
-- earned (up to 8x its poll interval). Its failure streak (consecutive_failures, read by
-- the watchdog) closes only once the new URL polls fine; the backoff counts the failures
-- at the URL now polled (url_failures).
alter table source_state
    add column polled_url           text,               -- the source's URL when polled
    add column url_failures         integer not null default 0,  -- in a row, at polled_url
    add column polled_url_before    text,
    add column url_failures_before  integer;
-- Rows written before: the URL synced into sources last is the one they were polled with.
update source_state st
   set polled_url = s.location,
       url_failures = st.consecutive_failures
  from sources s
 where s.source_id = st.source_id;
