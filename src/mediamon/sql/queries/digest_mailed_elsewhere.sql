-- The stories already mailed to :recipient by its sent digests of another cadence whose
-- period ended after :start: a digest after a cadence change (daily -> weekly) leaves
-- them out, so the switch repeats nothing (mediamon.alerts.digest.due_digests).
-- A digest recorded before migration 0012 has no story_ids: its stories are those of the
-- topics it listed, dated in its period and first seen before it picked them (its late
-- listings are not known; at worst such a story shows again, once).
select distinct s.story_id
  from digest_deliveries d, unnest(d.story_ids) as s(story_id)
 where d.recipient = :recipient and d.cadence <> :cadence and d.status = 'sent'
   and d.period_end > :start and d.story_ids is not null
union
select distinct r.article_id
  from digest_deliveries d
  join mentions m on m.topic = any(d.topics)
  join articles a on a.article_id = m.article_id
  join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
 where d.recipient = :recipient and d.cadence <> :cadence and d.status = 'sent'
   and d.period_end > :start and d.story_ids is null
   and {story_time(r)} >= d.period_start and {story_time(r)} < d.period_end
   and r.first_seen_at <= d.selected_at
