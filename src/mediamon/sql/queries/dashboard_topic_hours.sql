-- The page's topic trends: the gap-free hourly series of every active topic in the window.
select topic, topic_name, hour, hour_local, day_local, stories, total_stories, share
from bi.topic_hours(:window_start, :window_end)
order by topic_name, hour
