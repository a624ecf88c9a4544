-- Link each article of a batch (:ids) to the first earlier article with the same text
-- (content_hash) or mostly the same sentences (a copy with its own byline, credit line
-- or footer, or other paragraph breaks), so that syndicated copies are stored but never
-- counted twice. Only roots (duplicate_of is null) are linked to, and rows are only
-- written when their link changes. Returns how many of the batch are copies.
with batch as materialized (
    select article_id, content_hash, sentence_hashes,
           length(match_text) >= :min_chars as long_enough
    from articles
    where article_id = any(:ids)
),
batch_sentences as materialized (
    select b.article_id, h, cardinality(b.sentence_hashes) as sentences
    from batch b, unnest(b.sentence_hashes) as h
    where cardinality(b.sentence_hashes) >= :min_sentences
),
-- One GIN index scan for the whole batch finds every root sharing a sentence with it
-- (materialized: evaluated once, not once per batch row).
sharing as materialized (
    select o.article_id, h, cardinality(o.sentence_hashes) as sentences
    from articles o, unnest(o.sentence_hashes) as h
    where o.duplicate_of is null
      and cardinality(o.sentence_hashes) >= :min_sentences
      and o.sentence_hashes && (select array_agg(distinct h) from batch_sentences)
),
candidates as (
    -- lateral: one index probe per batch row; a join let the planner scan the table
    select b.article_id, same.root_id
    from batch b
    cross join lateral (
        select min(o.article_id) as root_id
        from articles o
        where o.content_hash = b.content_hash
          and o.article_id < b.article_id and o.duplicate_of is null
    ) as same
    where b.long_enough and same.root_id is not null
    union all
    select b.article_id, o.article_id
    from batch_sentences b
    join sharing o using (h)
    where o.article_id < b.article_id
    group by b.article_id, o.article_id, b.sentences, o.sentences
    having count(*) >= :min_shared * least(b.sentences, o.sentences)
),
roots as (
    select b.article_id, min(c.root_id) as root_id
    from batch b
    left join candidates c using (article_id)
    group by b.article_id
),
changed as (
    update articles a
    set duplicate_of = r.root_id, updated_at = now()
    from roots r
    where a.article_id = r.article_id
      and a.duplicate_of is distinct from r.root_id
    returning a.article_id
)
select count(root_id) from roots
