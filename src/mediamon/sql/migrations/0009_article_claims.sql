-- What a source's feed says about an article on another site, when the article's own
-- page could not be fetched (mediamon.provenance). A feed can claim any URL: its text
-- is kept here, under the source that claimed it, and never becomes the article's text
-- in `articles`, so it can neither overwrite the site's own page nor make the site's own
-- source skip the URL as already known. Natural key: (source_id, url_hash).

create table article_claims (
    source_id        integer not null references sources (source_id),
    url_hash         bytea not null,                -- sha256 of canonical_url, as in articles
    canonical_url    text not null,
    url              text not null,                 -- as the claiming feed linked it
    title            text,
    body_text        text not null,                 -- the feed's text (content or summary)
    published_at     timestamptz,
    language         text,
    content_origin   text not null check (content_origin in ('feed_content', 'feed_summary')),
    first_claimed_at timestamptz not null,
    updated_at       timestamptz not null default now(),
    primary key (source_id, url_hash)
);
create index article_claims_url on article_claims (url_hash);

-- For dashboards (the BI contract, see 0002): who claimed what about which URL, and
-- whether that URL is an article now (fetched from its own page by some source).
create view bi.article_claims as
select s.name as source,
       c.canonical_url as url,
       c.url as linked_url,
       c.title,
       c.published_at,
       c.language,
       c.body_text,
       c.content_origin,
       c.first_claimed_at,
       a.article_id
from article_claims c
join sources s on s.source_id = c.source_id
left join articles a on a.url_hash = c.url_hash;
comment on view bi.article_claims is
    'Feed text about another site''s URL whose page the claiming source could not fetch: '
    'kept as that source''s claim, never as the article. article_id is set once the URL '
    'is an article (its own page fetched).';
