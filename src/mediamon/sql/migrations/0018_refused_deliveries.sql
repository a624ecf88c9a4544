-- A recipient the mail server refuses for good (every RCPT TO answered 5xx: 550 no such
-- mailbox) is recorded 'refused', with the server's answer, instead of being left due:
-- asking the server about a dead mailbox again at every run failed the alerts task for a
-- day (until the alert went stale) and the digests task every hour, for ever. A 4xx
-- answer or a lost connection still leaves the mail due for the next run
-- (mediamon.alerts.smtp.refused_for_good).
alter table alert_deliveries drop constraint alert_deliveries_status_check;
alter table alert_deliveries add constraint alert_deliveries_status_check
    check (status in ('sent', 'skipped', 'refused'));

alter table digest_deliveries drop constraint digest_deliveries_status_check;
alter table digest_deliveries add constraint digest_deliveries_status_check
    check (status in ('sent', 'empty', 'refused'));
alter table digest_deliveries add column note text;
