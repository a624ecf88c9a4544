"""The versioned topics file (YAML): read, validated with file and line in every error,
into a :class:`~mediamon.topics.definitions.TopicSet`. The format is in ``docs/topics.md``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mediamon.alerts.render import ascii_domain, clean
from mediamon.config_yaml import UnusableConfigFile, read_config_bytes
from mediamon.ingest.sources import NAME_PATTERN as SOURCE_NAME
from mediamon.settings import is_recipient_address, is_zone_name
from mediamon.spikes.model import SpikeParams
from mediamon.topics.definitions import (
    DEFAULT_DIGEST_HOUR,
    DEFAULT_LOCALE,
    THRESHOLD_FIELDS,
    Recipient,
    Topic,
    TopicConfigError,
    TopicSet,
)
from mediamon.topics.rules import Rule, RuleError, parse_rule

logger = logging.getLogger(__name__)

FILE_FORMAT_VERSION = 1
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Text no topic needs and PostgreSQL or the mail headers cannot take: C0 controls but tab
# and line breaks, DEL, and lone UTF-16 halves (YAML's "\ud800").
FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Nodes YAML aliases may add once expanded: an anchored list of 3,000 terms reused by 3,000
# topics (245 kB) took 100 s to check. Only what aliases add: 10,000 topics of ten terms
# written out are 240,000 nodes, and were refused as if aliases had made them.
MAX_EXPANDED_NODES = 200_000
# Nodes written: 40,000 such topics; checking a file costs about 4 ms a topic.
MAX_WRITTEN_NODES = 1_000_000
# libyaml's parser when PyYAML was built with it: five times as fast as the pure-Python one
# (a file of 10,000 topics took 37 s to read, at every alerts and digests run), and it
# stops brackets or indentation nested past 1,000 levels itself.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}$")
# "digest" is the older name of "daily".
MODES = ("immediate", "daily", "weekly", "digest")
LOCALES = ("zh-CN", "en")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TOP_KEYS = {"version", "defaults", "topics"}
DEFAULT_KEYS = {"thresholds", "recipients", "digest", "languages", "sources"}
TOPIC_KEYS = {
    "key",
    "name",
    "description",
    "terms",
    "exclude",
    "scope",
    "thresholds",
    "recipients",
}
SCOPE_KEYS = {"languages", "sources"}
RECIPIENT_KEYS = {"address", "mode", "digest_hour", "digest_weekday", "timezone", "locale"}
DIGEST_KEYS = {"hour", "timezone", "weekday"}


class _Reader:
    """Walks yaml's node tree so every error can name the line it is about."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._constructor = yaml.constructor.SafeConstructor()
        # Each mailbox under the spelling it was first written in (mailbox_key): Case@x
        # and case@x are one mailbox (mail servers match them so), which got two digests
        # a day; so are a@例子.中国 and a@xn--fsqu00a.xn--fiqs8s.
        self.addresses: dict[str, str] = {}

    def error(self, node: yaml.Node | None, reason: str) -> TopicConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return TopicConfigError(f"{self.name}{line}: {reason}")

    def mapping(self, node: yaml.Node, what: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value)")
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise self.error(key_node, f"{what}: keys must be plain words")
            if key not in allowed:
                raise self.error(
                    key_node, f"{what}: unknown key {key!r} (expected one of {sorted(allowed)})"
                )
            if key in result:
                raise self.error(key_node, f"{what}: {key!r} is given twice")
            result[key] = value_node
        return result

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return list(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        # The scalar as written: a term such as NO or 2024 stays text (YAML would make
        # them a boolean and a number).
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.error(node, f"{what} must be non-empty text")
        if forbidden := FORBIDDEN_TEXT.search(str(node.value)):
            code = ord(forbidden.group())
            raise self.error(node, f"{what} contains the control or surrogate U+{code:04X}")
        return str(node.value).strip()

    def texts(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.ScalarNode):
            return [(node, self.text(node, what))]
        return [(item, self.text(item, what)) for item in self.sequence(node, what)]

    def value(self, node: yaml.Node) -> Any:
        # Constructing can fail on what the composer accepted: `2024-13-45` reads as a
        # date of month 13, `!!int abc`, `!!python/name:x` (not a safe tag).
        try:
            return self._constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as error:
            problem = getattr(error, "problem", None) or str(error)
            written = node.value if isinstance(node, yaml.ScalarNode) and node.value else node.tag
            raise self.error(node, f"cannot read {str(written)[:60]!r}: {problem}") from error


def parse_topics(text: str, name: str = "topics.yaml") -> TopicSet:
    """Parse and validate a topics file.

    Args:
        text: The YAML text.
        name: The file's name or path, used in error messages.

    Returns:
        The topics, defaults resolved and rules compiled.

    Raises:
        TopicConfigError: YAML syntax error or invalid content; the message names the
            file, the line and the reason.
    """
    reader = _Reader(name)
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        if "nesting depth" in str(error.problem):  # libyaml's bound, at 1,000 levels
            raise TopicConfigError(f"{name}{line}: YAML nested too deeply") from error
        reason = " ".join(str(p) for p in (error.context, error.problem) if p)
        raise TopicConfigError(f"{name}{line}: YAML syntax error: {reason}") from error
    except yaml.reader.ReaderError as error:
        # A NUL, ESC or other control character anywhere in the file: PyYAML's message
        # spans two lines ("… in "<unicode string>", position 57"), which broke the one
        # line of `topics check`, `status` and the watchdog's incident.
        number = text.count("\n", 0, max(error.position, 0)) + 1
        raise TopicConfigError(
            f"{name}:{number}: YAML does not allow the character U+{error.character:04X}"
            f" ({error.reason})"
        ) from error
    except yaml.YAMLError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TopicConfigError(f"{name}: YAML error: {reason}") from error
    except RecursionError as error:  # brackets nested thousands deep
        raise TopicConfigError(f"{name}: YAML nested too deeply") from error
    if root is None:
        raise TopicConfigError(f"{name}: the file is empty")
    written = _written_nodes(root, MAX_WRITTEN_NODES)
    if written > MAX_WRITTEN_NODES:
        raise TopicConfigError(
            f"{name}: more than {MAX_WRITTEN_NODES:,} values (topics, terms, recipients and"
            " their fields); split the topics among deployments"
        )
    if _expanded_nodes(root, written + MAX_EXPANDED_NODES) > written + MAX_EXPANDED_NODES:
        raise TopicConfigError(
            f"{name}: more than {MAX_EXPANDED_NODES:,} values added once YAML aliases are"
            " expanded; write the reused lists out, or reuse them less"
        )
    top = reader.mapping(root, "the file", TOP_KEYS)
    if "version" in top:
        version = reader.value(top["version"])
        if version != FILE_FORMAT_VERSION:
            raise reader.error(top["version"], f"version must be {FILE_FORMAT_VERSION}")
    defaults = _defaults(reader, top.get("defaults"))
    if "topics" not in top:
        raise reader.error(root, "the file has no 'topics' list")
    topic_nodes = reader.sequence(top["topics"], "topics")
    if not topic_nodes:
        raise reader.error(top["topics"], "topics must not be empty")
    topics: list[Topic] = []
    seen: dict[str, int] = {}
    digest_schedules: dict[str, tuple[Recipient, yaml.Node]] = {}
    for node in topic_nodes:
        topic, recipient_nodes = _topic(reader, node, defaults)
        if topic.key in seen:
            raise reader.error(
                node, f"topic key {topic.key!r} is already used on line {seen[topic.key]}"
            )
        seen[topic.key] = node.start_mark.line + 1
        for recipient, r_node in recipient_nodes:
            if recipient.cadence is None:
                continue
            schedule = f"{recipient.address} {recipient.cadence}"
            earlier = digest_schedules.get(schedule)
            if earlier and _schedule(earlier[0]) != _schedule(recipient):
                raise reader.error(
                    r_node,
                    f"{recipient.address} gets one {recipient.cadence} digest for all its "
                    "topics: its digest hour, weekday, timezone and locale must be the same "
                    f"as on line {earlier[1].start_mark.line + 1}",
                )
            digest_schedules.setdefault(schedule, (recipient, r_node))
        topics.append(topic)
    return TopicSet(tuple(topics), origin=name)


def _schedule(recipient: Recipient) -> tuple[object, ...]:
    weekday = recipient.digest_weekday if recipient.cadence == "weekly" else None
    return (recipient.digest_hour, weekday, recipient.timezone, recipient.locale)


def _written_nodes(root: yaml.Node, limit: int) -> int:
    """How many nodes the document has as written (an alias's node counted once), counted
    up to just past ``limit``."""
    seen = {id(root)}
    stack = [root]
    while stack and len(seen) <= limit:
        node = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            continue
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return len(seen)


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """How many nodes the document has with every alias expanded, counted up to just past
    ``limit`` (so the count costs at most that, whatever the expansion)."""
    count = 0
    stack = [root]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return count


def load_topics(path: Path) -> TopicSet:
    """Read and validate the topics file at ``path``.

    Raises:
        TopicConfigError: the file cannot be read or is invalid (file, line and reason).
    """
    try:
        text = read_config_bytes(path).decode("utf-8")
    except UnicodeDecodeError as error:  # as sources.yaml says it: the byte, not a codec
        raise TopicConfigError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset"
            f" {error.start}); save the topics file as UTF-8"
        ) from error
    except (OSError, UnusableConfigFile) as error:
        raise TopicConfigError(f"{path}: cannot read the file: {error}") from error
    return parse_topics(text, str(path))


@dataclass(frozen=True)
class _Defaults:
    params: dict[str, Any]
    recipients: tuple[Recipient, ...]
    recipient_nodes: tuple[yaml.Node, ...]
    digest_hour: int
    timezone: str | None
    digest_weekday: int
    languages: tuple[str, ...]
    sources: tuple[str, ...]


def _defaults(reader: _Reader, node: yaml.Node | None) -> _Defaults:
    base = _Defaults({}, (), (), DEFAULT_DIGEST_HOUR, None, 0, (), ())
    if node is None:
        return base
    entries = reader.mapping(node, "defaults", DEFAULT_KEYS)
    digest_hour, timezone, weekday = DEFAULT_DIGEST_HOUR, None, 0
    if "digest" in entries:
        digest = reader.mapping(entries["digest"], "defaults.digest", DIGEST_KEYS)
        if "hour" in digest:
            digest_hour = _hour(reader, digest["hour"])
        if "timezone" in digest:
            timezone = _timezone(reader, digest["timezone"])
        if "weekday" in digest:
            weekday = _weekday(reader, digest["weekday"])
    params = _thresholds(reader, entries["thresholds"], {}) if "thresholds" in entries else {}
    recipients: list[tuple[Recipient, yaml.Node]] = []
    schedule = _Defaults({}, (), (), digest_hour, timezone, weekday, (), ())
    if "recipients" in entries:
        recipients = _recipients(reader, entries["recipients"], schedule)
    return _Defaults(
        params=params,
        recipients=tuple(r for r, _ in recipients),
        recipient_nodes=tuple(n for _, n in recipients),
        digest_hour=digest_hour,
        timezone=timezone,
        digest_weekday=weekday,
        languages=_languages(reader, entries["languages"]) if "languages" in entries else (),
        sources=_source_names(reader, entries["sources"]) if "sources" in entries else (),
    )


def _topic(
    reader: _Reader, node: yaml.Node, defaults: _Defaults
) -> tuple[Topic, list[tuple[Recipient, yaml.Node]]]:
    entries = reader.mapping(node, "a topic", TOPIC_KEYS)
    for required in ("key", "name", "terms"):
        if required not in entries:
            raise reader.error(node, f"a topic needs {required!r}")
    key = reader.text(entries["key"], "key")
    if not KEY_PATTERN.match(key):
        raise reader.error(
            entries["key"], f"key must be short lowercase ASCII (a-z, 0-9, _ -), got {key!r}"
        )
    name = reader.text(entries["name"], "name")
    what = f"topic {key!r}"
    if not clean(name):
        # Zero-width spaces, joiners, a byte order mark: every mail would read
        # "[mediamon] : 9 stories in 1 hour" and "Alert: ", the topic named nowhere.
        raise reader.error(
            entries["name"], f"{what}: name {name!r} shows nothing (invisible characters alone)"
        )
    terms = _rules(reader, entries["terms"], f"{what}: terms")
    if not terms:
        raise reader.error(entries["terms"], f"{what}: terms must not be empty")
    exclude = _rules(reader, entries["exclude"], f"{what}: exclude") if "exclude" in entries else []
    languages, sources = defaults.languages, defaults.sources
    if "scope" in entries:
        scope = reader.mapping(entries["scope"], f"{what}: scope", SCOPE_KEYS)
        if "languages" in scope:
            languages = _languages(reader, scope["languages"])
        if "sources" in scope:
            sources = _source_names(reader, scope["sources"])
    params = dict(defaults.params)
    if "thresholds" in entries:
        params = _thresholds(reader, entries["thresholds"], params)
    try:
        spike_params = SpikeParams(**params)
    except ValueError as error:
        raise reader.error(entries.get("thresholds", node), f"{what}: {error}") from error
    if "recipients" in entries:
        recipients = _recipients(reader, entries["recipients"], defaults)
    else:
        recipients = list(zip(defaults.recipients, defaults.recipient_nodes, strict=True))
    addresses = [(r.address, r.mode) for r, _ in recipients]
    if len(set(addresses)) != len(addresses):
        raise reader.error(entries.get("recipients", node), f"{what}: a recipient is listed twice")
    description = None
    if "description" in entries:
        description = reader.text(entries["description"], "description")
    topic = Topic(
        key=key,
        name=name,
        description=description,
        terms=tuple(text for text, _ in terms),
        exclude=tuple(text for text, _ in exclude),
        languages=languages,
        sources=sources,
        params=spike_params,
        recipients=tuple(r for r, _ in recipients),
    ).compiled([rule for _, rule in terms], [rule for _, rule in exclude])
    return topic, recipients


def _rules(reader: _Reader, node: yaml.Node, what: str) -> list[tuple[str, Rule]]:
    """Each rule as written, checked by compiling it (kept: the topic uses it)."""
    rules: list[tuple[str, Rule]] = []
    for item, text in reader.texts(node, what):
        try:
            rules.append((text, parse_rule(text)))
        except RuleError as error:
            raise reader.error(item, f"{what}: {error}") from error
    return rules


def _thresholds(reader: _Reader, node: yaml.Node, base: dict[str, Any]) -> dict[str, Any]:
    entries = reader.mapping(node, "thresholds", set(THRESHOLD_FIELDS))
    result = dict(base)
    for key, value_node in entries.items():
        kind, low, high = THRESHOLD_FIELDS[key]
        value = reader.value(value_node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise reader.error(value_node, f"thresholds.{key} must be a number")
        # The range first: float() of a huge integer overflows, and NaN fails it too.
        if not low <= value <= high:
            raise reader.error(value_node, f"thresholds.{key} must be between {low} and {high}")
        if kind is int and not float(value).is_integer():
            raise reader.error(value_node, f"thresholds.{key} must be a whole number")
        result[key] = int(value) if kind is int else float(value)
    return result


def _recipients(
    reader: _Reader, node: yaml.Node, defaults: _Defaults
) -> list[tuple[Recipient, yaml.Node]]:
    result: list[tuple[Recipient, yaml.Node]] = []
    for item in reader.sequence(node, "recipients"):
        if isinstance(item, yaml.ScalarNode):
            entries: dict[str, yaml.Node] = {"address": item}
        else:
            entries = reader.mapping(item, "a recipient", RECIPIENT_KEYS)
        if "address" not in entries:
            raise reader.error(item, "a recipient needs an address")
        address = reader.text(entries["address"], "address")
        if not is_recipient_address(address):
            raise reader.error(entries["address"], f"not an e-mail address: {address!r}")
        mode = reader.text(entries["mode"], "mode") if "mode" in entries else "immediate"
        if mode not in MODES:
            raise reader.error(entries["mode"], f"mode must be one of {list(MODES)}, got {mode!r}")
        if mode == "digest":
            mode = "daily"
        hour = defaults.digest_hour
        if "digest_hour" in entries:
            hour = _hour(reader, entries["digest_hour"])
        zone = defaults.timezone
        if "timezone" in entries:
            zone = _timezone(reader, entries["timezone"])
        weekday = defaults.digest_weekday
        if "digest_weekday" in entries:
            weekday = _weekday(reader, entries["digest_weekday"])
        locale = DEFAULT_LOCALE
        if "locale" in entries:
            locale = reader.text(entries["locale"], "locale")
            if locale not in LOCALES:
                raise reader.error(
                    entries["locale"], f"locale must be one of {list(LOCALES)}, got {locale!r}"
                )
        address = reader.addresses.setdefault(mailbox_key(address), address)
        result.append((Recipient(address, mode, hour, zone, locale, weekday), item))
    return result


def mailbox_key(address: str) -> str:
    """What tells two spellings of one mailbox apart from two mailboxes: the address in
    one case, its domain as DNS reads it (IDNA: ``a@例子.中国`` and
    ``a@xn--fsqu00a.xn--fiqs8s`` are one; both mailed as the latter, they got two of
    every digest and alert)."""
    return ascii_domain(address).casefold()


def _weekday(reader: _Reader, node: yaml.Node) -> int:
    name = reader.text(node, "weekday").lower()
    if name not in WEEKDAYS:
        raise reader.error(node, f"weekday must be one of {list(WEEKDAYS)}, got {name!r}")
    return WEEKDAYS.index(name)


def _hour(reader: _Reader, node: yaml.Node) -> int:
    value = reader.value(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 23:
        raise reader.error(node, "the digest hour must be a whole number from 0 to 23")
    return value


def _timezone(reader: _Reader, node: yaml.Node) -> str:
    name = reader.text(node, "timezone")
    # The names MEDIAMON_TIMEZONE accepts: not a folder of the tz database (America), nor
    # a file of it that is no zone (localtime, posixrules, posix/Europe/Paris).
    if not is_zone_name(name):
        raise reader.error(node, f"unknown timezone {name!r}")
    return name


def _source_names(reader: _Reader, node: yaml.Node) -> tuple[str, ...]:
    """A scope's sources: names as sources.yaml allows them. Compared with the stored
    names as written, so ``RFI-CN`` or ``rfi cn`` (no source can be named so) matched no
    article: the topic never counted a story, and ``topics check`` passed."""
    result = []
    for item, text in reader.texts(node, "sources"):
        if not SOURCE_NAME.match(text):
            raise reader.error(
                item,
                f"sources: {text[:80]!r} is no source name (lower-case letters, digits,"
                " _ . -, at most 64, as in the sources file): the topic would match nothing",
            )
        result.append(text)
    return tuple(result)


def _languages(reader: _Reader, node: yaml.Node) -> tuple[str, ...]:
    result = []
    for item, text in reader.texts(node, "languages"):
        code = text.lower()
        if not LANGUAGE_PATTERN.match(code):
            raise reader.error(item, f"languages are ISO 639 codes such as zh or en, got {text!r}")
        result.append(code)
    return tuple(result)
