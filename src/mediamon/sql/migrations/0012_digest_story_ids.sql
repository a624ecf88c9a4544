-- The stories each digest listed (root article ids), so the next digest lists every story
-- of the previous period that this one did not: an ingest run stamps its articles with
-- the run's time and commits them minutes later, so "first seen after the previous
-- digest picked its stories" missed those committed after the pick (mediamon.alerts.digest).
-- Null on rows written before this column: their next digest keeps that older rule.
alter table digest_deliveries add column story_ids bigint[];
