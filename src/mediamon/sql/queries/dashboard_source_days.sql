-- The page's ingest volume: articles stored per source and local day in the window.
select source, enabled, day_local, articles, stories, copies, fetches, failed_fetches, bytes
from bi.source_days(:window_start, :window_end)
order by source, day_local
