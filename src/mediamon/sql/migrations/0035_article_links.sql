-- Which article each source's link led to (mediamon.ingest.links). A feed's link may
-- redirect (HTTP 30x, a meta refresh: a tracking or feed-proxy link) to a story's page,
-- which is stored under the page's final URL; articles.url keeps one link only, the
-- first. Two sources each linking the story through a link of their own were known by
-- neither link after the other's fetch: both fetched the story again at every poll and
-- swapped the article's url and credited source each time. Here every (source, link)
-- that led to a stored article is kept, so neither fetches it again.
--
-- Not a claim (article_claims, 0009): a claim is a feed's own text about a URL whose
-- page it could not fetch, never makes its source skip the URL, and is keyed by that
-- URL; a link here is a fetched page's way in, keyed by the link as the source wrote
-- it. Natural key: (source_id, link_hash); loads upsert on it.
create table article_links (
    source_id       integer not null references sources (source_id),
    link_hash       bytea not null,                 -- sha256 of the link's canonical URL
    link            text not null,                  -- as the source's feed wrote it
    article_id      bigint not null references articles (article_id) on delete cascade,
    first_linked_at timestamptz not null,
    updated_at      timestamptz not null default now(),
    primary key (source_id, link_hash)
);
create index article_links_article on article_links (article_id);
