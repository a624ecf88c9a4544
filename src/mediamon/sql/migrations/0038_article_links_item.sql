-- Which feed item a source's link last led from (mediamon.ingest.links). A tracking
-- link may be reused: yesterday it redirected to story A, today the feed lists a new
-- item under it that redirects to story B. Known by its link, it was never fetched
-- again and B was never loaded. item_key identifies the item (links.item_key: the hash
-- of its guid, or of its title and date when the guid is missing or the link itself),
-- so the source fetches the link again when another item shows it, and only then;
-- Miniflux tells entries apart the same way. Null for rows written before this column:
-- no evidence, not fetched again.
alter table article_links add column item_key bytea;
