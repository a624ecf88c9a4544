-- One definition of "the top stories of a window", the one every mail states: the topic in
-- the headline first, then the most outlets, then the most mentions, then the newest.
-- The page and the Superset dataset alert_top_stories ranked by title hits, then body
-- hits, then the oldest first, and counted an article by its own time rather than its
-- story's: the page's "top stories" of an alert were not the mail's. Both read this
-- function now (mediamon.alerts.stories.rank_stories sorts the mails' lists by the same
-- rule; tests/integration/bi/test_window_stories.py holds the two together).
--
-- A story is a root article (duplicate_of is null) whose story time is in the window and
-- that mentions the topic itself or through a syndicated copy, as the mails and the counts
-- of bi.topic_hourly have it. security definer, as bi.topic_hours: mediamon_bi reads the
-- stories of a window without reading the tables.

create function bi.topic_window_stories(p_topic text, p_from timestamptz, p_to timestamptz)
returns table (story_rank bigint, story_id bigint, title text, url text, source text,
               published_at timestamptz, published_at_local timestamp, title_hits integer,
               mentions bigint, outlets integer, other_outlets text[], copies bigint)
language plpgsql stable security definer
set search_path = pg_catalog, public
set jit = off
as $fn$
begin
-- The stories are read from the window's roots (the story-time index), each with its
-- copies (the duplicate_of index) and their mentions of the topic: a few hundred rows for
-- an alert's hour. Read from the topic's mentions instead, as their roots are only known
-- after the join, the page's top stories of 20 alerts took 6.3 s on a year of data
-- (make bench-page). EXECUTE plans the query for this call's window (a security definer
-- function is never inlined, and a SQL function's plan is for any window).
return query execute $q$
with roots as (
    select r.article_id, r.title, r.canonical_url, r.source_id,
           least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) as published_at
    from articles r
    where r.duplicate_of is null
      -- the expression of the index articles_story_time (0003): keep them identical
      and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) >= $2
      and least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at) < $3
),
stories as (
    select r.article_id                                                      as story_id,
           r.title,
           r.canonical_url                                                   as url,
           s.name                                                            as source,
           r.published_at,
           max(m.title_hits)                                                 as title_hits,
           sum(m.title_hits + m.body_hits)                                   as mentions,
           count(*) filter (where a.is_copy)                                 as copies
    from roots r
    cross join lateral (
        select r.article_id as article_id, false as is_copy
        union all
        select c.article_id, true from articles c where c.duplicate_of = r.article_id
    ) a
    join mentions m on m.article_id = a.article_id and m.topic = $1
    join sources s on s.source_id = r.source_id
    group by r.article_id, r.title, r.canonical_url, r.published_at, s.name
),
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
$q$ using p_topic, p_from, p_to;
end
$fn$;

comment on function bi.topic_window_stories(text, timestamptz, timestamptz) is
    'Every story about the topic p_topic (key) with its story time in [p_from, p_to), one row '
    'per story (a root article; syndicated copies folded in), ranked as the mails rank them: '
    'story_rank 1 is the most relevant (the topic in the headline, then the most outlets, '
    'then the most mentions, then the newest). Columns: story_rank, story_id, title, url '
    '(canonical), source, published_at (the story time, UTC instant), published_at_local '
    '(bi.settings.timezone), title_hits (most in the title of any copy), mentions (hits in '
    'titles and texts of the story and its copies), outlets (1 + other_outlets), '
    'other_outlets (the other sources that carried a copy), copies (syndicated copies that '
    'mention the topic).';

do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi.topic_window_stories(text, timestamptz, timestamptz)
            to mediamon_bi;
    end if;
end
$$;
revoke execute on function bi.topic_window_stories(text, timestamptz, timestamptz) from public;
