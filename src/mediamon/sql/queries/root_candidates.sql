-- Stored roots (articles that are not themselves copies) that may be the original of an
-- article of a batch: the same text (the content hashes of the batch's long-enough texts)
-- or at least one sentence in common (the sentence hashes of its articles with enough
-- sentences). mediamon.load decides which are copies (and drops a root found twice).
--
-- The arrays go in through subqueries (InitPlans) so that the planner does not look into them: told
-- of 1,200 sentence hashes it estimated that most rows match and scanned the whole table
-- (150 ms for 10,000 articles) instead of probing the GIN index (6 ms), and weighing 200
-- content hashes one by one against the column statistics was most of the planning.
select article_id, content_hash, sentence_hashes
from articles
where content_hash = any(array(select decode(h, 'hex')
                               from unnest(cast(:content_hashes as text[])) as h))
  and duplicate_of is null
union all
select article_id, content_hash, sentence_hashes
from articles
where sentence_hashes && (select cast(:sentence_hashes as bigint[]))
  and cardinality(sentence_hashes) >= :min_sentences
  and duplicate_of is null
