-- The top stories of one alert: the stories about its topic in its window, one row per
-- story (its original, not a copy), most title hits first. One query per alert, with the
-- window as values: the planner then sees a window of minutes and reads it through the
-- story-time index (a lateral join over all alerts guessed thousands of rows and scanned
-- every mention once per alert: 360 ms for 20 alerts on a year of data).
select s.title, s.url, s.source, s.published_at_local, s.copies
from (
    select distinct on (m.story_id)
           m.story_id, m.title, m.url, m.source, m.published_at, m.published_at_local,
           m.title_hits, m.body_hits,
           count(*) over (partition by m.story_id) - 1 as copies
    from bi.topic_mentions m
    where m.topic = :topic
      and m.published_at >= :window_start and m.published_at < :window_end
    order by m.story_id, m.is_copy, m.published_at
) s
order by s.title_hits desc, s.body_hits desc, s.published_at, s.story_id
limit :per_alert
