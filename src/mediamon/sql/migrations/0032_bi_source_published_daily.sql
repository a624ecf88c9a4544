-- Stories per source and local day of publication: the README's first example query
-- (select source, published_day_local, count(*) from bi.articles where duplicate_of is
-- null group by 1, 2) converted 1.8 million story times to local days and hashed them at
-- every call over a year of two million articles: 2.7 s (make bench-bi), 10x a full
-- count of the table. bi.articles cannot be made to answer it faster (the group-by reads
-- every row of the window) and its columns are a contract, so the counts get a view of
-- their own, bi.source_published_daily, read from a roll-up kept exact as 0022's is
-- (docs/decisions.md, "Stories per source and publication day"). Its rows are the
-- example query's rows, and the copies too.
--
-- bi_rollup_source_days counts articles on the day they were first seen; this roll-up
-- counts them on the local day of bi.articles.published_at (the source's time, or first
-- seen when it gave none; not capped at first seen, as the story time of the series is).
-- Its marks are 0022's source marks: the days from first_at's to last_at's, counted live
-- until a refresh folds them. A source mark also makes bi_rollup_source_days count that
-- source's day live until then: cheap (a source's day through articles_source), and
-- exact either way.

create table bi_rollup_source_published_days (
    source_id  integer not null,
    day_local  date not null,     -- local day of coalesce(published_at, first_seen_at)
    articles   bigint not null,
    stories    bigint not null,   -- of them roots (duplicate_of is null)
    copies     bigint not null,
    primary key (source_id, day_local) include (articles, stories, copies)
);

-- A change to an article marks its source's publication days, before and after. One
-- mark per source and UTC day of publication (a mark spans the days from its first to
-- its last instant: an archive of ten years must not mark every day between). Statement
-- triggers beside 0022's, which mark the first-seen days and the story hours.
create function bi_rollup_mark_published_days() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        -- 0022's mark spans each source's first-seen instants: publication instants
        -- within it are marked already (a run's new stories mostly are), and a mark
        -- more for each costs every read of the marks until the refresh
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select n.source_id, min(coalesce(n.published_at, n.first_seen_at)),
               max(coalesce(n.published_at, n.first_seen_at))
        from new_rows n
        join (select source_id, min(first_seen_at) as lo, max(first_seen_at) as hi
              from new_rows group by source_id) as seen using (source_id)
        where coalesce(n.published_at, n.first_seen_at) not between seen.lo and seen.hi
        group by n.source_id, (coalesce(n.published_at, n.first_seen_at) at time zone 'UTC')::date;
    elsif tg_op = 'UPDATE' then
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select c.source_id, min(c.at), max(c.at)
        from (
            select o.source_id, coalesce(o.published_at, o.first_seen_at)
            from old_rows o join new_rows n using (article_id)
            where (o.published_at, o.first_seen_at, o.duplicate_of is null, o.source_id)
                  is distinct from (n.published_at, n.first_seen_at, n.duplicate_of is null,
                                    n.source_id)
            union all
            select n.source_id, coalesce(n.published_at, n.first_seen_at)
            from old_rows o join new_rows n using (article_id)
            where (o.published_at, o.first_seen_at, o.duplicate_of is null, o.source_id)
                  is distinct from (n.published_at, n.first_seen_at, n.duplicate_of is null,
                                    n.source_id)
        ) as c (source_id, at)
        group by c.source_id, (c.at at time zone 'UTC')::date;
    else  -- DELETE
        insert into bi_rollup_source_marks (source_id, first_at, last_at)
        select o.source_id, min(coalesce(o.published_at, o.first_seen_at)),
               max(coalesce(o.published_at, o.first_seen_at))
        from old_rows o
        group by o.source_id, (coalesce(o.published_at, o.first_seen_at) at time zone 'UTC')::date;
    end if;
    return null;
end
$$;

create trigger bi_rollup_published_inserted after insert on articles
    referencing new table as new_rows for each statement
    execute function bi_rollup_mark_published_days();
create trigger bi_rollup_published_updated after update on articles
    referencing old table as old_rows new table as new_rows for each statement
    execute function bi_rollup_mark_published_days();
create trigger bi_rollup_published_deleted after delete on articles
    referencing old table as old_rows for each statement
    execute function bi_rollup_mark_published_days();

-- Every source's counts of one local day, from the tables: the day's rows of
-- articles_shown_at alone (its key is the publication time; it carries source_id and
-- duplicate_of). Marked days are counted a day at a time, every source at once: a run
-- marks a day or two of most sources, and a look-up per source and day read the day's
-- index entries once for each source.
create function bi_rollup_published_day_live(p_day date)
returns table (source_id integer, articles bigint, stories bigint, copies bigint)
language sql stable security definer rows 1000
set search_path = pg_catalog, public
as $$
    select a.source_id, count(*), count(*) filter (where a.duplicate_of is null),
           count(a.duplicate_of)
    from articles a
    cross join bi.settings s
    where coalesce(a.published_at, a.first_seen_at) >= p_day::timestamp at time zone s.timezone
      and coalesce(a.published_at, a.first_seen_at)
          < (p_day + 1)::timestamp at time zone s.timezone
    group by a.source_id
$$;

-- Every source's days from the tables: when the roll-up is not in force, and to build it.
create function bi_rollup_live_source_published_days()
returns table (source_id integer, day_local date, articles bigint, stories bigint,
               copies bigint)
language sql stable security definer rows 1
set search_path = pg_catalog, public
set jit = off
as $$
    select a.source_id,
           (coalesce(a.published_at, a.first_seen_at) at time zone s.timezone)::date,
           count(*), count(*) filter (where a.duplicate_of is null), count(a.duplicate_of)
    from articles a
    cross join bi.settings s
    group by 1, 2
$$;

revoke execute on function bi_rollup_mark_published_days(), bi_rollup_published_day_live(date),
    bi_rollup_live_source_published_days() from public;
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi_rollup_published_day_live(date),
            bi_rollup_live_source_published_days() to mediamon_bi;
    end if;
end
$$;

-- Exact, as 0022's views: the roll-up for unmarked days, the tables for marked ones,
-- everything from the tables when the roll-up is not in force (one-time filters switch
-- the branches). Only days with an article have a row.
create view bi_source_published_day_counts as
select r.source_id, r.day_local, r.articles, r.stories, r.copies
from bi_rollup_source_published_days r
where (select bi_rollup_in_force())
  and not exists (select from bi_rollup_dirty_days() d
                  where d.source_id = r.source_id and d.day_local = r.day_local)
union all
select d.source_id, d.day_local, c.articles, c.stories, c.copies
from (select distinct day_local from bi_rollup_dirty_days()) as marked
cross join lateral bi_rollup_published_day_live(marked.day_local) as c
join bi_rollup_dirty_days() d on d.source_id = c.source_id and d.day_local = marked.day_local
where (select bi_rollup_in_force())
union all
select *
from bi_rollup_live_source_published_days()
where not (select bi_rollup_in_force());

create view bi.source_published_daily as
select s.name as source, c.day_local, c.articles, c.stories, c.copies
from bi_source_published_day_counts c
join sources s using (source_id);

comment on view bi.source_published_daily is
    'Per source and local day of publication (bi.articles.published_day_local) with any '
    'article: articles, stories (duplicate_of is null) and syndicated copies. The rows of '
    'select source, published_day_local, count(*) from bi.articles where duplicate_of is '
    'null group by 1, 2 (where stories > 0), from a roll-up: a year in milliseconds. Days '
    'without an article have no row.';
do $$
declare
    c record;
begin
    for c in select * from (values
        ('source', 'The source''s name (sources.yaml).'),
        ('day_local', 'Local day (bi.settings.timezone) of published_at as bi.articles has it: the source''s time, or first seen when it gave none.'),
        ('articles', 'Articles published that day, syndicated copies included.'),
        ('stories', 'Of them stories: articles that are no copy (duplicate_of is null), what count(*) ... where duplicate_of is null counts in bi.articles.'),
        ('copies', 'Of them syndicated copies of an earlier article (duplicate_of set).')
    ) as v (col, text)
    loop
        execute 'comment on column bi.source_published_daily.' || quote_ident(c.col)
            || ' is ' || quote_literal(c.text);
    end loop;
end
$$;

do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant select on bi.source_published_daily to mediamon_bi;
    end if;
end
$$;

-- The refresh folds these days too: 0022's function with the new table beside
-- bi_rollup_source_days (rebuilt with it; the marked days recounted with it), and the
-- taken hours and days counted for themselves (below).
create or replace function refresh_bi_rollup() returns bigint
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
        delete from bi_rollup_source_published_days;
        insert into bi_rollup_hours select hour, total_stories from bi_story_hour_totals;
        insert into bi_rollup_topic_hours select topic, hour, stories from bi_topic_story_hours;
        insert into bi_rollup_source_days select * from bi_source_day_counts;
        insert into bi_rollup_source_published_days
        select * from bi_source_published_day_counts;
        insert into bi_rollup_state (timezone) select timezone from bi.settings;
    else
        -- The taken hours and days are still marked, so these views count them live.
        delete from bi_rollup_hours where hour in (select hour from bi_rollup_hours_taken);
        insert into bi_rollup_hours
        select hour, total_stories from bi_story_hour_totals
        where hour in (select hour from bi_rollup_hours_taken);
        -- The taken topic hours and source days are counted from the tables as the
        -- views' branches for marked ones count them, but for the taken ones only: read
        -- through the views, the roll-up's own rows were read whole (438,000 topic hours
        -- and 366,000 source days on a year of two million articles) only to be left
        -- out, 1.4 s of each refresh's 1.5.
        delete from bi_rollup_topic_hours where hour in (select hour from bi_rollup_hours_taken);
        insert into bi_rollup_topic_hours
        select m.topic, roots.hour, count(distinct roots.story_id)
        from (
            select d.hour, r.story_id
            from bi_rollup_hours_taken d
            cross join lateral bi_rollup_roots_of_hour(d.hour) as r
        ) as roots
        cross join lateral (
            select roots.story_id as article_id
            union all
            select c.article_id from articles c where c.duplicate_of = roots.story_id
        ) as members
        join mentions m on m.article_id = members.article_id
        group by m.topic, roots.hour;
        delete from bi_rollup_source_days r using bi_rollup_days_taken t
        where r.source_id = t.source_id and r.day_local = t.day_local;
        insert into bi_rollup_source_days
        select t.source_id, t.day_local,
               coalesce(a.articles, 0), coalesce(a.stories, 0), coalesce(a.copies, 0),
               coalesce(f.fetches, 0), coalesce(f.failed, 0), coalesce(f.bytes, 0)
        from bi_rollup_days_taken t
        cross join bi.settings st
        cross join lateral (
            select t.day_local::timestamp at time zone st.timezone as day_start,
                   (t.day_local + 1)::timestamp at time zone st.timezone as day_end
        ) as span
        left join lateral (
            select count(*) as articles,
                   count(*) filter (where x.duplicate_of is null) as stories,
                   count(x.duplicate_of) as copies
            from articles x
            where x.source_id = t.source_id
              and x.first_seen_at >= span.day_start and x.first_seen_at < span.day_end
        ) as a on true
        left join lateral (
            select count(*) as fetches,
                   count(*) filter (where fl.error is not null) as failed,
                   sum(fl.bytes) as bytes
            from fetch_log fl
            where fl.source_id = t.source_id
              and fl.fetched_at >= span.day_start and fl.fetched_at < span.day_end
        ) as f on true
        where a.articles > 0 or f.fetches > 0;
        delete from bi_rollup_source_published_days r using bi_rollup_days_taken t
        where r.source_id = t.source_id and r.day_local = t.day_local;
        -- the taken days from the tables, a day at a time (the view's roll-up branch
        -- would be read whole, only for its rows of these days to be left out)
        insert into bi_rollup_source_published_days
        select t.source_id, t.day_local, c.articles, c.stories, c.copies
        from (select distinct day_local from bi_rollup_days_taken) as d
        cross join lateral bi_rollup_published_day_live(d.day_local) as c
        join bi_rollup_days_taken t on t.source_id = c.source_id and t.day_local = d.day_local;
        update bi_rollup_state set refreshed_at = now();
    end if;

    delete from bi_rollup_story_marks where mark_id in (select mark_id from bi_rollup_taken_story);
    delete from bi_rollup_source_marks
    where mark_id in (select mark_id from bi_rollup_taken_source);
    return taken;
end
$$;

-- The refresh deletes the taken hours' rows of every topic: found by hour, not by
-- reading the whole table (87 ms of a run's refresh on a year of 50 topics, 400,000
-- rows; 0.4 ms by this index).
create index bi_rollup_topic_hours_hour on bi_rollup_topic_hours (hour);

-- Backfill: every source's publication days from the stored rows (marked days are
-- counted live by the view whatever this holds, until the next refresh folds them).
insert into bi_rollup_source_published_days
select * from bi_rollup_live_source_published_days();
analyze bi_rollup_source_published_days;
