-- An incident mail the SMTP server refused for good (a 5xx to DATA: 554 spam, 552 too
-- large; or to every recipient) was offered again at every watchdog run, every 15
-- minutes: ~96 refusals a day, which is what gets a sender listed as a spammer. Its answer
-- is now recorded here, and nothing more is mailed for the incident (mediamon.ops.health).
alter table incidents add column mail_refused text;

create or replace view bi.incidents as
select i.incident_id,
       i.kind,
       i.subject,
       i.summary,
       i.detail,
       i.advice,
       i.since,
       i.opened_at,
       i.last_seen_at,
       i.resolved_at,
       i.resolved_at is null                        as is_open,
       coalesce(i.resolved_at, i.last_seen_at) - i.since as duration,
       i.notified_at,
       i.recovery_notified_at,
       i.flapping,
       i.mail_refused
from incidents i;

comment on column bi.incidents.mail_refused is
    'The mail server''s one-line answer when it refused this incident''s mail (or its'
    ' recovery mail) for good; nothing more is mailed for it. Null: none refused.';
