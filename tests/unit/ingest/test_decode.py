"""Decoding before extraction: declared charsets, wider encodings, mislabels, BOMs."""

from __future__ import annotations

import codecs

import pytest

from mediamon.ingest.decode import DETECT_SAMPLE_BYTES, canonical_encoding, decode_html

TEXT = "台湾海峡局势紧张，出口管制范围扩大。朱镕基与王喆出席会议。"


def page(charset_meta: str, body: str) -> str:
    return (
        f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset_meta}">'
        f"</head><body><p>{body}</p></body></html>"
    )


def test_labels_widen_to_supersets() -> None:
    assert canonical_encoding("GB2312") == "gb18030"
    assert canonical_encoding("gbk") == "gb18030"
    assert canonical_encoding("x-gbk") == "gb18030"
    assert canonical_encoding("BIG5") == "big5hkscs"
    assert canonical_encoding("iso-8859-1") == "cp1252"
    assert canonical_encoding("no-such-charset") is None


def test_gb2312_label_with_gbk_only_characters() -> None:
    # 镕 and 喆 are not in GB2312; pages labelled gb2312 use them all the time.
    raw = page("gb2312", TEXT).encode("gbk")
    decoded = decode_html(raw)
    assert TEXT in decoded.text
    assert decoded.encoding == "gb18030"
    assert decoded.replaced == 0


def test_charset_only_in_meta_and_http_header_wins() -> None:
    raw = page("utf-8", TEXT).encode("gbk")  # meta lies, header is right
    assert TEXT in decode_html(raw, http_charset="GBK").text


def test_utf8_mislabelled_as_gbk() -> None:
    raw = page("gbk", TEXT).encode("utf-8")
    decoded = decode_html(raw, http_charset="gbk")
    assert TEXT in decoded.text
    assert decoded.encoding == "utf-8"


def test_gbk_mislabelled_as_utf8() -> None:
    raw = page("utf-8", TEXT).encode("gbk")
    decoded = decode_html(raw, http_charset="utf-8")
    assert TEXT in decoded.text


def test_big5_hkscs() -> None:
    text = "臺灣與香港貿易穩步回升，啲嘢"  # 啲 is an HKSCS character
    raw = page("big5", text).encode("big5hkscs")
    decoded = decode_html(raw)
    assert text in decoded.text
    assert decoded.replaced == 0


def test_byte_order_marks() -> None:
    assert decode_html(codecs.BOM_UTF8 + TEXT.encode("utf-8")).text == TEXT
    assert decode_html(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")).text == TEXT


def test_xml_declaration() -> None:
    raw = f'<?xml version="1.0" encoding="gb2312"?><rss><title>{TEXT}</title></rss>'.encode("gbk")
    assert TEXT in decode_html(raw).text


def test_undeclared_gbk_is_detected() -> None:
    body = (TEXT * 20).encode("gbk")
    assert TEXT in decode_html(b"<html><body><p>" + body + b"</p></body></html>").text


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (TEXT * 20, "gbk"),
        ("美國商務部週二宣佈對出口管制清單作出調整，臺灣問題再度成為焦點。" * 20, "big5"),
        ("日本政府は輸出管理の対象リストを見直すと発表した。台湾問題が焦点だ。" * 20, "shift_jis"),
    ],
)
def test_undeclared_charset_is_detected_behind_a_long_ascii_head(body: str, encoding: str) -> None:
    """The detector reads a sample: behind more ASCII than it (inline scripts and styles)
    it was all ASCII, and a GBK body was read as cp1252."""
    head = b"<html><head><script>" + b"var a = 1;\n" * 7000 + b"</script></head><body><p>"
    assert len(head) > DETECT_SAMPLE_BYTES
    decoded = decode_html(head + body.encode(encoding) + b"</p></body></html>")
    assert body in decoded.text and decoded.replaced == 0


@pytest.mark.parametrize("where", ["http", "meta"])
def test_a_declared_utf8_page_with_a_stray_byte_stays_utf8(where: str) -> None:
    """A Latin-script page declared UTF-8, with a few accents and one stray cp1252 byte
    (WordPress's curly apostrophe, a common bug): before, its few valid characters did
    not outnumber the bad byte twenty times, the declaration was dropped, and the
    detector read the page as Korean ("Caf챕", "L'챕t챕")."""
    body = "Café. L’été à Paris. It’s here"
    raw = page("utf-8" if where == "meta" else "x", body).encode("utf-8")
    raw = raw.replace("It’s".encode(), b"It\x92s")
    decoded = decode_html(raw, http_charset="utf-8" if where == "http" else None)
    assert decoded.encoding == "utf-8" and decoded.replaced == 1
    assert "Café. L’été à Paris. It\ufffds here" in decoded.text


def test_gbk_declared_utf8_is_still_read_as_gbk() -> None:
    """Read as UTF-8, GBK has a bad sequence for nearly every byte: the declaration is
    not believed, and the few stray bytes a UTF-8 page may have do not make it so."""
    raw = page("utf-8", TEXT).encode("gbk")
    decoded = decode_html(raw, http_charset="utf-8")
    assert TEXT in decoded.text and decoded.encoding == "gb18030"
