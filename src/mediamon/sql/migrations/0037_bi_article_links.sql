-- Through which sources and links a story reached us: article_links (0035) had no BI
-- view, so analysts asking it read nothing (the bi role cannot read public tables).
--
-- article_links keeps only the links whose key is not their article's own (a tracking
-- link, a feed proxy); the link that first led to the article is articles.url, under
-- the source bi.articles credits. The view gives both, one row per source and link, so
-- "every way in" is one query: the credited row from articles unless article_links
-- holds the same source and link already (then that row, credited). Filters on
-- article_id or story_id reach articles' primary key and article_links_article.
create view bi.article_links as
select a.article_id,
       coalesce(a.duplicate_of, a.article_id)            as story_id,
       s.name                                            as source,
       a.url                                             as link,
       a.canonical_url                                   as url,
       a.title,
       true                                              as credited,
       a.first_seen_at                                   as first_linked_at,
       a.first_seen_at at time zone st.timezone          as first_linked_at_local
from articles a
join sources s using (source_id)
cross join bi.settings st
where not exists (
    select from article_links l
    where l.article_id = a.article_id and l.source_id = a.source_id and l.link = a.url)
union all
select a.article_id,
       coalesce(a.duplicate_of, a.article_id),
       s.name,
       l.link,
       a.canonical_url,
       a.title,
       l.source_id = a.source_id,
       l.first_linked_at,
       l.first_linked_at at time zone st.timezone
from article_links l
join articles a using (article_id)
join sources s on s.source_id = l.source_id
cross join bi.settings st;

comment on view bi.article_links is
    'Every way a story reached mediamon: one row per article and source link that led to '
    'it, the link bi.articles.source''s feed gave first (credited) and every other '
    'source''s link or tracking link that led to the same page. Group by story_id for '
    'syndicated copies too.';
do $$
declare
    c record;
begin
    for c in select * from (values
        ('article_id', 'The article the link led to (bi.articles.article_id).'),
        ('story_id', 'Root of the article''s syndicated copies (bi.articles.story_id): group by it for a story''s every outlet.'),
        ('source', 'The source whose feed gave the link (sources.yaml).'),
        ('link', 'The link as that source''s feed wrote it (a tracking link or feed proxy may differ from url).'),
        ('url', 'Canonical URL of the article''s page, where the link led (bi.articles.url).'),
        ('title', 'The article''s title.'),
        ('credited', 'True when source is the one bi.articles credits with the article (its link led there first).'),
        ('first_linked_at', 'When the link first led to the article (UTC instant; for the credited link: first seen).'),
        ('first_linked_at_local', 'first_linked_at in local wall-clock time (bi.settings.timezone).')
    ) as v (col, text)
    loop
        execute 'comment on column bi.article_links.' || quote_ident(c.col)
            || ' is ' || quote_literal(c.text);
    end loop;
end
$$;

-- The default privileges of 0004 only cover objects created by the role that set them.
do $$
begin
    if exists (select from pg_roles where rolname = 'mediamon_bi') then
        grant select on bi.article_links to mediamon_bi;
    end if;
end
$$;
