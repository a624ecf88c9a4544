"""The safe ground of every mail: only http(s) URLs become links; no bidi control but the
isolates mediamon puts around a right-to-left name."""

from __future__ import annotations

import re

import pytest

from mediamon.alerts.render import (
    FSI,
    PDI,
    Rendered,
    build_message,
    clean,
    clean_composed,
    esc_composed,
    isolate,
    message_id_domain,
    safe_link,
)


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


ARABIC = "أخبار عاجلة"  # "breaking news"
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def balanced(text: str) -> bool:
    """Each FSI closed by a PDI before the next one opens; no other bidi control."""
    return re.fullmatch(
        f"[^{FSI}{PDI}]*({FSI}[^{FSI}{PDI}]*{PDI}[^{FSI}{PDI}]*)*", text
    ) is not None and not re.search("[\u202a-\u202e\u2066\u2067]", text)


def test_a_name_supplies_no_bidi_control_but_mediamon_isolates_a_right_to_left_one() -> None:
    # A topic file's name with its own isolates, an override and a lone pop.
    hostile = f"\u2069{ARABIC}\u2068 \u202etxt.exe\u2066"
    assert clean(f"{FSI}{ARABIC}{PDI}") == ARABIC  # data-supplied isolates: still stripped
    assert isolate(hostile) == f"{FSI}{ARABIC} txt.exe{PDI}"
    assert isolate("台湾 Taiwan 2024") == "台湾 Taiwan 2024"  # nothing to pull: left as it is
    assert isolate("\u2067") == isolate("") == ""
    line = f"[mediamon] {isolate(hostile)}: 10 stories \u2069in\u2068 1 hour\u202e"
    assert (
        clean_composed(line, 250) == f"[mediamon] {FSI}{ARABIC} txt.exe{PDI}: 10 stories in 1 hour"
    )
    # Cut inside a name: closed, so nothing after it (here "…") is pulled into it.
    for limit in range(5, 40):
        cut = clean_composed(f"ab {isolate(ARABIC * 5)}: 10 new stories", limit)
        assert len(cut) <= limit and cut.endswith("…") and balanced(cut), (limit, cut)
    html_line = esc_composed(f"<{isolate(ARABIC)}> & {FSI}x", 100)
    assert html_line == f"&lt;<bdi>{ARABIC}</bdi>&gt; &amp; x"
    assert not BIDI.search(html_line)


ZALGO = "台湾 Z" + "\u0336\u0353\u0330\u0349\u0300\u0301\u0302\u0303\u0304\u0305" * 20 + "algo"


def test_mark_floods_and_blank_fillers_do_not_reach_mail() -> None:
    """A "Zalgo" title (200 combining marks on one letter) drew a tower of marks over the
    lines above and below it in the mail, and a title of Hangul fillers (U+3164) showed as
    four blank lines at 390 px: neither is text anyone needs to read."""
    assert clean(ZALGO) == "台湾 Z\u0336\u0353\u0330\u0349algo"
    assert clean("台湾" + "\u3164" * 100 + "|x" + "\u2800" * 50 + "y") == "台湾 |x y"
    # What languages need stays: Vietnamese, Hindi, Thai, Hebrew with points, Arabic.
    for text in ("Tiếng Việt Đài Loan", "ताइवान हिन्दी", "ไต้หวั่น", "טַיְוָאן", "تَايْوَان"):
        assert clean(text) == text
    assert esc_composed(isolate(ZALGO), 200).count("\u0300") == 0


def test_message_ids_take_the_sender_domain_in_ascii() -> None:
    """Message-IDs ended in `@mediamon.invalid`, whatever the From address."""
    import socket

    assert message_id_domain("mediamon <alerts@News.Example.org>") == "news.example.org"
    assert message_id_domain("m@例子.中国") == "xn--fsqu00a.xn--fiqs8s"
    host = socket.getfqdn().lower()
    fallback = host if "." in host or host == "localhost" else "localhost"
    for unusable in ("mediamon", "m@[127.0.0.1]", "", "m@-bad-.org"):
        assert message_id_domain(unusable) in (fallback, host, "localhost"), unusable
        assert "invalid" not in message_id_domain(unusable)
    message = build_message(Rendered("s", "t\n", "<p>h</p>"), "m <m@x.example>", ["a@b.org"])
    assert str(message["Message-ID"]).endswith("@x.example>")


def test_a_title_after_900_blanks_keeps_its_words_and_a_huge_one_is_read_in_part() -> None:
    """Cut before its blanks were squeezed, a title of 900 blanks and then words was
    empty ("(no title)"). Only the first CLEAN_SCAN_CHARS of a huge value are read."""
    from mediamon.alerts import render

    assert clean(" \t\n\u3164" * 225 + "台湾海峡 新闻") == "台湾海峡 新闻"
    assert clean("a" + "\u0301" * 900 + "b") == "a" + "\u0301" * 4 + "b"
    assert clean(" " * (render.CLEAN_SCAN_CHARS + 10) + "late") == ""
    assert clean("x " * 10_000_000, 20) == "x " * 9 + "x…"


def test_one_budget_of_renderings_for_alerts_and_digests() -> None:
    """MAX_BUDGET_ROUNDS was defined in compose and again in digest_mail: one place."""
    import inspect

    from mediamon.alerts import compose, digest_mail

    assert digest_mail.MAX_BUDGET_ROUNDS is compose.MAX_BUDGET_ROUNDS
    assert "MAX_BUDGET_ROUNDS =" not in inspect.getsource(digest_mail)
