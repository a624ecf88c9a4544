-- The gap-free series show the most recent data (0011 kept the oldest). bi.topic_hours and
-- bi.source_days cap a window at 1,100 days; they kept its first 1,100 days, and the
-- views bi.topic_hourly_filled, bi.topic_daily and bi.source_daily ask for the whole
-- history, from the oldest story: a history of more than three years, or one old story
-- (an archive import), and the dashboards showed 1,100 days from then and nothing recent.
-- Now a longer window keeps its last days: it ends where the caller asked (the views: the
-- newest story or article) and starts at the first local midnight of its last 1,100 days,
-- so every day of bi.topic_daily and bi.source_daily is a whole day.
--
-- create or replace keeps each function's signature, columns, owner, grants and oid, so
-- the views that call them stay as they are (same columns, same types); only their
-- comments change.

create or replace function bi.topic_hours(p_from timestamptz, p_to timestamptz)
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
    from cfg, generate_series(
        -- at most ~3 years of hours, whatever the caller asks: the last ones
        case when p_from is not null
             then greatest(date_trunc('hour', p_from, cfg.tz),
                           (date_trunc('day', (p_to at time zone cfg.tz) - interval '1100 days')
                            + interval '1 day') at time zone cfg.tz) end,
        p_to - interval '1 microsecond',
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

create or replace function bi.source_days(p_from timestamptz, p_to timestamptz)
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
    from cfg, generate_series(
        -- at most ~3 years of days, whatever the caller asks: the last ones
        case when p_from is not null
             then greatest(date_trunc('day', p_from at time zone cfg.tz),
                           date_trunc('day', (p_to at time zone cfg.tz) - interval '1100 days')
                           + interval '1 day') end,
        (p_to at time zone cfg.tz) - interval '1 microsecond',
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

comment on function bi.topic_hours(timestamptz, timestamptz) is
    'Gap-free hourly series per active topic for the local hours overlapping [p_from, p_to), '
    '0 for empty hours: stories, all stories and share. At most 1,100 days: a longer window '
    'keeps its last days (from the first local midnight of its last 1,100 days to p_to). '
    'Same columns as bi.topic_hourly_filled.';
comment on function bi.source_days(timestamptz, timestamptz) is
    'Ingest volume per source for the local days overlapping [p_from, p_to), 0 for days '
    'without articles. At most 1,100 days: a longer window keeps its last 1,100 days. Same '
    'columns as bi.source_daily.';
comment on view bi.topic_hourly_filled is
    'Per active topic, every hour (local hours of bi.settings.timezone) up to the newest story '
    'stored, from the oldest story or, for a longer history, from the first local midnight of '
    'the last 1,100 days; 0 for hours without stories: a gap-free series for charts. For '
    'another window call bi.topic_hours(from, to).';
comment on view bi.topic_daily is
    'Per active topic and local day (bi.settings.timezone), every day up to the newest story, '
    'from the oldest story or at most the last 1,100 days: stories about the topic, all '
    'stories, and the share.';
comment on view bi.source_daily is
    'Ingest volume per source and local day (bi.settings.timezone), every day up to the '
    'newest article stored, from the oldest or at most the last 1,100 days: articles first '
    'seen that day, of them stories and copies, fetches, failed fetches and bytes. For '
    'another window call bi.source_days(from, to).';
