"""Pure normalization: text, folding, URLs, times, duplicate keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mediamon.ingest import normalize
from mediamon.settings import DEMO_DIR


def test_clean_text_tidies_whitespace_and_invisible_characters() -> None:
    raw = "  第一段\u200b  文字\t\t结束  \r\n\n\n\n第二段\x07  "
    assert normalize.clean_text(raw) == "第一段 文字 结束\n\n第二段"


def test_clean_text_keeps_published_punctuation() -> None:
    # The text as published keeps full-width punctuation; only the matching form folds it.
    assert normalize.clean_text("台湾，２０２４年") == "台湾，２０２４年"


def test_fold_maps_traditional_and_full_width_to_one_form() -> None:
    assert normalize.fold("臺灣") == normalize.fold("台灣") == normalize.fold("台湾") == "台湾"
    assert normalize.fold("ＡＩ伺服器　２０２４") == "ai伺服器 2024"
    assert normalize.fold("Export Controls") == "export controls"


def test_canonical_url_drops_tracking_fragment_and_default_port() -> None:
    url = "HTTPS://News.Example.COM:443/a/b.html?utm_source=rss&id=7&fbclid=x&b=2#top"
    assert normalize.canonical_url(url) == "https://news.example.com/a/b.html?b=2&id=7"


def test_canonical_url_drops_configured_params_and_keeps_other_ports() -> None:
    url = "http://127.0.0.1:8080/a?session=1&page=2"
    assert normalize.canonical_url(url, ["session"]) == "http://127.0.0.1:8080/a?page=2"
    assert normalize.canonical_url("http://example.com") == "http://example.com/"


# Keys of stored articles, as canonical_url wrote them before hosts and dot segments were
# normalized: they must not change, or a story seen again would be stored twice (those
# whose path's spelling changed were re-keyed by migration 0019: see test_load).
STORED_KEYS = {
    "https://News.Example.com:443/a/b.html?utm_source=x&b=2&a=1#frag": (
        "https://news.example.com/a/b.html?a=1&b=2"
    ),
    "http://[::1]:8080/a": "http://[::1]:8080/a",
    "http://[2001:DB8::1]/x?kw=1": "http://[2001:db8::1]/x?kw=1",
    "http://www.example.com.cn/s?kw=%B1%B1%BE%A9": "http://www.example.com.cn/s?kw=%B1%B1%BE%A9",
    "https://example.com": "https://example.com/",
    "http://example.com:8080/~a/%E5%8C%97?q=%E5%8C%97%E4%BA%AC&x": (
        "http://example.com:8080/~a/%E5%8C%97?q=%E5%8C%97%E4%BA%AC&x="
    ),
    "https://a_b.example.com/.well-known/x..y/.z": "https://a_b.example.com/.well-known/x..y/.z",
    "https://example.com/a/%2E%2E/b": "https://example.com/a/%2E%2E/b",
}


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["/新闻", "/%E6%96%B0%E9%97%BB", "/%e6%96%b0%e9%97%bb", "/%E6%96%b0%e9%97%BB"],
         "/%E6%96%B0%E9%97%BB"),
        (["/~a/Ab-_", "/%7Ea/%41%62%2D%5F", "/%7ea/A%62-_"], "/~a/Ab-_"),  # unreserved
        (["/a b|{}", "/a%20b%7C%7B%7D", "/a%20b%7c{%7d"], "/a%20b%7C%7B%7D"),
        (["/a/%2e%2e/b", "/a/%2E%2E/b"], "/a/%2E%2E/b"),  # dots stay encoded
        (["/100%", "/100%25"], "/100%25"),  # a percent sign that starts no encoding
        (["/%2F/x", "/%2f/x"], "/%2F/x"),  # an encoded slash is no segment break
    ],
)  # fmt: skip
def test_one_path_spelled_several_ways_is_one_key(spellings: list[str], key: str) -> None:
    """RFC 3986 §6.2.2: before, /新闻, /%E6%96%B0%E9%97%BB and /%e6%96%b0%e9%97%bb were
    three keys of one page, which could be stored three times. A literal "." and "%2E"
    stay apart: dots are not decoded (a decoded "%2E%2E" would be a dot segment)."""
    keys = {normalize.canonical_url(f"https://example.com{path}") for path in spellings}
    assert keys == {f"https://example.com{key}"}
    assert normalize.canonical_url(f"https://example.com{key}") == f"https://example.com{key}"


def test_keys_of_ordinary_urls_stay_as_they_were() -> None:
    assert {url: normalize.canonical_url(url) for url in STORED_KEYS} == STORED_KEYS


@pytest.mark.parametrize(
    "url",
    [
        "http://a.com/a/../b",
        "http://a.com/a/./b/../c",
        "http://a.com/../../b",
        "http://a.com/a/..",
        "http://a.com/a/.",
        "http://a.com/a/b/..?x=1",
        "http://a.com//x/../y",
        "http://[::1]:8080/a/../b",
        "http://a.com/北京/../x",
        "http://a.com/北京/新闻 x",  # before: the key kept the characters as written
        "http://Bücher.de/x",
        "http://xn--bcher-kva.de/x",
    ],
)
def test_canonical_urls_are_what_the_fetcher_requests(url: str) -> None:
    """Dot segments and non-ASCII hosts as requests (urllib3) sends them: percent-encoded
    dots stay (urllib3 decodes %2e after removing dot segments; see STORED_KEYS)."""
    import requests

    assert normalize.canonical_url(url) == requests.Request("GET", url).prepare().url


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a #top",  # before: "https://example.com/a " once, then "/a"
        "https://example.com/a ?x=1",
        "HTTPS://Example.COM:443/a/../b?utm_source=x&b=2#f",
        "http://a.com/北京/../x",
        "http://[::1]:8080/a",
    ],
)
def test_canonical_urls_are_canonical_again(url: str) -> None:
    once = normalize.canonical_url(url)
    assert normalize.canonical_url(once) == once


def test_full_width_hosts_are_mapped_as_the_ssrf_guard_resolves_them() -> None:
    """UTS 46 maps full-width letters and dots (ａｂｃ．com) to abc.com: the name netguard
    resolves and vets. requests itself refuses such a URL (urllib3's IDNA encoding has
    no UTS 46 mapping), so the page is not fetched, but its key is the ASCII spelling's."""
    from mediamon.ingest.netguard import check_url_syntax

    assert normalize.canonical_url("http://ａｂｃ．com/a/../b") == "http://abc.com/b"
    assert normalize.canonical_url("HTTP://ＡＢＣ．ｃｏｍ．:8080/b") == "http://abc.com:8080/b"
    assert check_url_syntax("http://ａｂｃ．com/b")[1] == "abc.com"


def test_times_are_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert normalize.to_utc(datetime(2024, 4, 3, 4, 45, 1, tzinfo=beijing)) == datetime(
        2024, 4, 2, 20, 45, 1, tzinfo=UTC
    )
    assert normalize.to_utc(datetime(2024, 4, 2, 20, 45, 1)).tzinfo is UTC
    assert normalize.from_epoch_ms(1712090701000) == datetime(2024, 4, 2, 20, 45, 1, tzinfo=UTC)
    assert normalize.from_epoch_ms(9999999999999).microsecond == 999_000  # exact


def test_primary_language() -> None:
    assert normalize.primary_language("zh-CN") == "zh"
    assert normalize.primary_language("en_US") == "en"
    assert normalize.primary_language("") is None
    assert normalize.primary_language("not a tag!") is None


def test_detect_language_needs_enough_text() -> None:
    assert (
        normalize.detect_language(
            "美国总统拜登与中国国家主席习近平周二通话，讨论台湾问题和出口限制。"
        )
        == "zh"
    )
    assert (
        normalize.detect_language("The president spoke with his counterpart about trade.") == "en"
    )
    assert normalize.detect_language("ok") is None
    # enough text counts over the whole of it, not just the sample the model reads
    late = "—" * 2500 + " 美国总统拜登与中国国家主席习近平周二通话，讨论台湾问题和出口限制。"
    assert normalize.detect_language(late) is not None


def test_declared_language_counts_only_where_the_script_does_not_decide() -> None:
    chinese = "美国总统拜登与中国国家主席习近平周二通话，讨论台湾问题和出口限制。"
    assert normalize.detect_language(chinese, declared="en") == "zh"  # a template's "en"
    english = "The president spoke with his counterpart about trade."
    assert normalize.detect_language(english, declared="pt-BR") == "pt"
    assert normalize.detect_language(english, declared="zh-CN") == "en"  # ruled out
    assert normalize.detect_language(english, declared="not a tag!") == "en"


def content_hash(text: str) -> bytes:
    return normalize.duplicate_keys(normalize.fold(text))[0]


def sentence_hashes(text: str) -> tuple[int, ...]:
    return normalize.duplicate_keys(normalize.fold(text))[1]


def test_content_hash_ignores_spacing_and_punctuation_only() -> None:
    a = content_hash("台湾海峡，局势紧张。")
    b = content_hash("臺灣海峽 局勢緊張")
    c = content_hash("台湾海峡局势缓和")
    assert a == b
    assert a != c


SEED = DEMO_DIR / "archive" / "000_206a002612bb7ab9.txt"
# The seed's paragraphs as plain text: a real article, varied enough for hashing.
STORY = "\n".join(
    re.sub(r"<[^>]+>", "", p).strip()
    for p in SEED.read_text("utf-8").split("------", 1)[1].split("</p>")
    if len(re.sub(r"<[^>]+>", "", p).strip()) > 20
)


@pytest.mark.parametrize(
    "text",
    [STORY, "Mr. Smith went.\nHe said: “Yes!”  他说。对吗？好;ok?No!\n\n end. ", "", "。。。"],
)
def test_the_exact_key_is_the_text_without_spaces_or_punctuation(text: str) -> None:
    """Hashing the sentences' compacts joined is hashing the whole text compacted."""
    import hashlib

    folded = normalize.fold(text)
    expected = hashlib.sha256(normalize.NOT_WORD.sub("", folded).encode("utf-8")).digest()
    assert normalize.duplicate_keys(folded)[0] == expected


def test_sentence_hashes_survive_bylines_footers_and_new_paragraph_breaks() -> None:
    copy = (
        "来源：华文观察\n"
        + STORY.replace("\n", "")
        + "\n本稿件由华文观察授权转发，转载请注明出处。"
    )
    original = sentence_hashes(STORY)
    copied = sentence_hashes(copy)
    assert len(original) >= 20
    assert set(original) <= set(copied)
    assert all(-(2**63) <= h < 2**63 for h in original)  # fits PostgreSQL bigint
    other = sentence_hashes("完全不同的一篇文章，讲的是经济数据与消费回暖。")
    assert not set(other) & set(original)


@pytest.mark.parametrize(
    ("body", "title", "expected"),
    [
        # the headline as the first line: it goes, whatever its spacing, width or script
        ("台海局势再起波澜\n正文第一段。", "台海局势再起波澜", "正文第一段。"),
        ("臺海局勢再起波瀾\n正文第一段。", "台海局势 再起波澜", "正文第一段。"),
        ("Port Strike Ends\n\nDock workers returned.", "port strike ends",
         "Dock workers returned."),
        # the title has the site's name after the headline
        ("Port strike ends\nDock workers returned.", "Port strike ends - Example News",
         "Dock workers returned."),
        # a short first line found inside a long title may be the article's own
        ("快讯\n正文第一段。", "快讯：台海局势再起波澜", "快讯\n正文第一段。"),
        # a first line that only contains the title is more than a headline
        ("原标题：台海局势再起波澜\n正文。", "台海局势再起波澜",
         "原标题：台海局势再起波澜\n正文。"),
        # a brief that is its own headline stays whole; no title, nothing to compare
        ("台海局势再起波澜", "台海局势再起波澜", "台海局势再起波澜"),
        ("台海局势再起波澜\n", "台海局势再起波澜", "台海局势再起波澜\n"),
        ("台海局势再起波澜\n正文。", None, "台海局势再起波澜\n正文。"),
        ("正文第一段。\n台海局势再起波澜", "台海局势再起波澜", "正文第一段。\n台海局势再起波澜"),
    ],
)  # fmt: skip
def test_a_first_line_repeating_the_title_is_dropped(
    body: str, title: str | None, expected: str
) -> None:
    assert normalize.without_headline(body, title) == expected


def test_a_huge_first_line_is_not_folded_to_compare_it() -> None:
    body = "台" * 200_000 + "\n正文。"
    assert normalize.without_headline(body, "台" * 8) == body


@pytest.mark.parametrize(
    ("url", "userinfo", "rest"),
    [
        ("http://u:pw@h.example/p", "u:pw", "http://h.example/p"),
        ("https://a@b:pw@h.example:81/p?q=@x#@y", "a@b:pw", "https://h.example:81/p?q=@x#@y"),
        ("http://h.example/p?next=http://u:pw@x", "", "http://h.example/p?next=http://u:pw@x"),
        ("http://@h.example", "", "http://h.example"),
        ("http://[::1]@-]/p", "[::1]", "http://-]/p"),  # urlsplit refuses what is left
        ("/relative@not-userinfo", "", "/relative@not-userinfo"),
    ],
)
def test_userinfo_is_found_as_urlsplit_finds_it_without_raising(
    url: str, userinfo: str, rest: str
) -> None:
    assert normalize.userinfo_split(url) == (userinfo, rest)
    assert normalize.without_userinfo(url) == rest
