"""Documents in a 7-bit encoding: ISO-2022-JP/KR, HZ-GB-2312 and UTF-7.

Their bytes are all ASCII, so they pass as UTF-8 and were stored with their escapes:
``$B;3;R`` and ``~{VPND~}`` in titles and bodies, text no topic matched and no reader
could read. A document that is pure ASCII is decoded with the 7-bit encoding it declares
(HTTP, XML declaration or meta tag), or one its bytes prove, whatever its label says:

- ISO-2022: an ESC byte, which XML forbids and no HTML text holds, opening a
  designation; the escapes name the encoding.
- HZ: ``~{`` … ``~}`` runs that read strictly as GB2312 pairs (a ``~{`` in code is
  followed by a space or a line end within the run, which HZ refuses).
- UTF-7: the whole document reads strictly as UTF-7 and each ``+…-`` run is letters
  beyond ASCII (``1+1``, ``C++``, ``Google+ users`` are not UTF-7; ``+ADw-`` for ``<``,
  the old script-smuggling trick, is not taken without a declaration).

ISO-2022 escapes that no codec here reads (ISO-2022-CN) are replaced by U+FFFD, so the
garbage between them is never stored as text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence

logger = logging.getLogger(__name__)

SEVEN_BIT_ENCODINGS = frozenset(
    {
        "hz",
        "utf-7",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_2004",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_kr",
    }
)
ESCAPE = b"\x1b"
# ISO-2022-KR designates KS X 1001 to G1 in its header; the Japanese family designates to
# G0 (ESC $ B, ESC $ ( D …). iso2022_jp_2 reads JIS X 0208/0212, GB2312 and KS C 5601.
ISO2022_KR_DESIGNATION = b"\x1b$)C"
ISO2022_JP_FAMILY = ("iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext")
HZ_RUN = re.compile(rb"~\{(.*?)(?:~\}|$)", re.DOTALL)
UTF7_RUN = re.compile(rb"\+([A-Za-z0-9/+]+)-?")
# What is left of ISO-2022 text no codec read: a shifted run (SO … SI) or a double-byte
# run opened by a designation to G0 (up to the next escape) stand for unread characters;
# other escape sequences (designations to G1-G3, returns to ASCII) hold no text.
ISO2022_UNREAD_RUN = re.compile("\x0e[^\x0f]*\x0f?|\x1b\\$\\(?[@-Z][^\x1b]*")
ISO2022_ESCAPE = re.compile("\x1b[$()*+.N-O]*[@-~]?|[\x0e\x0f]")
SHIFTS = re.compile("[\x0e\x0f\x1b]")
NOT_TEXT = frozenset({"Cc", "Cf", "Cn", "Co", "Cs"})
MIN_UTF7_CHARACTERS = 2  # one stray "+abc-" is not evidence enough


def decode_ascii(content: bytes, text: str, declared: Sequence[str]) -> tuple[str, str, int]:
    """Text, encoding and replacement count of an ASCII document (``text``: it read as
    UTF-8), decoded with the 7-bit encoding it declares or its bytes prove."""
    for encoding in declared:
        if encoding in SEVEN_BIT_ENCODINGS:
            try:
                return content.decode(encoding), encoding, 0
            except UnicodeDecodeError:
                logger.debug("declared %s, but the bytes are not %s", encoding, encoding)
    if ESCAPE in content:
        return _iso2022(content, text)
    if b"~{" in content and (decoded := _hz(content)) is not None:
        return decoded, "hz", 0
    if b"+" in content and (decoded := _utf7(content)) is not None:
        return decoded, "utf-7", 0
    return text, "utf-8", 0


def _iso2022(content: bytes, text: str) -> tuple[str, str, int]:
    candidates = ("iso2022_kr",) if ISO2022_KR_DESIGNATION in content else ISO2022_JP_FAMILY
    for encoding in candidates:
        try:
            decoded = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        # iso2022_jp_2 skips a designation it does not know (ISO-2022-CN's ESC $ ) A)
        # and keeps the shifted bytes: read so, it read nothing.
        if not SHIFTS.search(decoded):
            return decoded, encoding, 0
    cleaned, replaced = ISO2022_UNREAD_RUN.subn("\ufffd", text)
    logger.debug("ISO-2022 escapes no codec reads: %d run(s) replaced", replaced)
    return ISO2022_ESCAPE.sub("", cleaned), "utf-8", replaced


def _hz(content: bytes) -> str | None:
    try:
        decoded = content.decode("hz")
    except UnicodeDecodeError:
        return None
    runs = [run.group(1) for run in HZ_RUN.finditer(content)]
    return decoded if runs and all(runs) else None


def _utf7(content: bytes) -> str | None:
    characters = 0
    for run in UTF7_RUN.finditer(content):
        try:
            piece = run.group().decode("utf-7")
        except UnicodeDecodeError:
            return None
        if not piece or any(c.isascii() or unicodedata.category(c) in NOT_TEXT for c in piece):
            return None
        characters += len(piece)
    if characters < MIN_UTF7_CHARACTERS:
        return None
    try:
        return content.decode("utf-7")
    except UnicodeDecodeError:
        return None
