-- The top stories of one alert, as its mail ranks them: bi.topic_window_stories holds the
-- rule (the page and the Superset dataset alert_top_stories read it; it was re-typed here
-- before, and differed). One query per alert, with the window as values: the function then
-- plans a window of minutes through the story-time index (a lateral join over all alerts
-- scanned every mention once per alert: 360 ms for 20 alerts on a year of data).
select story_rank, story_id, title, url, source, published_at_local, copies, other_outlets
from bi.topic_window_stories(:topic, :window_start, :window_end)
where story_rank <= :per_alert
order by story_rank
