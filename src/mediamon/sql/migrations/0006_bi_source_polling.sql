-- bi.source_health gains the adaptive polling state (source_state, 0005). Every column of
-- 0004 stays, in the same order; the new ones are appended (the BI contract).

create or replace view bi.source_health as
select s.name                                          as source,
       s.kind,
       f.last_fetch,
       f.last_success,
       coalesce(f.fetches_24h, 0)                      as fetches_24h,
       coalesce(f.errors_24h, 0)                       as errors_24h,
       case when f.fetches_24h > 0
            then f.errors_24h::double precision / f.fetches_24h end as error_rate_24h,
       coalesce(ar.articles_24h, 0)                    as articles_24h,
       st.poll_interval,
       st.next_poll_at,
       st.last_polled_at,
       st.last_outcome                                 as last_poll_outcome,
       st.last_items                                   as last_poll_items,
       st.last_new                                     as last_poll_new_items,
       coalesce(st.consecutive_failures, 0)            as consecutive_failures,
       st.last_error                                   as last_poll_error,
       st.deferred_until
from sources s
left join lateral (
    select max(fl.fetched_at)                                            as last_fetch,
           max(fl.fetched_at) filter (where fl.error is null)            as last_success,
           count(*) filter (where fl.fetched_at > now() - interval '24 hours') as fetches_24h,
           count(*) filter (where fl.fetched_at > now() - interval '24 hours'
                                  and fl.error is not null)              as errors_24h
    from fetch_log fl
    where fl.source_id = s.source_id
) f on true
left join lateral (
    select count(*) as articles_24h
    from articles a
    where a.source_id = s.source_id and a.first_seen_at > now() - interval '24 hours'
) ar on true
left join source_state st on st.source_id = s.source_id;

comment on view bi.source_health is
    'Per source: the last fetch, the last fetch without error, fetches and failed fetches in '
    'the last 24 hours and their ratio (null without fetches), and articles first seen in '
    'the last 24 hours. Adaptive polling: the interval now in force, when the source is next '
    'due, the last poll''s outcome (polled, not_modified, unchanged, failed, deferred), its '
    'items and new items, the failure streak and last error, and until when a Retry-After '
    'answer defers it. Null polling columns: never polled since polling state was added.';
