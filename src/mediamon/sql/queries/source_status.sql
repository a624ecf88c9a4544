-- Per source, for `mediamon status`: its health as bi.source_health states it (one
-- definition for the CLI and the dashboards), polling state, last success, last error text
-- (the polling state's, else the fetch log's), and articles first seen since :since.
select s.name as source,
       s.kind,
       h.status as state,
       h.status_reason as state_reason,
       st.last_outcome,
       coalesce(st.consecutive_failures, 0) as consecutive_failures,
       coalesce(st.last_success_at,
                (select max(f.fetched_at) from fetch_log f
                  where f.source_id = s.source_id and f.error is null)) as last_success,
       st.last_polled_at,
       st.next_poll_at,
       coalesce(st.last_error,
                (select f.error from fetch_log f
                  where f.source_id = s.source_id and f.error is not null
                  order by f.fetched_at desc limit 1)) as last_error,
       (select count(*) from articles a
         where a.source_id = s.source_id and a.first_seen_at > :since) as articles_24h,
       (select count(*) from articles a where a.source_id = s.source_id) as articles
from sources s
join bi.source_health h on h.source = s.name
left join source_state st using (source_id)
order by s.name
