-- Stored roots (articles that are not themselves copies) that may be the original of an
-- article of a batch: the same text (:content_hashes, of the batch's long-enough texts) or
-- at least one sentence in common (:sentence_hashes, of the batch's articles with enough
-- sentences). mediamon.load decides which are copies (and drops a root found twice).
select article_id, content_hash, sentence_hashes
from articles
where content_hash = any(:content_hashes)
  and duplicate_of is null
union all
select article_id, content_hash, sentence_hashes
from articles
-- The array goes in through a subquery so that the planner does not see its size: told
-- of 1,200 hashes it estimated that most rows match and scanned the whole table (150 ms
-- for 10,000 articles) instead of probing the GIN index (6 ms).
where sentence_hashes && (select cast(:sentence_hashes as bigint[]))
  and cardinality(sentence_hashes) >= :min_sentences
  and duplicate_of is null
