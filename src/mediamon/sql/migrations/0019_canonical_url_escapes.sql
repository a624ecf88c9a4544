-- Canonical URLs now spell a path's bytes one way (RFC 3986 §6.2.2, see
-- mediamon.ingest.normalize._percent_encoded): percent-encodings in upper case, those of
-- unreserved characters but "." decoded, and every character a path cannot hold as
-- written (non-ASCII, space, a percent sign that starts no encoding …) encoded as UTF-8.
-- Before, /新闻 and its two encodings in upper and lower case were three keys of a page.
--
-- Stored articles and claims are keyed by their canonical URL (url_hash, its SHA-256):
-- each one whose key changes is re-keyed here, or an article seen again after the
-- upgrade would be stored a second time under its new key. Where several articles now
-- share one key (the same page stored under two spellings), one keeps the key (the one
-- already under it, else the first stored) and nothing is deleted: the others keep their
-- old keys, which no URL canonicalizes to any more, and become copies (duplicate_of) of
-- the story's root, as a syndicated copy is, so the page counts as one story in spikes,
-- digests and BI, and its topic mentions, mail history and copies stay. Of claims (one
-- source's feed text per key), the one under the new key, else the latest, is kept.
--
-- The functions spell a path as normalize._percent_encoded does, character for
-- character (tests/integration/ingest/test_load.py checks the two agree). The percent
-- sign is written chr(37): the migration runner's driver reads the sign as a
-- placeholder, anywhere in the file.

create or replace function pg_temp.canonical_path(path text) returns text
language plpgsql immutable strict as $$
declare
    spelled text := '';
    position integer := 1;
    code integer;
    piece text;
begin
    while position <= length(path) loop
        piece := substr(path, position, 1);
        if piece = chr(37) and substr(path, position + 1, 2) ~ '^[0-9A-Fa-f]{2}$' then
            code := get_byte(decode(substr(path, position + 1, 2), 'hex'), 0);
            if code between 48 and 57 or code between 65 and 90 or code between 97 and 122
               or code in (45, 95, 126) then  -- unreserved, but "."
                spelled := spelled || chr(code);
            else
                spelled := spelled || chr(37) || upper(substr(path, position + 1, 2));
            end if;
            position := position + 3;
        else
            if piece !~ '^[A-Za-z0-9._~!$&''()*+,;=:@/-]$' then
                piece := regexp_replace(
                    upper(encode(convert_to(piece, 'UTF8'), 'hex')), '(..)', chr(37) || '\1',
                    'g'
                );
            end if;
            spelled := spelled || piece;
            position := position + 1;
        end if;
    end loop;
    return spelled;
end
$$;

-- scheme://host[:port], the path, then "?query" if any (canonical URLs have no fragment
-- and no user name); a URL of another shape is left as it is.
create or replace function pg_temp.canonical_url(url text) returns text
language sql immutable strict as $$
    select coalesce(parts[1] || pg_temp.canonical_path(parts[2]) || parts[3], url)
    from regexp_match(url, '^([a-z][a-z0-9+.-]*://[^/?]*)(/[^?]*)(.*)$') as parts
$$;

-- Only a path with a character outside those kept as written can change.
create temporary table rekeyed on commit drop as
select article_id, new_url, sha256(convert_to(new_url, 'UTF8')) as new_hash
from (
    select article_id, canonical_url, pg_temp.canonical_url(canonical_url) as new_url
    from articles
    where substring(canonical_url from '^[a-z][a-z0-9+.-]*://[^/?]*(/[^?]*)')
          ~ '[^A-Za-z0-9._~!$&''()*+,;=:@/-]'
) as spelled
where new_url <> canonical_url;

-- Every article that is to have each new key: those re-keyed, and one stored under it.
create temporary table keyed on commit drop as
select new_hash, article_id, false as holds_key from rekeyed
union all
select url_hash, article_id, true from articles
where url_hash in (select new_hash from rekeyed);

create temporary table shared_keys on commit drop as
select g.new_hash, g.holder, coalesce(a.duplicate_of, a.article_id) as root
from (
    select new_hash,
           coalesce(max(article_id) filter (where holds_key), min(article_id)) as holder,
           min(article_id) as earliest
    from keyed
    group by new_hash
    having count(*) > 1
) as g
join articles a on a.article_id = g.earliest;

-- Copies of an article that becomes a copy follow it to the root (copies point at roots).
update articles c set duplicate_of = s.root
from keyed k join shared_keys s using (new_hash)
where c.duplicate_of = k.article_id and k.article_id <> s.root;

update articles a set duplicate_of = s.root
from keyed k join shared_keys s using (new_hash)
where a.article_id = k.article_id and a.article_id <> s.root
  and a.duplicate_of is distinct from s.root;

update articles a set url_hash = r.new_hash, canonical_url = r.new_url
from rekeyed r
where a.article_id = r.article_id
  and r.article_id = coalesce(
      (select s.holder from shared_keys s where s.new_hash = r.new_hash), r.article_id);

-- Claims: one per source and key.
create temporary table claims_rekeyed on commit drop as
select source_id, url_hash as old_hash, new_url,
       sha256(convert_to(new_url, 'UTF8')) as new_hash, updated_at
from (
    select c.*, pg_temp.canonical_url(c.canonical_url) as new_url
    from article_claims c
    where substring(c.canonical_url from '^[a-z][a-z0-9+.-]*://[^/?]*(/[^?]*)')
          ~ '[^A-Za-z0-9._~!$&''()*+,;=:@/-]'
) as spelled
where new_url <> canonical_url;

delete from article_claims c
using claims_rekeyed r
where c.source_id = r.source_id and c.url_hash = r.old_hash
  and (exists (select 1 from article_claims k
               where k.source_id = r.source_id and k.url_hash = r.new_hash)
       or exists (select 1 from claims_rekeyed o
                  where o.source_id = r.source_id and o.new_hash = r.new_hash
                    and (o.updated_at, o.old_hash) > (r.updated_at, r.old_hash)));

update article_claims c set url_hash = r.new_hash, canonical_url = r.new_url
from claims_rekeyed r
where c.source_id = r.source_id and c.url_hash = r.old_hash;

drop function pg_temp.canonical_url(text);
drop function pg_temp.canonical_path(text);
