"""The topic model: a topic (rules, scope, thresholds, recipients) and its versions.

A topic's ``version`` hashes its whole definition, ``match_version`` only what decides
matching (with :data:`MATCHER_REVISION`), so only a change of rules re-matches articles.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from mediamon.errors import ConfigError
from mediamon.spikes.model import SpikeParams
from mediamon.topics.rules import Rule, count_hits, parse_rule

logger = logging.getLogger(__name__)

# Bump when the meaning of a rule changes in code, so every topic is re-matched.
# 2: invisible characters (variation selectors, fillers, tags) inside a term are ignored.
# 3: a dotted capital İ folds to i (İstanbul is a mention of Istanbul).
MATCHER_REVISION = 3
DEFAULT_DIGEST_HOUR = 8
DEFAULT_LOCALE = "en"


class TopicConfigError(ConfigError):
    """The topics file is invalid; the message names the file, the line and the reason."""


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

    def compiled(self, rules: Sequence[Rule], exclusions: Sequence[Rule]) -> Topic:
        """This topic with its rules already compiled (``parse_rule`` of ``terms`` and of
        ``exclude``, in order): the topics file checks every rule by compiling it, and
        the compiled rules were dropped, each compiled again when syncing (the match
        version) and matching: 50,000 rules of 10,000 topics parsed twice a run."""
        if len(rules) != len(self.terms) or len(exclusions) != len(self.exclude):
            raise ValueError("one compiled rule per term and per exclusion")
        # cached_property keeps its value in the instance's __dict__, frozen or not.
        vars(self).update(rules=tuple(rules), exclusions=tuple(exclusions))
        return self

    @cached_property
    def exclusions(self) -> tuple[Rule, ...]:
        return tuple(parse_rule(t) for t in self.exclude)

    @cached_property
    def needles(self) -> frozenset[str]:
        """Words one of which occurs wherever the topic does (its rules' first sides)."""
        return frozenset(n for rule in self.rules for n in rule.needles[0])

    def in_scope(self, language: str | None, source: str | None) -> bool:
        """Whether an article of this language and source is considered at all."""
        if self.languages and (language or "") not in self.languages:
            return False
        return not self.sources or (source or "") in self.sources

    def hits(self, text_folded: str, present: AbstractSet[str] | None = None) -> int:
        """Occurrences of the topic's rules in one folded text (``present``: see
        :meth:`Rule.possible`)."""
        if not text_folded:
            return 0
        return count_hits(
            s
            for rule in self.rules
            if rule.possible(text_folded, present)
            for s in rule.spans(text_folded)
        )

    def match(
        self,
        title_folded: str,
        body_folded: str,
        present: tuple[AbstractSet[str], AbstractSet[str]] | None = None,
    ) -> tuple[int, int]:
        """Count the topic's occurrences in an article.

        Args:
            title_folded: ``fold(title)`` (titles are stored as published: fold them first).
            body_folded: ``fold(body)``, i.e. ``articles.match_text``.
            present: The needles found in the title and in the body
                (:class:`mediamon.topics.prefilter.Needles`); None: each rule looks itself.

        Returns:
            (title hits, body hits); (0, 0) when an exclusion occurs in title or body.
        """
        in_title, in_body = present if present is not None else (None, None)
        title_hits = self.hits(title_folded, in_title)
        body_hits = self.hits(body_folded, in_body)
        if (title_hits or body_hits) and any(
            (rule.possible(title_folded, in_title) and rule.spans(title_folded))
            or (rule.possible(body_folded, in_body) and rule.spans(body_folded))
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
        return self._by_key.get(key)

    @cached_property
    def _by_key(self) -> dict[str, Topic]:
        # A scan per look-up made every caller that looks each topic up quadratic: the
        # digest of 3,000 topics and each detection run, 4.5 million comparisons.
        by_key: dict[str, Topic] = {}
        for topic in self.topics:
            by_key.setdefault(topic.key, topic)  # the first, as the scan found
        return by_key

    def keys(self) -> list[str]:
        return [t.key for t in self.topics]


def _digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def topic_from_dict(data: Mapping[str, Any], *, compile_rules: bool = True) -> Topic:
    """Rebuild a topic from :meth:`Topic.to_dict` (the copy kept in the database).

    Args:
        data: The stored definition.
        compile_rules: Compile the rules now, so a bad one fails here; False leaves
            them to the first use (:attr:`Topic.rules`): detection and delivery read
            the thresholds and recipients of every topic and the rules of few or none.

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
        if compile_rules:
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
