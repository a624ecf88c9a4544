"""Reading an operator's YAML file safely: only a regular file of a bounded size, a key
given twice refused, errors on one line, the document's size measured with every alias
expanded.

``sources.yaml`` and ``extraction.yaml`` are read through it; ``topics.yaml`` is read by
:func:`read_config_bytes` and parses its node graph itself (:mod:`mediamon.topics.file`).

A document is parsed by libyaml (PyYAML's C parser, bundled in its wheels) and built by
PyYAML's own safe constructor: the pure-Python parser took about 60 s for a file of
100,000 sources, read again by every plan, status and watchdog run. A document of at most
128 KiB that libyaml refuses is parsed again by the pure-Python parser, so that its error
reads as it always did (libyaml words its syntax errors otherwise); a larger one is
libyaml's alone, its error in libyaml's words (the pure-Python parse took 30 s at 50,000
sources).
"""

from __future__ import annotations

import gc
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"
# A configuration file larger than this is no configuration file (the bundled ones are a
# few kilobytes; 10,000 sources are about 1 MB); /dev/zero or a log file named by mistake
# is refused before it is read.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


class UnusableConfigFile(ValueError):
    """The path is no regular file, or is too large; the message says which (the caller
    names the file)."""


def read_config_bytes(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of a configuration file, read only if it is a regular file of at most
    ``max_bytes``.

    A FIFO named as MEDIAMON_SOURCES or MEDIAMON_TOPICS (a shell's ``<(…)``, a pipe left
    in its place) made every command wait for a writer for ever, ``status`` and the
    Airflow tasks included, and ``/dev/zero`` read until memory ran out: the path is
    opened without blocking and checked on the descriptor that is then read.

    Raises:
        UnusableConfigFile: not a regular file, or larger than ``max_bytes``.
        OSError: the file cannot be opened or read (FileNotFoundError when missing).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a FIFO, device or socket"
            raise UnusableConfigFile(f"not a regular file ({kind})")
        if status.st_size > max_bytes:
            raise UnusableConfigFile(f"larger than {max_bytes} bytes; not read")
        with open(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew since fstat
        raise UnusableConfigFile(f"larger than {max_bytes} bytes; not read")
    return data


class ConfigFileProblem(ValueError):
    """A configuration file cannot be read as YAML; the message names the file and says
    why, on one line (callers raise it again as their own error)."""


def load_config_yaml(path: Path, what: str) -> Any:
    """The YAML document of the configuration file at ``path`` (``what``: "sources file",
    "extraction file", for the messages), read by :func:`read_config_bytes` and loaded
    by :func:`parse_config_yaml`.

    Raises:
        ConfigFileProblem: missing, no regular file, too large, not UTF-8, unreadable,
            or not valid YAML (nested too deeply included).
    """
    return parse_config_yaml(read_config_text(path, what), path)


def read_config_text(path: Path, what: str) -> str:
    """The text of the configuration file at ``path`` (``what`` as for
    :func:`load_config_yaml`), read by :func:`read_config_bytes`.

    Raises:
        ConfigFileProblem: missing, no regular file, too large, not UTF-8 or unreadable.
    """
    try:
        return read_config_bytes(path).decode("utf-8")
    except UnusableConfigFile as error:
        raise ConfigFileProblem(f"{path}: {error}") from None
    except FileNotFoundError:
        raise ConfigFileProblem(f"{path}: {what} not found") from None
    except UnicodeDecodeError as error:
        raise ConfigFileProblem(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset"
            f" {error.start}); save the {what} as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigFileProblem(f"{path}: cannot read the {what}: {error.strerror}") from None


def parse_config_yaml(text: str, path: Path) -> Any:
    """The YAML document of a configuration file's text (``path`` names it in messages),
    parsed by libyaml when it can, else as :class:`UniqueKeyLoader` parses it.

    Raises:
        ConfigFileProblem: not valid YAML (nested too deeply included).
    """
    try:
        with collector_paused():
            return _parsed(text)
    except RecursionError:  # PyYAML's parser recurses once per level of brackets
        raise ConfigFileProblem(f"{path}: not valid YAML: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as error:
        # ValueError: PyYAML's constructors let it through (2024-13-45, a 5,000-digit int).
        raise ConfigFileProblem(f"{path}: not valid YAML: {yaml_problem(error)}") from None


_collector_lock = threading.Lock()
_collector_pauses = 0  # parses under way (threads may parse at once)
_collector_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a document is built: a parse allocates a million
    containers at 100,000 sources, and the full collections they set off took three
    quarters of the parse (22 s of 28). What a parse leaves in cycles (``&a [*a]``) is
    collected once it is back on; the text is bounded (:data:`MAX_CONFIG_BYTES`), and so
    is what is left meanwhile. Counted, so that one thread's parse ending does not turn
    the collector on under another's, nor on when the process had turned it off."""
    global _collector_pauses, _collector_was_enabled  # noqa: PLW0603 - process-wide, as gc is
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


# What PyYAML's pure-Python reader refuses ("special characters are not allowed"); a text
# holding one goes to that reader, which says so as before (libyaml's set differs a little).
NOT_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
# Characters libyaml takes where PyYAML's parser refuses them: a tab inside a line ("found
# character '\t' that cannot start any token"), a byte-order mark after the first
# character. A text holding one is parsed by the pure-Python loader alone, as before.
STRICTER_IN_PYYAML = re.compile("[\t]|(?<=.)\ufeff", re.DOTALL)


# The pure-Python parser reads about 250 kB a second here: past this many characters it is
# never asked, neither to word libyaml's refusal nor to judge a tab, and libyaml's verdict
# and words (one line, its line and column) are the answer. Before: a 50,000-source file
# with one syntax error at its end took 31 s to say so, one with a tab in a comment 26 s
# to be read, at every plan, status and watchdog run.
PURE_PYTHON_MAX_CHARACTERS = 128 * 1024


def _parsed(text: str) -> Any:
    """The document, built by libyaml's parser with the unique-key constructor. A text of
    at most :data:`PURE_PYTHON_MAX_CHARACTERS` that libyaml refuses is parsed again by the
    pure-Python :class:`UniqueKeyLoader`, whose error, or document, is the answer, and one
    holding a character the two parsers treat differently is parsed by that loader alone;
    a larger text is libyaml's alone.
    A constructor's error (a key given twice, a bad date) is PyYAML's own code in both
    loaders: raised as it is, without parsing a large file twice to say the same."""
    small = len(text) <= PURE_PYTHON_MAX_CHARACTERS
    if FastUniqueKeyLoader is None or (
        small and (NOT_PRINTABLE.search(text) or STRICTER_IN_PYYAML.search(text))
    ):
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    try:
        return yaml.load(text, Loader=FastUniqueKeyLoader)  # noqa: S506 - a CSafeLoader
    except yaml.constructor.ConstructorError:
        raise
    except yaml.YAMLError:
        if not small:
            raise
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader


class RefuseRepeatedKeys(yaml.constructor.SafeConstructor):
    """A safe constructor refusing a mapping that names a key twice. PyYAML keeps the
    last silently: a second ``url:`` or ``enabled: false`` further down a source, as a
    copy and paste leaves it, replaced the first without a word. Keys a ``<<:`` merge
    brings in may still be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key_node.value[:40]!r} given twice in one mapping",
                    key_node.start_mark,
                )  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class UniqueKeyLoader(RefuseRepeatedKeys, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader, refusing a key given twice."""


# libyaml's parser with the same constructor; None where PyYAML was built without it.
FastUniqueKeyLoader: type | None = (
    type("FastUniqueKeyLoader", (RefuseRepeatedKeys, yaml.CSafeLoader), {})
    if getattr(yaml, "__with_libyaml__", False)
    else None
)


def yaml_problem(error: Exception) -> str:
    """One line for a YAML error: PyYAML's own message spans lines and quotes the line
    of the file, which may hold a URL with a password."""
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or error.context or "syntax error"
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{problem}{where}"
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


def may_hold_aliases(text: str) -> bool:
    """Whether a YAML text may use an alias (``*name``), the only way a value of the
    document can stand in two places: without one the document is a tree, its size as
    written, and the walks below (4 s at 100,000 sources) have nothing to find."""
    return "*" in text


def expanded_size_exceeds(document: object, max_values: int, max_characters: int) -> bool:
    """Whether the document, with every alias expanded, holds more than ``max_values``
    values or ``max_characters`` characters of text.

    Aliases make the loaded document a graph (even a cycle: ``&a [*a]``); it is walked
    as the tree later code will see, and the walk ends as soon as a bound is passed, so
    it costs at most the bounds, whatever the expanded size.
    """
    values, characters = 1, 0
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str | bytes):
            characters += len(node)
        # Children are counted when queued, not when visited: a list holding itself a
        # thousand times must not queue a thousand entries per value counted.
        elif isinstance(node, dict):
            values += 2 * len(node)
        elif isinstance(node, list | set | frozenset):
            values += len(node)
        if values > max_values or characters > max_characters:
            return True
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list | set | frozenset):
            pending.extend(node)
    return False


def written_size(document: object) -> tuple[int, int]:
    """The document's values and characters as written: a list, mapping or text that
    aliases reuse is counted once (the count :func:`expanded_size_exceeds` makes of a
    document without aliases). Each object is visited once: linear in the file."""
    values, characters = 1, 0
    seen: set[int] = set()
    pending = [document]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, str | bytes):
            characters += len(node)
        elif isinstance(node, dict):
            values += 2 * len(node)
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list | set | frozenset):
            values += len(node)
            pending.extend(node)
    return values, characters


def aliases_add_more_than(document: object, max_values: int, max_characters: int) -> bool:
    """Whether expanding the document's aliases adds more than ``max_values`` values or
    ``max_characters`` characters to what is written: a long file written out is the
    operator's to make, a few lines standing for millions of values is not."""
    values, characters = written_size(document)
    return expanded_size_exceeds(document, values + max_values, characters + max_characters)
