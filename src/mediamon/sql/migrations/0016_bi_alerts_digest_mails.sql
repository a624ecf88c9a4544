-- bi.alerts.mails_sent said "Mails sent for it (immediate and digest)" but has always
-- counted the immediate mails only (alert_deliveries; its mode 'digest' is never
-- written: a digest shows an alert among its spikes, recorded in digest_deliveries). Its
-- meaning stays what dashboards have read; its comment now says it, and a new column,
-- digest_mails_sent, counts the digests that showed the alert.
--
-- The digests record the alerts they showed from now on (alert_ids). A digest recorded
-- before has none: it counts for the alerts of its topics (those it listed stories of)
-- whose window ended in its period, the rule that picked its spikes (a spike left out
-- because a digest of the other cadence had shown it may be counted twice there).

alter table digest_deliveries add column alert_ids bigint[];
comment on column digest_deliveries.alert_ids is
    'The alerts the digest showed among its spikes; null on rows written before 0016.';

-- create or replace: every column keeps its name, type and place; one is added at the end.
create or replace view bi.alerts as
select al.alert_id,
       al.topic,
       t.name                       as topic_name,
       al.window_start,
       al.window_end,
       al.observed,
       round(al.expected::numeric, 2) as expected,
       round(al.lift::numeric, 2)     as lift,
       round(al.score::numeric, 2)    as score,
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
       d.last_sent_at,
       al.window_start at time zone st.timezone  as window_start_local,
       al.window_end at time zone st.timezone    as window_end_local,
       g.sent                       as digest_mails_sent
from alerts al
join topics t using (topic)
cross join bi.settings st
left join (
    select alert_id, count(*) filter (where status = 'sent') as sent, max(sent_at) as last_sent_at
    from alert_deliveries
    group by alert_id
) d using (alert_id)
cross join lateral (
    select count(*) as sent
    from digest_deliveries dd
    where dd.status = 'sent'
      and (al.alert_id = any(dd.alert_ids)
           or (dd.alert_ids is null
               and al.topic = any(dd.topics)
               and al.window_end > dd.period_start and al.window_end <= dd.period_end))
) g;

comment on column bi.alerts.mails_sent is
    'Immediate alert mails sent for it, one per recipient (the digests that showed it: '
    'digest_mails_sent).';
comment on column bi.alerts.last_sent_at is
    'When the last of its immediate mails was sent.';
comment on column bi.alerts.digest_mails_sent is
    'Daily and weekly digests that showed it among their spikes, one per recipient and '
    'period (digests recorded before migration 0016: those of its topic whose period holds '
    'its window''s end).';
