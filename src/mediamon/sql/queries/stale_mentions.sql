-- Deletes the mentions of a batch's articles and topics that no longer match (the article
-- or the rules changed): every pair not among the ones just found (f_ids, f_topics).
delete from mentions m
 where m.article_id = any(:ids) and m.topic = any(:keys)
   and not exists (select 1
                     from unnest(cast(:f_ids as bigint[]), cast(:f_topics as text[]))
                          as f(article_id, topic)
                    where f.article_id = m.article_id and f.topic = m.topic)
