-- The start of the bodies of the given stories (root articles), for their snippets.
select article_id, left(body_text, :body_chars) as body
  from articles
 where article_id = any(:ids)
