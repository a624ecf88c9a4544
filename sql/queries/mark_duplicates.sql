-- Link each article of a batch to the first earlier article with the same text
-- (content_hash) or mostly the same sentences (a copy with its own byline, credit line
-- or footer), so that syndicated copies are stored but never counted twice. Only roots
-- (duplicate_of is null) are linked to, and rows are only written when the link changes.
with batch as (
    select article_id, content_hash, sentence_hashes,
           length(match_text) >= :min_chars as long_enough
    from articles
    where article_id = any(:ids)
),
candidates as (
    select b.article_id, o.article_id as root_id
    from batch b
    join articles o on o.content_hash = b.content_hash
    where b.long_enough and o.article_id < b.article_id and o.duplicate_of is null
    union all
    select b.article_id, o.article_id
    from batch b
    join articles o on o.sentence_hashes && b.sentence_hashes
    where o.article_id < b.article_id and o.duplicate_of is null
      and cardinality(b.sentence_hashes) >= :min_sentences
      and cardinality(o.sentence_hashes) >= :min_sentences
      and (select count(*) from unnest(b.sentence_hashes) h where h = any(o.sentence_hashes))
          >= :min_shared * least(cardinality(b.sentence_hashes), cardinality(o.sentence_hashes))
),
roots as (
    select b.article_id, min(c.root_id) as root_id
    from batch b
    left join candidates c using (article_id)
    group by b.article_id
)
update articles a
set duplicate_of = r.root_id, updated_at = now()
from roots r
where a.article_id = r.article_id
  and a.duplicate_of is distinct from r.root_id
returning a.article_id, a.duplicate_of
