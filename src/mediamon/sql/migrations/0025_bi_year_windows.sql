-- Year-long windows in under a second (make bench-bi, a year of two million articles, read
-- as mediamon_bi without JIT). Before, at 365 days: bi.topic_window_stories 7.8 s, a year
-- of stories per source and day from bi.articles 2.8 s, bi.source_days() 2.0 s,
-- bi.topic_hourly for a topic 1.3 s, bi.topic_hours() for a topic 1.0 s. Same names,
-- columns and rows (create or replace keeps the grants and comments); only how they are
-- counted changes. docs/decisions.md, "Year-long BI windows", says why each way.

-- 1. bi.articles over a window read a year of the table's wide rows (texts included) to
-- count 1.8 million stories by source and day. The index on its published_at now carries
-- the columns such a count needs, so it is read from the index alone (an index-only scan,
-- a tenth of the bytes). Same name, same key: the queries that used it still do.
-- The index of copies' links carries the copy's id and source: the top stories map a
-- topic's mentions to their stories, and list each story's other outlets, from it alone.
-- Both are built beside the old ones, which are dropped at the end of this migration: a
-- dropped index locks its table until the transaction ends, and reads of articles would
-- wait for every step below.
create index articles_shown_at_0025 on articles (coalesce(published_at, first_seen_at))
    include (published_at, first_seen_at, source_id, duplicate_of);
create index articles_duplicate_of_0025 on articles (duplicate_of)
    include (article_id, source_id)
    where duplicate_of is not null;
-- statistics of the new index's expression (the old index's go with it)
analyze articles;

-- 2. bi.topic_hours and bi.source_days were security definer functions, which PostgreSQL
-- never inlines: a dashboard's "where topic = ..." applied after every topic's (or
-- source's) series was computed. They are now plain SQL functions that PostgreSQL writes
-- into the caller's query, so the filter reaches the topics (sources) read, and each
-- series is counted only for those kept. What they read that a BI login may not, they
-- read through security definer helpers: the topics and the sources, and a topic's
-- hours (given the topic); a source's days come from the roll-up's view of them, which
-- BI logins may now read (counts per source id and day, no text). (No SET clause either:
-- a function with one is not inlined. BI logins run without JIT since 0023.)
create function bi_series_topics() returns table (topic text, name text)
language sql stable security definer rows 50
set search_path = pg_catalog, public
as $$
    select t.topic, t.name from topics t where t.active
$$;

create function bi_series_sources() returns table (source_id integer, name text, enabled boolean)
language sql stable security definer rows 1000
set search_path = pg_catalog, public
as $$
    select s.source_id, s.name, s.enabled from sources s
$$;

-- One topic's gap-free hours of [p_from, p_to) (bi.topic_hours' bounds), exact as the
-- roll-up's views are (marked hours counted live).
create function bi_topic_hour_series(p_topic text, p_from timestamptz, p_to timestamptz)
returns table (hour timestamptz, stories bigint, total_stories bigint)
language sql stable security definer rows 8760
set search_path = pg_catalog, public
as $$
with bounds as (
    select case when p_from is not null
                then greatest(date_trunc('hour', p_from, s.timezone),
                              (date_trunc('day', (p_to at time zone s.timezone) - interval '1100 days')
                               + interval '1 day') at time zone s.timezone) end as lo
    from bi.settings s
)
select h.hour, coalesce(c.stories, 0), coalesce(tot.total_stories, 0)
from generate_series((select lo from bounds), p_to - interval '1 microsecond',
                     interval '1 hour') as h (hour)
-- the bounds again on the counts' side, so that they are read for the window only
left join bi_story_hour_totals tot
       on tot.hour = h.hour and tot.hour >= (select lo from bounds) and tot.hour < p_to
left join bi_topic_story_hours c
       on c.topic = p_topic and c.hour = h.hour
      and c.hour >= (select lo from bounds) and c.hour < p_to
$$;

-- A source's days, read source after source, come from the roll-up's key alone: a
-- source's rows lie scattered over the table (a refresh appends the days it folds), and
-- reading them row by row cost a millisecond a source, a second for 1,000 sources.
alter table bi_rollup_source_days
    drop constraint bi_rollup_source_days_pkey,
    add primary key (source_id, day_local)
        include (articles, stories, copies, fetches, failed_fetches, bytes);

revoke execute on function bi_series_topics(), bi_series_sources(),
    bi_topic_hour_series(text, timestamptz, timestamptz) from public;
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi_series_topics(), bi_series_sources(),
            bi_topic_hour_series(text, timestamptz, timestamptz) to mediamon_bi;
        -- a source's days are read in the caller's query (below): a function per source
        -- cost a millisecond a call in the view's own function calls
        grant select on bi_source_day_counts to mediamon_bi;
    end if;
end
$$;

-- The topics (sources) in order, each one's series beside it: the rows come out ordered
-- by topic, and only each topic's hours are left to sort.
create or replace function bi.topic_hours(p_from timestamptz, p_to timestamptz)
returns table (topic text, topic_name text, hour timestamptz, hour_local timestamp,
               day_local date, stories bigint, total_stories bigint, share numeric)
language sql stable
as $$
select t.topic,
       t.name,
       h.hour,
       h.hour at time zone st.timezone,
       (h.hour at time zone st.timezone)::date,
       h.stories,
       h.total_stories,
       round(h.stories::numeric / nullif(h.total_stories, 0), 4)
from (select * from public.bi_series_topics() order by topic) as t
cross join lateral public.bi_topic_hour_series(t.topic, p_from, p_to) as h
cross join bi.settings st
order by t.topic, h.hour
$$;

create or replace function bi.source_days(p_from timestamptz, p_to timestamptz)
returns table (source text, enabled boolean, day_local date, day_start timestamptz,
               articles bigint, stories bigint, copies bigint, fetches bigint,
               failed_fetches bigint, bytes bigint)
language sql stable
as $$
with days as (
    select g::date as day_local, g at time zone st.timezone as day_start
    from bi.settings st
    cross join generate_series(
        -- at most ~3 years of days, whatever the caller asks: the last ones
        case when p_from is not null
             then greatest(date_trunc('day', p_from at time zone st.timezone),
                           date_trunc('day', (p_to at time zone st.timezone) - interval '1100 days')
                           + interval '1 day') end,
        (p_to at time zone st.timezone) - interval '1 microsecond',
        interval '1 day') as g
)
select s.name, s.enabled, d.day_local, d.day_start,
       coalesce(d.articles, 0), coalesce(d.stories, 0), coalesce(d.copies, 0),
       coalesce(d.fetches, 0), coalesce(d.failed_fetches, 0), coalesce(d.bytes, 0)
from (select * from public.bi_series_sources() order by name) as s
cross join lateral (
    select dd.day_local, dd.day_start, c.articles, c.stories, c.copies, c.fetches,
           c.failed_fetches, c.bytes
    from days dd
    left join public.bi_source_day_counts c
           on c.source_id = s.source_id and c.day_local = dd.day_local
          -- the window again on the counts' side, so that only its days are read
          and c.day_local >= (select min(day_local) from days)
          and c.day_local <= (select max(day_local) from days)
) as d
order by s.name, d.day_local
$$;

-- 3. bi.topic_hourly counted its UTC hours from the tables (0021). The roll-up's hours are
-- local hours, bucket K holding the stories of [K, K + 1 hour) (date_trunc to the hour
-- keeps the story's own UTC offset). While every bucket starts on a whole UTC hour (zones
-- a whole number of hours from UTC, as Asia/Shanghai, with or without summer time), the
-- stories of UTC hour H are exactly bucket H's, and the view reads the roll-up. One
-- bucket elsewhere (a half-hour zone such as Asia/Kolkata, or a history before 1901,
-- when zones kept local mean time) and it counts every hour from the tables, as before.
-- The check reads the keys of the roll-up's exact view, marked hours counted live.
create function bi_rollup_hours_are_utc() returns boolean
language sql stable security definer
set search_path = pg_catalog, public
as $$
    select bi_rollup_in_force()
           and not exists (select from bi_story_hour_totals k
                           where mod(extract(epoch from k.hour), 3600) <> 0)
$$;

revoke execute on function bi_rollup_hours_are_utc() from public;
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi_rollup_hours_are_utc() to mediamon_bi;
    end if;
end
$$;

create or replace view bi.topic_hourly as
with story_hours as not materialized (
    select a.article_id as story_id,
           date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
                              at time zone 'UTC') at time zone 'UTC' as hour
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
from bi_story_hour_totals tot
cross join topics t
cross join bi.settings st
left join bi_topic_story_hours c on c.topic = t.topic and c.hour = tot.hour
where t.active and (select bi_rollup_hours_are_utc())
union all
select t.topic,
       t.name,
       tot.hour,
       coalesce(c.stories, 0),
       tot.total_stories,
       tot.hour at time zone st.timezone,
       (tot.hour at time zone st.timezone)::date,
       round(coalesce(c.stories, 0)::numeric / tot.total_stories, 4)
from totals tot
cross join topics t
cross join bi.settings st
left join topic_counts c on c.topic = t.topic and c.hour = tot.hour
where t.active and not (select bi_rollup_hours_are_utc());

-- 4. bi.topic_window_stories read the window's roots, then each one's copies and their
-- mentions of the topic: right for an alert's hour (a few hundred roots), but a year is
-- 1.8 million roots for 45,000 stories about a topic. A window with more stories than the
-- topic has in all (the roll-up's counts tell, cheaply; they only choose the way, never
-- the rows) is now read from the topic's mentions, then their roots. The ranking is the
-- same text for both (bi_window_stories), so the rows are too.
create function bi_window_stories(p_topic text, p_from timestamptz, p_to timestamptz,
                                  p_from_mentions boolean)
returns table (story_rank bigint, story_id bigint, title text, url text, source text,
               published_at timestamptz, published_at_local timestamp, title_hits integer,
               mentions bigint, outlets integer, other_outlets text[], copies bigint)
language plpgsql stable security definer
set search_path = pg_catalog, public
set jit = off
as $fn$
declare
    -- The stories of the window (a root article whose story time is in [$2, $3)) that
    -- mention topic $1 themselves or through a syndicated copy, with the copies' hits.
    from_roots constant text := $q$
    select r.article_id as story_id, r.title, r.canonical_url as url, s.name as source,
           r.published_at,
           max(m.title_hits) as title_hits,
           sum(m.title_hits + m.body_hits) as mentions,
           count(*) filter (where a.is_copy) as copies
    from (
        select r.article_id, r.title, r.canonical_url, r.source_id,
               least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) as published_at
        from articles r
        where r.duplicate_of is null
          -- the expression of the index articles_story_time (0003): keep them identical
          and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) >= $2
          and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) < $3
    ) r
    cross join lateral (
        select r.article_id as article_id, false as is_copy
        union all
        select c.article_id, true from articles c where c.duplicate_of = r.article_id
    ) a
    join mentions m on m.article_id = a.article_id and m.topic = $1
    join sources s on s.source_id = r.source_id
    group by r.article_id, r.title, r.canonical_url, r.published_at, s.name
    $q$;
    -- The topic's mentions, each on its story (its root: the copies' links are read
    -- from articles_duplicate_of alone), the stories in article order, then their roots.
    from_mentions constant text := $q$
    select r.article_id as story_id, r.title, r.canonical_url as url, s.name as source,
           least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) as published_at,
           h.title_hits, h.mentions, h.copies
    from (
        select coalesce(c.duplicate_of, m.article_id) as story_id,
               max(m.title_hits) as title_hits,
               sum(m.title_hits + m.body_hits) as mentions,
               count(c.duplicate_of) as copies
        from mentions m
        left join articles c on c.article_id = m.article_id and c.duplicate_of is not null
        where m.topic = $1
        group by 1
        order by 1
    ) h
    join articles r on r.article_id = h.story_id
    join sources s on s.source_id = r.source_id
    where r.duplicate_of is null
      and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) >= $2
      and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) < $3
    $q$;
begin
-- EXECUTE plans the query for this call's topic and window. (replace, not format: the
-- migration runner's driver reads a percent sign as a placeholder.)
return query execute replace($q$
with stories as (:stories),
outlets as (
    select st.*,
           array(select distinct cs.name
                   from articles c
                   join sources cs on cs.source_id = c.source_id
                  where c.duplicate_of = st.story_id and cs.name <> st.source
                  order by cs.name) as other_outlets
    from stories st
)
select row_number() over (
           order by o.title_hits > 0 desc, cardinality(o.other_outlets) desc,
                    o.mentions desc, o.published_at desc, o.story_id),
       o.story_id,
       o.title,
       o.url,
       o.source,
       o.published_at,
       o.published_at at time zone st.timezone,
       o.title_hits,
       o.mentions,
       1 + cardinality(o.other_outlets),
       o.other_outlets,
       o.copies
from outlets o
cross join bi.settings st
order by 1
$q$, ':stories', case when p_from_mentions then from_mentions else from_roots end)
using p_topic, p_from, p_to;
end
$fn$;

revoke execute on function bi_window_stories(text, timestamptz, timestamptz, boolean)
    from public;

create or replace function bi.topic_window_stories(p_topic text, p_from timestamptz,
                                                   p_to timestamptz)
returns table (story_rank bigint, story_id bigint, title text, url text, source text,
               published_at timestamptz, published_at_local timestamp, title_hits integer,
               mentions bigint, outlets integer, other_outlets text[], copies bigint)
language plpgsql stable security definer
set search_path = pg_catalog, public
set jit = off
as $fn$
declare
    window_stories bigint;
    topic_stories bigint;
begin
    -- Stories in the window and the topic's in all, as the roll-up last counted them
    -- (an estimate: it only picks the cheaper way). A short window is read from its roots
    -- without asking further.
    select coalesce(sum(r.total_stories), 0) into window_stories
    from bi_rollup_hours r
    where r.hour > p_from - interval '1 hour' and r.hour < p_to;
    if window_stories > 5000 then
        select coalesce(sum(r.stories), 0) into topic_stories
        from bi_rollup_topic_hours r where r.topic = p_topic;
    end if;
    return query
    select * from bi_window_stories(p_topic, p_from, p_to,
                                    window_stories > 5000 and window_stories > topic_stories);
end
$fn$;

-- The old indexes of section 1, last (see there).
drop index articles_shown_at;
alter index articles_shown_at_0025 rename to articles_shown_at;
drop index articles_duplicate_of;
alter index articles_duplicate_of_0025 rename to articles_duplicate_of;
