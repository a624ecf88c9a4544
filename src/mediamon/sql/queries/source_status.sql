-- Per source: articles, syndicated copies, last fetch, and fetch errors since :since.
select s.name,
       (select count(*) from articles a where a.source_id = s.source_id) as articles,
       (select count(*) from articles a
         where a.source_id = s.source_id and a.duplicate_of is not null) as duplicates,
       (select max(fetched_at) from fetch_log f where f.source_id = s.source_id) as last_fetch,
       (select count(*) from fetch_log f
         where f.source_id = s.source_id and f.error is not null
           and f.fetched_at > :since) as errors_since
from sources s
order by s.name
