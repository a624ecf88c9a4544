"""Tracked topics: the versioned YAML file, its rule syntax and the compiled matcher.

Pure: no database here (see :mod:`mediamon.topic_store`). The rule syntax is documented in
``docs/topics.md``; in short, each entry of a topic's ``terms`` is one rule::

    台湾                      a term (matched on the folded text: 臺灣, ｔａｉｗａｎ, ... alike)
    export control*           Latin words; * continues a Latin word (controls, controlled)
    限制 NEAR/8 出口           both within 8 characters (CJK) or 8 words (Latin), either order
    (限制|管制) NEAR/5 出口    alternatives in parentheses
    台海 NOT 台海网            drop occurrences that overlap an occurrence of 台海网
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from mediamon.normalize import fold
from mediamon.spikes import SpikeParams

logger = logging.getLogger(__name__)

# Bump when the meaning of a rule changes in code, so every topic is re-matched.
MATCHER_REVISION = 1
FILE_FORMAT_VERSION = 1
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ADDRESS_PATTERN = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}$")
# "digest" is the older name of "daily".
MODES = ("immediate", "daily", "weekly", "digest")
LOCALES = ("zh-CN", "en")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_NEAR = 200
# Letters and digits that form Latin, Greek or Cyrillic words (after case folding): a term
# that begins or ends with one must not continue a longer word (taiwan ≠ taiwanese).
ALNUM = "0-9a-z\u00c0-\u02af\u0370-\u03ff\u0400-\u04ff"
ALNUM_CHAR = re.compile(f"[{ALNUM}]")
CJK_CHAR = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]"
)
WORD = re.compile(r"\w+")
WHITESPACE = re.compile(r"\s")
TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"[^"]*")
      | (?P<near>NEAR/(?P<distance>\d+))(?=[\s("]|$)
      | (?P<not>NOT)(?=[\s("]|$)
      | (?P<reserved>AND|OR)(?=[\s("]|$)
      | (?P<open>\()
      | (?P<close>\))
      | (?P<bar>\|)
      | (?P<word>[^\s()|"]+)
    )""",
    re.VERBOSE,
)
LOWER_OPERATOR = re.compile(r"(?i)^(near/\d*|not)$|near/\d")
DEFAULT_DIGEST_HOUR = 8
DEFAULT_LOCALE = "en"
DEFAULT_PATH = Path("config") / "topics.yaml"


class TopicConfigError(ValueError):
    """The topics file is invalid; the message names the file, the line and the reason."""


class RuleError(ValueError):
    """A rule cannot be parsed; the message says why (the caller adds file and line)."""


# ---------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Operand:
    """One side of a rule: a phrase, or alternatives ``(a|b|c)``, all folded."""

    phrases: tuple[str, ...]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        # Longest first, so the alternation prefers 台湾海峡 over 台湾 at the same place.
        ordered = sorted(self.phrases, key=lambda p: (-len(p), p))
        return re.compile("|".join(_phrase_regex(p) for p in ordered))

    @property
    def has_cjk(self) -> bool:
        return any(CJK_CHAR.search(p) for p in self.phrases)

    def canonical(self) -> str:
        quoted = [_quote(p) for p in self.phrases]
        return quoted[0] if len(quoted) == 1 else "(" + "|".join(quoted) + ")"


@dataclass(frozen=True)
class Rule:
    """A compiled rule: ``first [NEAR/n second] [NOT excluded ...]``.

    Attributes:
        first: The term, or the first side of a proximity rule.
        second: The other side of a proximity rule, else None.
        distance: The NEAR distance, else None.
        excluded: Occurrences overlapping any of these are dropped.
    """

    first: Operand
    second: Operand | None = None
    distance: int | None = None
    excluded: tuple[Operand, ...] = ()

    @property
    def unit(self) -> str:
        """``chars`` when either side has CJK text, else ``words``."""
        sides = [self.first] + ([self.second] if self.second else [])
        return "chars" if any(s.has_cjk for s in sides) else "words"

    def canonical(self) -> str:
        """The normalized text of the rule (the form that is hashed into the version)."""
        text = self.first.canonical()
        if self.second is not None:
            text += f" NEAR/{self.distance} {self.second.canonical()}"
        for operand in self.excluded:
            text += f" NOT {operand.canonical()}"
        return text

    @cached_property
    def _needles(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # A phrase cannot occur without its longest word: a plain substring test (in C)
        # rules out most texts before any regular expression runs.
        def words(operand: Operand | None) -> tuple[str, ...]:
            if operand is None:
                return ()
            return tuple({max(p.replace("*", "").split(" "), key=len) for p in operand.phrases})

        return words(self.first), words(self.second)

    def possible(self, text: str) -> bool:
        """False when the rule certainly does not occur in ``text`` (a cheap test)."""
        first, second = self._needles
        return any(n in text for n in first) and (not second or any(n in text for n in second))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Occurrences of the rule in a folded text, as (start, end) offsets."""
        found = [m.span() for m in self.first.pattern.finditer(text)]
        if not found:
            return []
        if self.second is not None and self.distance is not None:
            others = [m.span() for m in self.second.pattern.finditer(text)]
            found = _near(text, found, others, self.distance, self.unit)
        for operand in self.excluded:
            if not found:
                break
            blocked = [m.span() for m in operand.pattern.finditer(text)]
            found = [s for s in found if not any(_overlap(s, b) for b in blocked)]
        return found


def parse_rule(text: str) -> Rule:
    """Parse one rule (see ``docs/topics.md``).

    Raises:
        RuleError: the rule is empty, uses an unknown operator, or is malformed.
    """
    source = unicodedata.normalize("NFKC", text).strip()
    if not source:
        raise RuleError("empty rule")
    tokens = _tokenize(source)
    position = 0

    def operand() -> Operand:
        nonlocal position
        if position >= len(tokens):
            raise RuleError(f"{source!r}: a term is missing at the end")
        kind, value = tokens[position]
        if kind == "phrase":
            position += 1
            return Operand((value,))
        if kind != "open":
            raise RuleError(f"{source!r}: expected a term before {value!r}")
        position += 1
        phrases: list[str] = []
        while True:
            if position >= len(tokens) or tokens[position][0] != "phrase":
                raise RuleError(f"{source!r}: expected a term inside ( | )")
            phrases.append(tokens[position][1])
            position += 1
            if position >= len(tokens):
                raise RuleError(f"{source!r}: ( without )")
            kind, value = tokens[position]
            position += 1
            if kind == "close":
                break
            if kind != "bar":
                raise RuleError(f"{source!r}: expected | or ) inside parentheses, got {value!r}")
        return Operand(tuple(sorted(set(phrases))))

    first = operand()
    second: Operand | None = None
    distance: int | None = None
    excluded: list[Operand] = []
    while position < len(tokens):
        kind, value = tokens[position]
        position += 1
        if kind == "near":
            if second is not None or excluded:
                raise RuleError(f"{source!r}: only one NEAR per rule, before any NOT")
            distance = int(value)
            if not 0 <= distance <= MAX_NEAR:
                raise RuleError(f"{source!r}: NEAR distance must be 0 to {MAX_NEAR}")
            second = operand()
        elif kind == "not":
            excluded.append(operand())
        else:
            raise RuleError(f"{source!r}: expected NEAR/n or NOT, got {value!r}")
    return Rule(first, second, distance, tuple(excluded))


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    words: list[str] = []

    def flush() -> None:
        if words:
            phrase = _fold_phrase(" ".join(words), source)
            tokens.append(("phrase", phrase))
            words.clear()

    position = 0
    while position < len(source):
        match = TOKEN.match(source, position)
        if match is None or match.end() == position:
            break  # only trailing whitespace is left
        position = match.end()
        if match.group("quoted") is not None:
            flush()
            inner = match.group("quoted")[1:-1]
            if not inner.strip():
                raise RuleError(f"{source!r}: empty quotes")
            words.append(inner)
            flush()
        elif match.group("word") is not None:
            word = match.group("word")
            if LOWER_OPERATOR.search(word):
                raise RuleError(
                    f"{source!r}: write operators in capitals between spaces "
                    f"(NEAR/8, NOT), or quote the text; got {word!r}"
                )
            words.append(word)
        elif match.group("reserved") is not None:
            raise RuleError(
                f"{source!r}: {match.group('reserved')} is not an operator here: list "
                "alternatives as separate terms or (a|b), use NEAR/n for co-occurrence, "
                "or quote the word"
            )
        else:
            flush()
            kind = next(k for k in ("near", "not", "open", "close", "bar") if match.group(k))
            value = match.group("distance") if kind == "near" else match.group(kind)
            tokens.append((kind, value))
    flush()
    return tokens


def _fold_phrase(raw: str, source: str) -> str:
    phrase = " ".join(fold(raw).split())
    if not phrase:
        raise RuleError(f"{source!r}: a term folds to nothing")
    for word in phrase.split(" "):
        stem = word[:-1] if word.endswith("*") else word
        if "*" in stem or (word.endswith("*") and not (stem and ALNUM_CHAR.match(stem[-1]))):
            raise RuleError(f"{source!r}: * may only end a Latin word or number ({word!r})")
    return phrase


def _phrase_regex(phrase: str) -> str:
    words = phrase.split(" ")
    parts: list[str] = []
    for index, word in enumerate(words):
        if index:
            # Chinese needs no spaces: a space next to a CJK character is optional.
            between = words[index - 1][-1] + word[0]
            parts.append(r"\s*" if CJK_CHAR.search(between) else r"\s+")
        if word.endswith("*"):
            parts.append(re.escape(word[:-1]) + f"[{ALNUM}]*")
        else:
            parts.append(re.escape(word))
    pattern = "".join(parts)
    if ALNUM_CHAR.match(phrase[0]):
        pattern = f"(?<![{ALNUM}])" + pattern
    if ALNUM_CHAR.match(phrase[-1]) or phrase.endswith("*"):
        pattern += f"(?![{ALNUM}])"
    return pattern


def _quote(phrase: str) -> str:
    plain = (
        " " not in phrase
        and not any(c in phrase for c in '()|"')
        and not (LOWER_OPERATOR.search(phrase) or phrase in ("and", "or"))
    )
    return phrase if plain else f'"{phrase}"'


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _gap_units(gap: str, unit: str) -> int:
    if unit == "words":
        return len(WORD.findall(gap))
    return len(gap) - len(WHITESPACE.findall(gap))


def _near(
    text: str,
    firsts: Sequence[tuple[int, int]],
    seconds: Sequence[tuple[int, int]],
    distance: int,
    unit: str,
) -> list[tuple[int, int]]:
    """Spans covering each first occurrence and its closest second within ``distance``."""
    if not seconds:
        return []
    starts = sorted(s for s, _ in seconds)
    by_start = sorted(seconds)
    by_end = sorted(seconds, key=lambda s: s[1])
    ends = [e for _, e in by_end]
    result: list[tuple[int, int]] = []
    for a_start, a_end in firsts:
        candidates: list[tuple[int, tuple[int, int]]] = []
        # The nearest second after the first starts first; the nearest before ends last.
        after = bisect.bisect_left(starts, a_end)
        if after < len(by_start):
            b_start, b_end = by_start[after]
            candidates.append((_gap_units(text[a_end:b_start], unit), (a_start, b_end)))
        before = bisect.bisect_right(ends, a_start) - 1
        if before >= 0:
            b_start, b_end = by_end[before]
            candidates.append((_gap_units(text[b_end:a_start], unit), (b_start, a_end)))
        if candidates:
            gap, span = min(candidates)
            if gap <= distance:
                result.append(span)
    return result


def count_hits(spans: Iterable[tuple[int, int]]) -> int:
    """Occurrences counted once each: overlapping spans (台湾 inside 台湾海峡, two NEAR
    pairs sharing a word) merge into one."""
    count = 0
    last_end = -1
    for start, end in sorted(spans):
        if start >= last_end:
            count += 1
        last_end = max(last_end, end)
    return count


# ---------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class Recipient:
    """Who is told about a topic's alerts, and how.

    Attributes:
        address: E-mail address.
        mode: ``immediate`` (one mail per alert), ``daily`` or ``weekly`` (a digest of
            every new story of the period, spikes on top); ``digest`` means ``daily``.
        digest_hour: Local hour at which the digest is sent.
        timezone: IANA zone of the times in the recipient's mails and of ``digest_hour``;
            None: the display zone (``MEDIAMON_TIMEZONE``).
        locale: Language of the mails (``zh-CN`` or ``en``).
        digest_weekday: Day of a weekly digest, 0 = Monday.
    """

    address: str
    mode: str = "immediate"
    digest_hour: int = DEFAULT_DIGEST_HOUR
    timezone: str | None = None
    locale: str = DEFAULT_LOCALE
    digest_weekday: int = 0

    @property
    def cadence(self) -> str | None:
        """``daily`` or ``weekly`` for a digest recipient, None for immediate mail."""
        if self.mode == "immediate":
            return None
        return "weekly" if self.mode == "weekly" else "daily"


@dataclass(frozen=True)
class Topic:
    """One tracked topic, with its defaults resolved.

    Attributes:
        key: Short ASCII identifier, the key in the database (``taiwan``).
        name: Display name (``台湾``).
        terms: The rules as written (see ``docs/topics.md``).
        exclude: Rules that veto the whole article when they occur in its title or body.
        languages: Only articles in these languages (empty: all).
        sources: Only articles from these sources (empty: all).
        params: Spike detection thresholds.
        recipients: Who gets the alerts.
        description: Free text for people.
    """

    key: str
    name: str
    terms: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    params: SpikeParams = field(default_factory=SpikeParams)
    recipients: tuple[Recipient, ...] = ()
    description: str | None = None

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(parse_rule(t) for t in self.terms)

    @cached_property
    def exclusions(self) -> tuple[Rule, ...]:
        return tuple(parse_rule(t) for t in self.exclude)

    def in_scope(self, language: str | None, source: str | None) -> bool:
        """Whether an article of this language and source is considered at all."""
        if self.languages and (language or "") not in self.languages:
            return False
        return not self.sources or (source or "") in self.sources

    def hits(self, text_folded: str) -> int:
        """Occurrences of the topic's rules in one folded text."""
        if not text_folded:
            return 0
        return count_hits(
            s for rule in self.rules if rule.possible(text_folded) for s in rule.spans(text_folded)
        )

    def match(self, title_folded: str, body_folded: str) -> tuple[int, int]:
        """Count the topic's occurrences in an article.

        Args:
            title_folded: ``fold(title)`` (titles are stored as published: fold them first).
            body_folded: ``fold(body)``, i.e. ``articles.match_text``.

        Returns:
            (title hits, body hits); (0, 0) when an exclusion occurs in title or body.
        """
        title_hits = self.hits(title_folded)
        body_hits = self.hits(body_folded)
        if (title_hits or body_hits) and any(
            (rule.possible(title_folded) and rule.spans(title_folded))
            or (rule.possible(body_folded) and rule.spans(body_folded))
            for rule in self.exclusions
        ):
            return 0, 0
        return title_hits, body_hits

    def matching_definition(self) -> dict[str, Any]:
        """The part of the definition that decides which articles match, normalized."""
        return {
            "terms": sorted({r.canonical() for r in self.rules}),
            "exclude": sorted({r.canonical() for r in self.exclusions}),
            "languages": sorted(self.languages),
            "sources": sorted(self.sources),
            "matcher": MATCHER_REVISION,
        }

    @cached_property
    def match_version(self) -> str:
        """Hash of :meth:`matching_definition`: when it changes, past articles are
        re-matched. Reordering terms or writing 臺灣 for 台湾 does not change it."""
        return _digest(self.matching_definition())

    @cached_property
    def version(self) -> str:
        """Hash of the whole normalized definition (thresholds and recipients too)."""
        return _digest(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, read back by :func:`topic_from_dict` (stored in the database)."""
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "terms": list(self.terms),
            "exclude": list(self.exclude),
            "languages": list(self.languages),
            "sources": list(self.sources),
            "params": asdict(self.params),
            "recipients": [asdict(r) for r in self.recipients],
        }


@dataclass(frozen=True)
class TopicSet:
    """The topics in force, and where they came from (a file path or ``database``)."""

    topics: tuple[Topic, ...]
    origin: str = ""

    def __iter__(self) -> Iterator[Topic]:
        return iter(self.topics)

    def __len__(self) -> int:
        return len(self.topics)

    def get(self, key: str) -> Topic | None:
        return next((t for t in self.topics if t.key == key), None)

    def keys(self) -> list[str]:
        return [t.key for t in self.topics]


def _digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def topic_from_dict(data: Mapping[str, Any]) -> Topic:
    """Rebuild a topic from :meth:`Topic.to_dict` (the copy kept in the database).

    Raises:
        TopicConfigError: the stored definition is not valid (it always was when stored).
    """
    try:
        params_data = dict(data.get("params") or {})
        known = {f.name for f in fields(SpikeParams)}
        params = SpikeParams(**{k: v for k, v in params_data.items() if k in known})
        topic = Topic(
            key=str(data["key"]),
            name=str(data["name"]),
            description=data.get("description"),
            terms=tuple(str(t) for t in data["terms"]),
            exclude=tuple(str(t) for t in data.get("exclude") or ()),
            languages=tuple(data.get("languages") or ()),
            sources=tuple(data.get("sources") or ()),
            params=params,
            recipients=tuple(Recipient(**r) for r in data.get("recipients") or ()),
        )
        topic.rules  # noqa: B018 - compile now, so a bad stored rule fails here
        topic.exclusions  # noqa: B018
    except (KeyError, TypeError, ValueError) as error:
        raise TopicConfigError(f"stored topic definition is invalid: {error}") from error
    return topic


# ---------------------------------------------------------------------------------------
# The YAML file

THRESHOLD_FIELDS: dict[str, tuple[type, float, float]] = {
    # name: (type, minimum, maximum)
    "window_hours": (int, 1, 48),
    "baseline_weeks": (int, 1, 12),
    "min_stories": (int, 1, 100_000),
    "min_lift": (float, 1.0, 1000.0),
    "max_p_value": (float, 1e-12, 0.5),
    "outage_ratio": (float, 0.0, 1.0),
    "min_baseline_hours": (int, 0, 24 * 7 * 12),
    "prior_stories": (float, 0.01, 10_000.0),
    "cooldown_hours": (int, 0, 24 * 30),
    "rearm_p_value": (float, 1e-12, 1.0),
}
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
        return str(node.value).strip()

    def texts(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.ScalarNode):
            return [(node, self.text(node, what))]
        return [(item, self.text(item, what)) for item in self.sequence(node, what)]

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)


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
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(p) for p in (error.context, error.problem) if p)
        raise TopicConfigError(f"{name}{line}: YAML syntax error: {reason}") from error
    except yaml.YAMLError as error:
        raise TopicConfigError(f"{name}: YAML error: {error}") from error
    if root is None:
        raise TopicConfigError(f"{name}: the file is empty")
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


def load_topics(path: Path) -> TopicSet:
    """Read and validate the topics file at ``path``.

    Raises:
        TopicConfigError: the file cannot be read or is invalid (file, line and reason).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
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
        sources=tuple(t for _, t in reader.texts(entries["sources"], "sources"))
        if "sources" in entries
        else (),
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
            sources = tuple(t for _, t in reader.texts(scope["sources"], "sources"))
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
        terms=tuple(terms),
        exclude=tuple(exclude),
        languages=languages,
        sources=sources,
        params=spike_params,
        recipients=tuple(r for r, _ in recipients),
    )
    return topic, recipients


def _rules(reader: _Reader, node: yaml.Node, what: str) -> list[str]:
    rules: list[str] = []
    for item, text in reader.texts(node, what):
        try:
            parse_rule(text)
        except RuleError as error:
            raise reader.error(item, f"{what}: {error}") from error
        rules.append(text)
    return rules


def _thresholds(reader: _Reader, node: yaml.Node, base: dict[str, Any]) -> dict[str, Any]:
    entries = reader.mapping(node, "thresholds", set(THRESHOLD_FIELDS))
    result = dict(base)
    for key, value_node in entries.items():
        kind, low, high = THRESHOLD_FIELDS[key]
        value = reader.value(value_node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise reader.error(value_node, f"thresholds.{key} must be a number")
        if kind is int and not float(value).is_integer():
            raise reader.error(value_node, f"thresholds.{key} must be a whole number")
        if not low <= value <= high:
            raise reader.error(value_node, f"thresholds.{key} must be between {low} and {high}")
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
        if not ADDRESS_PATTERN.match(address):
            raise reader.error(entries["address"], f"not an e-mail address: {address!r}")
        mode = reader.text(entries["mode"], "mode") if "mode" in entries else "immediate"
        if mode not in MODES:
            raise reader.error(entries["mode"], f"mode must be one of {list(MODES)}, got {mode!r}")
        if mode == "digest":
            mode = "daily"
        hour = defaults.digest_hour
        if "digest_hour" in entries:
            hour = _hour(reader, entries["digest_hour"])
        zone = (
            _timezone(reader, entries["timezone"]) if "timezone" in entries else defaults.timezone
        )
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
        result.append((Recipient(address, mode, hour, zone, locale, weekday), item))
    return result


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
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise reader.error(node, f"unknown timezone {name!r}") from error
    return name


def _languages(reader: _Reader, node: yaml.Node) -> tuple[str, ...]:
    result = []
    for item, text in reader.texts(node, "languages"):
        code = text.lower()
        if not LANGUAGE_PATTERN.match(code):
            raise reader.error(item, f"languages are ISO 639 codes such as zh or en, got {text!r}")
        result.append(code)
    return tuple(result)
