-- Tracked topics (config/topics.yaml), the articles that mention them, and the alerts
-- raised when a topic gets more coverage than usual (see docs/topics.md, docs/spikes.md).

-- The definition in force for each topic: the last valid one synced from the topics file.
-- A file with an error is never synced, so this stays the previous valid definition.
create table topics (
    topic            text primary key,          -- the topic's key, e.g. taiwan
    name             text not null,             -- display name, e.g. 台湾
    version          text not null,             -- hash of the whole normalized definition
    match_version    text not null,             -- hash of the part that decides matches
    definition       jsonb not null,            -- defaults resolved (Topic.to_dict())
    active           boolean not null default true,  -- false once removed from the file
    matched_version  text,                      -- match_version the mentions reflect
    matched_through  timestamptz,               -- articles updated before this are matched
    updated_at       timestamptz not null default now()
);

-- Every definition a topic has had, so an alert can be traced to the rules that made it.
create table topic_versions (
    topic          text not null references topics (topic),
    version        text not null,
    match_version  text not null,
    definition     jsonb not null,
    first_seen_at  timestamptz not null default now(),
    primary key (topic, version)
);

-- Which articles mention which topic, and how often in title and body. The natural key is
-- (article_id, topic); rows are rewritten when the article or the topic's rules change.
create table mentions (
    article_id     bigint not null references articles (article_id) on delete cascade,
    topic          text not null references topics (topic),
    match_version  text not null,
    title_hits     integer not null,
    body_hits      integer not null,
    matched_at     timestamptz not null default now(),
    primary key (article_id, topic),
    check (title_hits > 0 or body_hits > 0)
);
create index mentions_topic on mentions (topic, article_id);

-- A story's time: when it was published, but never later than when mediamon first saw it
-- (a feed's future date is a bug). Hourly counts bucket on this expression.
create index articles_story_time
    on articles ((least(coalesce(published_at, first_seen_at), first_seen_at)));
-- Incremental matching reads the articles inserted or changed since its last run.
create index articles_updated_at on articles (updated_at);

-- One row per alert episode. dedupe_key (topic, window end, window length) makes a retried
-- or re-run detection a no-op; state goes open -> notified (mails sent) -> resolved
-- (episode over, after it was notified).
create table alerts (
    alert_id         bigint generated always as identity primary key,
    dedupe_key       text not null unique,
    topic            text not null references topics (topic),
    topic_version    text not null,
    window_start     timestamptz not null,
    window_end       timestamptz not null,
    observed         integer not null,
    expected         double precision not null,
    lift             double precision not null,
    score            double precision not null,    -- -log10(p_value)
    p_value          double precision not null,
    total_stories    integer not null,
    details          jsonb not null,               -- share, dispersion, baseline, parameters
    state            text not null default 'open'
                         check (state in ('open', 'notified', 'resolved')),
    last_window_end  timestamptz not null,         -- last window the episode was elevated
    peak_observed    integer not null,
    cleared_at       timestamptz,                  -- episode over: the topic is re-armed
    created_at       timestamptz not null default now(),
    notified_at      timestamptz,
    resolved_at      timestamptz
);
create index alerts_topic_window on alerts (topic, window_end desc);
create index alerts_open on alerts (alert_id) where state = 'open';

-- One row per alert and recipient once its mail was sent (or deliberately skipped, e.g. a
-- backfilled alert too old to mail). A row is written only after the send succeeded.
create table alert_deliveries (
    alert_id    bigint not null references alerts (alert_id),
    recipient   text not null,
    mode        text not null check (mode in ('immediate', 'digest')),
    status      text not null check (status in ('sent', 'skipped')),
    message_id  text,
    sent_at     timestamptz not null,
    note        text,
    primary key (alert_id, recipient, mode)
);
