-- Link each article of a batch to the first earlier article with the same text
-- (content_hash), nearly the same text (simhash within Hamming distance 3) or mostly the
-- same paragraphs (a copy with its own byline, credit line or footer), so that
-- syndicated copies are stored but never counted twice. Only roots (duplicate_of is
-- null) are linked to, and rows are only written when the link changes.
with batch as (
    select article_id, content_hash, simhash, paragraph_hashes,
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
    join articles o on o.paragraph_hashes && b.paragraph_hashes
    where o.article_id < b.article_id and o.duplicate_of is null
      and cardinality(b.paragraph_hashes) >= :min_paragraphs
      and cardinality(o.paragraph_hashes) >= :min_paragraphs
      and (select count(*) from unnest(b.paragraph_hashes) h where h = any(o.paragraph_hashes))
          >= :min_shared * least(cardinality(b.paragraph_hashes), cardinality(o.paragraph_hashes))
    union all
    select b.article_id, o.article_id
    from batch b
    join articles o on ((o.simhash >> 48) & 65535) = ((b.simhash >> 48) & 65535)
    where o.article_id < b.article_id and o.duplicate_of is null
      and bit_count((o.simhash # b.simhash)::bit(64)) <= :max_distance
    union all
    select b.article_id, o.article_id
    from batch b
    join articles o on ((o.simhash >> 32) & 65535) = ((b.simhash >> 32) & 65535)
    where o.article_id < b.article_id and o.duplicate_of is null
      and bit_count((o.simhash # b.simhash)::bit(64)) <= :max_distance
    union all
    select b.article_id, o.article_id
    from batch b
    join articles o on ((o.simhash >> 16) & 65535) = ((b.simhash >> 16) & 65535)
    where o.article_id < b.article_id and o.duplicate_of is null
      and bit_count((o.simhash # b.simhash)::bit(64)) <= :max_distance
    union all
    select b.article_id, o.article_id
    from batch b
    join articles o on (o.simhash & 65535) = (b.simhash & 65535)
    where o.article_id < b.article_id and o.duplicate_of is null
      and bit_count((o.simhash # b.simhash)::bit(64)) <= :max_distance
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
