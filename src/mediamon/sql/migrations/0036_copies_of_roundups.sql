-- A copy link now also needs the shared sentences to be more than half of the longer
-- text's, beside 80 of a hundred of the shorter one's (mediamon.ingest.load.copy_roots,
-- DUPLICATE_MIN_SHARED_OF_LONGER): a page holding several stories whole (an
-- aggregator's daily roundup stored before them, a hostile page) made every story it
-- held its copy, 10 stories counted as one in spikes, digests and BI. Links stored under
-- the rule of before are decided again here, once: a copy that shares neither its root's
-- text nor more than half of the longer one's sentences is linked, as the loader would
-- link it now, to the first earlier root it copies by the rule, else none (a story of
-- its own). In id order, so that a story freed first is the root of its own copies
-- freed after it (a copy of a story that was itself the roundup's "copy" was linked to
-- the roundup too). Nothing is deleted: mentions are an article's and stay; a freed
-- story is counted in its own story hour (the roll-up's triggers mark both hours); mail
-- already sent named the root, and a digest lists a story it has not listed: a freed one
-- of the previous digest's period once, never a story twice.
--
-- Links between bottom-k sketches (200 keys: the loader weighs those below their
-- largest keys) are left as they are: a story that long is not a roundup's part, and
-- the SQL would have to repeat that rule. A root stored after a freed story that copies
-- it stays a root (the loader never compared the two): rare, and a story counted twice
-- rather than ten stories once.

create function pg_temp.shared_sentences(a bigint[], b bigint[]) returns integer
language sql immutable strict as $$
    select count(*)::integer from (select unnest(a) intersect select unnest(b)) as both_hold
$$;

-- The loader's rule (copy_roots): the same text, when the copy's is long enough to tell
-- (30 characters of match_text), or 3 sentences each and the shared ones at least 80 of
-- a hundred of the shorter's and more than half of the longer's.
create function pg_temp.copies(copy_text text, copy_hash bytea, copy_keys bigint[],
                               root_hash bytea, root_keys bigint[]) returns boolean
language sql immutable as $$
    select (char_length(copy_text) >= 30 and copy_hash = root_hash)
        or (cardinality(copy_keys) >= 3 and cardinality(root_keys) >= 3
            and 5 * pg_temp.shared_sentences(copy_keys, root_keys)
                >= 4 * least(cardinality(copy_keys), cardinality(root_keys))
            and 2 * pg_temp.shared_sentences(copy_keys, root_keys)
                > greatest(cardinality(copy_keys), cardinality(root_keys)))
$$;

do $$
declare
    freed record;
begin
    for freed in
        select copy.article_id, copy.match_text, copy.content_hash, copy.sentence_hashes
        from articles as copy
        join articles as root on root.article_id = copy.duplicate_of
        where cardinality(copy.sentence_hashes) < 200
          and cardinality(root.sentence_hashes) < 200
          and not pg_temp.copies(copy.match_text, copy.content_hash, copy.sentence_hashes,
                                 root.content_hash, root.sentence_hashes)
        order by copy.article_id
    loop
        update articles
        set duplicate_of = (
                select min(root.article_id)
                from articles as root
                where root.duplicate_of is null
                  and root.article_id < freed.article_id
                  and (root.content_hash = freed.content_hash
                       or root.sentence_hashes && freed.sentence_hashes)
                  and cardinality(root.sentence_hashes) < 200
                  and pg_temp.copies(freed.match_text, freed.content_hash,
                                     freed.sentence_hashes, root.content_hash,
                                     root.sentence_hashes)),
            updated_at = now()
        where article_id = freed.article_id;
    end loop;
end
$$;
