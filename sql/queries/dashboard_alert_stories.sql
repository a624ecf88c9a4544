-- The top stories of each listed alert: the stories about its topic in its window, one
-- row per story (its original, not a copy), most title hits first.
select al.alert_id, top.rank, top.title, top.url, top.source, top.published_at_local, top.copies
from bi.alerts al
cross join lateral (
    select s.title, s.url, s.source, s.published_at_local, s.copies,
           row_number() over (order by s.title_hits desc, s.body_hits desc, s.published_at,
                                       s.story_id) as rank
    from (
        select distinct on (m.story_id)
               m.story_id, m.title, m.url, m.source, m.published_at, m.published_at_local,
               m.title_hits, m.body_hits,
               count(*) over (partition by m.story_id) - 1 as copies
        from bi.topic_mentions m
        where m.topic = al.topic
          and m.published_at >= al.window_start and m.published_at < al.window_end
        order by m.story_id, m.is_copy, m.published_at
    ) s
    order by s.title_hits desc, s.body_hits desc, s.published_at, s.story_id
    limit :per_alert
) top
where al.alert_id = any(:alert_ids)
order by al.alert_id, top.rank
