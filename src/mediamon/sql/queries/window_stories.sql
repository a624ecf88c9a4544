-- One page of a topic's window on the page (mediamon.bi.window): its stories ranked as the
-- mails rank them, by bi.topic_window_stories (the one definition of that rule).
select story_rank, story_id, title, url, source, published_at_local, title_hits, mentions,
       outlets, other_outlets, copies
from bi.topic_window_stories(:topic, :start, :end)
where story_rank > :offset and story_rank <= :offset + :limit
order by story_rank
