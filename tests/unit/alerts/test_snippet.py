"""Snippets: the sentence around a topic's first hit, cut from the text as published."""

from __future__ import annotations

from mediamon.alerts.render import joins_previous
from mediamon.alerts.snippet import MAX_SNIPPET_CHARS, make_snippet, mark_hits
from mediamon.topics.rules import parse_rule

TAIWAN = [parse_rule("台湾"), parse_rule("Taiwan")]


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


def test_a_title_is_marked_whole() -> None:
    title = "Markets calm. Then Taiwan said so; TAIWAN again."
    marked = mark_hits(TAIWAN, title)
    assert marked is not None and marked.text == title  # never cut at a sentence
    assert marked.hits == ("Taiwan", "TAIWAN")
    assert mark_hits(TAIWAN, "Markets calm.") is None


def test_half_width_kana_with_voiced_marks_are_hits_as_the_matcher_reads_them() -> None:
    """ﾃﾞｰﾀ folds to データ (NFKC joins ﾃ and ﾞ into デ), so the article matches a topic
    of データ; folded a character at a time for the snippet it was テ and a combining
    voiced mark, no hit: the story was mailed without its snippet and highlight."""
    from mediamon.text import fold

    data = [parse_rule("データ")]
    text = "新しいﾃﾞｰﾀが公開された。ﾊﾟｽﾜｰﾄﾞも。"
    assert data[0].spans(fold(text))
    snippet = make_snippet(data, text)
    assert snippet is not None and snippet.hits == ("ﾃﾞｰﾀ",)
    # The whole cluster is the hit, voiced mark included, wherever the hit ends.
    password = make_snippet([parse_rule("パスワード")], text)
    assert password is not None and password.hits == ("ﾊﾟｽﾜｰﾄﾞ",)


def test_a_snippet_cut_splits_neither_a_character_nor_a_word() -> None:
    """A snippet was cut at 160 code points wherever they fell: an emoji family ended in
    half a family and a dangling joiner, an "é" written as e and a combining accent lost
    its accent, a Latin sentence ended "word wor…". Text without spaces is still cut
    where it is, with its "…"."""
    family = "👨\u200d👩\u200d👧\u200d👦"
    cases = {
        "family": "Taiwan " + "x" * 100 + family * 30,
        "families": "Taiwan" + family * 60,
        "accents": "Taiwan " + "e\u0301" * 200,
        "flags": "Taiwan" + "🇹🇼" * 100,
        "devanagari": "Taiwan " + "कि" * 200,  # a consonant and its vowel sign
        "lead": "e\u0301" * 200 + " Taiwan " + "e\u0301" * 200,
    }
    for name, text in cases.items():
        snippet = make_snippet(TAIWAN, text)
        assert snippet is not None and snippet.trailing, name
        shown = snippet.text
        assert len(shown) <= MAX_SNIPPET_CHARS, name
        end = text.index(shown) + len(shown)
        start = text.index(shown)
        assert not joins_previous(text, end), (name, shown[-6:])  # the last one whole
        assert start == 0 or not joins_previous(text, start), (name, shown[:6])
    flags = make_snippet(TAIWAN, cases["flags"])
    assert flags is not None and (len(flags.text) - len("Taiwan")) % 2 == 0
    words = make_snippet(TAIWAN, "Taiwan said " + "something " * 40)
    assert words is not None and words.text.endswith("something"), words.text[-12:]
    leading = make_snippet(TAIWAN, "Before " * 40 + "and then Taiwan said " + "more " * 40)
    assert leading is not None and leading.leading
    assert leading.text.startswith(("Before", "and", "then")), leading.text[:12]
    chinese = make_snippet(TAIWAN, "台湾" + "中华民国国防部今日宣布" * 30)
    assert chinese is not None and chinese.trailing and len(chinese.text) == MAX_SNIPPET_CHARS


def test_a_semicolon_does_not_end_the_snippets_sentence() -> None:
    """ ";" and "；" join clauses of one sentence (and stand in entities a feed escaped
    twice): the snippet was "台湾 &amp;amp;" and the first clause of a Chinese sentence."""
    taiwan = [parse_rule("台湾")]
    entity = "台湾 &amp;amp; 美国官员周二在华盛顿举行第三轮会谈，双方讨论了芯片出口管制。"
    snippet = make_snippet(taiwan, entity + "另一句。")
    assert snippet is not None and snippet.text == entity
    clauses = (
        "他们建议，台湾海峡两岸应恢复和扩大各层级交流，减少误判风险；国际社会也应发挥建设性作用。"
    )
    snippet = make_snippet(taiwan, clauses + "另一句。")
    assert snippet is not None and snippet.text == clauses
    listed = "Taiwan; Japan; Korea; the Philippines and Vietnam held talks on trade."
    snippet = make_snippet([parse_rule("taiwan")], listed)
    assert snippet is not None and snippet.text == listed
