-- Every story mentioning one of :topics (a digest's topics in one query: a query per
-- topic cost 7-11 s a recipient at 3,000 topics), with its topic and its story time in
-- [:start, :end): the root article (a syndicated copy counts for its root, as in
-- topic_hourly_counts), its canonical URL (utm_* and #fragment dropped, the URL
-- bi.articles shows; the feed's own URL is in articles.url), its outlet (and a feed's URL,
-- whose site the mail names when the story has no link), the other outlets
-- that carried a copy, the most title hits and all hits of root and copies (story_bodies
-- gives the bodies of the few shown with a snippet). Also, when :late_since is given, the
-- stories whose story time is in [:late_from, :start) that the previous digest did not
-- list (:listed, its story ids), or, for a digest recorded without them (:listed null),
-- those first seen after :late_since: they were loaded (committed, matched) after the
-- previous digest picked its stories.
select m.topic, r.article_id, r.title, r.canonical_url as url, s.name as outlet, {story_time(r)} as story_time,
       case when s.kind = 'feed' then s.location end as outlet_location,
       max(m.title_hits) as title_hits,
       sum(m.title_hits + m.body_hits) as mentions,
       array(select distinct cs.name
               from articles c
               join sources cs on cs.source_id = c.source_id
              where c.duplicate_of = r.article_id and cs.name <> s.name
              order by cs.name) as other_outlets
  from mentions m
  join articles a on a.article_id = m.article_id
  join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
  join sources s on s.source_id = r.source_id
 where m.topic = any(cast(:topics as text[]))
   and (({story_time(r)} >= :start and {story_time(r)} < :end)
        or (cast(:late_since as timestamptz) is not null
            and {story_time(r)} >= cast(:late_from as timestamptz)
            and {story_time(r)} < :start
            -- not in (select unnest ...): a hashed subplan; `<> all(array)` compared each
            -- row with every listed id (100,000 of each: 43 s instead of 0.5 s)
            and ((cast(:listed as bigint[]) is null
                  and r.first_seen_at > cast(:late_since as timestamptz))
                 or (cast(:listed as bigint[]) is not null
                     and r.article_id not in (select unnest(cast(:listed as bigint[])))))))
 group by m.topic, r.article_id, s.name, s.kind, s.location
