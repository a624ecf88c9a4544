-- Operations state (mediamon.ops: runs, quality, health). The watchdog must
-- know how ingest runs went without asking Airflow (it also runs from the command line, and
-- a SIGKILLed task runs no callback), so every ingest run records itself here; the
-- incidents it finds are rows too, so each is mailed once and once more when it clears.

-- One row per ingest run, upserted on run_key: a retried or re-run interval overwrites its
-- row. Written by the ingest DAG's summarize step (status 'loaded' or 'failed'), then by
-- its data-quality step ('success' or 'failed'); by `mediamon ingest` likewise.
create table ingest_runs (
    run_key           text primary key,          -- e.g. mediamon_ingest:2024-04-20T12:00:00+00:00
    run_at            timestamptz not null,      -- the run's time (its interval's end)
    finished_at       timestamptz not null,      -- wall clock when last written
    status            text not null check (status in ('loaded', 'success', 'failed')),
    sources_due       integer not null default 0,
    sources_failed    integer not null default 0,
    failed_sources    text[] not null default '{}',
    articles_new      integer not null default 0,
    articles_updated  integer not null default 0,
    sources           jsonb not null default '[]', -- per source: poll, items, new, updated, unchanged, failed
    checks            jsonb,                     -- null until checked: [{name, passed, detail}]
    error             text                       -- why the run failed, one line per cause
);
create index ingest_runs_run_at on ingest_runs (run_at desc);

-- One row per problem episode. At most one open row per dedupe key (the partial unique
-- index): finding the same problem again updates that row instead of mailing again.
create table incidents (
    incident_id           bigint generated always as identity primary key,
    dedupe_key            text not null,         -- kind:subject, e.g. source_silent:rfi-cn
    kind                  text not null,
    subject               text not null,         -- the source, check or run it concerns
    summary               text not null,         -- one line: what is wrong
    detail                text not null,
    advice                text not null,         -- what to do
    since                 timestamptz not null,  -- when the problem began, as the data shows
    opened_at             timestamptz not null,  -- the watchdog run that first found it
    last_seen_at          timestamptz not null,  -- the last watchdog run that still found it
    resolved_at           timestamptz,
    notified_at           timestamptz,           -- the incident mail was sent
    recovery_notified_at  timestamptz            -- the recovery mail was sent
);
create unique index incidents_open_key on incidents (dedupe_key) where resolved_at is null;
create index incidents_opened on incidents (opened_at desc);

-- Periodic ops mails already sent (the weekly source-health report), keyed by period.
create table ops_reports (
    report_key  text primary key,                -- e.g. source-health:2024-W16
    sent_at     timestamptz not null
);

create view bi.incidents as
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
       i.recovery_notified_at
from incidents i;

comment on view bi.incidents is
    'Ops incidents found by the mediamon watchdog (mediamon_health DAG, `mediamon health '
    'run`): failing or silent sources, an ingest volume cliff, undelivered alerts, no '
    'successful ingest run, failed data-quality checks. One row per episode.';
comment on column bi.incidents.incident_id is 'Stable id of the episode.';
comment on column bi.incidents.kind is
    'source_failing, source_silent, volume_drop, alerts_undelivered, ingest_stale, '
    'ingest_failed or quality_check.';
comment on column bi.incidents.subject is 'The source, check or run the incident concerns.';
comment on column bi.incidents.summary is 'One line: what is wrong.';
comment on column bi.incidents.detail is 'The figures behind the finding.';
comment on column bi.incidents.advice is 'What an operator should do.';
comment on column bi.incidents.since is 'When the problem began, as far as the data shows (UTC).';
comment on column bi.incidents.opened_at is 'When the watchdog first found it (UTC).';
comment on column bi.incidents.last_seen_at is 'The last watchdog run that still found it (UTC).';
comment on column bi.incidents.resolved_at is 'When the watchdog found it cleared; null while open.';
comment on column bi.incidents.is_open is 'True while the problem lasts.';
comment on column bi.incidents.duration is 'From since to resolved_at, or to last_seen_at while open.';
comment on column bi.incidents.notified_at is 'When the incident mail went out; null: not mailed.';
comment on column bi.incidents.recovery_notified_at is 'When the recovery mail went out.';
