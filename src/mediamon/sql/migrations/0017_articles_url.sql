-- An item whose link redirects (http to https, a feed proxy, a trailing slash) is stored
-- under its page's final URL; the link the feed wrote is kept in articles.url. Ingest
-- looked items up by the link's canonical URL alone, so such an item was never found:
-- its page was fetched and built again at every poll of a changed feed, and counted as
-- new, which halved the source's poll interval down to its floor. Ingest now also looks
-- items up by the link as written (mediamon.ingest.polling.seen_before).
-- A hash index: a link may hold up to 2,048 characters of UTF-8, more than a b-tree
-- entry may (2,704 bytes); lookups are by equality only.
create index articles_url on articles using hash (url);
