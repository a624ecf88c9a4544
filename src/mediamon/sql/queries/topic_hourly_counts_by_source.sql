-- Distinct stories of one topic per UTC hour and source of the story's root.
select date_trunc('hour', {story_time(r)}, 'UTC') as hour, s.name,
       count(distinct r.article_id)
  from mentions m
  join articles a on a.article_id = m.article_id
  join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
  join sources s on s.source_id = r.source_id
 where m.topic = :topic and {story_time(r)} >= :start and {story_time(r)} < :end
 group by 1, 2
