-- BI views for topics, alerts and source health, and a read-only role for BI users.
-- Same contract as 0002: columns are only ever added. Times are UTC.

create view bi.topic_mentions as
select m.article_id,
       m.topic,
       t.name                                                         as topic_name,
       m.title_hits,
       m.body_hits,
       coalesce(a.duplicate_of, a.article_id)                         as story_id,
       a.duplicate_of is not null                                     as is_copy,
       s.name                                                         as source,
       a.language,
       a.title,
       a.canonical_url                                                as url,
       least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at) as published_at,
       m.match_version,
       m.matched_at
from mentions m
join topics t using (topic)
join articles a using (article_id)
join sources s on s.source_id = a.source_id;

comment on view bi.topic_mentions is
    'One row per article that mentions a topic: hits in title and body. story_id is the '
    'first copy of the text (syndicated copies share it); count distinct story_id to count '
    'stories. published_at is the publication time, capped at when mediamon first saw it.';

-- Stories are root articles (duplicate_of is null); a copy that mentions a topic counts
-- for its root, in the root's hour, so a syndicated story is counted once.
create view bi.topic_hourly as
with story_hours as (
    select a.article_id as story_id,
           date_trunc('hour', least(coalesce(a.published_at, a.first_seen_at), a.first_seen_at),
                      'UTC') as hour
    from articles a
    where a.duplicate_of is null
),
totals as (
    select hour, count(*) as total_stories
    from story_hours
    group by hour
),
topic_counts as (
    select m.topic, h.hour, count(distinct h.story_id) as stories
    from mentions m
    join articles a using (article_id)
    join story_hours h on h.story_id = coalesce(a.duplicate_of, a.article_id)
    group by m.topic, h.hour
)
select t.topic,
       t.name                   as topic_name,
       tot.hour,
       coalesce(c.stories, 0)   as stories,
       tot.total_stories
from totals tot
cross join topics t
left join topic_counts c on c.topic = t.topic and c.hour = tot.hour
where t.active;

comment on view bi.topic_hourly is
    'Per active topic and UTC hour with any stories: distinct stories about the topic '
    '(syndicated copies once) and all distinct stories that hour (every source and '
    'language), so dashboards can plot the share stories / total_stories.';

create view bi.topic_source_hourly as
select m.topic,
       s.name                                                        as source,
       date_trunc('hour', least(coalesce(r.published_at, r.first_seen_at), r.first_seen_at),
                  'UTC')                                             as hour,
       count(distinct r.article_id)                                  as stories
from mentions m
join articles a using (article_id)
join articles r on r.article_id = coalesce(a.duplicate_of, a.article_id)
join sources s on s.source_id = r.source_id
group by 1, 2, 3;

comment on view bi.topic_source_hourly is
    'Distinct stories per topic, source and UTC hour (a story belongs to the source of its '
    'first copy). Hours without stories have no row.';

create view bi.alerts as
select al.alert_id,
       al.topic,
       t.name                       as topic_name,
       al.window_start,
       al.window_end,
       al.observed,
       al.expected,
       al.lift,
       al.score,
       al.p_value,
       al.total_stories,
       al.state,
       al.peak_observed,
       al.last_window_end,
       al.cleared_at,
       al.created_at,
       al.notified_at,
       al.resolved_at,
       al.topic_version,
       al.details,
       coalesce(d.sent, 0)          as mails_sent,
       d.last_sent_at
from alerts al
join topics t using (topic)
left join (
    select alert_id, count(*) filter (where status = 'sent') as sent, max(sent_at) as last_sent_at
    from alert_deliveries
    group by alert_id
) d using (alert_id);

comment on view bi.alerts is
    'One row per alert episode: the window that fired, observed and expected stories, lift, '
    'score = -log10(p_value), state (open = mail pending, notified, resolved = over), and '
    'details: the share, dispersion, baseline and thresholds that explain why it fired.';

create view bi.source_health as
select s.name                                          as source,
       s.kind,
       f.last_fetch,
       f.last_success,
       coalesce(f.fetches_24h, 0)                      as fetches_24h,
       coalesce(f.errors_24h, 0)                       as errors_24h,
       case when f.fetches_24h > 0
            then f.errors_24h::double precision / f.fetches_24h end as error_rate_24h,
       coalesce(ar.articles_24h, 0)                    as articles_24h
from sources s
left join lateral (
    select max(fl.fetched_at)                                            as last_fetch,
           max(fl.fetched_at) filter (where fl.error is null)            as last_success,
           count(*) filter (where fl.fetched_at > now() - interval '24 hours') as fetches_24h,
           count(*) filter (where fl.fetched_at > now() - interval '24 hours'
                                  and fl.error is not null)              as errors_24h
    from fetch_log fl
    where fl.source_id = s.source_id
) f on true
left join lateral (
    select count(*) as articles_24h
    from articles a
    where a.source_id = s.source_id and a.first_seen_at > now() - interval '24 hours'
) ar on true;

comment on view bi.source_health is
    'Per source: the last fetch, the last fetch without error, fetches and failed fetches in '
    'the last 24 hours and their ratio (null without fetches), and articles first seen in '
    'the last 24 hours.';

-- Read-only role for BI users: grant it to their logins (grant mediamon_bi to alice).
-- Roles belong to the whole server, so it is created only if missing; without the right
-- to create roles the migration still applies and an administrator runs these statements
-- later (docs/topics.md, "BI").
do $$
begin
    if not exists (select from pg_roles where rolname = 'mediamon_bi') then
        begin
            create role mediamon_bi nologin;
        exception when insufficient_privilege then
            raise warning 'cannot create role mediamon_bi: see docs/topics.md, BI';
        end;
    end if;
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant usage on schema bi to mediamon_bi;
        grant select on all tables in schema bi to mediamon_bi;
        alter default privileges in schema bi grant select on tables to mediamon_bi;
    end if;
end
$$;
