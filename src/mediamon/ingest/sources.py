"""Source definitions: the versioned YAML file that lists what mediamon polls."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mediamon.config_yaml import (
    ConfigFileProblem,
    aliases_add_more_than,
    may_hold_aliases,
    parse_config_yaml,
    read_config_text,
)
from mediamon.errors import ConfigError
from mediamon.text import BREAKS_A_LINE

KINDS = ("feed", "archive")
# \Z, not $: "$" also matches before a final line break ("abc\n" was a valid name).
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
DEFAULT_POLL_INTERVAL = timedelta(minutes=15)
DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
# A BCP 47 tag as sources.yaml may write it (zh, zh-CN, zh_Hant_TW): a language of two
# or three letters first, as mediamon.ingest.normalize.primary_language reads it.
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*\Z")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Adaptive polling moves a source's interval between poll_interval / 4 and
# poll_interval * 8 unless min_poll_interval / max_poll_interval say otherwise.
DEFAULT_POLL_FLOOR_DIVISOR = 4
DEFAULT_POLL_CAP_FACTOR = 8
DEFAULT_MAX_ITEMS = 500
DEFAULT_MAX_BYTES = 15 * 1024 * 1024
# A source's wall-clock budget for one poll, unless time_budget says otherwise: half its
# poll interval, so a source full of slow pages cannot hold its task (and, in the CLI,
# every later source) past the next poll.
DEFAULT_TIME_BUDGET_FRACTION = 0.5
# Every number in the file is checked against a range before any arithmetic: durations
# up to a year, counts up to these bounds (a larger value is a typo or an attack, and
# would overflow datetime arithmetic later).
MAX_DURATION = timedelta(days=365)
COUNT_BOUNDS = {
    "host_max_connections": 64,
    "max_items": 100_000,
    "max_bytes": 1024 * 1024 * 1024,
}


# Fetch and polling settings (see Source); each is optional in the sources file.
BOOLEAN_FIELDS = ("respect_robots_txt", "ignore_validators")
DURATION_FIELDS = (
    "host_min_interval", "min_poll_interval", "max_poll_interval",
    "connect_timeout", "read_timeout", "download_deadline", "time_budget",
)  # fmt: skip
COUNT_FIELDS = ("host_max_connections", "max_items", "max_bytes")
# No field of a source needs a control character; NUL in particular passes YAML (as
# "\0") and only fails later, in PostgreSQL or in the file system. Nor a line separator
# or a bidirectional control: every field is a name, URL, host, path or tag, shown in log
# lines, errors and ops mail (an unreachable feed's URL starts its error), where U+2028
# breaks the line and U+202E turns the rest of it around (IRIs may not hold bidi
# controls, RFC 3987 4.1). So the whole of mediamon.text.BREAKS_A_LINE: C0, DEL, C1
# (NEL, CSI), U+2028/U+2029, the bidi marks, embeddings, overrides and isolates. A free-
# text field, if one is ever added, would be the exception (shown through one_line).
# Refused, not escaped (mediamon.text.one_line escapes what a log line reports): the file
# is the operator's to correct. A refused value is shown by quoted(), a repr that escapes
# what one_line does.
CONTROL_CHARACTER = BREAKS_A_LINE
# YAML aliases let a few lines stand for millions of values (one anchored list reused by
# every source), which every later step would pay for. What the aliases add is measured
# against these bounds before anything else reads it; real sources files use a few, if
# any. (The bounds held the whole expanded file: 20,000 sources written out, with no
# alias, were refused as "too large once YAML aliases are expanded".)
MAX_EXPANDED_VALUES = 200_000
MAX_EXPANDED_CHARACTERS = 10_000_000
# drop_query_params and allow_hosts of a source: real ones name a few (utm_*, a test
# host); past this the list is a paste gone wrong, and every link would pay for it.
MAX_LIST_ENTRIES = 1_000
# Values quoted in error messages are cut here, so each error stays one readable line.
MAX_QUOTED_CHARS = 200


class SourceConfigError(ConfigError):
    """The sources file is invalid; the message names the file, source and field."""


@dataclass(frozen=True)
class Source:
    """One thing mediamon polls: a feed URL or a folder of archived items.

    Attributes:
        name: Unique short name, used in logs, the database and the BI views.
        kind: ``feed`` (RSS 2.0, RSS 1.0/RDF or Atom) or ``archive`` (seed-format folder).
        location: The feed URL, or the archive folder (relative to the sources file).
        language: Language of the source's articles (BCP 47), when known.
        poll_interval: How often the feed is due.
        drop_query_params: Extra query parameters to strip when canonicalizing this
            source's URLs (beside the global tracking parameters).
        fetch_pages: Fetch each item's article page (else use the feed's content).
        allow_private_network: The feed's own host and port (as written in ``location``)
            may be a loopback or private address (demo, tests); every other private
            address stays refused, cloud-metadata addresses always.
        allow_hosts: Further ``host:port`` pairs that may be private for this source.
        host_min_interval: Time between the starts of two requests to one host; None
            means 5 s (0 s for hosts on this machine's loopback address).
        host_max_connections: Requests in flight to one host at once.
        respect_robots_txt: Obey robots.txt for article pages (the feed itself is
            fetched because an operator subscribed to it).
        ignore_validators: Never send ETag / Last-Modified validators (for servers that
            answer 304 wrongly); the body hash still detects an unchanged feed.
        min_poll_interval: Adaptive polling's floor (default poll_interval / 4).
        max_poll_interval: Adaptive polling's cap, also for failing sources' backoff
            (default poll_interval * 8).
        max_items: Items read from one feed document.
        max_bytes: Size cap of one download after decompression.
        connect_timeout: Connect timeout of one request.
        read_timeout: Timeout of each read of one request.
        download_deadline: Bound on one request, from sending it to the body's end
            (a whole fetch, with its redirect hops and retries: twice this).
        time_budget: Wall-clock bound on one poll of the source; items not started by
            then wait for the next poll. None means poll_interval × 0.5.
    """

    name: str
    kind: str
    location: str
    language: str | None = None
    poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    drop_query_params: tuple[str, ...] = ()
    fetch_pages: bool = True
    allow_private_network: bool = False
    allow_hosts: tuple[str, ...] = ()
    host_min_interval: timedelta | None = None
    host_max_connections: int = 2
    respect_robots_txt: bool = True
    ignore_validators: bool = False
    min_poll_interval: timedelta | None = None
    max_poll_interval: timedelta | None = None
    max_items: int = DEFAULT_MAX_ITEMS
    max_bytes: int = DEFAULT_MAX_BYTES
    connect_timeout: timedelta = timedelta(seconds=5)
    read_timeout: timedelta = timedelta(seconds=20)
    download_deadline: timedelta = timedelta(seconds=60)
    time_budget: timedelta | None = None
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def poll_bounds(self) -> tuple[timedelta, timedelta]:
        """Floor and cap of the adaptive poll interval."""
        floor = self.min_poll_interval or self.poll_interval / DEFAULT_POLL_FLOOR_DIVISOR
        cap = self.max_poll_interval or self.poll_interval * DEFAULT_POLL_CAP_FACTOR
        return floor, max(cap, floor)

    @property
    def budget(self) -> timedelta:
        """The wall-clock budget of one poll (``time_budget``, else a share of the
        poll interval)."""
        return self.time_budget or self.poll_interval * DEFAULT_TIME_BUDGET_FRACTION

    @property
    def private_hosts(self) -> frozenset[str]:
        """The ``host:port`` pairs this source may fetch on private addresses: its own
        feed's host and port when ``allow_private_network`` is set, and ``allow_hosts``."""
        from mediamon.ingest.netguard import BlockedURL, url_host_key

        hosts = set(self.allow_hosts)
        if self.allow_private_network and self.kind == "feed":
            with contextlib.suppress(BlockedURL):  # the fetch refuses the URL, saying why
                hosts.add(url_host_key(self.location))
        return frozenset(hosts)


def quoted(value: object) -> str:
    """``repr(value)`` for an error message: whatever may be a URL's userinfo (up to
    the last ``@``) replaced by ``***``, and cut to one short line.

    Error messages reach the terminal, logs and the fetch log; a password written into
    the sources file must not. The text is cut at the last ``@`` rather than parsed as
    a URL because the URLs quoted here are the ones that did not parse (a password
    holding ``/`` makes the rest of it look like a path).
    """
    text = repr(value)
    head, at, tail = text.rpartition("@")
    if at:
        scheme, slashes, _userinfo = head.partition("//")
        text = f"{scheme}{slashes}***@{tail}" if slashes else f"***@{tail}"
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "…"


def parse_duration(value: object, where: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d`` or a number of seconds, at most a year."""
    problem = f"{where}: expected a duration such as 15m (at most 365d), got {quoted(value)}"
    if isinstance(value, bool):
        raise SourceConfigError(problem)
    if isinstance(value, int | float):
        # NaN and infinity fail the comparison too; checked before timedelta() sees them.
        if not 0 <= value <= MAX_DURATION.total_seconds():
            raise SourceConfigError(problem)
        return timedelta(seconds=value)
    match = DURATION.match(str(value).strip())
    if not match or len(match.group(1)) > 12:
        raise SourceConfigError(problem)
    amount = int(match.group(1))
    seconds = amount * UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise SourceConfigError(problem)
    return timedelta(seconds=seconds)


def parse_host_port(value: object, where: str) -> str:
    """A ``host:port`` entry of ``allow_hosts``, spelled as the SSRF guard compares it."""
    from mediamon.ingest.netguard import BlockedURL, url_host_key

    problem = f"{where}: expected host:port such as 127.0.0.1:8080, got {quoted(value)}"
    # No userinfo, path, query or fragment: url_host_key would read "http://h:1" or
    # "h/x:1" as some other host:port instead of refusing it.
    if not isinstance(value, str) or not re.fullmatch(r"[^\s@/?#\\]+:\d{1,5}", value.strip()):
        raise SourceConfigError(problem)
    try:
        return url_host_key(f"http://{value.strip()}/")
    except BlockedURL as error:
        raise SourceConfigError(problem) from error


# What a host name (letters, digits, '-', '.', and the '_' some real hosts use) or an
# IPv4 address never holds; IDNA has turned a Unicode host into this form already.
HOST_TYPO = re.compile(r"[^a-z0-9._-]")


def parse_feed_url(value: object, where: str) -> str:
    """A feed's URL, refused now if the fetch could not use it or would leak a password."""
    from mediamon.ingest.netguard import BlockedURL, check_url_syntax

    if not isinstance(value, str) or not re.match(r"^https?://", value):
        raise SourceConfigError(f"{where}: a feed needs an http(s) URL, got {quoted(value)}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it is the check: it parses the port
    except ValueError as error:
        # urlsplit's own message may quote the netloc or port, where a password can be.
        reason = "a bad port" if "Port" in str(error) else "a malformed host"
        raise SourceConfigError(
            f"{where}: not a valid URL ({reason}), got {quoted(value)}"
        ) from error
    if "@" in parts.netloc:
        raise SourceConfigError(
            f"{where}: credentials in the URL are not allowed (they would be stored in the"
            " fetch log and shown to BI users); remove the user name and password (secrets"
            " belong in environment variables or Airflow connections)"
        )
    if not parts.hostname:
        raise SourceConfigError(f"{where}: the URL has no host, got {quoted(value)}")
    try:
        _scheme, host, _port = check_url_syntax(value)  # too long for the fetcher, …
    except BlockedURL as error:
        reason = str(error).removeprefix("blocked: ")
        raise SourceConfigError(f"{where}: {reason}, got {quoted(value)}") from error
    # A typo in the host (a space before the path, a comma for a dot) passed, and every
    # poll then failed as "DNS lookup failed: www.rfi.fr " with the space unseen.
    odd = HOST_TYPO.search(host) if ":" not in host else None  # IPv6 is checked already
    if odd:
        raise SourceConfigError(
            f"{where}: the host {host!r} has {odd.group()!r}, which no host name has,"
            f" got {quoted(value)}"
        )
    return value


def _refuse_control_characters(raw: dict[str, Any], where: str) -> None:
    for key, value in raw.items():
        entries = enumerate(value) if isinstance(value, list) else [(None, value)]
        for n, entry in entries:
            bad = CONTROL_CHARACTER.search(entry) if isinstance(entry, str) else None
            if bad:
                field_name = key if n is None else f"{key}[{n}]"
                raise SourceConfigError(
                    f"{where}.{field_name}: {_kind_of(bad.group())} U+{ord(bad.group()):04X}"
                    f" (at position {bad.start()}) is not allowed"
                )


def _kind_of(character: str) -> str:
    """What a character of :data:`CONTROL_CHARACTER` is, for its error message."""
    if character <= "\x9f":
        return "control character"
    if character in "\u2028\u2029":
        return "line separator" if character == "\u2028" else "paragraph separator"
    return "bidirectional control"


def _source_from_mapping(raw: object, index: int, path: Path) -> Source:
    where = f"{path}: sources[{index}]"
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    # fullmatch: the pattern's $ would also match before a final newline.
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SourceConfigError(
            f"{where}.name: expected a short lowercase name (a-z, 0-9, _ . -), got {quoted(name)}"
        )
    where = f"{path}: source {name!r}"
    for key in raw:
        if not isinstance(key, str) or CONTROL_CHARACTER.search(key):
            raise SourceConfigError(
                f"{where}: field names must be text without control characters, got {quoted(key)}"
            )
    known = {
        "name", "kind", "url", "path", "language", "poll_interval",
        "drop_query_params", "fetch_pages", "allow_private_network", "allow_hosts", "enabled",
        *BOOLEAN_FIELDS, *DURATION_FIELDS, *COUNT_FIELDS,
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SourceConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    _refuse_control_characters(raw, where)
    kind = raw.get("kind", "feed")
    if kind not in KINDS:
        raise SourceConfigError(f"{where}.kind: expected one of {KINDS}, got {quoted(kind)}")
    if kind == "feed":
        location = parse_feed_url(raw.get("url"), f"{where}.url")
    else:
        folder = raw.get("path")
        if not isinstance(folder, str) or not folder:
            raise SourceConfigError(f"{where}.path: an archive needs a folder path")
        try:
            location = str((path.parent / folder).resolve())
        except OSError:
            # A link on the way that may not be read (EACCES from readlink): resolve()
            # let it out, a traceback from every command reading the file. The folder as
            # written: its polls fail naming it, the other sources run.
            location = os.path.abspath(path.parent / folder)
    language = raw.get("language")
    # Articles carry the tag's language alone (zh-CN is zh); one without a language
    # subtag of two or three letters ("Chinese") would be ignored without a word.
    if language not in (None, "") and (
        not isinstance(language, str) or not LANGUAGE.match(language)
    ):
        raise SourceConfigError(
            f"{where}.language: expected a language tag such as zh or zh-CN, got {quoted(language)}"
        )
    params = raw.get("drop_query_params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise SourceConfigError(f"{where}.drop_query_params: expected a list of names")
    _refuse_long_list(params, f"{where}.drop_query_params", "every link of the source")
    for flag in ("fetch_pages", "allow_private_network", "enabled", *BOOLEAN_FIELDS):
        if flag in raw and not isinstance(raw[flag], bool):
            raise SourceConfigError(f"{where}.{flag}: expected true or false")
    extra: dict[str, Any] = {f: raw[f] for f in BOOLEAN_FIELDS if f in raw}
    for key in DURATION_FIELDS:
        if key in raw:
            extra[key] = parse_duration(raw[key], f"{where}.{key}")
            if key != "host_min_interval" and not extra[key]:
                raise SourceConfigError(f"{where}.{key}: must be longer than 0 s")
    for key in COUNT_FIELDS:
        if key in raw:
            value = raw[key]
            bound = COUNT_BOUNDS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
                raise SourceConfigError(
                    f"{where}.{key}: expected a whole number from 1 to {bound}, got {quoted(value)}"
                )
            extra[key] = value
    hosts = raw.get("allow_hosts", [])
    if not isinstance(hosts, list):
        raise SourceConfigError(f"{where}.allow_hosts: expected a list of host:port")
    _refuse_long_list(hosts, f"{where}.allow_hosts", "every request of the source")
    extra["allow_hosts"] = tuple(
        parse_host_port(h, f"{where}.allow_hosts[{n}]") for n, h in enumerate(hosts)
    )
    source = Source(
        name=name,
        kind=kind,
        location=location,
        language=language.lower() if language else None,
        poll_interval=parse_duration(raw.get("poll_interval", "15m"), f"{where}.poll_interval"),
        drop_query_params=tuple(params),
        fetch_pages=raw.get("fetch_pages", True),
        allow_private_network=raw.get("allow_private_network", False),
        settings={k: v for k, v in raw.items() if k not in ("name", "kind")},
        **extra,
    )
    if not source.poll_interval:
        raise SourceConfigError(f"{where}.poll_interval: must be longer than 0 s")
    if (
        source.min_poll_interval
        and source.max_poll_interval
        and source.min_poll_interval > source.max_poll_interval
    ):
        raise SourceConfigError(f"{where}.min_poll_interval: longer than max_poll_interval")
    return source


def _refuse_long_list(entries: list[Any], where: str, used_for: str) -> None:
    """A source's list longer than :data:`MAX_LIST_ENTRIES` is refused: each is looked up
    for ``used_for``, where the list is built into a set again (100,000 names of
    drop_query_params, a megabyte of YAML, cost 0.1 s for every URL canonicalized, several
    a page: minutes of each poll)."""
    if len(entries) > MAX_LIST_ENTRIES:
        raise SourceConfigError(
            f"{where}: {len(entries)} entries (at most {MAX_LIST_ENTRIES}: each is looked up"
            f" for {used_for})"
        )


def _check_expanded_size(document: object, path: Path) -> None:
    """Refuse a document whose aliases, expanded, add more than the bounds."""
    if aliases_add_more_than(document, MAX_EXPANDED_VALUES, MAX_EXPANDED_CHARACTERS):
        raise SourceConfigError(
            f"{path}: too large once YAML aliases are expanded (they add more than"
            f" {MAX_EXPANDED_VALUES} values or {MAX_EXPANDED_CHARACTERS} characters);"
            " write the sources out with fewer aliases"
        )


def load_sources(path: Path) -> list[Source]:
    """Read and validate the sources file; disabled sources are left out.

    Raises:
        SourceConfigError: the file is missing or invalid; the message names the file,
            the source and the field.
    """
    try:
        text = read_config_text(path, "sources file")
        document = parse_config_yaml(text, path)
    except ConfigFileProblem as error:
        raise SourceConfigError(str(error)) from error
    if may_hold_aliases(text):  # else every value is written out once: nothing to expand
        _check_expanded_size(document, path)
    if not isinstance(document, dict) or not isinstance(document.get("sources"), list):
        raise SourceConfigError(f"{path}: expected a mapping with a 'sources' list")
    sources: list[Source] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["sources"]):
        source = _source_from_mapping(raw, index, path)
        if source.name in seen:
            raise SourceConfigError(f"{path}: source name {source.name!r} is used twice")
        seen.add(source.name)
        if raw.get("enabled", True):
            sources.append(source)
    return sources


def source_from_stored(
    name: str, kind: str, location: str, language: str | None, settings: dict[str, Any]
) -> Source:
    """Rebuild a source from its row in ``sources`` (what :func:`load_sources` read and
    ``load.sync_sources`` stored), so that ingest tasks need not parse the sources file.

    Raises:
        SourceConfigError: the stored settings are no longer valid (the message names
            the source and field).
    """
    raw: dict[str, Any] = {**settings, "name": name, "kind": kind}
    # location is the resolved URL or folder; the stored path may be relative to a file.
    raw["url" if kind == "feed" else "path"] = location
    raw.pop("path" if kind == "feed" else "url", None)
    if raw.get("language") is None and language is not None:
        raw["language"] = language
    return _source_from_mapping(raw, 0, Path("sources table"))
