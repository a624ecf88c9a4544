-- Ids for a batch of articles (:url_hashes, the natural key, as a text array of hex):
-- the stored article's, or a new one drawn from the table's identity sequence, so that
-- links between articles of the batch (copies) are known before they are written. One
-- round trip per batch.
select b.url_hash, a.article_id as stored_id,
       case when a.article_id is null
            then nextval(pg_get_serial_sequence('articles', 'article_id')) end as new_id
from (select decode(h, 'hex') from unnest(cast(:url_hashes as text[])) as h) as b (url_hash)
left join articles a on a.url_hash = b.url_hash
