"""mediamon.config_yaml: only a regular file of bounded size is read; a document is parsed
by libyaml, with a key given twice refused and errors worded as PyYAML's own parser words
them."""

from __future__ import annotations

import gc
import os
import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from mediamon import config_yaml
from mediamon.config_yaml import (
    MAX_CONFIG_BYTES,
    ConfigFileProblem,
    UnusableConfigFile,
    load_config_yaml,
    read_config_bytes,
)


def test_only_a_regular_file_of_bounded_size_is_read(tmp_path: Path) -> None:
    fine = tmp_path / "sources.yaml"
    fine.write_text("sources: []\n", "utf-8")
    assert read_config_bytes(fine) == b"sources: []\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as sparse:  # 2 GB without writing them
        sparse.truncate(2 * 1024**3)
    started = time.monotonic()
    for path, problem in [
        (fifo, "not a regular file (a FIFO, device or socket)"),  # before: waited for ever
        (Path("/dev/zero"), "not a regular file (a FIFO, device or socket)"),
        (tmp_path, "not a regular file (a folder)"),
        (huge, f"larger than {MAX_CONFIG_BYTES} bytes; not read"),
    ]:
        with pytest.raises(UnusableConfigFile, match=re.escape(problem)):
            read_config_bytes(path)
    assert time.monotonic() - started < 2
    with pytest.raises(FileNotFoundError):
        read_config_bytes(tmp_path / "missing.yaml")


class NoPurePythonParse(config_yaml.UniqueKeyLoader):
    def __init__(self, stream: str) -> None:
        raise AssertionError("parsed by PyYAML's pure-Python parser")


def test_a_valid_file_is_parsed_by_libyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every sources file went through PyYAML's pure-Python parser, about 60 s at
    100,000 sources for each plan, status and watchdog run (``bench/config_parse.py``)."""
    path = tmp_path / "sources.yaml"
    path.write_text(
        "base: &base {language: zh}\nsources:\n"
        "  - {<<: *base, name: a, url: 'https://a.example/feed?x=1'}\n"
        "  - name: b  # comment\n    url: https://b.example/feed\n    when: 2024-01-02\n",
        "utf-8",
    )
    monkeypatch.setattr(config_yaml, "UniqueKeyLoader", NoPurePythonParse)
    document = load_config_yaml(path, "sources file")
    assert document["sources"][0] == {
        "language": "zh", "name": "a", "url": "https://a.example/feed?x=1"
    }  # fmt: skip
    assert str(document["sources"][1]["when"]) == "2024-01-02"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # A constructor's error: the same code in both parsers, raised from libyaml's parse.
        ("a: 1\nb: 2\na: 3\n", "'a' given twice in one mapping (line 3, column 1)"),
        ("a: {x: 1, y: 2, x: 3}\n", "'x' given twice in one mapping (line 1, column 17)"),
        ("d: 2024-13-45\n", "month must be in 1..12"),
        # Syntax errors: libyaml says "did not find expected ',' or ']'"; PyYAML's words stay.
        ("kind: [arch\n", "expected ',' or ']', but got '<stream end>' (line 2, column 1)"),
        ("a: *nowhere\n", "found undefined alias 'nowhere' (line 1, column 4)"),
        # Characters libyaml takes and PyYAML refuses: refused as before.
        ("a: 1\n\tb: 2\n", "found character '\\t' that cannot start any token (line 2"),
        ("a: \x07\n", "special characters are not allowed"),
    ],
    ids=["key-twice", "flow-key-twice", "bad-date", "syntax", "alias", "tab", "bell"],
)
def test_errors_read_as_pyyaml_words_them(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigFileProblem) as raised:
        load_config_yaml(path, "sources file")
    message = str(raised.value)
    assert message.startswith(f"{path}: not valid YAML: ") and "\n" not in message
    assert problem in message
    try:  # the wording PyYAML's own parser gives, as before libyaml was used
        yaml.load(text, Loader=config_yaml.UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, ValueError) as error:
        assert message.endswith(config_yaml.yaml_problem(error))
    else:
        raise AssertionError("PyYAML's parser took it")


def test_a_large_file_is_never_parsed_by_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a large file libyaml refused, or holding a tab anywhere, was parsed again
    by PyYAML's pure-Python parser, to word its error as before: a 50,000-source file
    with one syntax error on its last line took 31 s to say so, one with a tab in a
    comment 26 s to be read, at every plan, status and watchdog run. Past 128 KiB,
    libyaml's verdict and its words are the answer, one line naming the file's line."""
    entry = "  - name: site-{0:05d}\n    url: 'https://site-{0}.example/feed.xml'\n"
    body = "sources:\n" + "".join(entry.format(i) for i in range(2_000))
    assert len(body) > config_yaml.PURE_PYTHON_MAX_CHARACTERS
    lines = body.count("\n")
    monkeypatch.setattr(config_yaml, "UniqueKeyLoader", NoPurePythonParse)
    path = tmp_path / "sources.yaml"
    path.write_text(body + "  - name: [broken\n", "utf-8")
    with pytest.raises(ConfigFileProblem) as raised:
        load_config_yaml(path, "sources file")
    assert str(raised.value) == (
        f"{path}: not valid YAML: did not find expected ',' or ']' (line {lines + 2}, column 1)"
    )
    path.write_text("# a\tcomment\n" + body.replace("url:", "url:\t", 1), "utf-8")
    document = load_config_yaml(path, "sources file")
    assert len(document["sources"]) == 2_000
    assert document["sources"][0]["url"] == "https://site-0.example/feed.xml"


def test_a_document_libyaml_refuses_and_pyyaml_takes_is_taken_as_before(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("a: 1\n\ufeffb: 2\n", "utf-8")  # libyaml: "while parsing a block mapping"
    assert load_config_yaml(path, "sources file") == {"a": 1, "\ufeffb": 2}


def test_the_cycle_collector_is_restored_after_parses_in_threads(tmp_path: Path) -> None:
    """The collector is off while any thread parses and back as it was once all are done:
    on when it was on, off when the process had turned it off (never turned on by a
    parse). Before: it was never turned off (three quarters of a large file's parse)."""
    inside: list[bool] = []
    started, release = threading.Barrier(2, timeout=30), threading.Event()

    def parse() -> None:
        with config_yaml.collector_paused():
            inside.append(gc.isenabled())
            started.wait()
            release.wait(30)

    assert gc.isenabled()
    first = threading.Thread(target=parse, daemon=True)
    first.start()
    started.wait()  # the first parse is under way; a second starts and ends within it
    with config_yaml.collector_paused():
        inside.append(gc.isenabled())
    assert not gc.isenabled()  # the first still parses
    started.reset()
    release.set()
    first.join()
    assert inside == [False, False] and gc.isenabled()
    gc.disable()
    try:
        path = tmp_path / "sources.yaml"
        path.write_text("sources: []\n", "utf-8")
        assert load_config_yaml(path, "sources file") == {"sources": []}
        assert not gc.isenabled()
    finally:
        gc.enable()
