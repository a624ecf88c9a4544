-- Stored roots (articles that are not themselves copies) that may be the original of an
-- article of a batch: the same text (the content hashes of the batch's long-enough texts)
-- or at least one sentence in common (the sentence hashes of its articles with enough
-- sentences). mediamon.load decides which are copies (and drops a root found twice).
--
-- A sentence more than :common_roots roots hold is boilerplate (a site's footer or
-- disclaimer: roots are distinct stories), no sign of a copy: no root is looked up by it
-- (its roots share it with every article of the site, so each batch read all of them and
-- compared each article with each: a footer on 10,000 stored articles made a batch of
-- 200 take 1.6 s, growing with the site's history). Its count stops at :common_roots + 1.
-- Each hash, and each batch's texts and sentences, are looked up through their own index
-- alone ("offset 0" keeps "duplicate_of is null" out of the scans): with the table's
-- statistics stale (a new database, a first big load, bench.load's refilled table) the
-- planner ANDed each probe with the partial index of
-- roots (articles_story_hour) and read every root's entry once per hash, 600 times a
-- batch: 280 ms a lookup at 6,000 roots, 435 ms at 9,000, against 3.5 and 4.0 ms now
-- (and every root's entry twice more for the batch's own two lookups).
--
-- The arrays go in through subqueries (InitPlans) so that the planner does not look into them: told
-- of 1,200 sentence hashes it estimated that most rows match and scanned the whole table
-- (150 ms for 10,000 articles) instead of probing the GIN index (6 ms), and weighing 200
-- content hashes one by one against the column statistics was most of the planning.
select article_id, content_hash, sentence_hashes
from (select article_id, content_hash, sentence_hashes, duplicate_of
      from articles
      where content_hash = any(array(select decode(h, 'hex')
                                     from unnest(cast(:content_hashes as text[])) as h))
      offset 0) as same_text
where duplicate_of is null
union all
select article_id, content_hash, sentence_hashes
from (select article_id, content_hash, sentence_hashes, duplicate_of
      from articles
      where sentence_hashes && (
        select coalesce(array_agg(h), '{}')
        from unnest((select cast(:sentence_hashes as bigint[]))) as h
        where (select count(*)
               from (select 1
                     from (select held.duplicate_of, held.sentence_hashes
                           from articles as held
                           where held.sentence_hashes @> array[h]
                           offset 0) as held
                     where cardinality(held.sentence_hashes) >= :min_sentences
                       and held.duplicate_of is null
                     limit :common_roots + 1) as holders) <= :common_roots)
      offset 0) as shared_sentence
where cardinality(sentence_hashes) >= :min_sentences
  and duplicate_of is null
