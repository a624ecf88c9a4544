-- All distinct stories (roots) per UTC hour, source and language: the volume a topic's
-- share is measured against.
select date_trunc('hour', {story_time(a)}, 'UTC') as hour, s.name, a.language, count(*)
  from articles a join sources s on s.source_id = a.source_id
 where a.duplicate_of is null and {story_time(a)} >= :start and {story_time(a)} < :end
 group by 1, 2, 3
