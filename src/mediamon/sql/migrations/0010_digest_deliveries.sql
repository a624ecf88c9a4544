-- Digests (mediamon.alerts.digest): one row per recipient, cadence and period, written after the
-- digest was sent (status 'sent') or found to have nothing new (status 'empty'). The
-- natural key makes a second run for the same period send nothing.

create table digest_deliveries (
    recipient     text not null,
    cadence       text not null check (cadence in ('daily', 'weekly')),
    period_start  timestamptz not null,
    period_end    timestamptz not null,
    status        text not null check (status in ('sent', 'empty')),
    stories       integer not null default 0,
    topics        text[] not null default '{}',
    message_id    text,
    sent_at       timestamptz not null,            -- the run's time (--at)
    -- Wall-clock time the stories were selected: a story first seen after it and dated
    -- before the period's end is listed by the next digest, as a late arrival.
    selected_at   timestamptz not null default clock_timestamp(),
    primary key (recipient, cadence, period_end),
    check (period_start < period_end)
);
