-- How many stories a topic's window has (mediamon.bi.window: its pages).
select count(*) from bi.topic_window_stories(:topic, :start, :end)
