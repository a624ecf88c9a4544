-- bi_window_stories ranks a story's mentions up to 5, as the mails do
-- (mediamon.alerts.stories.MAX_RANKED_MENTIONS): past a few, repeating the topic's
-- words says no more about what an article is about. Uncapped, a keyword-stuffed page
-- (the words 1,000 times) was story_rank 1, above stories as widely carried and newer.
-- The mentions column itself is unchanged (the hits, copies included); only the order.
-- Otherwise as 0028: same columns, same rows.
-- (No percent sign: the migration runner's driver would read it as a placeholder.)
create or replace function bi_window_stories(p_topic text, p_from timestamptz, p_to timestamptz,
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
with stories as materialized (:stories),
-- each story's other outlets, in one join over the copies' index (each copy's id and
-- source are in it), not a subquery per story
outlets as (
    select c.duplicate_of as story_id,
           array_agg(distinct cs.name order by cs.name) as names
    from stories st
    join articles c on c.duplicate_of = st.story_id
    join sources cs on cs.source_id = c.source_id
    where cs.name <> st.source
    group by c.duplicate_of
),
ranked as (
    select st.*, coalesce(o.names, '{}') as other_outlets
    from stories st
    left join outlets o using (story_id)
)
select row_number() over ranking,
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
from ranked o
cross join bi.settings st
window ranking as (order by o.title_hits > 0 desc, cardinality(o.other_outlets) desc,
                            least(o.mentions, 5) desc, o.published_at desc, o.story_id)
-- the ranking's own order (story_id last: no ties), so the rows leave as numbered
order by o.title_hits > 0 desc, cardinality(o.other_outlets) desc, least(o.mentions, 5) desc,
         o.published_at desc, o.story_id
$q$, ':stories', case when p_from_mentions then from_mentions else from_roots end)
using p_topic, p_from, p_to;
end
$fn$;

