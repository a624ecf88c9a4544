-- BI views an analyst can trust (issue 13): a local time zone beside UTC, gap-free series
-- for charts, rounded derived numbers, a status per source, and a comment on every view
-- and column (psql \d+, Superset, Metabase and Grafana show them).
--
-- The BI contract (0002) says columns are only added. Every existing column keeps its
-- name and place; bi.alerts and bi.source_health are dropped and created again only
-- because their derived numbers change type (double precision -> rounded numeric), which
-- create or replace cannot do. Their grants are given again at the end.

-- The settings the views read. One row, written by mediamon from MEDIAMON_TIMEZONE each
-- time it opens the database (mediamon.bi.settings), so every BI tool sees the same local
-- days without setting anything in its own session.
create table bi.settings (
    singleton   boolean primary key default true check (singleton),
    timezone    text not null
                    -- an unknown zone fails here, not later inside every view
                    check ((timestamptz '2000-01-01 00:00Z' at time zone timezone) is not null),
    updated_at  timestamptz not null default now()
);
insert into bi.settings (timezone) values ('Asia/Shanghai');

-- Is the source still in the sources file (and enabled there)? Written by every sync of
-- the file (mediamon.bi.settings.mark_enabled_sources); a source removed from the file
-- keeps its history but is shown as disabled.
alter table sources add column enabled boolean not null default true;

-- Copies are found from their original when counting a topic's stories in a window.
create index articles_duplicate_of on articles (duplicate_of) where duplicate_of is not null;

create or replace view bi.articles as
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
       a.author,
       coalesce(a.published_at, a.first_seen_at) at time zone st.timezone  as published_at_local,
       (coalesce(a.published_at, a.first_seen_at) at time zone st.timezone)::date
                                                                          as published_day_local,
       a.first_seen_at at time zone st.timezone                            as first_seen_at_local,
       coalesce(a.duplicate_of, a.article_id)                              as story_id
from articles a
join sources s using (source_id)
cross join bi.settings st;

create or replace view bi.fetch_log as
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
       f.error is null as ok,
       f.fetched_at at time zone st.timezone          as fetched_at_local,
       (f.fetched_at at time zone st.timezone)::date  as fetched_day_local
from fetch_log f
join sources s using (source_id)
cross join bi.settings st;

create or replace view bi.topic_mentions as
select m.article_id,
       m.topic,
       t.name                                                         as topic_name,
       m.title_hits,
       m.body_hits,
       coalesce(a.duplicate_of, a.article_id)                         as story_id,
       a.duplicate_of is not null                                     as is_copy,
       s.name                                                         as source,
       a.language,
       a.title,
       a.canonical_url                                                as url,
       least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at) as published_at,
       m.match_version,
       m.matched_at,
       least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
           at time zone st.timezone                                   as published_at_local,
       (least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
           at time zone st.timezone)::date                            as published_day_local
from mentions m
join topics t using (topic)
join articles a using (article_id)
join sources s on s.source_id = a.source_id
cross join bi.settings st;

create or replace view bi.topic_hourly as
with story_hours as (
    select a.article_id as story_id,
           date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                      'UTC') as hour
    from articles a
    where a.duplicate_of is null
),
totals as (
    select hour, count(*) as total_stories
    from story_hours
    group by hour
),
topic_counts as (
    select m.topic, h.hour, count(distinct h.story_id) as stories
    from mentions m
    join articles a using (article_id)
    join story_hours h on h.story_id = coalesce(a.duplicate_of, a.article_id)
    group by m.topic, h.hour
)
select t.topic,
       t.name                   as topic_name,
       tot.hour,
       coalesce(c.stories, 0)   as stories,
       tot.total_stories,
       tot.hour at time zone st.timezone          as hour_local,
       (tot.hour at time zone st.timezone)::date  as day_local,
       round(coalesce(c.stories, 0)::numeric / tot.total_stories, 4) as share
from totals tot
cross join topics t
cross join bi.settings st
left join topic_counts c on c.topic = t.topic and c.hour = tot.hour
where t.active;

create or replace view bi.topic_source_hourly as
select m.topic,
       s.name                                                        as source,
       date_trunc('hour', least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at),
                  'UTC')                                             as hour,
       count(distinct r.article_id)                                  as stories,
       date_trunc('hour', least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at),
                  'UTC') at time zone min(st.timezone)               as hour_local,
       (date_trunc('hour', least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at),
                   'UTC') at time zone min(st.timezone))::date       as day_local
from mentions m
join articles a using (article_id)
join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
join sources s on s.source_id = r.source_id
cross join bi.settings st
group by 1, 2, 3;

drop view bi.alerts;
create view bi.alerts as
select al.alert_id,
       al.topic,
       t.name                       as topic_name,
       al.window_start,
       al.window_end,
       al.observed,
       round(al.expected::numeric, 2) as expected,
       round(al.lift::numeric, 2)     as lift,
       round(al.score::numeric, 2)    as score,
       al.p_value,
       al.total_stories,
       al.state,
       al.peak_observed,
       al.last_window_end,
       al.cleared_at,
       al.created_at,
       al.notified_at,
       al.resolved_at,
       al.topic_version,
       al.details,
       coalesce(d.sent, 0)          as mails_sent,
       d.last_sent_at,
       al.window_start at time zone st.timezone  as window_start_local,
       al.window_end at time zone st.timezone    as window_end_local
from alerts al
join topics t using (topic)
cross join bi.settings st
left join (
    select alert_id, count(*) filter (where status = 'sent') as sent, max(sent_at) as last_sent_at
    from alert_deliveries
    group by alert_id
) d using (alert_id);

-- Status, in the order the rules are tried (docs: README, "BI views"):
--   disabled  the source is no longer in the sources file (or enabled: false);
--   failing   3 or more polls failed in a row, or it was fetched but never successfully;
--   warn      the last poll failed, or some fetches failed in the last 24 hours,
--             or it was never fetched;
--   ok        otherwise.
drop view bi.source_health;
create view bi.source_health as
select s.name                                          as source,
       s.kind,
       f.last_fetch,
       f.last_success,
       coalesce(f.fetches_24h, 0)                      as fetches_24h,
       coalesce(f.errors_24h, 0)                       as errors_24h,
       case when f.fetches_24h > 0
            then round(f.errors_24h::numeric / f.fetches_24h, 4) end as error_rate_24h,
       coalesce(ar.articles_24h, 0)                    as articles_24h,
       st.poll_interval,
       st.next_poll_at,
       st.last_polled_at,
       st.last_outcome                                 as last_poll_outcome,
       st.last_items                                   as last_poll_items,
       st.last_new                                     as last_poll_new_items,
       coalesce(st.consecutive_failures, 0)            as consecutive_failures,
       st.last_error                                   as last_poll_error,
       st.deferred_until,
       s.enabled,
       case when not s.enabled then 'disabled'
            when coalesce(st.consecutive_failures, 0) >= 3
              or (f.last_fetch is not null and f.last_success is null) then 'failing'
            when coalesce(st.consecutive_failures, 0) > 0
              or coalesce(f.errors_24h, 0) > 0
              or f.last_fetch is null then 'warn'
            else 'ok' end                              as status,
       case when not s.enabled then 'not in the sources file'
            when coalesce(st.consecutive_failures, 0) >= 3
                then st.consecutive_failures || ' polls failed in a row'
            when f.last_fetch is not null and f.last_success is null
                then 'never fetched successfully'
            when coalesce(st.consecutive_failures, 0) > 0 then 'the last poll failed'
            when coalesce(f.errors_24h, 0) > 0
                then f.errors_24h || ' of ' || f.fetches_24h || ' fetches failed in 24 h'
            when f.last_fetch is null then 'never fetched'
            else '' end                                as status_reason,
       f.last_fetch at time zone cfg.timezone          as last_fetch_local,
       f.last_success at time zone cfg.timezone        as last_success_local,
       coalesce(ar.articles_total, 0)                  as articles_total
from sources s
cross join bi.settings cfg
-- Each figure reads only what it needs through the (source_id, time) indexes: the last
-- fetch and the last success from the newest rows, the counts from the last 24 hours, so
-- the view stays fast when the fetch log holds years.
left join lateral (
    select (select max(fl.fetched_at) from fetch_log fl
             where fl.source_id = s.source_id)                          as last_fetch,
           (select fl.fetched_at from fetch_log fl
             where fl.source_id = s.source_id and fl.error is null
             order by fl.fetched_at desc limit 1)                       as last_success,
           count(*)                                                     as fetches_24h,
           count(*) filter (where fl.error is not null)                 as errors_24h
    from fetch_log fl
    where fl.source_id = s.source_id and fl.fetched_at > now() - interval '24 hours'
) f on true
left join lateral (
    select count(*) filter (where a.first_seen_at > now() - interval '24 hours') as articles_24h,
           count(*)                                                             as articles_total
    from articles a
    where a.source_id = s.source_id
) ar on true
left join source_state st on st.source_id = s.source_id;

-- Gap-free series for charts. Functions take the window, so a chart of the last days reads
-- only those days through the indexes (a view over the whole history cannot be told the
-- window: its filter would apply after every hour was counted). They run as their owner
-- (security definer, fixed search_path) because they read the tables behind the views;
-- mediamon_bi may only execute them. No JIT: planned without knowing the window, they
-- look costly, and on a year of data JIT compiled for 1.4 s a query that ran in 85 ms.
create function bi.topic_hours(p_from timestamptz, p_to timestamptz)
returns table (topic text, topic_name text, hour timestamptz, hour_local timestamp,
               day_local date, stories bigint, total_stories bigint, share numeric)
language sql stable security definer
set search_path = pg_catalog, public
set jit = off
as $$
with cfg as (
    select timezone as tz from bi.settings
),
hours as (
    select g as hour
    from cfg, generate_series(date_trunc('hour', p_from, cfg.tz),
                              -- at most ~3 years of hours, whatever the caller asks
                              least(p_to, p_from + interval '1100 days') - interval '1 microsecond',
                              interval '1 hour') as g
),
story_hours as materialized (
    select a.article_id as story_id,
           date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                      cfg.tz) as hour
    from articles a, cfg
    where a.duplicate_of is null
      and least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
          >= (select min(hour) from hours)
      and least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
          < (select max(hour) + interval '1 hour' from hours)
),
totals as (
    select sh.hour, count(*) as total_stories from story_hours sh group by sh.hour
),
members as (  -- each story and its syndicated copies: a topic found in a copy counts
    select sh.story_id, sh.hour, sh.story_id as article_id from story_hours sh
    union all
    select sh.story_id, sh.hour, c.article_id
    from story_hours sh join articles c on c.duplicate_of = sh.story_id
),
topic_counts as (
    select m.topic, mb.hour, count(distinct mb.story_id) as stories
    from members mb join mentions m on m.article_id = mb.article_id
    group by m.topic, mb.hour
)
select t.topic,
       t.name,
       h.hour,
       h.hour at time zone cfg.tz,
       (h.hour at time zone cfg.tz)::date,
       coalesce(c.stories, 0),
       coalesce(tot.total_stories, 0),
       round(coalesce(c.stories, 0)::numeric / nullif(tot.total_stories, 0), 4)
from hours h
cross join cfg
cross join topics t
left join totals tot on tot.hour = h.hour
left join topic_counts c on c.topic = t.topic and c.hour = h.hour
where t.active
order by t.topic, h.hour
$$;

create function bi.source_days(p_from timestamptz, p_to timestamptz)
returns table (source text, enabled boolean, day_local date, day_start timestamptz,
               articles bigint, stories bigint, copies bigint, fetches bigint,
               failed_fetches bigint, bytes bigint)
language sql stable security definer
set search_path = pg_catalog, public
set jit = off
as $$
with cfg as (
    select timezone as tz from bi.settings
),
days as (
    select g::date as day_local,
           g at time zone cfg.tz as day_start,
           (g + interval '1 day') at time zone cfg.tz as day_end
    from cfg, generate_series(date_trunc('day', p_from at time zone cfg.tz),
                              -- at most ~3 years of days, whatever the caller asks
                              least(p_to, p_from + interval '1100 days') at time zone cfg.tz
                                  - interval '1 microsecond',
                              interval '1 day') as g
)
select s.name, s.enabled, d.day_local, d.day_start,
       coalesce(a.articles, 0), coalesce(a.stories, 0), coalesce(a.copies, 0),
       coalesce(f.fetches, 0), coalesce(f.failed, 0), coalesce(f.bytes, 0)
from sources s
cross join days d
left join lateral (
    select count(*) as articles,
           count(*) filter (where x.duplicate_of is null) as stories,
           count(x.duplicate_of) as copies
    from articles x
    where x.source_id = s.source_id
      and x.first_seen_at >= d.day_start and x.first_seen_at < d.day_end
) a on true
left join lateral (
    select count(*) as fetches,
           count(*) filter (where fl.error is not null) as failed,
           sum(fl.bytes) as bytes
    from fetch_log fl
    where fl.source_id = s.source_id
      and fl.fetched_at >= d.day_start and fl.fetched_at < d.day_end
) f on true
order by s.name, d.day_local
$$;

create function bi.latest_story_at()
returns timestamptz
language sql stable security definer
set search_path = pg_catalog, public
as $$
    select max(least(coalesce(published_at, first_seen_at), first_seen_at)) from articles
$$;

create view bi.topic_hourly_filled as
select *
from bi.topic_hours(
    (select min(least(coalesce(published_at, first_seen_at), first_seen_at)) from articles),
    (select max(least(coalesce(published_at, first_seen_at), first_seen_at)) from articles)
        + interval '1 microsecond');  -- the end is exclusive

create view bi.topic_daily as
select topic,
       topic_name,
       day_local,
       sum(stories)                                                   as stories,
       sum(total_stories)                                             as total_stories,
       round(sum(stories)::numeric / nullif(sum(total_stories), 0), 4) as share
from bi.topic_hourly_filled
group by topic, topic_name, day_local;

create view bi.source_daily as
select *
from bi.source_days(
    (select min(first_seen_at) from articles),
    (select max(first_seen_at) from articles) + interval '1 microsecond');

-- Grants: the views dropped above lost theirs; the new objects get theirs here too (the
-- default privileges of 0004 only cover objects created by the role that set them).
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant usage on schema bi to mediamon_bi;
        grant select on all tables in schema bi to mediamon_bi;
        grant execute on function bi.topic_hours(timestamptz, timestamptz) to mediamon_bi;
        grant execute on function bi.source_days(timestamptz, timestamptz) to mediamon_bi;
        grant execute on function bi.latest_story_at() to mediamon_bi;
    end if;
end
$$;
revoke execute on function bi.topic_hours(timestamptz, timestamptz) from public;
revoke execute on function bi.source_days(timestamptz, timestamptz) from public;
revoke execute on function bi.latest_story_at() from public;

-- What every view, table, function and column means. Times: *_at columns are timestamptz
-- (an instant; shown in the session's time zone, UTC for mediamon's connections);
-- *_local columns are wall-clock times in bi.settings.timezone, *_day_local their dates.
comment on table bi.settings is
    'The settings the bi views use: timezone (IANA name) for the *_local columns. Written by '
    'mediamon from MEDIAMON_TIMEZONE whenever it opens the database; one row.';
comment on view bi.articles is
    'One row per article (canonical URL). duplicate_of points to the first article with the '
    'same or nearly the same text (syndicated copy); count stories with duplicate_of is null '
    '(or count distinct story_id). published_at is when no source gave a time, when mediamon '
    'first saw the article. *_local columns are in bi.settings.timezone.';
comment on view bi.fetch_log is
    'Every fetch mediamon made (feed, article page, archive file): HTTP status, size, time '
    'and the error when it failed.';
comment on view bi.topic_mentions is
    'One row per article that mentions a topic: hits in title and body. story_id is the '
    'first copy of the text (syndicated copies share it); count distinct story_id to count '
    'stories. published_at is the publication time, capped at when mediamon first saw it.';
comment on view bi.topic_hourly is
    'Per active topic and UTC hour with any stories: distinct stories about the topic '
    '(syndicated copies once) and all distinct stories that hour (every source and '
    'language). Hours without any story have no row: chart bi.topic_hourly_filled instead.';
comment on view bi.topic_source_hourly is
    'Distinct stories per topic, source and UTC hour (a story belongs to the source of its '
    'first copy). Hours without stories have no row.';
comment on view bi.alerts is
    'One row per alert episode: the window that fired, observed and expected stories, lift, '
    'score = -log10(p_value), state (open = mail pending, notified, resolved = over), and '
    'details: the share, dispersion, baseline and thresholds that explain why it fired.';
comment on view bi.source_health is
    'Per source: enabled, status (ok, warn, failing, disabled) and why, the last fetch and '
    'the last successful one, fetches and failed fetches in the last 24 hours, articles, and '
    'the adaptive polling state (null polling columns: never polled since it was added).';
comment on view bi.topic_hourly_filled is
    'Per active topic, every hour (local hours of bi.settings.timezone) from the first to '
    'the last story ever stored, with 0 for hours without stories: a gap-free series for '
    'charts. Reads the whole history; for a window call bi.topic_hours(from, to).';
comment on view bi.topic_daily is
    'Per active topic and local day (bi.settings.timezone), every day from the first to the '
    'last story: stories about the topic, all stories, and the share.';
comment on view bi.source_daily is
    'Ingest volume per source and local day (bi.settings.timezone), every day from the first '
    'to the last article stored: articles first seen that day, of them stories and copies, '
    'fetches, failed fetches and bytes. For a window call bi.source_days(from, to).';
comment on function bi.topic_hours(timestamptz, timestamptz) is
    'Gap-free hourly series per active topic for the local hours overlapping [p_from, p_to) '
    '(at most 1,100 days): stories, all stories and share, with 0 for empty hours. Same '
    'columns as bi.topic_hourly_filled.';
comment on function bi.latest_story_at() is
    'Time of the newest story (the index answers it at once): where charts of the latest '
    'data end.';
comment on function bi.source_days(timestamptz, timestamptz) is
    'Ingest volume per source for the local days overlapping [p_from, p_to) (at most 1,100 '
    'days), 0 for days without articles. Same columns as bi.source_daily.';

do $$
declare
    c record;
begin
    for c in select * from (values
        ('settings', 'singleton', 'Always true: the table has one row.'),
        ('settings', 'timezone', 'IANA time zone of the *_local columns (MEDIAMON_TIMEZONE), e.g. Asia/Shanghai.'),
        ('settings', 'updated_at', 'When mediamon last changed the row.'),

        ('articles', 'article_id', 'The article''s id.'),
        ('articles', 'source', 'Name of the source that supplied it (config/sources.yaml).'),
        ('articles', 'url', 'Canonical URL: tracking parameters, fragment and default port removed. Unique.'),
        ('articles', 'title', 'Title as published.'),
        ('articles', 'published_at', 'Publication time (UTC instant); when no source gave one, when mediamon first saw the article.'),
        ('articles', 'language', 'Language code (zh, en, ...), from the feed, page, source or detected.'),
        ('articles', 'body_text', 'Text as published (NFC, whitespace cleaned).'),
        ('articles', 'duplicate_of', 'The first article with the same or nearly the same text (this one is a syndicated copy); null for originals.'),
        ('articles', 'first_seen_at', 'When mediamon first stored the article (UTC instant).'),
        ('articles', 'content_origin', 'Where the text came from: page, feed_content, feed_summary or archive.'),
        ('articles', 'author', 'Byline, when one was found.'),
        ('articles', 'published_at_local', 'published_at as wall-clock time in bi.settings.timezone.'),
        ('articles', 'published_day_local', 'The local date of published_at (bi.settings.timezone).'),
        ('articles', 'first_seen_at_local', 'first_seen_at as wall-clock time in bi.settings.timezone.'),
        ('articles', 'story_id', 'The story: duplicate_of for a copy, else article_id. count(distinct story_id) counts stories.'),

        ('fetch_log', 'fetch_id', 'The fetch''s id.'),
        ('fetch_log', 'source', 'Name of the source the fetch was for.'),
        ('fetch_log', 'run_key', 'The run that made it (DAG id and interval, or cli:/import:); a re-run of a run overwrites its rows.'),
        ('fetch_log', 'url', 'URL (or archive file) fetched.'),
        ('fetch_log', 'kind', 'feed, page (an article page) or file (an archive file).'),
        ('fetch_log', 'fetched_at', 'When it was fetched (UTC instant).'),
        ('fetch_log', 'status', 'HTTP status; null when there was no answer.'),
        ('fetch_log', 'bytes', 'Bytes received.'),
        ('fetch_log', 'elapsed_ms', 'Time the fetch took, in milliseconds.'),
        ('fetch_log', 'error', 'Why it failed; null on success.'),
        ('fetch_log', 'ok', 'True when error is null.'),
        ('fetch_log', 'fetched_at_local', 'fetched_at as wall-clock time in bi.settings.timezone.'),
        ('fetch_log', 'fetched_day_local', 'The local date of fetched_at (bi.settings.timezone).'),

        ('topic_mentions', 'article_id', 'The article that mentions the topic.'),
        ('topic_mentions', 'topic', 'Topic key (config/topics.yaml), e.g. taiwan.'),
        ('topic_mentions', 'topic_name', 'Topic display name, e.g. 台湾.'),
        ('topic_mentions', 'title_hits', 'Matches of the topic''s terms in the title.'),
        ('topic_mentions', 'body_hits', 'Matches of the topic''s terms in the text.'),
        ('topic_mentions', 'story_id', 'The story: the first copy of the text; syndicated copies share it.'),
        ('topic_mentions', 'is_copy', 'True when the article is a syndicated copy of another.'),
        ('topic_mentions', 'source', 'Name of the article''s source.'),
        ('topic_mentions', 'language', 'The article''s language code.'),
        ('topic_mentions', 'title', 'The article''s title.'),
        ('topic_mentions', 'url', 'The article''s canonical URL.'),
        ('topic_mentions', 'published_at', 'Publication time (UTC instant), never later than first seen.'),
        ('topic_mentions', 'match_version', 'Hash of the topic rules the match was made with.'),
        ('topic_mentions', 'matched_at', 'When the article was matched.'),
        ('topic_mentions', 'published_at_local', 'published_at as wall-clock time in bi.settings.timezone.'),
        ('topic_mentions', 'published_day_local', 'The local date of published_at (bi.settings.timezone).'),

        ('topic_hourly', 'topic', 'Topic key.'),
        ('topic_hourly', 'topic_name', 'Topic display name.'),
        ('topic_hourly', 'hour', 'Start of the UTC hour (instant).'),
        ('topic_hourly', 'stories', 'Distinct stories about the topic that hour (copies once).'),
        ('topic_hourly', 'total_stories', 'Distinct stories of every source and language that hour.'),
        ('topic_hourly', 'hour_local', 'hour as wall-clock time in bi.settings.timezone.'),
        ('topic_hourly', 'day_local', 'The local date of hour.'),
        ('topic_hourly', 'share', 'stories / total_stories, 4 decimals.'),

        ('topic_source_hourly', 'topic', 'Topic key.'),
        ('topic_source_hourly', 'source', 'Source of the story''s first copy.'),
        ('topic_source_hourly', 'hour', 'Start of the UTC hour (instant).'),
        ('topic_source_hourly', 'stories', 'Distinct stories about the topic from that source that hour.'),
        ('topic_source_hourly', 'hour_local', 'hour as wall-clock time in bi.settings.timezone.'),
        ('topic_source_hourly', 'day_local', 'The local date of hour.'),

        ('alerts', 'alert_id', 'The alert''s id.'),
        ('alerts', 'topic', 'Topic key.'),
        ('alerts', 'topic_name', 'Topic display name.'),
        ('alerts', 'window_start', 'Start of the window that fired (UTC instant).'),
        ('alerts', 'window_end', 'End of the window that fired (UTC instant, exclusive).'),
        ('alerts', 'observed', 'Stories about the topic in the window.'),
        ('alerts', 'expected', 'Stories expected from the baseline weeks at the same hour of the week, scaled to this window''s total volume; 2 decimals.'),
        ('alerts', 'lift', 'observed / expected, 2 decimals.'),
        ('alerts', 'score', '-log10(p_value), 2 decimals: 4 means p = 0.0001.'),
        ('alerts', 'p_value', 'Negative binomial tail probability of observing this many or more (not rounded: it is often below 1e-6).'),
        ('alerts', 'total_stories', 'All stories in the window.'),
        ('alerts', 'state', 'open (mail pending), notified (mailed) or resolved (the episode is over).'),
        ('alerts', 'peak_observed', 'Most stories in any window of the episode.'),
        ('alerts', 'last_window_end', 'End of the last window in which the topic was still elevated.'),
        ('alerts', 'cleared_at', 'When the episode ended and the topic was re-armed.'),
        ('alerts', 'created_at', 'When the alert was recorded.'),
        ('alerts', 'notified_at', 'When its mails were sent.'),
        ('alerts', 'resolved_at', 'When it was resolved.'),
        ('alerts', 'topic_version', 'Hash of the topic definition that raised it (topic_versions).'),
        ('alerts', 'details', 'JSON: share, dispersion, baseline counts and the thresholds (params) that explain why it fired.'),
        ('alerts', 'mails_sent', 'Mails sent for it (immediate and digest).'),
        ('alerts', 'last_sent_at', 'When the last of them was sent.'),
        ('alerts', 'window_start_local', 'window_start as wall-clock time in bi.settings.timezone.'),
        ('alerts', 'window_end_local', 'window_end as wall-clock time in bi.settings.timezone.'),

        ('source_health', 'source', 'Source name.'),
        ('source_health', 'kind', 'feed or archive.'),
        ('source_health', 'last_fetch', 'Last fetch of any kind (UTC instant).'),
        ('source_health', 'last_success', 'Last fetch without error (UTC instant).'),
        ('source_health', 'fetches_24h', 'Fetches in the last 24 hours.'),
        ('source_health', 'errors_24h', 'Failed fetches in the last 24 hours.'),
        ('source_health', 'error_rate_24h', 'errors_24h / fetches_24h, 4 decimals; null without fetches.'),
        ('source_health', 'articles_24h', 'Articles first seen in the last 24 hours.'),
        ('source_health', 'poll_interval', 'Adaptive poll interval now in force.'),
        ('source_health', 'next_poll_at', 'When the source is next due.'),
        ('source_health', 'last_polled_at', 'When it was last polled.'),
        ('source_health', 'last_poll_outcome', 'polled, not_modified (HTTP 304), unchanged, failed or deferred (Retry-After).'),
        ('source_health', 'last_poll_items', 'Items in the feed at the last poll.'),
        ('source_health', 'last_poll_new_items', 'Of those, items not seen before.'),
        ('source_health', 'consecutive_failures', 'Polls failed in a row.'),
        ('source_health', 'last_poll_error', 'Error of the last failed poll.'),
        ('source_health', 'deferred_until', 'A Retry-After answer asked to wait until then.'),
        ('source_health', 'enabled', 'False when the source is no longer in the sources file (or has enabled: false there).'),
        ('source_health', 'status', 'disabled, failing (3+ failed polls in a row, or never a successful fetch), warn (last poll failed, failed fetches in 24 h, or never fetched) or ok.'),
        ('source_health', 'status_reason', 'Why the status is not ok, in words; empty when ok.'),
        ('source_health', 'last_fetch_local', 'last_fetch as wall-clock time in bi.settings.timezone.'),
        ('source_health', 'last_success_local', 'last_success as wall-clock time in bi.settings.timezone.'),
        ('source_health', 'articles_total', 'All articles stored from the source.'),

        ('topic_hourly_filled', 'topic', 'Topic key.'),
        ('topic_hourly_filled', 'topic_name', 'Topic display name.'),
        ('topic_hourly_filled', 'hour', 'Start of the local hour (instant).'),
        ('topic_hourly_filled', 'hour_local', 'hour as wall-clock time in bi.settings.timezone.'),
        ('topic_hourly_filled', 'day_local', 'The local date of hour.'),
        ('topic_hourly_filled', 'stories', 'Distinct stories about the topic that hour (copies once); 0 when none.'),
        ('topic_hourly_filled', 'total_stories', 'Distinct stories of every source that hour; 0 when none.'),
        ('topic_hourly_filled', 'share', 'stories / total_stories, 4 decimals; null when total_stories is 0.'),

        ('topic_daily', 'topic', 'Topic key.'),
        ('topic_daily', 'topic_name', 'Topic display name.'),
        ('topic_daily', 'day_local', 'Local date (bi.settings.timezone).'),
        ('topic_daily', 'stories', 'Distinct stories about the topic that day; 0 when none.'),
        ('topic_daily', 'total_stories', 'Distinct stories of every source that day.'),
        ('topic_daily', 'share', 'stories / total_stories, 4 decimals; null when total_stories is 0.'),

        ('source_daily', 'source', 'Source name.'),
        ('source_daily', 'enabled', 'False when the source is no longer in the sources file.'),
        ('source_daily', 'day_local', 'Local date (bi.settings.timezone).'),
        ('source_daily', 'day_start', 'Start of that local day (instant).'),
        ('source_daily', 'articles', 'Articles first seen (ingested) that day.'),
        ('source_daily', 'stories', 'Of them, originals (not syndicated copies).'),
        ('source_daily', 'copies', 'Of them, syndicated copies.'),
        ('source_daily', 'fetches', 'Fetches made that day.'),
        ('source_daily', 'failed_fetches', 'Of them, failed.'),
        ('source_daily', 'bytes', 'Bytes received that day.'),

        -- bi.article_claims (0009) came without column comments
        ('article_claims', 'source', 'The source whose feed made the claim.'),
        ('article_claims', 'url', 'Canonical URL the claim is about (another site''s page).'),
        ('article_claims', 'linked_url', 'The URL as the feed linked it.'),
        ('article_claims', 'title', 'Title the feed gave.'),
        ('article_claims', 'published_at', 'Publication time the feed gave (UTC instant).'),
        ('article_claims', 'language', 'Language code of the claimed text.'),
        ('article_claims', 'body_text', 'The feed''s text about the URL (never stored as the article).'),
        ('article_claims', 'content_origin', 'Where the text came from: feed_content or feed_summary.'),
        ('article_claims', 'first_claimed_at', 'When mediamon first saw the claim (UTC instant).'),
        ('article_claims', 'article_id', 'The article at that URL once its own page was fetched; null until then.')
    ) as v (relation, col, doc) loop
        -- quote_ident/quote_literal, not format(): psycopg reads a percent sign as a placeholder
        execute 'comment on column bi.' || quote_ident(c.relation) || '.' || quote_ident(c.col)
                || ' is ' || quote_literal(c.doc);
    end loop;
end
$$;
