"""The sources file: valid definitions load, invalid ones name file, source and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mediamon.ingest import sources
from mediamon.ingest.sources import SourceConfigError, load_sources, quoted
from mediamon.settings import DEFAULT_CONFIG_DIR


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config_is_valid() -> None:
    sources = load_sources(DEFAULT_CONFIG_DIR / "sources.yaml")
    assert len(sources) >= 3
    assert all(s.kind == "feed" and s.location.startswith("https://") for s in sources)
    assert {s.language for s in sources} == {"zh"}


def test_feed_and_archive(tmp_path: Path) -> None:
    (tmp_path / "items").mkdir()
    path = write(
        tmp_path,
        "sources:\n"
        "  - {name: rfi, url: 'https://www.rfi.fr/cn/rss', language: zh-CN, poll_interval: 30m}\n"
        "  - {name: old, kind: archive, path: items}\n"
        "  - {name: paused, url: 'https://example.com/f', enabled: false}\n",
    )
    rfi, old = load_sources(path)
    assert rfi.poll_interval == timedelta(minutes=30)
    assert rfi.language == "zh-cn"
    assert old.location == str(tmp_path / "items")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, url: 'ftp://x/f'}", "source 'a'.url"),
        ("{name: a, url: 'https://x/f', poll_interval: soon}", "source 'a'.poll_interval"),
        ("{name: a, url: 'https://x/f', colour: red}", "unknown field(s) colour"),
        ("{name: 'Bad Name', url: 'https://x/f'}", "sources[0].name"),
        ("{name: a, kind: archive}", "source 'a'.path"),
        ("{name: a, kind: podcast, url: 'https://x/f'}", "source 'a'.kind"),
    ],
)
def test_invalid_entries_are_named(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, f"sources:\n  - {entry}\n")
    with pytest.raises(SourceConfigError) as error:
        load_sources(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_duplicate_names_and_bad_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path, "sources:\n  - {name: a, url: 'https://x/1'}\n  - {name: a, url: 'https://x/2'}\n"
    )
    with pytest.raises(SourceConfigError, match="used twice"):
        load_sources(path)
    with pytest.raises(SourceConfigError, match="not valid YAML"):
        load_sources(write(tmp_path, "sources: [\n"))
    with pytest.raises(SourceConfigError, match="not found"):
        load_sources(tmp_path / "missing.yaml")


def refusal(path: Path) -> str:
    with pytest.raises(SourceConfigError) as error:
        load_sources(path)
    return str(error.value)


@pytest.mark.parametrize(
    ("entry", "field", "position"),
    [
        ('url: "http://example.org/f\\0"', "url", 20),
        ('url: "http://example.org/f", language: "z\\0h"', "language", 1),
        ('url: "http://example.org/f", drop_query_params: [x, "y\\0"]', "drop_query_params[1]", 1),
        ('url: "http://example.org/f", allow_hosts: ["h\\0:80"]', "allow_hosts[0]", 1),
        ('kind: archive, path: "it\\0ems"', "path", 2),
        ('url: "http://example.org/f\\x1b[2J"', "url", 20),
    ],
)
def test_control_characters_are_refused_naming_the_field(
    tmp_path: Path, entry: str, field: str, position: int
) -> None:
    path = write(tmp_path, f"sources:\n  - {{name: a, {entry}}}\n")
    character = "U+001B" if "x1b" in entry else "U+0000"
    assert refusal(path) == (
        f"{path}: source 'a'.{field}: control character {character}"
        f" (at position {position}) is not allowed"
    )


@pytest.mark.parametrize(
    ("entry", "field", "refused"),
    [
        ('url: "https://example.org/f\\u202e.xml"', "url", "bidirectional control U+202E"),
        ('url: "https://example.org/f?q=\\u2066x"', "url", "bidirectional control U+2066"),
        ('url: "https://example.org/f\\u2028x"', "url", "line separator U+2028"),
        ('url: "https://example.org/f\\x85x"', "url", "control character U+0085"),
        ('kind: archive, path: "it\\u200fems"', "path", "bidirectional control U+200F"),
        ('kind: archive, path: "it\\x9bems"', "path", "control character U+009B"),
        (
            'url: "https://example.org/f", drop_query_params: ["\\u2029"]',
            "drop_query_params[0]",
            "paragraph separator U+2029",
        ),
    ],
)
def test_line_breaking_and_bidi_characters_are_refused_naming_the_field(
    tmp_path: Path, entry: str, field: str, refused: str
) -> None:
    """Every field of a source is a name, URL, path, host or tag, shown in log lines,
    errors and ops mail (an unreachable feed's error starts with its URL). Before, C1
    controls, U+2028/U+2029 and the bidi controls passed: a feed URL holding U+202E
    turned the rest of each of those lines around, U+2028 or NEL broke it in two."""
    path = write(tmp_path, f"sources:\n  - {{name: a, {entry}}}\n")
    message = refusal(path)
    assert message.startswith(f"{path}: source 'a'.{field}: {refused} (at position ")
    assert message.endswith(") is not allowed") and message.isprintable()


def test_a_url_in_chinese_still_loads(tmp_path: Path) -> None:
    """Printable text is not refused: an IRI's Chinese path."""
    path = write(tmp_path, "sources:\n  - {name: a, url: 'https://example.org/新闻/f.xml'}\n")
    assert load_sources(path)[0].location == "https://example.org/新闻/f.xml"


@pytest.mark.parametrize(("key", "shown"), [("1", "1"), ("null", "None"), ('"a\\0"', "'a\\x00'")])
def test_field_names_that_are_not_text_are_refused(tmp_path: Path, key: str, shown: str) -> None:
    path = write(tmp_path, f'sources:\n  - {{name: a, url: "http://example.org/f", {key}: 2}}\n')
    assert refusal(path) == (
        f"{path}: source 'a': field names must be text without control characters, got {shown}"
    )


def test_deep_nesting_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: " + "[" * 2000 + "]" * 2000 + "\n")
    assert refusal(path) == f"{path}: not valid YAML: nested too deeply"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "http://user:pw@[::1/feed",
            "not a valid URL (a malformed host), got 'http://***@[::1/feed'",
        ),
        (
            "http://example.org:99999/f",
            "not a valid URL (a bad port), got 'http://example.org:99999/f'",
        ),
        ("http://example.org:8o/f", "not a valid URL (a bad port), got 'http://example.org:8o/f'"),
        ("http:///feed", "the URL has no host, got 'http:///feed'"),
        ("http://:80/feed", "the URL has no host, got 'http://:80/feed'"),
        (
            "http://ex\u00e4mple..org/f",
            "invalid host name: Empty Label, got 'http://ex\u00e4mple..org/f'",
        ),
        # Before: accepted, then every poll failed as "DNS lookup failed: www.rfi.fr ".
        (
            "https://www.rfi.fr /cn/rss",
            "the host 'www.rfi.fr ' has ' ', which no host name has,"
            " got 'https://www.rfi.fr /cn/rss'",
        ),
        (
            "https://www.rfi,fr/cn/rss",
            "the host 'www.rfi,fr' has ',', which no host name has,"
            " got 'https://www.rfi,fr/cn/rss'",
        ),
        # Before: accepted, then every poll failed with "blocked: URL longer than 2048".
        (
            "http://example.org/" + "a" * 2_100,
            "URL longer than 2048 characters, got " + quoted("http://example.org/" + "a" * 2_100),
        ),
    ],
)
def test_unusable_urls_are_refused_when_the_file_is_read(
    tmp_path: Path, url: str, problem: str
) -> None:
    path = write(tmp_path, f"sources:\n  - {{name: a, url: '{url}'}}\n")
    assert refusal(path) == f"{path}: source 'a'.url: {problem}"


CREDENTIALS = (
    "credentials in the URL are not allowed (they would be stored in the fetch log and shown"
    " to BI users); remove the user name and password (secrets belong in environment"
    " variables or Airflow connections)"
)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("url: 'http://user:s3cretpw@example.org/feed'", f"url: {CREDENTIALS}"),
        ("url: 'https://s3cretpw@example.org/feed'", f"url: {CREDENTIALS}"),
        ("url: 'http://@example.org/feed'", f"url: {CREDENTIALS}"),
        (
            "url: 'ftp://user:s3cretpw@example.org/feed'",
            "url: a feed needs an http(s) URL, got 'ftp://***@example.org/feed'",
        ),
        # The slash makes the rest of the password look like a path and its start a port.
        (
            "url: 'http://user:s3c/retpw@example.org/feed'",
            "url: not a valid URL (a bad port), got 'http://***@example.org/feed'",
        ),
        (
            "url: 'http://example.org/f', allow_hosts: ['http://user:s3cretpw@example.org:80']",
            "allow_hosts[0]: expected host:port such as 127.0.0.1:8080,"
            " got 'http://***@example.org:80'",
        ),
    ],
)
def test_credentials_in_urls_are_refused_and_never_echoed(
    tmp_path: Path, entry: str, problem: str
) -> None:
    path = write(tmp_path, f"sources:\n  - {{name: a, {entry}}}\n")
    message = refusal(path)
    assert message == f"{path}: source 'a'.{problem}"
    assert "s3c" not in message and "retpw" not in message


def test_yaml_errors_are_one_line_without_the_files_text(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - {name: a, url: 'http://user:s3cretpw@example.org/f'}}\n")
    assert refusal(path) == (
        f"{path}: not valid YAML: expected <block end>, but found '}}' (line 2, column 57)"
    )
    path = write(
        tmp_path, "sources:\n  - {name: a, url: 'https://x/f', poll_interval: 2024-13-45}\n"
    )
    assert refusal(path) == f"{path}: not valid YAML: month must be in 1..12"


PARAMS = "p: &P [" + ", ".join(f"p{n}" for n in range(3000)) + "]\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            PARAMS
            + "sources:\n"
            + "".join(
                f"  - {{name: s{n}, url: 'https://x/f', drop_query_params: *P}}\n"
                for n in range(3000)
            ),
            id="list-reused",
        ),
        pytest.param(
            PARAMS
            + "m: &M {url: 'https://x/f', drop_query_params: *P}\nsources:\n"
            + "".join(f"  - {{<<: *M, name: s{n}}}\n" for n in range(100)),
            id="mapping-reused",
        ),
        # 10**10 values: only a walk that stops at the bound ends.
        pytest.param(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 10)}]\n"
                for n in range(9)
            )
            + "sources: *j\n",
            id="billion-laughs",
        ),
        pytest.param("sources: &s [*s, *s]\n", id="cycle"),
        pytest.param(
            f"u: &U 'https://x/{'a' * 100_000}'\nsources:\n"
            + "".join(f"  - {{name: s{n}, url: *U}}\n" for n in range(200)),
            id="long-string-reused",
        ),
    ],
)
def test_documents_multiplied_by_aliases_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert refusal(path) == (
        f"{path}: too large once YAML aliases are expanded (they add more than 200000 values"
        " or 10000000 characters); write the sources out with fewer aliases"
    )


def test_a_long_sources_file_written_out_is_not_taken_for_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the bounds held the whole expanded file, so a file of 20,000 sources
    written out (220,000 values, no alias) was refused as "too large once YAML aliases
    are expanded … write the sources out with fewer aliases". Now only what aliases add
    is bounded. (The bound is lowered here: parsing 20,000 sources takes PyYAML 10 s.)"""
    monkeypatch.setattr(sources, "MAX_EXPANDED_VALUES", 2_000)
    written = "sources:\n" + "".join(
        f"  - {{name: s{n}, url: 'https://x{n}.example/feed', language: zh}}\n" for n in range(300)
    )  # 3,301 values written, more than the bound
    assert len(load_sources(write(tmp_path, written))) == 300
    reused = (
        "p: &P [a, b, c, d, e, f, g, h, i, j]\n"
        "m: &M {url: 'https://x/f', language: zh, drop_query_params: *P}\n"
        + "sources:\n"
        + "".join(f"  - {{<<: *M, name: s{n}}}\n" for n in range(300))
    )  # the list's 10 values added to each source past the first: 2,990 more than written
    assert refusal(write(tmp_path, reused)).endswith("write the sources out with fewer aliases")


def test_a_file_without_an_alias_is_not_walked_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the document was walked twice for what aliases add (4 s at 100,000
    sources) though a text without a ``*`` holds no alias; one with an alias still is."""
    walked: list[object] = []

    def walk(document: object, max_values: int, max_characters: int) -> bool:
        walked.append(document)
        return False

    monkeypatch.setattr(sources, "aliases_add_more_than", walk)
    plain = "sources:\n  - {name: a, url: 'https://a.example/feed?x=1#top'}\n"
    assert [s.name for s in load_sources(write(tmp_path, plain))] == ["a"]
    assert walked == []
    aliased = "u: &u 'https://a.example/feed'\nsources:\n  - {name: a, url: *u}\n"
    assert [s.name for s in load_sources(write(tmp_path, aliased))] == ["a"]
    assert len(walked) == 1
