-- The mediamon page charts the 50 active topics with the most stories in its window. It
-- found them by counting every active topic's gap-free hourly series (bi.topic_hours) and
-- ranking the sums: a series costs some 11 ms, so 1,000 topics took the page 12 s (7
-- days) to 19 s (90 days), and 3,000 topics passed its 30-second statement timeout: no
-- page at all. Each topic's stories in the window are now summed from the roll-up's
-- sparse hours, the same hours and counts the series has (bi_topic_hour_series' bounds),
-- and only the topics charted get a series.
create function bi_series_topic_stories(p_from timestamptz, p_to timestamptz)
returns table (topic text, name text, stories bigint)
language sql stable security definer rows 50
set search_path = pg_catalog, public
as $$
with bounds as (
    select case when p_from is not null
                then greatest(date_trunc('hour', p_from, s.timezone),
                              (date_trunc('day', (p_to at time zone s.timezone) - interval '1100 days')
                               + interval '1 day') at time zone s.timezone) end as lo
    from bi.settings s
)
select t.topic, t.name, coalesce(sum(c.stories), 0)::bigint
from topics t
left join bi_topic_story_hours c
       on c.topic = t.topic
      and c.hour >= (select lo from bounds) and c.hour < p_to
      -- the series' hours only (they start at lo: a zone's half hour, if it has one)
      and mod(extract(epoch from c.hour - (select lo from bounds))::numeric, 3600) = 0
where t.active
group by t.topic, t.name
$$;

revoke execute on function bi_series_topic_stories(timestamptz, timestamptz) from public;
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant execute on function bi_series_topic_stories(timestamptz, timestamptz)
            to mediamon_bi;
    end if;
end
$$;
