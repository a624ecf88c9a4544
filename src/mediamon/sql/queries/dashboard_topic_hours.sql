-- The page's topic trends: the gap-free hourly series of the active topics in the window
-- with the most stories, at most :topics_shown of them (ties by name), and how many
-- active topics there are. All of 2,000 topics made the page 26 MB and 13 s to build.
with hours as materialized (
    select topic, topic_name, hour, hour_local, day_local, stories, total_stories, share
    from bi.topic_hours(:window_start, :window_end)
), ranked as (
    select topic,
           row_number() over (order by sum(stories) desc, min(topic_name), topic) as rank,
           count(*) over () as topics
    from hours
    group by topic
)
select h.topic, h.topic_name, h.hour, h.hour_local, h.day_local, h.stories, h.total_stories,
       h.share, r.topics
from hours h join ranked r on r.topic = h.topic
where r.rank <= :topics_shown
order by h.topic_name, h.hour
