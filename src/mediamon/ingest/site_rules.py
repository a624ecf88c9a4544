"""Per-site extraction rules: the optional ``extraction.yaml`` (``MEDIAMON_EXTRACTION_CONFIG``)
an operator writes for sites whose pages need help (XPath to prune, extra boilerplate
lines)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from mediamon.config_yaml import (
    ConfigFileProblem,
    aliases_add_more_than,
    may_hold_aliases,
    parse_config_yaml,
    read_config_text,
)
from mediamon.settings import Settings
from mediamon.text import one_line

# What YAML aliases may add to the file once expanded, as for sources.yaml: real files are
# a few dozen values; a list reused by every site made 9 million regular expressions. A
# file written out is bounded by its size (config_yaml.MAX_CONFIG_BYTES) alone.
MAX_RULE_VALUES = 200_000
MAX_RULE_CHARACTERS = 10_000_000
# A host name's letters once in ASCII: labels of letters, digits, hyphens (and _ , which
# some hosts carry) separated by dots.
HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# Expressions in one list of a site: each is tried on every page (or line) of the site.
MAX_SITE_EXPRESSIONS = 500


@dataclass(frozen=True)
class SiteRule:
    """Per-site extraction rules from the configuration file.

    Attributes:
        domain: Host the rule applies to, and its subdomains (``163.com`` covers
            ``news.163.com``).
        prune_xpath: XPath expressions of elements removed before extraction.
        boilerplate: Regular expressions (searched, case-insensitive) of lines removed
            from the start and end of the text, on top of the built-in ones.
        drop_lines: Regular expressions of lines removed wherever they are.
    """

    domain: str
    prune_xpath: tuple[str, ...] = ()
    boilerplate: tuple[re.Pattern[str], ...] = ()
    drop_lines: tuple[re.Pattern[str], ...] = ()


def configured_site_rules() -> dict[str, SiteRule]:
    """The rules of the configured file (``MEDIAMON_EXTRACTION_CONFIG``), cached.

    Raises:
        ValueError: The file is not valid YAML or a rule is malformed.
    """
    return load_site_rules(str(Settings.from_env().extraction_path))


def host_form(host: str) -> str | None:
    """A host name as rules and pages are compared: lower case, ASCII (IDNA 2008 with
    UTS 46, as the fetcher requests it: ``例子.中国`` is ``xn--fsqu00a.xn--fiqs8s``,
    ``ＥＸＡＭＰＬＥ．ｃｏｍ`` is ``example.com``), without the root's trailing dot; None
    if it is no host name. Before, a rule applied only to pages whose URL spelled the host
    as the rule did: a rule for ``例子.中国`` never to ``xn--fsqu00a.xn--fiqs8s``."""
    host = host.strip().lower()
    if not host.isascii():
        import idna

        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    host = host.rstrip(".")
    return host if HOST_NAME.fullmatch(host) else None


def site_rule(url: str | None, rules: Mapping[str, SiteRule]) -> SiteRule | None:
    """The rule for a URL's host (longest matching domain), if any."""
    if not url or not rules:
        return None
    host = host_form(urlsplit(url).hostname or "") or ""
    while host:
        if host in rules:
            return rules[host]
        host = host.partition(".")[2]
    return None


# Cached by path for the life of the process: besides sparing the parse, this is what
# makes a command read the file once (service.due_sources checks it, ingest_sources asks
# again), so an edit saved during a run cannot fail it halfway (test_cli's
# test_an_edit_to_the_extraction_file_during_a_run_does_not_fail_it). A long-lived
# process would not see an edit; none calls this (each Airflow task is a new process).
@lru_cache(maxsize=4)
def load_site_rules(path: str) -> dict[str, SiteRule]:
    """Per-site rules of a YAML file (see ``default_config/extraction.yaml``); none if it is absent.

    Read as ``sources.yaml`` is (:mod:`mediamon.config_yaml`): one line naming the file
    for any problem, a key given twice refused, the document's size bounded once its
    aliases are expanded (before: a billion laughs or a list reused by every site ran for
    minutes, nested brackets raised RecursionError, bytes that are not UTF-8 gave a line
    naming no file).

    Raises:
        ValueError: The file is not valid YAML or a rule is malformed; the message names
            the file (and the site and field).
    """
    file = Path(path)
    try:
        present = file.exists()  # a FIFO or a device exists: refused below, not taken for none
    except OSError as error:  # a name too long, a folder on the way we may not enter
        raise ValueError(f"{file}: cannot read the extraction file: {error.strerror}") from None
    if not present:
        return {}
    try:
        text = read_config_text(file, "extraction file")
        document = parse_config_yaml(text, file) or {}
    except ConfigFileProblem as error:
        raise ValueError(str(error)) from None
    # Only what aliases add: before, every value written counted, and a long file without
    # an alias was refused as "too large once YAML aliases are expanded".
    if may_hold_aliases(text) and aliases_add_more_than(
        document, MAX_RULE_VALUES, MAX_RULE_CHARACTERS
    ):
        raise ValueError(
            f"{file}: too large once YAML aliases are expanded (they add more than"
            f" {MAX_RULE_VALUES} values or {MAX_RULE_CHARACTERS} characters)"
        )
    sites = document.get("sites") if isinstance(document, dict) else None
    if sites is None:
        return {}
    if not isinstance(sites, list):
        raise ValueError(f"{file}: 'sites' must be a list")
    rules: dict[str, SiteRule] = {}
    first: dict[str, int] = {}  # the site number of each domain, for a repeat's error
    for number, entry in enumerate(sites, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("domain"), str):
            raise ValueError(f"{file}: site {number} needs a 'domain'")
        written = entry["domain"]
        where = f"{file}: site {one_line(written[:80])!r}"
        domain = (host_form(written) or "").removeprefix("www.")
        if not domain:
            raise ValueError(
                f"{where}: expected a domain such as example.com (its subdomains are covered)"
            )
        if domain in rules:  # the later rule replaced the earlier without a word
            raise ValueError(f"{where}: given twice (sites {first[domain]} and {number})")
        first[domain] = number
        try:
            rules[domain] = SiteRule(
                domain=domain,
                prune_xpath=_xpaths(entry),
                boilerplate=_patterns(entry, "boilerplate"),
                drop_lines=_patterns(entry, "drop_lines"),
            )
        except ValueError as error:
            raise ValueError(f"{where}.{error}") from None
    return rules


def _patterns(entry: Mapping[str, object], name: str) -> tuple[re.Pattern[str], ...]:
    """A rule's regular expressions, compiled (searched case-insensitive)."""
    patterns = []
    for index, pattern in enumerate(_strings(entry, name)):
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        # OverflowError: a{4294967296}; RecursionError: 2,000 nested groups (before: both
        # tracebacks out of the planning of every ingest run).
        except (re.error, OverflowError, RecursionError) as error:
            raise ValueError(
                f"{name}[{index}]: not a regular expression: {str(error)[:200]}:"
                f" {one_line(pattern, 80)}"
            ) from None
        # "", "^", ".*" (or a YAML value left empty as '') find a match in every line: every
        # page of the site would lose its whole text, and each item keep its feed's.
        if compiled.search("") is not None:
            raise ValueError(
                f"{name}[{index}]: {one_line(pattern, 80)!r} matches an empty line, so"
                " every line of every page: write what the line holds, such as ^责任编辑"
            )
        patterns.append(compiled)
    return tuple(patterns)


def elements_only(expression: str) -> str:
    """A configured XPath narrowed to the elements it selects: an attribute or a text node
    it also selects would fail the page in trafilatura, which removes what it is given as
    elements (before: ``//p/@class`` lost every page of the site its text)."""
    return f"({expression})[self::*]"


def _xpaths(entry: Mapping[str, object]) -> tuple[str, ...]:
    """A rule's XPath expressions, each checked to be one that selects nodes. A bad one
    failed each page of the site in trafilatura (before: XPathSyntaxError, ``count(//p)``
    an XPathEvalError: the page's text lost and the feed's kept, at every page)."""
    from lxml import etree

    expressions = _strings(entry, "prune_xpath")
    probe = etree.fromstring("<html><body><p class='x'>x</p></body></html>")
    for index, expression in enumerate(expressions):
        try:
            etree.XPath(elements_only(expression))(probe)
        except etree.XPathError as error:
            raise ValueError(
                f"prune_xpath[{index}]: expected an XPath selecting elements, such as"
                f" //div[@class='related'], got {one_line(expression, 80)} ({error})"
            ) from None
    return expressions


def _strings(entry: Mapping[str, object], name: str) -> tuple[str, ...]:
    """A rule's list of expressions: one string or a list of at most
    :data:`MAX_SITE_EXPRESSIONS`; the ValueError starts with the field's name."""
    value = entry.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) > MAX_SITE_EXPRESSIONS:
            raise ValueError(
                f"{name}: {len(value)} expressions (at most {MAX_SITE_EXPRESSIONS}: each"
                " is tried on every page of the site)"
            )
        return tuple(value)
    # The value's kind, not its repr: a list of lists expanded from aliases can be huge.
    got = repr(value)[:80] if isinstance(value, int | float | bool) else type(value).__name__
    raise ValueError(f"{name}: expected a string or a list of strings, got {got}")
