-- Flapping incidents. A source answering one poll in four opened and cleared its
-- source_failing incident 17 times a day, and, as the only source, ingest_failed with it:
-- 66 ops mails a day. An incident found again soon after it cleared is flapping: it is
-- mailed once more, saying so, and then its recovery waits until it stays clear for
-- MEDIAMON_HEALTH_FLAP_MINUTES; found again meanwhile, the same row is opened again, and
-- nothing is mailed (mediamon.ops.health).
alter table incidents add column flapping boolean not null default false;

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
       i.flapping
from incidents i;

comment on column bi.incidents.flapping is
    'Found again soon after an earlier episode cleared: its recovery is mailed only once it'
    ' stays clear for MEDIAMON_HEALTH_FLAP_MINUTES, and it is reopened, unmailed, if found'
    ' again meanwhile.';
