"""Building an article from a feed item and its page (mediamon.ingest.build)."""

from __future__ import annotations

from mediamon.ingest.build import build_article
from tests.support.faults import page_job

URL = "https://news.example.org/strike.html"
HEADLINE = "港口罢工三周后结束 码头工人今日复工"
BRIEF = (
    "码头工人今天上午回到工作岗位，持续三周的罢工正式结束。工会与港务局昨晚达成协议，"
    "双方同意分阶段提高工资并改善轮班安排，积压的集装箱预计将在十天内清理完毕。"
)
# A brief under its headline and dateline, as portals lay them out: readability's text,
# which is chosen here, begins with the headline.
PAGE = f"""<html><head><meta charset="utf-8"><title>{HEADLINE}_示例新闻网</title></head>
<body><div class="top"><ul class="nav"><li><a href="/">首页</a></li><li><a href="/n/">新闻</a></li>
</ul></div><div class="main"><div class="article"><h1>{HEADLINE}</h1>
<div class="info">2024-04-01 10:20 来源：示例新闻网</div>
<div class="content"><p>{BRIEF}</p></div><div class="editor">责任编辑：王明</div></div></div>
<div class="footer"><p>关于我们 | 联系方式</p></div></body></html>"""


def test_the_headline_is_the_title_not_the_bodys_first_line() -> None:
    """The feed's title, or the page's when the feed has none: either way the stored
    body no longer begins with the headline, and the title is stored once."""
    for feed_title in (HEADLINE, None):
        article = build_article(page_job(URL, PAGE, title=feed_title)).article
        assert article is not None
        assert article.title is not None and article.title.startswith(HEADLINE)
        assert HEADLINE not in article.body_text, feed_title
        assert article.body_text.splitlines()[0].startswith("2024-04-01 10:20")
        assert BRIEF in article.body_text


def test_a_json_ld_headline_that_is_not_text_leaves_the_pages_own_title() -> None:
    """JSON-LD gives what the page wrote: a headline as a list (common), a number, an
    object. Before, a truthy non-text title stopped the fallback to ``<title>``, and an
    item without a feed title was stored without any."""
    import json

    for headline in ([HEADLINE], 2024, {"@value": HEADLINE}, True):
        ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": headline}
        block = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
        page = PAGE.replace("</head>", block + "</head>")
        article = build_article(page_job(URL, page, title=None)).article
        assert article is not None
        assert article.title is not None and article.title.startswith(HEADLINE), headline


def test_a_pages_title_escaped_twice_is_text_as_a_feeds_is() -> None:
    """A page's ``<title>`` or ``og:title`` escaped twice (``&amp;lt;b&amp;gt;要闻``), as
    CMSs write them: read once by the parser, the stored title held ``<b>要闻</b>``,
    shown as typed in mails, BI and the page, where a feed's title loses its tags."""
    written = "AT&amp;amp;T 台湾 &amp;lt;b&amp;gt;要闻&amp;lt;/b&amp;gt; 5 &lt; 6 &gt; 4"
    plain = PAGE.replace(f"<title>{HEADLINE}_示例新闻网</title>", f"<title>{written}</title>")
    plain = plain.replace(f"<h1>{HEADLINE}</h1>", f"<h1>{written}</h1>")
    og = plain.replace("</head>", f'<meta property="og:title" content="{written}"></head>')
    for page in (plain, og):
        article = build_article(page_job(URL, page, title=None)).article
        assert article is not None
        assert article.title == "AT&T 台湾 要闻 5 < 6 > 4", article.title
