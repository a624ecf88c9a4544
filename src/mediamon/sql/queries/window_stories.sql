-- One page of a topic's window on the page (mediamon.bi.window): its stories ranked as the
-- mails rank them, by bi.topic_window_stories (the one definition of that rule), with how
-- many the window has: one call of the function, not one for the page and one to count
-- (a 31-day window took 1.1 s with two; make bench-page).
select story_rank, story_id, title, url, source, published_at_local, title_hits, mentions,
       outlets, other_outlets, copies, total
from (select *, count(*) over () as total
      from bi.topic_window_stories(:topic, :start, :end)) as window_stories
where story_rank > :offset and story_rank <= :offset + :limit
order by story_rank
