-- Ops mails waiting for the mail server (mediamon.ops.outbox). A task-failure mail or the
-- weekly source-health report that the SMTP server could not take (down, 4xx) was one
-- WARNING line and lost: nothing sent it again unless the same failure came back. It is
-- kept here as the message it was, under a natural key (one failed task try, one ISO
-- week), so it is stored once and mailed once: the next watchdog run (every 15 minutes)
-- or the next ops mail delivers the pending ones first. Older than a day, it is dropped
-- with one log line (dropped_at) rather than mailed as news.
create table ops_outbox (
    mail_key    text primary key,
    kind        text not null check (kind in ('task_failure', 'weekly_report')),
    subject     text not null,
    message     bytea not null,
    created_at  timestamptz not null,
    attempts    integer not null default 1 check (attempts >= 1),
    last_error  text,
    sent_at     timestamptz,
    dropped_at  timestamptz
);

create index ops_outbox_pending on ops_outbox (created_at)
    where sent_at is null and dropped_at is null;

comment on table ops_outbox is
    'Ops mails the SMTP server could not take, kept until the next watchdog run or ops mail'
    ' delivers them (sent_at), or until they are a day old and dropped (dropped_at).';
