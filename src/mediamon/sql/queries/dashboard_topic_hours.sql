-- The page's topic trends: the gap-free hourly series of the active topics in the window
-- with the most stories, at most :topics_shown of them (ties by name), and how many
-- active topics there are. All of 2,000 topics made the page 26 MB and 13 s to build.
-- The topics are ranked on their sums from the roll-up (bi_series_topic_stories), and
-- only those charted get a series, as bi.topic_hours makes it: ranking every topic's
-- series cost 11 ms a topic, 3,000 topics past the page's 30-second timeout.
with ranked as (
    select topic, name,
           row_number() over (order by stories desc, name, topic) as rank,
           count(*) over () as topics
    from public.bi_series_topic_stories(:window_start, :window_end)
)
select r.topic, r.name as topic_name, h.hour,
       h.hour at time zone st.timezone as hour_local,
       (h.hour at time zone st.timezone)::date as day_local,
       h.stories, h.total_stories,
       round(h.stories::numeric / nullif(h.total_stories, 0), 4) as share,
       r.topics
from ranked r
cross join lateral public.bi_topic_hour_series(r.topic, :window_start, :window_end) as h
cross join bi.settings st
where r.rank <= :topics_shown
order by r.name, h.hour
