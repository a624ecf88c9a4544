"""What an alert mail says, pure: the plain-language reason first, every story ranked by
the stated rule, hostile article text escaped. (The whole mail, sent and rendered in
chromium: tests/integration/alerts/test_mail_render.py.)"""

from __future__ import annotations

import email
import html
import re
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from urllib.parse import parse_qs, unquote, urlsplit

from mediamon.alerts.catalog import Catalog
from mediamon.alerts.compose import (
    MAX_TERMS_SHOWN,
    AlertMail,
    MailOptions,
    Reader,
    render_alert_mail,
    terms_line,
    unsubscribe_uri,
)
from mediamon.alerts.digest_mail import (
    DIGEST_FULL_STORIES,
    DIGEST_HTML_BYTES,
    DIGEST_NAMED_TOPICS,
    DIGEST_STORIES,
    DIGEST_TOPIC_STORIES,
    DIGEST_UNLISTED_NAMES,
    DIGEST_UNLISTED_SECTIONS,
    DigestMail,
    TopicStories,
    digest_message,
    render_digest_mail,
)
from mediamon.alerts.render import FSI, PDI, build_message, clean
from mediamon.alerts.snippet import make_snippet, mark_hits
from mediamon.alerts.stories import StoryItem, rank_stories
from mediamon.topics.rules import parse_rule
from tests.unit.alerts.test_render import BIDI, balanced

END = datetime(2024, 4, 17, 2, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
TAIWAN = [parse_rule("台湾"), parse_rule("Taiwan")]
EVIL = '<script>alert("x")</script> 台湾 \u202egnp.exe & <b>通话</b>'


def story(story_id: int, **changes: object) -> StoryItem:
    base: dict[str, object] = {
        "story_id": story_id,
        "title": f"台湾新闻 {story_id}",
        "url": f"https://example.org/{story_id}",
        "outlet": "cna",
        "published_at": END - timedelta(minutes=story_id),
        "mentions": 1,
    }
    return StoryItem(**{**base, **changes})  # type: ignore[arg-type]


def alert(**changes: object) -> AlertMail:
    base: dict[str, object] = {
        "alert_id": 7,
        "topic_key": "taiwan",
        "topic_name": "台湾",
        "window_start": END - timedelta(hours=1),
        "window_end": END,
        "observed": 9,
        "expected": 0.2,
        "p_value": 1.7e-10,
        "total_stories": 13,
        "stories": (),
        "params": {"min_stories": 4, "max_p_value": 0.0001},
    }
    return AlertMail(**{**base, **changes})  # type: ignore[arg-type]


def test_reason_is_plain_language_first_and_statistics_below() -> None:
    rendered = render_alert_mail(alert(), Reader("a@example.org", "en"), MailOptions())
    first = rendered.text.splitlines()[2]
    assert first == (
        "9 stories mentioning 台湾 in the hour to 2024-04-17 10:00 (UTC+08:00), about 45 times"
        " the usual 0.2 for a Wednesday at this hour."
    )
    assert "All sources together published 13 stories in that time; 9 of them mention 台湾." in (
        rendered.text
    )
    assert rendered.text.index("p-value 1.7e-10") > rendered.text.index("Statistics")
    assert rendered.subject == "[mediamon] 台湾: 9 stories in 1 hour, about 45× the usual 0.2"
    chinese = render_alert_mail(alert(), Reader("a@example.org", "zh-CN"), MailOptions())
    assert chinese.subject == "[mediamon] 台湾：1 小时内 9 篇报道，约为平常 0.2 篇的 45 倍"
    assert "约为平常周三这个时段 0.2 篇的 45 倍" in chinese.text
    new = render_alert_mail(alert(expected=0.0), Reader("a@example.org", "en"), MailOptions())
    assert "usually none" in new.subject and "there are usually none" in new.text


def test_hostile_article_text_is_escaped_and_stripped() -> None:
    hostile = story(
        1,
        title=EVIL,
        outlet="rfi<img src=x onerror=alert(1)>",
        url="javascript:alert(document.cookie)",
        snippet=make_snippet(TAIWAN, EVIL),
        title_snippet=mark_hits(TAIWAN, EVIL),
    )
    quoted = story(2, url='https://example.org/a?x=1&y="><script>')
    rendered = render_alert_mail(
        alert(stories=(hostile, quoted)), Reader("a@example.org"), MailOptions()
    )
    page = rendered.html
    assert "<script" not in page and "<img src=x" not in page and "<b>通话" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "\u202e" not in page and "\u202e" not in rendered.text
    assert "javascript:" not in page  # not a link
    # Written as a URI: the quote and brackets percent-encoded (a link in plain text too).
    assert 'href="https://example.org/a?x=1&amp;y=%22%3E%3Cscript%3E"' in page
    assert "<mark" in page and "【台湾】" in rendered.text
    message = build_message(
        render_alert_mail(
            alert(topic_name="台湾\r\nBcc: all@example.org"), Reader("a@b.org"), MailOptions()
        ),
        "m@example.org",
        ["a@b.org"],
    )
    assert "\n" not in message["Subject"] and message["Bcc"] is None
    assert clean("a\u202eb\u2066c\u200fd\u061ce") == "a b c d e"  # bidi controls: gone


def test_top_stories_in_full_the_rest_compact_or_linked() -> None:
    stories = tuple(story(i) for i in range(1, 9))
    rendered = render_alert_mail(alert(stories=stories), Reader("a@example.org"), MailOptions())
    assert rendered.html.count('class="story"') == 5
    assert rendered.html.count('class="story compact"') == 3
    many = tuple(story(i) for i in range(1, 120))
    linked = render_alert_mail(
        alert(stories=many),
        Reader("a@example.org"),
        MailOptions(base_url="https://mediamon.example.org"),
    )
    assert "14 more stories: https://mediamon.example.org/mediamon/?topic=taiwan&from=" in (
        linked.text
    )
    unlinked = render_alert_mail(alert(stories=many), Reader("a@example.org"), MailOptions())
    assert "14 more stories are not listed here." in unlinked.text


def test_the_more_stories_line_stands_apart() -> None:
    """The plain text ran "14 more stories: https://…" into "Statistics" without a blank
    line."""
    many = tuple(story(i) for i in range(1, 120))
    options = MailOptions(base_url="https://mediamon.example.org")
    for locale, heading in (("en", "Statistics"), ("zh-CN", "统计细节")):
        text = render_alert_mail(alert(stories=many), Reader("a@example.org", locale), options).text
        more = next(line for line in text.splitlines() if "https://mediamon.example.org/" in line)
        assert f"{more}\n\n{heading}\n" in text, text[-1500:]


def test_the_footer_names_whom_to_ask_not_a_file_on_the_server() -> None:
    """The footer told recipients to edit a file on the server (the topics file's path
    there), which they cannot: it names whom to ask and the topic instead."""
    options = MailOptions(unsubscribe_address="ops@x.org")
    for locale in ("en", "zh-CN"):
        text = render_alert_mail(alert(), Reader("a@example.org", locale), options).text
        footer = text.split("\n-- \n", 1)[1]
        assert "ops@x.org" in footer and "台湾" in footer and "key: taiwan" in footer, footer
        assert "topics.yaml" not in footer and "/" not in footer.split("mailto:")[0], footer


def test_an_unsubscribe_address_with_uri_delimiters_stays_one_address() -> None:
    """MEDIAMON_UNSUBSCRIBE_ADDRESS may hold "?", "&", "%", "#" or "," (a local part's
    atext): written as it was into the mailto: URI, "?" began the header fields (the
    mail went to "list" with the rest as a field) and "," named a second mailbox."""
    for address in ("list?x=1&y@example.org", "a%41#b@example.org", "a,b@example.org"):
        uri = unsubscribe_uri(MailOptions(unsubscribe_address=address), "台湾", "r@x.org")
        parts = urlsplit(uri)
        assert parts.scheme == "mailto" and unquote(parts.path) == address, uri
        assert "," not in parts.path and list(parse_qs(parts.query)) == ["subject"], uri


def test_ranking_rule() -> None:
    headline = story(1, title_hits=1)
    syndicated = story(2, other_outlets=("bbc", "dw"))
    talky = story(3, mentions=9)
    newest = story(4, published_at=END)
    ranked = rank_stories([newest, talky, syndicated, headline])
    assert [s.story_id for s in ranked] == [1, 2, 3, 4]


def test_right_to_left_names_and_titles_are_isolated_and_the_subject_stays_a_header() -> None:
    """An Arabic topic name and title with other text on their line: between FSI and PDI
    in the subject and plain text, in <bdi> in the HTML; the isolates the topic file or the
    article supplied are gone, and mediamon's own are balanced."""
    name = "\u2066أخبار عاجلة\u2069\u2069"  # a topic file's own isolates, one of them lone
    title = "\u2067عاجل\u202e: تايوان"
    stories = tuple(story(i, title=title if i == 7 else f"台湾新闻 {i}") for i in range(1, 9))
    mail = alert(topic_name=name, observed=10, stories=stories)
    rendered = render_alert_mail(mail, Reader("a@example.org", "en"), MailOptions())
    isolated = f"{FSI}أخبار عاجلة{PDI}"
    assert rendered.subject.startswith(f"[mediamon] {isolated}: 10 stories in 1 hour, about")
    assert rendered.text.startswith(f"Alert: {isolated}\n\n10 stories mentioning {isolated} in")
    assert f"- {FSI}عاجل : تايوان{PDI} · cna · 2024-04-17" in rendered.text
    assert "1. 台湾新闻 1\n" in rendered.text  # nothing to isolate: as before
    for text in (rendered.subject, rendered.text):
        assert text.count(FSI) == text.count(PDI) > 0 and balanced(text), text
    body = rendered.html.split("</title>", 1)[1]
    assert not BIDI.search(body)  # the HTML isolates with elements, not characters
    assert ">Alert: <bdi>أخبار عاجلة</bdi></div>" in body
    assert "10 stories mentioning <bdi>أخبار عاجلة</bdi> in the hour" in body
    assert f"<title>{html.escape(rendered.subject)}</title>" in rendered.html  # no elements
    # The hidden preheader (the top headline, not in the plain text) isolates it too.
    preheader, shown = re.match(r'(.*?<div class="preheader".*?</div>)(.*)', body).groups()
    assert "<bdi>عاجل : تايوان</bdi> (cna)" in preheader
    assert shown.count("<bdi>") == shown.count("</bdi>") == rendered.text.count(FSI)
    assert ">عاجل : تايوان</bdi></a>" in body
    # The header: RFC 2047 UTF-8 encoded words, read back exactly; no line over 78.
    message = build_message(rendered, "m@example.org", ["a@example.org"])
    raw = message.as_bytes()
    head = raw.split(b"\n\n", 1)[0].decode("ascii")
    assert all(len(line) <= 78 for line in head.splitlines())
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert parsed["Subject"] == rendered.subject


def test_a_digest_of_many_busy_topics_is_bounded_and_says_where_the_rest_are() -> None:
    """300 topics of 120 new stories each: before, every topic listed 105 of them, a
    20 MB digest (31,500 stories) that most mail servers refuse (and the run retried
    every hour). Now at most 50 a topic and 200 in all, in the topics' order; each topic
    counts the rest and links to its window on the mediamon page."""
    end = END
    sections = tuple(
        TopicStories(
            f"t{k}",
            f"话题{k}",
            tuple(story(k * 1000 + i, title=f"台湾新闻 {k} {i}") for i in range(120)),
        )
        for k in range(300)
    )
    digest = DigestMail("daily", end - timedelta(days=1), end, (), sections)
    options = MailOptions(base_url="https://mediamon.example.org")
    message = digest_message(digest, Reader("a@example.org", "en"), options, sender="m@x.org")
    assert len(message.as_bytes()) < 1_000_000
    rendered = render_digest_mail(digest, Reader("a@example.org", "en"), options)
    assert rendered.html.count('class="story') == DIGEST_STORIES == 200
    assert rendered.subject.startswith("[mediamon] Daily digest 2024-04-17: 36000 new stories")
    assert (
        "Listed here: 200 of the 36000, at most 50 per topic and 200 in all; each topic says"
        " where to see the rest." in rendered.text
    )
    text = rendered.text
    first, second = text.index("== 话题0: 120 new stories"), text.index("== 话题1: 120")
    assert text[first:second].count("\n- ") == DIGEST_TOPIC_STORIES - 5  # 5 in full
    assert "70 more stories: https://mediamon.example.org/mediamon/?topic=t0&from=" in text
    # After the budget: the topic's count and link only.
    after_budget = "== 话题4: 120 new stories\n120 more stories: https://mediamon.example.org/"
    assert after_budget in text
    assert "== 话题299: 120 new stories\n120 more stories: " in text
    # A small digest is listed whole, without the note.
    few = tuple(TopicStories(t.topic_key, t.topic_name, t.stories[:15]) for t in sections[:2])
    small = DigestMail("daily", end - timedelta(days=1), end, (), few)
    whole = render_digest_mail(small, Reader("a@example.org", "zh-CN"), options)
    assert whole.html.count('class="story') == 30 and "本邮件列出" not in whole.text
    assert "更多" not in whole.text and "另有" not in whole.text


def test_a_digest_of_thousands_of_topics_stays_under_gmails_clipping_size() -> None:
    """Gmail shows the first 102 kB of a mail's HTML and clips the rest, footer and
    unsubscribe link included. Each topic past the story budget had a section of its own
    (heading and link): 300 topics made 153 kB of HTML, 3,000 topics 945 kB. Now the HTML
    gives DIGEST_UNLISTED_SECTIONS of them a section and one paragraph names the next
    ones and counts the rest: the same size at 300 and 3,000 topics. The plain text
    still gives every topic its count and link. And topics of a few stories each had all
    200 listed stories in full, with their snippets (now the first DIGEST_FULL_STORIES
    are, the rest compact), the order rule under each (now once) and the footer named
    every topic (now DIGEST_NAMED_TOPICS): 158 kB at 300 topics, 89 kB now."""
    end = END
    options = MailOptions(base_url="https://mediamon.example.org")
    reader = Reader("a@example.org", "en")

    body = "两岸关系的新闻说，台湾海峡今天有新的情况，各方都在关注事态的发展和后续的影响。"
    snippet = make_snippet(TAIWAN, body)

    def digest(topics: int) -> DigestMail:
        sections = tuple(
            TopicStories(
                f"topic-{k}",
                f"话题名称{k}",
                tuple(
                    story(k * 1000 + i, title=f"台湾新闻标题比较长的一条 {k} {i}", snippet=snippet)
                    for i in range(3)
                ),
            )
            for k in range(topics)
        )
        return DigestMail("daily", end - timedelta(days=1), end, (), sections)

    sizes = {}
    for topics in (300, 3_000):
        rendered = render_digest_mail(digest(topics), reader, options)
        body = rendered.html.encode()
        sizes[topics] = len(body)
        assert len(body) < 100_000, (topics, len(body))  # before: 153 kB and 945 kB
        assert body.rfind(b"unsubscribe") > 0  # the footer, within what Gmail shows
        # At most the story budget, fewer as the HTML budget asks (97.9 kB listing all
        # 200 was within Gmail's 102 kB by 4 kB; DIGEST_HTML_BYTES keeps a margin).
        listed = rendered.html.count('class="story')
        assert 150 < listed <= DIGEST_STORIES, listed
        assert len(body) <= DIGEST_HTML_BYTES
        assert 0 < rendered.html.count('class="snippet"') <= DIGEST_FULL_STORIES
        assert rendered.html.count("Most relevant first") == 1  # said once
        foot = rendered.text.split("\n-- \n")[-1]  # names DIGEST_NAMED_TOPICS, counts the rest
        assert f"话题名称{DIGEST_NAMED_TOPICS - 1}" in foot
        assert f"话题名称{DIGEST_NAMED_TOPICS}" not in foot
        assert f"and {topics - DIGEST_NAMED_TOPICS} more" in foot
        listed_topics = -(-listed // 3)  # the last may list fewer than its 3
        sections = listed_topics + DIGEST_UNLISTED_SECTIONS
        assert rendered.html.count('class="topic"') == sections
        assert f"话题名称{sections}" in rendered.html  # the next, named
        unlisted = topics - sections
        shown = html.unescape(rendered.html)
        assert (
            f"{unlisted} more topics have new stories in this period ({3 * unlisted} new" in shown
        )
        paragraph = shown[shown.index(f"{unlisted} more topics") :]
        paragraph = paragraph[: paragraph.index("</p>")]
        named = re.findall(r"话题名称(\d+)", paragraph)
        assert named == [str(n) for n in range(sections, sections + len(named))]
        assert len(named) == min(unlisted, DIGEST_UNLISTED_NAMES)
        if unlisted > DIGEST_UNLISTED_NAMES:
            assert f"and {unlisted - DIGEST_UNLISTED_NAMES} more." in paragraph
        # The plain text: every topic, its count and its link.
        last = topics - 1
        assert (
            f"== 话题名称{last}: 3 new stories\n3 more stories: https://mediamon.example.org/"
            in (rendered.text)
        )
    assert sizes[3_000] < sizes[300] + 2_000, sizes  # before: 6 times


def test_no_mark_tower_in_any_part_of_a_mail() -> None:
    """Title, outlet, topic name and snippet of a "Zalgo" flood: at most four combining
    marks on any character, in the subject, the plain text and the HTML."""
    from tests.unit.alerts.test_render import ZALGO

    hostile = story(
        1,
        title=ZALGO,
        outlet="cna" + "\u0301" * 60,
        snippet=make_snippet(TAIWAN, ZALGO + "。台湾" + "\u0489" * 80),
        title_snippet=mark_hits(TAIWAN, ZALGO),
    )
    digest = DigestMail(
        "daily", END - timedelta(days=1), END, (),
        (TopicStories("taiwan", "台湾" + "\u0301" * 40, (hostile, story(2, title=ZALGO))),),
    )  # fmt: skip
    message = digest_message(digest, Reader("a@example.org"), MailOptions(), sender="m@x.org")
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    tower = re.compile("[\u0300-\u036f\u0489]{5,}")
    for part in (
        parsed["Subject"],
        parsed.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        parsed.get_body(("html",)).get_content(),  # type: ignore[union-attr]
    ):
        assert not tower.search(part), part[:300]


def test_the_plain_text_shows_only_the_links_the_html_makes() -> None:
    """A story whose URL is `javascript:…` or `data:text/html,…` was no link in the HTML
    but printed as written in the plain text, where mail clients make links of what
    looks like one (and a reader copies it): it shows the title and no URL there too."""
    hostile = (
        story(1, url="javascript:alert(document.cookie)"),
        *(story(i, url=f"https://example.org/{i}") for i in range(2, 7)),
        story(7, url="data:text/html,<script>alert(1)</script>"),
    )
    text = render_alert_mail(alert(stories=hostile), Reader("a@example.org"), MailOptions()).text
    assert "javascript:" not in text and "data:text" not in text
    assert "1. 台湾新闻 1\n" in text and "\n- 台湾新闻 7 · cna · " in text
    assert "   https://example.org/2\n" in text and "  https://example.org/6\n" in text


def test_the_more_stories_link_reads_as_words_in_the_html() -> None:
    """The "N more stories" link showed its URL, 190 characters of encoded query that
    took four lines at 390 px, under every topic of a long digest; the HTML shows words,
    the plain text keeps the URL."""
    many = tuple(story(i) for i in range(1, 120))
    options = MailOptions(base_url="https://mediamon.example.org")
    for locale, words in (
        ("en", "see them on the mediamon page"),
        ("zh-CN", "在 mediamon 页面查看"),
    ):
        rendered = render_alert_mail(alert(stories=many), Reader("a@example.org", locale), options)
        anchor = re.search(
            r'<a href="(https://mediamon\.example\.org/[^"]+)">([^<]*)</a>', rendered.html
        )
        assert anchor is not None and anchor.group(2) == words
        assert html.unescape(anchor.group(1)) in rendered.text


def test_a_window_whose_stories_are_gone_says_so() -> None:
    """An alert counted 6 stories; by the time it was mailed they had been merged into
    earlier stories (or no longer matched after a rules change). The mail said "The 0
    stories of the window" under "6 stories mentioning 台湾", with the order rule above an
    empty list; one story left read "The 1 stories of the window"."""
    for locale, none, gone in (
        ("en", "The 0 stories of the window", "Not listed: 6 of the stories counted when"),
        ("zh-CN", "本时段的 0 篇报道", "发出警报时统计的 6 篇中有 6 篇未列出"),
    ):
        empty = render_alert_mail(alert(observed=6), Reader("a@example.org", locale), MailOptions())
        assert gone in empty.text and gone in empty.html
        assert none in empty.text  # the count as it is now, explained by the line below
        rule = "Most relevant first" if locale == "en" else "排序："
        assert rule not in empty.text and rule not in empty.html  # nothing listed to order
    one = render_alert_mail(
        alert(observed=6, stories=(story(1),)), Reader("a@example.org"), MailOptions()
    )
    assert "The one story of the window" in one.text and "The 1 stories" not in one.text
    assert "Not listed: 5 of the stories counted when the alert was raised (6);" in one.text
    full = render_alert_mail(
        alert(observed=2, stories=(story(1), story(2))), Reader("a@example.org"), MailOptions()
    )
    assert "counted when the alert" not in full.text and "Most relevant first" in full.text


def test_outlook_for_windows_gets_a_column_of_fixed_width() -> None:
    """Outlook for Windows draws HTML with Word, which ignores ``max-width``: the 680 px
    column spread over the whole window. A table of that width, in conditional comments
    only Outlook reads, holds the column there; every other client skips the comments."""
    for rendered in (
        render_alert_mail(alert(stories=(story(1),)), Reader("a@example.org"), MailOptions()),
        render_digest_mail(
            DigestMail(
                "daily", END - timedelta(days=1), END, (), (TopicStories("t", "台湾", (story(1),)),)
            ),
            Reader("a@example.org"),
            MailOptions(),
        ),
    ):
        body = rendered.html.split("<body", 1)[1]
        opening = re.search(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", body)
        assert opening is not None and 'width="680"' in opening.group(1), body[:400]
        assert re.search(r"<table[^>]*role=\"presentation\"[^>]*><tr><td>$", opening.group(1))
        assert body.rstrip().endswith(
            "</div><!--[if mso]></td></tr></table><![endif]--></body></html>"
        )
        assert '<meta name="color-scheme" content="light dark">' in rendered.html


def test_a_story_carried_by_many_outlets_names_five_and_says_there_are_more() -> None:
    """One story, its copies in 12 other outlets: "+12 outlets (outlet00, …, outlet04)"
    read as if those five were the twelve; "…" follows them now. Still one story."""
    outlets = tuple(f"outlet{k:02d}" for k in range(12))
    many = story(1, other_outlets=outlets)
    for stories in ((many,), (many, *(story(i) for i in range(2, 8)))):  # full, compact
        rendered = render_alert_mail(alert(stories=stories), Reader("a@example.org"), MailOptions())
        named = "+12 outlets (outlet00, outlet01, outlet02, outlet03, outlet04, …)"
        assert rendered.text.count(named) == 1 and rendered.html.count(named) == 1
        assert "outlet05" not in rendered.text and rendered.html.count('data-story="1"') == 1
    few = render_alert_mail(
        alert(stories=(story(1, other_outlets=outlets[:5]),)),
        Reader("a@example.org"),
        MailOptions(),
    )
    assert "+5 outlets (outlet00, outlet01, outlet02, outlet03, outlet04)\n" in few.text


def test_an_alert_of_one_story_says_story() -> None:
    """A topic may set min_stories: 1, and a quiet hour may hold one story in all: the
    mail read "1 stories in 1 hour", "1 stories mentioning 台湾", "published 1 stories"
    and "at least 1 stories"."""
    rendered = render_alert_mail(
        alert(observed=1, total_stories=1), Reader("a@example.org"), MailOptions()
    )
    assert rendered.subject == "[mediamon] 台湾: 1 story in 1 hour, about 5× the usual 0.2"
    assert "\n1 story mentioning 台湾 in the hour to " in rendered.text
    assert "published 1 story in that time; 1 of them mention 台湾." in rendered.text
    assert "the chance of at least 1 story if" in rendered.text
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "1 stories" not in part
    chinese = render_alert_mail(alert(observed=1), Reader("a@example.org", "zh-CN"), MailOptions())
    assert chinese.subject == "[mediamon] 台湾：1 小时内 1 篇报道，约为平常 0.2 篇的 5 倍"
    assert "有 1 篇报道提到「台湾」" in chinese.text and "出现至少 1 篇报道的概率" in chinese.text
    assert "共发布 13 篇报道，其中 1 篇提到「台湾」" in chinese.text


def test_the_terms_line_names_exclusions_counts_the_rest_and_isolates() -> None:
    en, zh = Catalog.for_locale("en"), Catalog.for_locale("zh-CN")
    terms = tuple(f"词{i}" for i in range(MAX_TERMS_SHOWN + 3))
    assert terms_line(terms[:2], ("台湾海峡",), en) == "Terms: 词0 · 词1; excluding 台湾海峡"
    assert terms_line(terms[:2], ("台湾海峡",), zh) == "匹配词：词0 · 词1；排除：台湾海峡"
    assert terms_line(terms, (), en).endswith(f"词{MAX_TERMS_SHOWN - 1} and 3 more")
    assert terms_line(terms, (), zh).endswith(f"词{MAX_TERMS_SHOWN - 1} 及另外 3 个")
    assert terms_line((), ("x",), en) == ""
    assert terms_line(("عاجل",), (), en) == f"Terms: {FSI}عاجل{PDI}"


def test_the_zone_is_said_once_above_the_stories_not_after_each_time() -> None:
    """Every story's time, in full or compact, ended in "(UTC+08:00)": 30 identical
    suffixes in an alert of 30 stories, 200 in a digest. Now the list's heading says the
    zone once and each time goes without it; a time on the other side of a clock change
    (a weekly digest across the switch to summer time) keeps its own offset."""
    stories = tuple(story(i) for i in range(1, 31))
    rendered = render_alert_mail(
        alert(stories=stories, observed=30), Reader("a@example.org", "en"), MailOptions()
    )
    text = rendered.text
    assert "The 30 stories of the window (times UTC+08:00)" in text
    listed = text[text.index("The 30 stories") : text.index("Statistics")]
    assert listed.count("UTC+08:00") == 1  # the heading only (before: 31)
    assert "cna · 2024-04-17 09:59\n" in listed  # a story in full
    assert "- 台湾新闻 30 · cna · 2024-04-17 09:30  https://example.org/30" in listed
    assert html.unescape(rendered.html).count("UTC+08:00") == text.count("UTC+08:00")

    # New York: EST (UTC-05:00) until 2024-03-10 02:00, EDT (UTC-04:00) after.
    week_end = datetime(2024, 3, 11, 12, tzinfo=UTC)  # 08:00 EDT
    before = story(1, published_at=datetime(2024, 3, 9, 15, tzinfo=UTC))
    after = story(2, published_at=datetime(2024, 3, 10, 15, tzinfo=UTC))
    weekly = DigestMail(
        "weekly",
        week_end - timedelta(days=7),
        week_end,
        (),
        (TopicStories("taiwan", "台湾", (after, before)),),
    )
    reader = Reader("a@example.org", "en", "America/New_York")
    digest_text = render_digest_mail(weekly, reader, MailOptions()).text
    assert (
        "2 new stories from 2024-03-04 07:00 (UTC-05:00) to 2024-03-11 08:00"
        " (times UTC-04:00)" in digest_text
    )
    assert "cna · 2024-03-10 11:00\n" in digest_text  # summer time: the stated zone
    assert "cna · 2024-03-09 10:00 (UTC-05:00)\n" in digest_text  # winter time: its own


def test_hits_in_the_plain_text_are_marked_as_their_script_reads() -> None:
    """The plain text marked every hit 【like this】, English articles too: "the
    【Taiwan】 Strait" reads as a bracketed label. Now each hit is marked by the letters
    around it: 【】 in Chinese text (a Latin term inside a Chinese sentence too), *word*
    in Latin text (a Chinese term quoted in an English one keeps 【】); one digest
    holds both."""
    english = make_snippet(TAIWAN, "Tension rose in the Taiwan Strait on Monday.")
    chinese = make_snippet(TAIWAN, "美国官员称Taiwan问题敏感，台湾海峡局势紧张。")
    quoted = make_snippet(TAIWAN, "The word 台湾 is read Taiwan.")
    stories = (
        story(1, snippet=english),
        story(2, snippet=chinese),
        story(3, snippet=quoted),
    )
    text = render_alert_mail(
        alert(stories=stories, observed=3), Reader("a@example.org", "en"), MailOptions()
    ).text
    assert "   Tension rose in the *Taiwan* Strait on Monday.\n" in text
    assert "   美国官员称【Taiwan】问题敏感，【台湾】海峡局势紧张。\n" in text
    assert "   The word 【台湾】 is read *Taiwan*.\n" in text


def test_a_digest_of_long_titles_stays_under_gmails_clipping_size() -> None:
    """The story caps count stories, not bytes: 200 stories of 200-character Chinese
    titles (600 bytes of UTF-8 each, twice in a story: its text and its link's title
    once escaped), their outlets and links made a digest whose HTML passed Gmail's
    102 kB, which clips the rest, footer and unsubscribe link included. Now the HTML
    is held under DIGEST_HTML_BYTES: fewer stories are listed, each topic says how many
    more there are and links to them, and the note on top gives the new figures."""
    long_title = "台湾海峡局势" * 40  # 240 characters, cut at 200
    sections = tuple(
        TopicStories(
            f"topic-{k}",
            f"话题{k}",
            tuple(
                story(
                    k * 1000 + i,
                    title=f"{i} {long_title}",
                    url=f"https://news.example.org/{'路径' * 20}/{k}/{i}?{'q=1&' * 20}",
                    outlet="中央通讯社新闻频道" * 3,
                    other_outlets=("联合早报", "自由时报", "中国时报"),
                )
                for i in range(50)
            ),
        )
        for k in range(4)
    )
    digest = DigestMail("daily", END - timedelta(days=1), END, (), sections)
    options = MailOptions(base_url="https://mediamon.example.org")
    message = digest_message(digest, Reader("a@example.org", "zh-CN"), options, sender="m@x.org")
    html_part = message.get_body(("html",))
    assert html_part is not None
    body = html_part.get_content().encode("utf-8")
    assert len(body) <= DIGEST_HTML_BYTES < 102_400, len(body)  # before: 171 kB
    assert body.rfind("退订".encode()) > len(body) - 3_000  # the footer, at the end
    shown = html_part.get_content().count('class="story')
    assert 20 < shown < DIGEST_STORIES  # before: 200
    text = render_digest_mail(digest, Reader("a@example.org", "zh-CN"), options).text
    assert f"本邮件列出其中 {shown} 篇（共 200 篇）" in text
    # Each topic listing fewer than its 50 says how many more and links to them.
    cut_short = 0
    for k in range(4):
        start = text.index(f"== 话题{k}：")
        section = text[start : text.index("\n== ", start + 1) if k < 3 else len(text)]
        listed = section.count("\n- ") + len(re.findall(r"\n\d+\. ", section))
        if listed < 50:
            cut_short += 1
            link = f"https://mediamon.example.org/mediamon/?topic=topic-{k}&"
            assert f"另有 {50 - listed} 篇报道：{link}" in section, section[-400:]
    assert cut_short >= 2
