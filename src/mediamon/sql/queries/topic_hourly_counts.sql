-- Distinct stories per topic and UTC hour: a syndicated copy that mentions the topic
-- counts for its root (duplicate_of), in the root's hour, so copies count once.
select m.topic, date_trunc('hour', {story_time(r)}, 'UTC') as hour,
       count(distinct r.article_id) as stories
  from mentions m
  join articles a on a.article_id = m.article_id
  join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
 where m.topic = any(:topics) and {story_time(r)} >= :start and {story_time(r)} < :end
 group by 1, 2
