"""Source definitions: the versioned YAML file that lists what mediamon polls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

KINDS = ("feed", "archive")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DEFAULT_POLL_INTERVAL = timedelta(minutes=15)
DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class SourceConfigError(ValueError):
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
        allow_private_network: Allow URLs on loopback/private addresses (demo, tests).
    """

    name: str
    kind: str
    location: str
    language: str | None = None
    poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    drop_query_params: tuple[str, ...] = ()
    fetch_pages: bool = True
    allow_private_network: bool = False
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def parse_duration(value: object, where: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d`` or a number of seconds."""
    if isinstance(value, bool):
        raise SourceConfigError(f"{where}: expected a duration such as 15m, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = DURATION.match(str(value).strip())
    if not match:
        raise SourceConfigError(f"{where}: expected a duration such as 15m, got {value!r}")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _source_from_mapping(raw: object, index: int, path: Path) -> Source:
    where = f"{path}: sources[{index}]"
    if not isinstance(raw, dict):
        raise SourceConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SourceConfigError(
            f"{where}.name: expected a short lowercase name (a-z, 0-9, _ . -), got {name!r}"
        )
    where = f"{path}: source {name!r}"
    known = {
        "name", "kind", "url", "path", "language", "poll_interval",
        "drop_query_params", "fetch_pages", "allow_private_network", "enabled",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SourceConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kind = raw.get("kind", "feed")
    if kind not in KINDS:
        raise SourceConfigError(f"{where}.kind: expected one of {KINDS}, got {kind!r}")
    if kind == "feed":
        location = raw.get("url")
        if not isinstance(location, str) or not re.match(r"^https?://", location):
            raise SourceConfigError(f"{where}.url: a feed needs an http(s) URL, got {location!r}")
    else:
        folder = raw.get("path")
        if not isinstance(folder, str) or not folder:
            raise SourceConfigError(f"{where}.path: an archive needs a folder path")
        location = str((path.parent / folder).resolve())
    language = raw.get("language")
    if language is not None and not isinstance(language, str):
        raise SourceConfigError(f"{where}.language: expected a language tag such as zh")
    params = raw.get("drop_query_params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise SourceConfigError(f"{where}.drop_query_params: expected a list of names")
    for flag in ("fetch_pages", "allow_private_network", "enabled"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise SourceConfigError(f"{where}.{flag}: expected true or false")
    return Source(
        name=name,
        kind=kind,
        location=location,
        language=language.lower() if language else None,
        poll_interval=parse_duration(raw.get("poll_interval", "15m"), f"{where}.poll_interval"),
        drop_query_params=tuple(params),
        fetch_pages=raw.get("fetch_pages", True),
        allow_private_network=raw.get("allow_private_network", False),
        settings={k: v for k, v in raw.items() if k not in ("name", "kind")},
    )


def load_sources(path: Path) -> list[Source]:
    """Read and validate the sources file; disabled sources are left out.

    Raises:
        SourceConfigError: the file is missing or invalid; the message names the file,
            the source and the field.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SourceConfigError(f"{path}: sources file not found") from error
    except yaml.YAMLError as error:
        raise SourceConfigError(f"{path}: not valid YAML: {error}") from error
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
