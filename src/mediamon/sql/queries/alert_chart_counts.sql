-- topic_hourly_counts for many alerts at once, each over its own span (its chart and
-- baseline weeks, [span_start, span_end)): a digest's spikes read their charts in one
-- statement instead of one each. Rows per alert and UTC hour with a story.
select w.alert_id, date_trunc('hour', {story_time(r)}, 'UTC') as hour,
       count(distinct r.article_id) as stories
  from unnest(cast(:alert_ids as bigint[]), cast(:topics as text[]),
              cast(:starts as timestamptz[]), cast(:ends as timestamptz[]))
       as w (alert_id, topic, span_start, span_end)
  join mentions m on m.topic = w.topic
  join articles a on a.article_id = m.article_id
  join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
 where {story_time(r)} >= w.span_start and {story_time(r)} < w.span_end
 group by 1, 2
