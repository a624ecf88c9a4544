-- The gap-free BI series (bi.topic_hourly_filled, bi.topic_daily, bi.source_daily, and the
-- Superset dataset topic_hours_alerts) called bi.topic_hours / bi.source_days from the
-- oldest to the newest story and filtered afterwards: 8 to 23 s a query on a year of two
-- million articles (make bench-bi), whatever the filter, and 170 ms on 5,000. They now
-- read a roll-up: stories per local hour, stories per topic and local hour, articles and
-- fetches per source and local day (docs/decisions.md, "The gap-free series read a roll-up").
--
-- The roll-up is never trusted blindly. Every change to the rows it counts (articles,
-- mentions, fetch_log: inserted, updated, deleted, by any program) appends a mark in the
-- same transaction: the instant of each story touched (bi_rollup_story_marks), or a
-- source and the instants its days span (bi_rollup_source_marks). The views count an hour
-- or a day with a mark live from the tables, every other one from the roll-up, so they
-- are exact in every snapshot; refresh_bi_rollup() (after each ingest run, topic match
-- and retention prune) folds the marked hours and days into the roll-up and deletes the
-- marks it folded. Marks are appended only (no unique key, no update): concurrent loaders
-- never wait for each other on them, so they can neither deadlock nor lose a count.
--
-- Marks hold instants, not hours, so they mean the same under any bi.settings.timezone;
-- the roll-up is keyed by local hours and days of the zone it was built in
-- (bi_rollup_state), and while that is not the zone in force (or the state row is gone)
-- the views count everything live, as before, until the next refresh rebuilds it.

create table bi_rollup_state (
    singleton     boolean primary key default true check (singleton),
    timezone      text not null,              -- the zone of the roll-up's hours and days
    refreshed_at  timestamptz not null default now()
);

-- Hours are date_trunc('hour', story time, timezone), as bi.topic_hours has them; only
-- hours with a story have a row.
create table bi_rollup_hours (
    hour           timestamptz primary key,
    total_stories  bigint not null
);

create table bi_rollup_topic_hours (
    topic    text not null,
    hour     timestamptz not null,
    stories  bigint not null,
    primary key (topic, hour)
);

-- Local days of first_seen_at (articles) and fetched_at (fetch_log); only days with an
-- article or a fetch have a row.
create table bi_rollup_source_days (
    source_id       integer not null,
    day_local       date not null,
    articles        bigint not null,
    stories         bigint not null,
    copies          bigint not null,
    fetches         bigint not null,
    failed_fetches  bigint not null,
    bytes           bigint not null,
    primary key (source_id, day_local)
);

create table bi_rollup_story_marks (
    mark_id   bigint generated always as identity primary key,
    story_at  timestamptz not null          -- a story time whose hour is to be counted again
);
create index bi_rollup_story_marks_at on bi_rollup_story_marks (story_at);

create table bi_rollup_source_marks (
    mark_id    bigint generated always as identity primary key,
    source_id  integer not null,
    first_at   timestamptz not null,        -- the source's days from first_at's to last_at's
    last_at    timestamptz not null         -- are to be counted again
);

-- The story time, as every view has it (the expression of the index articles_story_time).
-- Hours marked in the current zone: the roll-up's value for them may be behind.
-- (Functions with a ROWS estimate, as the others below: a handful of hours and days is
-- marked between refreshes, and PostgreSQL's default of 200 distinct values made a
-- query over them look large enough to be JIT-compiled.)
create function bi_rollup_dirty_hours() returns table (hour timestamptz)
language sql stable security definer rows 5
set search_path = pg_catalog, public
as $$
    select distinct date_trunc('hour', m.story_at, (select timezone from bi.settings))
    from bi_rollup_story_marks m
$$;

-- The local days from p_first's to p_last's. PL/pgSQL, so that the planner takes the
-- ROWS estimate (a mark spans a day or two) rather than generate_series' 1,000: with
-- that, a query over a few marks was costed as millions of rows and JIT-compiled (1 to
-- 2 s of compiling for a millisecond of work).
create function bi_rollup_days_between(p_first timestamptz, p_last timestamptz)
returns setof date
language plpgsql stable rows 2
set search_path = pg_catalog, public
as $$
begin
    return query
    select g::date
    from bi.settings s
    cross join generate_series(date_trunc('day', p_first at time zone s.timezone),
                               p_last at time zone s.timezone, interval '1 day') as g;
end
$$;

create function bi_rollup_dirty_days() returns table (source_id integer, day_local date)
language sql stable security definer rows 20
set search_path = pg_catalog, public
as $$
    select distinct m.source_id, d.day_local
    from bi_rollup_source_marks m
    cross join lateral bi_rollup_days_between(m.first_at, m.last_at) as d (day_local)
$$;

-- Is the roll-up keyed by the zone in force? Without a state row, or in another zone,
-- every hour and day is counted live.
-- The views run their functions as the reader (a BI login): the functions that read
-- tables are security definer, as bi.topic_hours is, and only mediamon_bi may call them.
create function bi_rollup_in_force() returns boolean
language sql stable security definer
set search_path = pg_catalog, public
as $$
    select exists (select from bi_rollup_state r join bi.settings s using (timezone))
$$;

-- The roots (stories) whose story time is in the local hour starting at p_hour, through
-- the story-time index (a local hour lies within 3 hours of its start in every zone).
-- A function, so that each marked hour is looked up on its own: joined, the planner
-- hashed the whole table against the marks.
create function bi_rollup_roots_of_hour(p_hour timestamptz) returns table (story_id bigint)
language sql stable security definer rows 50
set search_path = pg_catalog, public
as $$
    select a.article_id
    from articles a
    where least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
              >= p_hour - interval '3 hours'
      and least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at)
              < p_hour + interval '3 hours'
      and a.duplicate_of is null
      and date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                     (select timezone from bi.settings)) = p_hour
$$;

-- Everything counted from the tables, for when the roll-up is not in force (and to
-- rebuild it). Functions, so that the planner takes their ROWS estimate: written into the
-- views, these branches' estimates (every hour of every year) counted even where a
-- one-time filter switches them off, and made each query look big enough to be
-- JIT-compiled: 1.3 s of compiling for 30 ms of work.
create function bi_rollup_live_hours() returns table (hour timestamptz, total_stories bigint)
language sql stable security definer rows 1
set search_path = pg_catalog, public
set jit = off
as $$
select date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                  (select timezone from bi.settings)), count(*)
from articles a
where a.duplicate_of is null
group by 1
$$;

create function bi_rollup_live_topic_hours()
returns table (topic text, hour timestamptz, stories bigint)
language sql stable security definer rows 1
set search_path = pg_catalog, public
set jit = off
as $$
select m.topic, roots.hour, count(distinct roots.story_id)
from (
    select a.article_id as story_id,
           date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                      (select timezone from bi.settings)) as hour
    from articles a
    where a.duplicate_of is null
) as roots
join articles member on coalesce(member.duplicate_of, member.article_id) = roots.story_id
join mentions m on m.article_id = member.article_id
group by m.topic, roots.hour
$$;

create function bi_rollup_live_source_days()
returns table (source_id integer, day_local date, articles bigint, stories bigint,
               copies bigint, fetches bigint, failed_fetches bigint, bytes bigint)
language sql stable security definer rows 1
set search_path = pg_catalog, public
set jit = off
as $$
select coalesce(a.source_id, f.source_id), coalesce(a.day_local, f.day_local),
       coalesce(a.articles, 0), coalesce(a.stories, 0), coalesce(a.copies, 0),
       coalesce(f.fetches, 0), coalesce(f.failed, 0), coalesce(f.bytes, 0)
from (
    select x.source_id, (x.first_seen_at at time zone (select timezone from bi.settings))::date as day_local,
           count(*) as articles,
           count(*) filter (where x.duplicate_of is null) as stories,
           count(x.duplicate_of) as copies
    from articles x
    group by 1, 2
) as a
full join (
    select fl.source_id, (fl.fetched_at at time zone (select timezone from bi.settings))::date as day_local,
           count(*) as fetches,
           count(*) filter (where fl.error is not null) as failed,
           sum(fl.bytes) as bytes
    from fetch_log fl
    group by 1, 2
) as f on f.source_id = a.source_id and f.day_local = a.day_local
$$;

revoke execute on function bi_rollup_in_force(), bi_rollup_roots_of_hour(timestamptz),
    bi_rollup_dirty_hours(), bi_rollup_dirty_days(),
    bi_rollup_days_between(timestamptz, timestamptz), bi_rollup_live_hours(),
    bi_rollup_live_topic_hours(), bi_rollup_live_source_days() from public;
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi_rollup_in_force(), bi_rollup_roots_of_hour(timestamptz),
            bi_rollup_dirty_hours(), bi_rollup_dirty_days(),
            bi_rollup_days_between(timestamptz, timestamptz), bi_rollup_live_hours(),
            bi_rollup_live_topic_hours(), bi_rollup_live_source_days() to mediamon_bi;
    end if;
end
$$;

-- Stories per local hour, exact: the roll-up for unmarked hours, the tables for marked
-- ones (through the story-time index), everything from the tables when the roll-up is not
-- in force. The branches' conditions on bi_rollup_in_force() are one-time filters: a
-- branch that is off is never run.
create view bi_story_hour_totals as
select r.hour, r.total_stories
from bi_rollup_hours r
where (select bi_rollup_in_force())
  and not exists (select from bi_rollup_dirty_hours() d where d.hour = r.hour)
union all
select d.hour, count(*)
from bi_rollup_dirty_hours() d
cross join lateral bi_rollup_roots_of_hour(d.hour) as roots
where (select bi_rollup_in_force())
group by d.hour
union all
select hour, total_stories
from bi_rollup_live_hours()
where not (select bi_rollup_in_force());

-- Distinct stories per topic and local hour, exact as above. A story is a root article;
-- a topic found in it or in one of its copies (duplicate_of = the root) counts once, in
-- the root's hour (bi.topic_hours' rule).
create view bi_topic_story_hours as
select r.topic, r.hour, r.stories
from bi_rollup_topic_hours r
where (select bi_rollup_in_force())
  and not exists (select from bi_rollup_dirty_hours() d where d.hour = r.hour)
union all
select m.topic, roots.hour, count(distinct roots.story_id)
from (
    select d.hour, r.story_id
    from bi_rollup_dirty_hours() d
    cross join lateral bi_rollup_roots_of_hour(d.hour) as r
    where (select bi_rollup_in_force())
) as roots
cross join lateral (
    select roots.story_id as article_id
    union all
    select c.article_id from articles c where c.duplicate_of = roots.story_id
) as members
join mentions m on m.article_id = members.article_id
group by m.topic, roots.hour
union all
select topic, hour, stories
from bi_rollup_live_topic_hours()
where not (select bi_rollup_in_force());

-- Articles and fetches per source and local day, exact as above. A marked day is counted
-- over [its local midnight, the next) through the per-source indexes, as
-- bi.source_days counts every day.
create view bi_source_day_counts as
select r.source_id, r.day_local, r.articles, r.stories, r.copies, r.fetches,
       r.failed_fetches, r.bytes
from bi_rollup_source_days r
where (select bi_rollup_in_force())
  and not exists (select from bi_rollup_dirty_days() d
                  where d.source_id = r.source_id and d.day_local = r.day_local)
union all
select d.source_id, d.day_local,
       coalesce(a.articles, 0), coalesce(a.stories, 0), coalesce(a.copies, 0),
       coalesce(f.fetches, 0), coalesce(f.failed, 0), coalesce(f.bytes, 0)
from bi_rollup_dirty_days() d
cross join lateral (
    select d.day_local::timestamp at time zone (select timezone from bi.settings) as day_start,
           (d.day_local + 1)::timestamp at time zone (select timezone from bi.settings) as day_end
) as span
left join lateral (
    select count(*) as articles,
           count(*) filter (where x.duplicate_of is null) as stories,
           count(x.duplicate_of) as copies
    from articles x
    where x.source_id = d.source_id
      and x.first_seen_at >= span.day_start and x.first_seen_at < span.day_end
) as a on true
left join lateral (
    select count(*) as fetches,
           count(*) filter (where fl.error is not null) as failed,
           sum(fl.bytes) as bytes
    from fetch_log fl
    where fl.source_id = d.source_id
      and fl.fetched_at >= span.day_start and fl.fetched_at < span.day_end
) as f on true
where (select bi_rollup_in_force())
union all
select *
from bi_rollup_live_source_days()
where not (select bi_rollup_in_force());

-- The marks. Statement-level triggers with transition tables: one insert of marks per
-- statement (a COPY of a chunk of articles included), never a row lock. An update marks
-- only rows whose story time, link, source or counted columns changed.
create function bi_rollup_mark_articles() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        -- a new root counts in its hour; a new copy's mentions count in its root's
        insert into bi_rollup_story_marks (story_at)
        select distinct least(coalesce(n.published_at, n.first_seen_at), n.first_seen_at)
        from new_rows n
        union
        select least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)
        from new_rows n join articles r on r.article_id = n.duplicate_of;
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select source_id, min(first_seen_at), max(first_seen_at) from new_rows group by source_id;
    elsif tg_op = 'UPDATE' then
        -- the rows' own hours (as roots), their roots' hours (their mentions, as copies)
        -- and their sources' days, before and after
        with changed as (
            select o.source_id as old_source, o.first_seen_at as old_seen,
                   least(coalesce(o.published_at, o.first_seen_at), o.first_seen_at) as old_story,
                   o.duplicate_of as old_root,
                   n.source_id as new_source, n.first_seen_at as new_seen,
                   least(coalesce(n.published_at, n.first_seen_at), n.first_seen_at) as new_story,
                   n.duplicate_of as new_root
            from old_rows o join new_rows n using (article_id)
            where (o.published_at, o.first_seen_at, o.duplicate_of, o.source_id)
                  is distinct from (n.published_at, n.first_seen_at, n.duplicate_of, n.source_id)
        ),
        story_marks as (
            insert into bi_rollup_story_marks (story_at)
            select old_story from changed
            union
            select new_story from changed
            union
            select least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)
            from changed c join articles r on r.article_id in (c.old_root, c.new_root)
        )
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select source_id, min(seen), max(seen)
        from (select old_source, old_seen from changed
              union all
              select new_source, new_seen from changed) as s (source_id, seen)
        group by source_id;
    else  -- DELETE
        insert into bi_rollup_story_marks (story_at)
        select distinct least(coalesce(o.published_at, o.first_seen_at), o.first_seen_at)
        from old_rows o
        union
        select least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at)
        from old_rows o join articles r on r.article_id = o.duplicate_of;
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select source_id, min(first_seen_at), max(first_seen_at) from old_rows group by source_id;
    end if;
    return null;
end
$$;

create trigger bi_rollup_articles_inserted after insert on articles
    referencing new table as new_rows for each statement
    execute function bi_rollup_mark_articles();
create trigger bi_rollup_articles_updated after update on articles
    referencing old table as old_rows new table as new_rows for each statement
    execute function bi_rollup_mark_articles();
create trigger bi_rollup_articles_deleted after delete on articles
    referencing old table as old_rows for each statement
    execute function bi_rollup_mark_articles();

-- A mention counts in its story's hour: the article's root (itself when it is one). A
-- mention deleted with its article (on delete cascade) finds no article here; the
-- article's own delete marked that hour.
create function bi_rollup_mark_mentions() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into bi_rollup_story_marks (story_at)
        select distinct least(coalesce(s.published_at, s.first_seen_at), s.first_seen_at)
        from (select distinct article_id from new_rows) n
        join articles a on a.article_id = n.article_id
        join articles s on s.article_id = coalesce(a.duplicate_of, a.article_id);
    elsif tg_op = 'UPDATE' then  -- only a changed key moves a count (hits do not)
        insert into bi_rollup_story_marks (story_at)
        select distinct least(coalesce(s.published_at, s.first_seen_at), s.first_seen_at)
        from ((select article_id, topic from old_rows
               except select article_id, topic from new_rows)
              union
              (select article_id, topic from new_rows
               except select article_id, topic from old_rows)) n
        join articles a on a.article_id = n.article_id
        join articles s on s.article_id = coalesce(a.duplicate_of, a.article_id);
    else
        insert into bi_rollup_story_marks (story_at)
        select distinct least(coalesce(s.published_at, s.first_seen_at), s.first_seen_at)
        from (select distinct article_id from old_rows) o
        join articles a on a.article_id = o.article_id
        join articles s on s.article_id = coalesce(a.duplicate_of, a.article_id);
    end if;
    return null;
end
$$;

create trigger bi_rollup_mentions_inserted after insert on mentions
    referencing new table as new_rows for each statement
    execute function bi_rollup_mark_mentions();
create trigger bi_rollup_mentions_updated after update on mentions
    referencing old table as old_rows new table as new_rows for each statement
    execute function bi_rollup_mark_mentions();
create trigger bi_rollup_mentions_deleted after delete on mentions
    referencing old table as old_rows for each statement
    execute function bi_rollup_mark_mentions();

create function bi_rollup_mark_fetches() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op in ('INSERT', 'UPDATE') then
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select source_id, min(fetched_at), max(fetched_at) from new_rows group by source_id;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select source_id, min(fetched_at), max(fetched_at) from old_rows group by source_id;
    end if;
    return null;
end
$$;

create trigger bi_rollup_fetches_inserted after insert on fetch_log
    referencing new table as new_rows for each statement
    execute function bi_rollup_mark_fetches();
create trigger bi_rollup_fetches_updated after update on fetch_log
    referencing old table as old_rows new table as new_rows for each statement
    execute function bi_rollup_mark_fetches();
create trigger bi_rollup_fetches_deleted after delete on fetch_log
    referencing old table as old_rows for each statement
    execute function bi_rollup_mark_fetches();

-- Folds the marked hours and days into the roll-up (or rebuilds it, when it is not in
-- force), then deletes the marks it folded; returns how many marks. One refresh at a time
-- (a transaction-scoped advisory lock), so each starts from its predecessor's result.
-- Correct under concurrent loads at READ COMMITTED: the marks are read first, the counts
-- after, so every mark deleted was committed before the counts were read, and its change
-- is in them; a change committed later keeps its own mark, and its hour stays live.
create function refresh_bi_rollup() returns bigint
language plpgsql security definer
set search_path = pg_catalog, public
set jit = off
as $$
declare
    taken bigint;
begin
    perform pg_advisory_xact_lock(7885084345481590128);  -- b'mmrollup' as a number
    -- (a TRUNCATE of several tables refreshes once for each, in one transaction)
    drop table if exists pg_temp.bi_rollup_taken_story, pg_temp.bi_rollup_taken_source,
        pg_temp.bi_rollup_hours_taken, pg_temp.bi_rollup_days_taken;
    create temporary table bi_rollup_taken_story on commit drop as
        select mark_id, story_at from bi_rollup_story_marks;
    create temporary table bi_rollup_taken_source on commit drop as
        select mark_id, source_id, first_at, last_at from bi_rollup_source_marks;
    select (select count(*) from bi_rollup_taken_story)
           + (select count(*) from bi_rollup_taken_source) into taken;
    create temporary table bi_rollup_hours_taken on commit drop as
        select distinct date_trunc('hour', t.story_at, s.timezone) as hour
        from bi_rollup_taken_story t cross join bi.settings s;
    create temporary table bi_rollup_days_taken on commit drop as
        select distinct t.source_id, d.day_local
        from bi_rollup_taken_source t
        cross join lateral bi_rollup_days_between(t.first_at, t.last_at) as d (day_local);
    analyze bi_rollup_hours_taken, bi_rollup_days_taken;

    -- Rebuilt from the tables when it is not in force, and when so much is marked (a
    -- backfill, a topic re-matched over the whole history) that reading everything once
    -- is cheaper than looking up each hour and day.
    if not bi_rollup_in_force()
       or (select count(*) from bi_rollup_hours_taken) > 2000
       or (select count(*) from bi_rollup_days_taken) > 20000 then
        -- Without a state row the views below count everything from the tables.
        delete from bi_rollup_state;
        delete from bi_rollup_hours;
        delete from bi_rollup_topic_hours;
        delete from bi_rollup_source_days;
        insert into bi_rollup_hours select hour, total_stories from bi_story_hour_totals;
        insert into bi_rollup_topic_hours select topic, hour, stories from bi_topic_story_hours;
        insert into bi_rollup_source_days select * from bi_source_day_counts;
        insert into bi_rollup_state (timezone) select timezone from bi.settings;
    else
        -- The taken hours and days are still marked, so these views count them live.
        delete from bi_rollup_hours where hour in (select hour from bi_rollup_hours_taken);
        insert into bi_rollup_hours
        select hour, total_stories from bi_story_hour_totals
        where hour in (select hour from bi_rollup_hours_taken);
        delete from bi_rollup_topic_hours where hour in (select hour from bi_rollup_hours_taken);
        insert into bi_rollup_topic_hours
        select topic, hour, stories from bi_topic_story_hours
        where hour in (select hour from bi_rollup_hours_taken);
        delete from bi_rollup_source_days r using bi_rollup_days_taken t
        where r.source_id = t.source_id and r.day_local = t.day_local;
        insert into bi_rollup_source_days
        select c.* from bi_source_day_counts c
        join bi_rollup_days_taken t using (source_id, day_local)
        where c.articles > 0 or c.fetches > 0;
        update bi_rollup_state set refreshed_at = now();
    end if;

    delete from bi_rollup_story_marks where mark_id in (select mark_id from bi_rollup_taken_story);
    delete from bi_rollup_source_marks
    where mark_id in (select mark_id from bi_rollup_taken_source);
    return taken;
end
$$;

-- TRUNCATE fires no row or statement trigger of insert, update or delete: the roll-up
-- is rebuilt in the truncating transaction instead (an emptied table costs nothing).
create function bi_rollup_truncated() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
begin
    delete from bi_rollup_state;
    perform refresh_bi_rollup();
    return null;
end
$$;

create trigger bi_rollup_articles_truncated after truncate on articles
    for each statement execute function bi_rollup_truncated();
create trigger bi_rollup_mentions_truncated after truncate on mentions
    for each statement execute function bi_rollup_truncated();
create trigger bi_rollup_fetches_truncated after truncate on fetch_log
    for each statement execute function bi_rollup_truncated();

-- The series, from the roll-up. Same signatures, columns, rows, grants and comments
-- (create or replace keeps them); only where the counts come from changes.
create or replace function bi.topic_hours(p_from timestamptz, p_to timestamptz)
returns table (topic text, topic_name text, hour timestamptz, hour_local timestamp,
               day_local date, stories bigint, total_stories bigint, share numeric)
language sql stable security definer
set search_path = pg_catalog, public
set jit = off
as $$
with hours as (
    select g as hour
    from generate_series(
        -- at most ~3 years of hours, whatever the caller asks: the last ones
        case when p_from is not null
             then greatest(date_trunc('hour', p_from, (select timezone from bi.settings)),
                           (date_trunc('day', (p_to at time zone (select timezone from bi.settings)) - interval '1100 days')
                            + interval '1 day') at time zone (select timezone from bi.settings)) end,
        p_to - interval '1 microsecond',
        interval '1 hour') as g
)
select t.topic,
       t.name,
       h.hour,
       h.hour at time zone (select timezone from bi.settings),
       (h.hour at time zone (select timezone from bi.settings))::date,
       coalesce(c.stories, 0),
       coalesce(tot.total_stories, 0),
       round(coalesce(c.stories, 0)::numeric / nullif(tot.total_stories, 0), 4)
from hours h
cross join topics t
left join bi_story_hour_totals tot on tot.hour = h.hour
left join bi_topic_story_hours c on c.topic = t.topic and c.hour = h.hour
where t.active
order by t.topic, h.hour
$$;

-- The views no longer call the functions (a call is planned before, and without, the
-- dashboard's filter): the same series written out, so a filter on the topic reaches the
-- roll-up's key. Bounds as before: the oldest to the newest story (article, for
-- bi.source_daily), at most the last 1,100 days.
create or replace view bi.topic_hourly_filled as
with bounds as (
    select min(least(coalesce(published_at, first_seen_at), first_seen_at)) as lo,
           max(least(coalesce(published_at, first_seen_at), first_seen_at))
               + interval '1 microsecond' as hi  -- the end is exclusive
    from articles
),
hours as (
    select g as hour
    from bounds, generate_series(
        case when bounds.lo is not null
             then greatest(date_trunc('hour', bounds.lo, (select timezone from bi.settings)),
                           (date_trunc('day', (bounds.hi at time zone (select timezone from bi.settings)) - interval '1100 days')
                            + interval '1 day') at time zone (select timezone from bi.settings)) end,
        bounds.hi - interval '1 microsecond',
        interval '1 hour') as g
)
select t.topic,
       t.name                                                                   as topic_name,
       h.hour,
       h.hour at time zone (select timezone from bi.settings)                                               as hour_local,
       (h.hour at time zone (select timezone from bi.settings))::date                                       as day_local,
       coalesce(c.stories, 0)                                                   as stories,
       coalesce(tot.total_stories, 0)                                           as total_stories,
       round(coalesce(c.stories, 0)::numeric / nullif(tot.total_stories, 0), 4) as share
from hours h
cross join topics t
left join bi_story_hour_totals tot on tot.hour = h.hour
left join bi_topic_story_hours c on c.topic = t.topic and c.hour = h.hour
where t.active;

create or replace function bi.source_days(p_from timestamptz, p_to timestamptz)
returns table (source text, enabled boolean, day_local date, day_start timestamptz,
               articles bigint, stories bigint, copies bigint, fetches bigint,
               failed_fetches bigint, bytes bigint)
language sql stable security definer
set search_path = pg_catalog, public
set jit = off
as $$
with days as (
    select g::date as day_local,
           g at time zone (select timezone from bi.settings) as day_start
    from generate_series(
        -- at most ~3 years of days, whatever the caller asks: the last ones
        case when p_from is not null
             then greatest(date_trunc('day', p_from at time zone (select timezone from bi.settings)),
                           date_trunc('day', (p_to at time zone (select timezone from bi.settings)) - interval '1100 days')
                           + interval '1 day') end,
        (p_to at time zone (select timezone from bi.settings)) - interval '1 microsecond',
        interval '1 day') as g
)
select s.name, s.enabled, d.day_local, d.day_start,
       coalesce(c.articles, 0), coalesce(c.stories, 0), coalesce(c.copies, 0),
       coalesce(c.fetches, 0), coalesce(c.failed_fetches, 0), coalesce(c.bytes, 0)
from sources s
cross join days d
left join bi_source_day_counts c on c.source_id = s.source_id and c.day_local = d.day_local
order by s.name, d.day_local
$$;

create or replace view bi.source_daily as
with bounds as (  -- first_seen_at has no index of its own: the oldest and newest per source
    select min(oldest.first_seen_at) as lo,
           max(newest.first_seen_at) + interval '1 microsecond' as hi
    from sources s
    cross join lateral (select a.first_seen_at from articles a where a.source_id = s.source_id
                        order by a.first_seen_at limit 1) as oldest
    cross join lateral (select a.first_seen_at from articles a where a.source_id = s.source_id
                        order by a.first_seen_at desc limit 1) as newest
),
days as (
    select g::date as day_local,
           g at time zone (select timezone from bi.settings) as day_start
    from bounds, generate_series(
        case when bounds.lo is not null
             then greatest(date_trunc('day', bounds.lo at time zone (select timezone from bi.settings)),
                           date_trunc('day', (bounds.hi at time zone (select timezone from bi.settings)) - interval '1100 days')
                           + interval '1 day') end,
        (bounds.hi at time zone (select timezone from bi.settings)) - interval '1 microsecond',
        interval '1 day') as g
)
select s.name                        as source,
       s.enabled,
       d.day_local,
       d.day_start,
       coalesce(c.articles, 0)       as articles,
       coalesce(c.stories, 0)        as stories,
       coalesce(c.copies, 0)         as copies,
       coalesce(c.fetches, 0)        as fetches,
       coalesce(c.failed_fetches, 0) as failed_fetches,
       coalesce(c.bytes, 0)          as bytes
from sources s
cross join days d
left join bi_source_day_counts c on c.source_id = s.source_id and c.day_local = d.day_local;

comment on function refresh_bi_rollup() is
    'Fold the hours and days marked since the last refresh into the BI roll-up (rebuild it '
    'when bi.settings.timezone changed); returns the marks folded. The views are exact '
    'without it, only slower while marks pile up.';

-- Backfill: build the roll-up from the stored rows; statistics for the planner.
select refresh_bi_rollup();
analyze bi_rollup_hours, bi_rollup_topic_hours, bi_rollup_source_days, bi_rollup_story_marks,
    bi_rollup_source_marks, bi_rollup_state;
