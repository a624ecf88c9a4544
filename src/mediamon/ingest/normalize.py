"""Pure normalization: text cleanup, canonical URLs, UTC times, language, keys."""

from __future__ import annotations

import hashlib
import heapq
import re
import string
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from mediamon.text import HORIZONTAL_SPACE, fold, stream_safe

# Query parameters that only track the reader (campaign, click and referral ids).
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "mc_cid", "mc_eid",
        "igshid", "ref", "ref_src", "referrer", "spm", "share", "from", "xtor", "at_medium",
        "at_campaign", "ocid", "cmpid", "_ga", "wt.mc_id", "maca", "s_cid",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_")
# Characters an article's text never needs, removed in one pass (str.translate with a
# table costs ten times more on non-ASCII text): zero-width characters and the soft
# hyphen; Unicode category Cc (C0 and C1 controls, DEL) except newline and tab; and the
# bidirectional controls (marks, embeddings, overrides, isolates), which reorder what a
# reader sees.
INVISIBLE = re.compile(
    "[\u200b\u200c\u200d\u2060\ufeff\u00ad"
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+"
)
# How percent-encoded bytes that are not UTF-8 are read and written back unchanged.
ESCAPE = "surrogateescape"
# A path's percent-encodings; the characters a path holds as written besides the
# unreserved ones (RFC 3986 §3.3: sub-delims, ":", "@", and "/" between segments); and
# the unreserved characters an encoding of is decoded, but ".": see _percent_encoded.
PERCENT_ENCODING = re.compile(r"%([0-9A-Fa-f]{2})")
PATH_SAFE = "/:@!$&'()*+,;="
PATH_AS_WRITTEN = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/-]*")
DECODED = frozenset(string.ascii_letters + string.digits + "-_~")
# A lone UTF-16 half in a link cannot be UTF-8: its bytes as Python holds them are
# encoded, so a key is always made (and is pure ASCII).
SURROGATES = "surrogatepass"
MANY_NEWLINES = re.compile(r"\n{3,}")
NOT_WORD = re.compile(r"[\W_]+")
# Sentence ends in the folded text (NFKC has made full-width 。 stay, ！？ become !?).
SENTENCE_END = re.compile(r"[。！？!?；;\n]+|\.\s")
SENTENCE_MIN_CHARS = 10  # shorter pieces (bylines, datelines) say little about identity
# Near-duplicate keys kept of one text: at most this many of its substantial sentences,
# those with the smallest hashes (a bottom-k sketch: which sentences are kept depends on
# the sentences, not on where they stand, so a copy with paragraphs added in front keeps
# the same ones). Texts with fewer keep all: 95 % of the corpora's articles (median 30,
# longest 657). Every key costs twice: the loader compares each article of a chunk with
# every earlier story sharing one (100 pages of 18,000 sentences, half of them shared:
# 10 s), and looks up the stored roots by them, where a root holding more than about 250
# is stored out of line and unpacked for every key looked up (100 stored roots and a
# chunk of 1,000 keys each: 90 s in the loader's transaction; 200 each: 0.4 s).
MAX_SENTENCE_KEYS = 200


def clean_text(text: str) -> str:
    """Text as published, tidied: NFC, no zero-width or control characters, one space
    between words, no trailing spaces, at most one empty line in a row."""
    text = INVISIBLE.sub("", unicodedata.normalize("NFC", stream_safe(text)))
    lines = (HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


# A first line shorter than this is dropped as a headline only when it is the whole
# title: a short line found inside a long title ("快讯", "Update") may be the article's.
HEADLINE_MIN_CHARS = 8


def without_headline(body: str, title: str | None) -> str:
    """The body without a first line that repeats the article's title.

    readability's text, and some pages' own, begin with the headline; the title is kept
    apart (``articles.title``), and a mail or a BI view showing the title and then the
    body's start would show it twice. The line goes when, compared in the matching form
    without spaces, it is the title or a part of it of HEADLINE_MIN_CHARS or more (the
    title with the site's name after it). Over the development pages this dropped 27
    first lines, every one a headline the reference leaves out, and changed no other page.
    A body of that line alone stays whole: a brief may be its own headline.
    """
    first, newline, rest = body.partition("\n")
    # a line four times the title's length is no part of it (and folding a first line
    # of 200,000 characters costs 50 ms)
    if not title or not newline or not rest.strip() or len(first) > 4 * len(title) + 64:
        return body
    line, whole = _compact(first), _compact(title)
    if line and (line == whole or (len(line) >= HEADLINE_MIN_CHARS and line in whole)):
        return rest.lstrip("\n")
    return body


def _compact(text: str) -> str:
    return "".join(fold(text).split())


def canonical_url(url: str, drop_params: Iterable[str] = ()) -> str:
    """The URL that identifies an article: scheme and host lower-cased, default port,
    fragment and tracking parameters dropped, remaining parameters sorted; a host that
    is not ASCII and ``.`` and ``..`` path segments as the fetcher requests them (see
    :func:`fetched_host`, :func:`_without_dot_segments`); the path's bytes in one
    spelling (:func:`_percent_encoded`). The URLs of stored articles are their keys: a
    change here needs a migration that re-keys them (0019 did for the path's spelling).

    Args:
        url: Absolute http(s) URL.
        drop_params: Further parameter names to drop (per-source configuration).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = fetched_host((parts.hostname or "").lower()).rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    port = parts.port
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    extra = {p.lower() for p in drop_params}
    # Bytes that are not UTF-8 (GBK query values on Chinese sites: ?kw=%CC%A8%CD%E5) are
    # kept as they are, not replaced: U+FFFD made distinct articles one URL.
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True, errors=ESCAPE)
        if key.lower() not in TRACKING_PARAMS
        and key.lower() not in extra
        and not key.lower().startswith(TRACKING_PREFIXES)
    ]
    # Spaces before a dropped fragment or a query are no part of the path (written
    # "/a #top", the key was "/a " once and "/a" when canonicalized again).
    path = _percent_encoded(_without_dot_segments(parts.path.rstrip())) or "/"
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query), errors=ESCAPE), ""))


def _percent_encoded(path: str) -> str:
    """``path`` in one spelling of its bytes (RFC 3986 §6.2.2): percent-encodings in
    upper case, those of unreserved characters decoded (``%7E`` is ``~``, ``%41`` is
    ``A``), every other character a path cannot hold as written (non-ASCII, space,
    ``"<>\\^`{|}``, a ``%`` that starts no encoding) encoded as UTF-8, as requests sends
    it: ``/新闻``, ``/%E6%96%B0%E9%97%BB`` and ``/%e6%96%b0%e9%97%bb`` were three keys
    of one page, which could be stored three times.

    ``%2E`` stays encoded: dot segments are removed before (as urllib3 does, see
    :func:`_without_dot_segments`), and a dot decoded after would make ``/a/%2E%2E/b``
    a key that is not canonical again. Migration 0019 re-keyed the stored articles and
    claims; its SQL spells paths as this does, character for character."""
    if PATH_AS_WRITTEN.fullmatch(path):
        return path  # the usual path: byte for byte as it was
    pieces: list[str] = []
    position = 0
    for escape in PERCENT_ENCODING.finditer(path):
        pieces.append(quote(path[position : escape.start()], safe=PATH_SAFE, errors=SURROGATES))
        character = chr(int(escape[1], 16))
        pieces.append(character if character in DECODED else f"%{escape[1].upper()}")
        position = escape.end()
    pieces.append(quote(path[position:], safe=PATH_SAFE, errors=SURROGATES))
    return "".join(pieces)


def fetched_host(host: str) -> str:
    """A host name that is not ASCII as it is looked up and requested: IDNA 2008 with the
    UTS 46 mapping (netguard vets this name; requests encodes hosts the same way), so a
    full-width ``ａｂｃ．com`` is ``abc.com`` and ``Bücher.de`` is ``xn--bcher-kva.de``.
    ASCII hosts are left as they are (IDNA would refuse ``a_b.example.com``, which DNS
    serves), and so is a name IDNA refuses (the fetcher refuses it too)."""
    if host.isascii():
        return host
    import idna

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return host


def userinfo_split(url: str) -> tuple[str, str]:
    """``url``'s user name and password (``user:pw``, empty when it has none) and ``url``
    without them. Found as urlsplit finds them (the authority after ``//`` ends at the
    first ``/``, ``?`` or ``#``; the userinfo is what comes before its last ``@``), by
    text alone: it never raises (the URLs shown in errors are often the ones that did
    not parse) and costs one pass."""
    start = url.find("//")
    if start < 0:
        return "", url
    start += 2
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    at = url.rfind("@", start, min(ends, default=len(url)))
    return ("", url) if at < 0 else (url[start:at], url[:start] + url[at + 1 :])


def without_userinfo(url: str) -> str:
    """``url`` without a user name and password: the form in which any URL is logged,
    stored or shown (a source's, a redirect's or a feed's), and the form a redirect
    target is requested in (credentials a server puts in a ``Location`` are never sent)."""
    return userinfo_split(url)[1]


def _without_dot_segments(path: str) -> str:
    """``path`` without ``.`` and ``..`` segments (RFC 3986 §5.2.4), as urllib3 removes
    them before sending a request: ``/a/../b`` is requested as ``/b``. Percent-encoded
    dots are left alone, as urllib3 leaves them: it decodes ``%2e`` only after removing
    dot segments, so ``/a/%2e%2e/b`` is requested as ``/a/../b`` and is another URL
    to mediamon (a server may well read it as ``/b``)."""
    if "/." not in path and not path.startswith("."):
        return path  # the usual path: byte for byte as it was
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if path.startswith("/") and (not output or output[0]):
        output.insert(0, "")
    if path.endswith(("/.", "/..")):
        output.append("")
    return "/".join(output)


def url_hash(url: str) -> bytes:
    return hashlib.sha256(url.encode("utf-8")).digest()


def to_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive values are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(value: int) -> datetime:
    """The moment ``value`` milliseconds after the Unix epoch, to the millisecond (a
    float division lost it: 9999999999999 was …39.999001)."""
    return _EPOCH + timedelta(milliseconds=value)


def primary_language(tag: str | None) -> str | None:
    """``zh-CN`` → ``zh``, ``en_US`` → ``en``; None for empty or malformed tags."""
    if not tag:
        return None
    primary = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


# What is not a letter (a letter: a word character that is not a digit or "_"), and what
# is not of each script. Counting by removing runs of the rest is one pass in C, with
# no match object per character.
_NOT_LETTER = re.compile(r"[\W\d_]+")
_NOT_KANA = re.compile(r"[^\u3040-\u30ff]+")
_NOT_HANGUL = re.compile(r"[^\uac00-\ud7af\u1100-\u11ff]+")
_NOT_HAN = re.compile(r"[^\u4e00-\u9fff\u3400-\u4dbf]+")


def _script_language(sample: str) -> str | None:
    """The language a script settles on its own: kana is Japanese, hangul Korean, and
    text mostly of Han characters is Chinese. None when the script does not decide."""
    letters = _NOT_LETTER.sub("", sample)
    if not letters:
        return None
    if len(_NOT_KANA.sub("", letters)) >= 0.05 * len(letters):
        return "ja"
    if len(_NOT_HANGUL.sub("", letters)) >= 0.2 * len(letters):
        return "ko"
    if len(_NOT_HAN.sub("", letters)) >= 0.5 * len(letters):
        return "zh"
    return None


def detect_language(text: str, declared: str | None = None) -> str | None:
    """Language of ``text``, or None when the text is too short to tell. The script
    decides Chinese, Japanese and Korean; then the language the page declares (its
    ``<html lang>``), if it is not one of those three the script ruled out; py3langid
    (a 90 MB model in memory, a few milliseconds a page, see
    :mod:`mediamon.ingest.langmodel`) is asked only about the rest."""
    sample = text[:2000]  # as decisive as 5,000 characters on every corpus page (bench)
    if len(NOT_WORD.sub("", sample)) < 20 and len(NOT_WORD.sub("", text)) < 20:
        return None
    by_script = _script_language(sample)
    if by_script:
        return by_script
    stated = primary_language(declared)
    if stated and stated not in ("zh", "ja", "ko"):
        return stated
    from mediamon.ingest import langmodel

    language, _score = langmodel.identifier().classify(sample)
    return str(language)


def warm_up() -> None:
    """Load the folding table and the language model now, in a parent process, so that
    forked extraction workers share those pages instead of each loading its own."""
    fold("臺灣")
    from mediamon.ingest import langmodel

    langmodel.identifier()


def duplicate_keys(match_text: str) -> tuple[bytes, tuple[int, ...]]:
    """The folded text's keys for finding copies of it, in one pass over it:

    * the exact-duplicate key (``articles.content_hash``): SHA-256 of the text without
      spaces or punctuation;
    * the near-duplicate keys (``articles.sentence_hashes``): signed 64-bit hashes of its
      substantial sentences, in order, without repeats; of a text with more than
      MAX_SENTENCE_KEYS, the MAX_SENTENCE_KEYS smallest. Two articles sharing most of
      them are copies of one story, even when one adds a byline or footer or breaks its
      paragraphs elsewhere.

    Every sentence end is punctuation or a space, so the text without them is its
    sentences without them, joined: the first key hashes those (0.3 ms a page less than
    removing them from the whole text again).
    """
    compacts = [NOT_WORD.sub("", sentence) for sentence in SENTENCE_END.split(match_text)]
    found: dict[int, None] = {}
    for compact in compacts:
        if len(compact) >= SENTENCE_MIN_CHARS:
            digest = hashlib.blake2b(compact.encode("utf-8"), digest_size=8).digest()
            found[int.from_bytes(digest, "big", signed=True)] = None
    keys = tuple(found)
    if len(keys) > MAX_SENTENCE_KEYS:
        kept = set(heapq.nsmallest(MAX_SENTENCE_KEYS, keys))
        keys = tuple(key for key in keys if key in kept)
    return hashlib.sha256("".join(compacts).encode("utf-8")).digest(), keys
