-- Whether a recipient still wants a topic's mail: the rows the unsubscribe page writes
-- (mediamon.alerts.subscriptions). topics.yaml says who gets a topic; a recipient who
-- clicked "unsubscribe" (RFC 8058's one-click POST from Gmail or Yahoo, or the page's
-- button) has a row 'unsubscribed' here, and alerts and digests skip them until it says
-- 'subscribed' again. topic '*' is every topic (a digest's link). One row per
-- (recipient, topic): a second click updates it.
create table mail_subscriptions (
    recipient   text not null check (recipient = lower(recipient)),
    topic       text not null,
    state       text not null check (state in ('subscribed', 'unsubscribed')),
    changed_at  timestamptz not null,
    via         text not null check (via in ('one-click', 'page')),
    primary key (recipient, topic)
);

comment on table mail_subscriptions is
    'Recipients who left a topic''s mail (topic ''*'': every mail) through an unsubscribe'
    ' link; alert and digest delivery read it before each mail.';
