-- The BI contract: views that dashboards may rely on. Columns are only ever added;
-- renaming or dropping one needs a new view name (see README, "BI views").
create schema if not exists bi;

create view bi.articles as
select a.article_id,
       s.name                                   as source,
       a.canonical_url                          as url,
       a.title,
       coalesce(a.published_at, a.first_seen_at) as published_at,
       a.language,
       a.body_text,
       a.duplicate_of,
       a.first_seen_at,
       a.content_origin,
       a.author
from articles a
join sources s using (source_id);

comment on view bi.articles is
    'One row per article (canonical URL). duplicate_of points to the first article with the '
    'same or nearly the same text (syndicated copy); count stories with duplicate_of is null. '
    'published_at is UTC; when no source gave a time it is when mediamon first saw the article.';

create view bi.fetch_log as
select f.fetch_id,
       s.name      as source,
       f.run_key,
       f.url,
       f.kind,
       f.fetched_at,
       f.status,
       f.bytes,
       f.elapsed_ms,
       f.error,
       f.error is null as ok
from fetch_log f
join sources s using (source_id);

comment on view bi.fetch_log is
    'Every fetch mediamon made (feed, article page, archive file): HTTP status, size, time '
    'and the error when it failed.';
