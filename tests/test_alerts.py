"""The pure pieces of alert mails: snippets, the message catalogue, times with offsets,
escaping of hostile article text, the chart PNG and the text table. (The whole mail, sent
and rendered in chromium: test_mail_render.py; digests: test_digests.py.)"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from mediamon.alerts import build_message, clean, safe_link
from mediamon.config import Settings, validate_timezone
from mediamon.mail_chart import (
    CHART_HEIGHT,
    CHART_WIDTH,
    SCALE,
    ChartData,
    day_table,
    format_day_table,
    render_chart,
)
from mediamon.mail_i18n import MESSAGES, Catalog, local_span, local_time, number
from mediamon.mail_render import (
    AlertMail,
    MailOptions,
    Reader,
    StoryItem,
    rank_stories,
    render_alert_mail,
)
from mediamon.snippets import MAX_SNIPPET_CHARS, make_snippet
from mediamon.topics import parse_rule

END = datetime(2024, 4, 17, 2, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
SHANGHAI = ZoneInfo("Asia/Shanghai")
TAIWAN = [parse_rule("台湾"), parse_rule("Taiwan")]


# --- snippets ---------------------------------------------------------------------------


def test_snippet_marks_hits_in_the_text_as_published() -> None:
    snippet = make_snippet(TAIWAN, "據報導，臺灣海峽今天局勢緊張，多方關注。另一件事。")
    assert snippet is not None
    assert snippet.hits == ("臺灣",)  # the reader's characters, found through folding
    assert (
        snippet.text == "據報導，臺灣海峽今天局勢緊張，多方關注。另一件事。"
    )  # short: two sentences
    full_width = make_snippet(TAIWAN, "Ｎｅｗｓ：ＴＡＩＷＡＮ ｓａｙｓ ｓｏ.")
    assert full_width is not None and full_width.hits == ("ＴＡＩＷＡＮ",)
    assert make_snippet(TAIWAN, "Taiwanese food is popular.") is None  # a longer word
    assert make_snippet(TAIWAN, "") is None and make_snippet(TAIWAN, None) is None


def test_snippet_is_the_sentence_of_the_first_hit_cut_around_it() -> None:
    text = (
        "第一句与此无关。"
        + "很长的背景介绍" * 30
        + "，台湾方面今天表示关注"
        + "后续内容" * 30
        + "。末句提到台湾。"
    )
    snippet = make_snippet(TAIWAN, text)
    assert snippet is not None
    assert len(snippet.text) <= MAX_SNIPPET_CHARS
    assert snippet.leading and snippet.trailing  # cut inside its sentence: shown with …
    assert snippet.hits == ("台湾",) and "第一句" not in snippet.text and "末句" not in snippet.text
    near = make_snippet([parse_rule("限制 NEAR/8 出口")], "美方对中国限制高科技出口及打压。")
    assert near is not None and near.hits == ("限制高科技出口",)


# --- catalogue and times ----------------------------------------------------------------


def test_every_message_exists_in_every_locale_with_the_same_placeholders() -> None:
    import string

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english = MESSAGES["en"]
    for locale, messages in MESSAGES.items():
        assert messages.keys() == english.keys(), locale
        for key, text in messages.items():
            assert fields(text) <= fields(english[key]) | {"weekday"}, (locale, key)


def test_times_carry_their_offset() -> None:
    assert local_time(END, SHANGHAI) == "2024-04-17 10:00 (UTC+08:00)"
    assert local_time(END, ZoneInfo("America/St_Johns")) == "2024-04-16 23:30 (UTC-02:30)"
    assert (
        local_span(END - timedelta(hours=1), END, SHANGHAI) == "2024-04-17 09:00–10:00 (UTC+08:00)"
    )
    assert [number(v) for v in (0.2, 0.04, 2.34, 45.2, 0)] == ["0.2", "0.04", "2.3", "45", "0"]


def test_display_timezone_is_validated() -> None:
    assert Settings.from_env({}).timezone == "Asia/Shanghai"
    assert Settings.from_env({"MEDIAMON_TIMEZONE": "Europe/Paris"}).timezone == "Europe/Paris"
    with pytest.raises(ValueError, match="MEDIAMON_TIMEZONE: 'CST8' is not an IANA time zone"):
        validate_timezone("CST8")
    with pytest.raises(ValueError, match="MEDIAMON_TIMEZONE: 'Mars/Base' is not an IANA"):
        Settings.from_env({"MEDIAMON_TIMEZONE": "Mars/Base"})


# --- the alert mail, pure -----------------------------------------------------------------

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
        title_snippet=make_snippet(TAIWAN, EVIL),
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
    assert 'href="https://example.org/a?x=1&amp;y=&quot;&gt;&lt;script&gt;"' in page
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


def test_ranking_rule() -> None:
    headline = story(1, title_hits=1)
    syndicated = story(2, other_outlets=("bbc", "dw"))
    talky = story(3, mentions=9)
    newest = story(4, published_at=END)
    ranked = rank_stories([newest, talky, syndicated, headline])
    assert [s.story_id for s in ranked] == [1, 2, 3, 4]


@pytest.mark.parametrize("url", ["HTTP://example.org/", "https://www.rfi.fr/cn/a"])
def test_http_links(url: str) -> None:
    assert safe_link(url) == url


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>", "//example.org/a", "https:///nohost",
     "https://exa mple.org/", "https://example.org/\u202eexe", ""],
)  # fmt: skip
def test_no_other_links(url: str) -> None:
    assert safe_link(url) is None


# --- chart ------------------------------------------------------------------------------


def chart(counts: tuple[int, ...]) -> ChartData:
    start = END - timedelta(hours=len(counts))
    return ChartData(
        start=start,
        counts=counts,
        usual_low=tuple(0.0 for _ in counts),
        usual_high=tuple(2.0 for _ in counts),
        usual_mean=tuple(0.5 for _ in counts),
        window_start=END - timedelta(hours=1),
        window_end=END,
        observed=counts[-1],
        expected=0.2,
        baseline_weeks=4,
    )


def test_chart_png_is_double_size_with_the_window_in_red() -> None:
    data = chart(tuple(1 if i % 5 == 0 else 0 for i in range(167)) + (9,))
    png = render_chart(data, SHANGHAI, Catalog.for_locale("zh-CN"))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (CHART_WIDTH * SCALE, CHART_HEIGHT * SCALE)
    width, height = image.size

    def reddish(x: int, y: int) -> bool:
        r, g, b = image.getpixel((x, y))  # type: ignore[misc]
        return bool(r > 150 and g < 90 and b < 90)

    # The alert bar: red pixels in the rightmost tenth of the plot, none on the left.
    right = sum(reddish(x, y) for x in range(int(width * 0.9), width) for y in range(height))
    left = sum(
        reddish(x, y) for x in range(0, int(width * 0.5)) for y in range(height // 4, height)
    )
    assert right > 200 and left == 0


def test_day_table_matches_the_chart() -> None:
    data = chart(tuple(1 for _ in range(167)) + (9,))
    rows = day_table(data, SHANGHAI)
    assert sum(r.stories for r in rows) == 167 + 9
    assert rows[-1].day.isoformat() == "2024-04-17" and rows[-1].stories == 9 + 9  # 00:00–10:00
    assert rows[-1].peak_stories == 9 and rows[-1].peak_hour is not None
    assert rows[-1].peak_hour.hour == 9
    lines = format_day_table(rows, Catalog.for_locale("en"))
    assert lines[-1].startswith("2024-04-17 Wed") and "09:00 (9)" in lines[-1]
