-- The page's source health: enabled sources first, the worst status first.
select source, kind, enabled, status, status_reason, last_success_local, last_fetch_local,
       fetches_24h, errors_24h, error_rate_24h, articles_24h, articles_total,
       consecutive_failures, last_poll_error
from bi.source_health
order by not enabled,
         array_position(array['failing', 'warn', 'ok', 'disabled'], status),
         source
