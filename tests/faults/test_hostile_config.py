"""Hostile configuration: an attack run on what is not an HTTP page (sources and topics
files, environment, command line, DAG params). One test per finding; docs/faults.md
names each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.ingest.provenance import site_of
from mediamon.ingest.sources import Source, SourceConfigError, load_sources
from tests.support.fault_server import FaultServer, respond
from tests.support.faults import (
    NOW,
    PARAGRAPH,
    articles,
    feed_source,
    fetch_log,
    item,
    rss,
    run_ingest,
)

RSS = "application/rss+xml"


@pytest.mark.parametrize(
    ("written", "keyed"),
    [
        ("http://www.新华网.cn/rss", "http://www.xn--xkrr14bows.cn/a"),
        ("http://例子.中国/feed", "http://xn--fsqu00a.xn--fiqs8s/a"),
        ("https://News.Bücher.de/rss", "https://xn--bcher-kva.de/a"),
        ("http://ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ/rss", "http://example.com/a"),
        ("http://１２７．０．０．１:8080/rss", "http://127.0.0.1:8080/a"),
    ],
)
def test_a_sources_site_is_its_articles_site_however_its_host_is_written(
    written: str, keyed: str
) -> None:
    """A feed URL written with its host in Unicode (a Chinese IDN) or full-width is the
    site its articles are keyed under (canonical_url spells hosts in IDNA)."""
    assert site_of(written) == site_of(keyed)


def test_a_feed_written_with_a_full_width_host_keeps_its_items_as_articles(
    engine: sa.Engine, server: FaultServer
) -> None:
    """The source's URL written with its host in full-width digits, its items linking the
    ASCII spelling, pages not fetched: before, every item was a claim on another site and
    none an article."""
    story = server.url("/story")
    server.route("/feed.xml", respond(rss([item(story, title="本站新闻")]), content_type=RSS))
    host = server.url("/feed.xml").split("/")[2].split(":")[0]
    wide = host.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}).replace(".", "．")
    url = server.url("/feed.xml").replace(host, wide, 1)
    source = feed_source("wide", url, fetch_pages=False)
    stats = run_ingest(engine, [source], NOW)["wide"]
    assert (stats.new, stats.claims) == (1, 0), stats.errors
    (article,) = articles(engine, "wide").values()
    assert article["title"] == "本站新闻"


def test_an_archive_files_link_longer_than_a_feeds_may_be_fails_that_file_alone(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """An archive file whose line 2 links 1 MB (a feed item's link is refused past 2,048
    characters, the fetcher's cap): before, stored as the article's URL and key, shown
    whole in BI and mail."""
    head = "<!--1713600000000-->\n[{title}]({url})\n------\n<p>" + PARAGRAPH + "</p>\n"
    (tmp_path / "a-good.txt").write_text(head.format(title="好", url="https://example.com/a"))
    long_url = "https://example.com/" + "a" * 1_000_000
    (tmp_path / "b-long.txt").write_text(head.format(title="长", url=long_url))
    source = Source(name="arc", kind="archive", location=str(tmp_path), language="zh")
    stats = run_ingest(engine, [source], NOW)["arc"]
    assert stats.new == 1
    assert list(articles(engine, "arc")) == ["https://example.com/a"]
    (error,) = [r["error"] for r in fetch_log(engine, "arc").values() if r["error"]]
    assert error.startswith("b-long.txt: line 2 link 'https://example.com/aaa")
    assert error.endswith("is longer than 2048 characters (a feed item's link may be no longer)")
    assert len(error) < 300


@pytest.mark.parametrize(
    ("folder", "why"),
    [
        pytest.param(
            "b" * 300, "cannot be read (file name too long); not read", id="name-too-long"
        ),
        # /proc/1/fd/0 is a link into another process: even root may not go through it.
        pytest.param("/proc/1/fd/0/x", "cannot be read (permission denied); not read", id="eacces"),
    ],
)
def test_an_archive_folder_that_cannot_be_listed_is_one_line(
    engine: sa.Engine, database_url: str, tmp_path: Path, folder: str, why: str
) -> None:
    """An archive folder whose name is too long, or on a path we may not enter: before, an
    OSError traceback from import-archive, and a crashed poll of such a source in
    sources.yaml."""
    path = tmp_path / folder if not folder.startswith("/") else Path(folder)
    env = {**os.environ, "MEDIAMON_VAR_DIR": str(tmp_path / "var")}
    env["MEDIAMON_DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "mediamon.cli", "import-archive", str(path), "--source-name", "x"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output[-2000:]
    assert result.returncode == 2 and len(output.splitlines()) == 1, output[-2000:]
    assert output.startswith("mediamon: ") and output.endswith(why)
    assert len(output) < 300
    source = Source(name="arc", kind="archive", location=str(path))
    stats = run_ingest(engine, [source], NOW)["arc"]
    assert stats.poll == "failed" and stats.errors[0].endswith(why)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        pytest.param("c" * 300, "cannot read the extraction file: File name too long", id="long"),
        pytest.param(
            "/proc/1/fd/0/x", "cannot read the extraction file: Permission denied", id="eacces"
        ),
    ],
)
def test_an_extraction_file_that_cannot_be_reached_is_one_line(
    database_url: str, tmp_path: Path, path: str, why: str
) -> None:
    """MEDIAMON_EXTRACTION_CONFIG (optional: none means no rules) naming a path too long,
    or through a folder that may not be entered: before, an OSError traceback out of
    `mediamon ingest` and the plan task, retried, where a sources or topics file at such
    a path was one line."""
    extraction = tmp_path / path if not path.startswith("/") else Path(path)
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources:\n  - name: a\n    url: http://127.0.0.1:9/f\n")
    env = {**os.environ, "MEDIAMON_VAR_DIR": str(tmp_path / "var")}
    env |= {"MEDIAMON_DATABASE_URL": database_url, "MEDIAMON_SOURCES": str(sources)}
    env["MEDIAMON_EXTRACTION_CONFIG"] = str(extraction)
    result = subprocess.run(
        [sys.executable, "-m", "mediamon.cli", "ingest"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output[-2000:]
    assert result.returncode == 2 and len(output.splitlines()) == 1, output[-2000:]
    assert output == f"mediamon: {extraction}: {why}"


@pytest.mark.parametrize(
    ("field", "entry"),
    [("drop_query_params", "p{}"), ("allow_hosts", "h{}.example.org:80")],
)
def test_a_sources_list_of_thousands_is_refused_naming_the_field(
    tmp_path: Path, field: str, entry: str
) -> None:
    """A source's drop_query_params of 100,000 names (a megabyte of YAML) cost 0.1 s for
    every URL canonicalized, several a page: minutes of each poll (allow_hosts, a set
    built for every request, the same). Before: accepted; now at most 1,000."""
    head = "version: 1\nsources:\n  - name: a\n    url: http://example.org/f\n"
    path = tmp_path / "sources.yaml"
    entries = ", ".join(entry.format(n) for n in range(1_001))
    path.write_text(f"{head}    {field}: [{entries}]\n")
    with pytest.raises(SourceConfigError) as caught:
        load_sources(path)
    assert str(caught.value) == (
        f"{path}: source 'a'.{field}: 1001 entries (at most 1000: each is looked up for every"
        f" {'link' if field == 'drop_query_params' else 'request'} of the source)"
    )
    entries = ", ".join(entry.format(n) for n in range(1_000))
    path.write_text(f"{head}    {field}: [{entries}]\n")
    (source,) = load_sources(path)
    assert len(getattr(source, field)) == 1_000


TOPICS = "version: 1\ntopics:\n  - key: t\n    name: x\n    terms: [台湾]\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            (TOPICS + "\x00").encode(),
            ":6: YAML does not allow the character U+0000 (control characters are not allowed)",
            id="nul",
        ),
        pytest.param(
            TOPICS.replace("name: x", "name: \x1b]0;x\x07").encode(),
            ":4: YAML does not allow the character U+001B (control characters are not allowed)",
            id="escape",
        ),
        pytest.param(
            TOPICS.encode("gbk"),
            ": not UTF-8 text (byte 0xcd at offset 56); save the topics file as UTF-8",
            id="gbk",
        ),
    ],
)
def test_a_topics_file_of_bytes_yaml_refuses_is_one_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    """A control character anywhere in topics.yaml (a NUL, an escape sequence pasted from
    a terminal), or a file saved in GBK: before, PyYAML's two-line message (`… in
    "<unicode string>", position 57`) or Python's codec error, in `topics check`, the
    `status` warning and the watchdog's incident."""
    topics = tmp_path / "topics.yaml"
    topics.write_bytes(data)
    env = {**os.environ, "MEDIAMON_VAR_DIR": str(tmp_path / "var"), "MEDIAMON_TOPICS": str(topics)}
    result = subprocess.run(
        [sys.executable, "-m", "mediamon.cli", "topics", "check"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert output == f"mediamon: {topics}{message}"


@pytest.mark.parametrize(
    "name",
    ["pg_monitor_x", "public", "Has Space", "x\ny", "a" * 70],
    ids=["pg-prefix", "public", "space", "line-break", "70-characters"],
)
def test_a_login_name_in_the_environment_is_checked_as_bi_user_checks_it(name: str) -> None:
    """MEDIAMON_BI_LOGIN / MEDIAMON_WRITER_ROLE for `mediamon db roles`: before, `pg_…` and
    `public` were a ReservedName traceback, a space or a line break made a role of that
    name (the line break forging the command's output), 70 characters a role cut to 63
    that the printed login could not use."""
    from mediamon.db import roles
    from mediamon.errors import InputError

    for variable, password in (roles.BI_LOGIN_ENV, roles.WRITER_ROLE_ENV):
        with pytest.raises(InputError) as caught:
            roles.logins_from_env({variable: name, password: "pw"})
        message = str(caught.value)
        assert message.startswith(f"{variable}={name[:70]!r}: expected lower-case letters")
        assert "\n" not in message


def test_a_reserved_login_name_is_one_line_from_db_roles(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "MEDIAMON_VAR_DIR": str(tmp_path / "var")}
    env |= {"MEDIAMON_DATABASE_URL": database_url}
    env |= {"MEDIAMON_BI_LOGIN": "pg_reader", "MEDIAMON_BI_PASSWORD": "pw"}
    result = subprocess.run(
        [sys.executable, "-m", "mediamon.cli", "db", "roles"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output[-2000:]
    assert result.returncode == 2 and output == (
        "mediamon: MEDIAMON_BI_LOGIN='pg_reader': expected lower-case letters, digits and _"
        " (at most 63; not public or pg_*)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["import-archive", "{folder}", "--source-name", "desk\n"],
            "mediamon: 'desk\\n' is not a valid source name (letters, digits, _ . -, at most 64)",
            id="import-archive-source-name",
        ),
        pytest.param(
            ["db", "bi-user", "atkm_reader\n"],
            "mediamon: bi-user: 'atkm_reader\\n' is not allowed; use lower-case letters, digits"
            " and _ (not mediamon_bi, postgres, public or pg_*)",
            id="bi-user-name",
        ),
    ],
)
def test_a_name_ending_in_a_line_break_is_refused(
    engine: sa.Engine, database_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    """Names were checked with `^…$`, and `$` also matches before a final line break:
    `--source-name $'desk\\n'` made a source of that name (shown in status and BI), `db
    bi-user $'reader\\n'` a role of that name, whose printed login nobody could type."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "<!--1713600000000-->\n[好](https://example.com/a)\n------\n<p>" + PARAGRAPH + "</p>\n"
    )
    env = {**os.environ, "MEDIAMON_VAR_DIR": str(tmp_path / "var")}
    env |= {"MEDIAMON_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "mediamon.cli", *(a.format(folder=folder) for a in args)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and output == message, output[-2000:]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from sources")).scalar_one() == 0
        made = "select count(*) from pg_roles where rolname like 'atkm_reader%'"
        assert conn.execute(sa.text(made)).scalar_one() == 0


def test_a_dotted_capital_i_in_an_article_is_a_mention_of_the_term(
    engine: sa.Engine, server: FaultServer
) -> None:
    """Case folding makes İ (U+0130, as Turkish outlets write İstanbul) an i and a
    combining dot: before, no story spelling it so mentioned a topic of `Istanbul`, nor
    did a term written `İstanbul` find `Istanbul`. Title, body, a row folded before, the
    snippet's highlight."""
    from mediamon.alerts.snippet import make_snippet
    from mediamon.text import fold
    from mediamon.topics.file import parse_topics
    from mediamon.topics.match import match_articles
    from mediamon.topics.store import sync_topics

    body = "Thousands marched in İstanbul on Sunday. " + "The city was calm later. " * 20
    for path, title in (("/a", "İstanbul protests"), ("/b", "Old")):
        html = f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        server.route(path, respond(f"{html}<p>{body}</p></article></body></html>"))
    items = [item(server.url("/a"), title="İstanbul protests"), item(server.url("/b"), "Old")]
    server.route("/feed.xml", respond(rss(items), content_type=RSS))
    run_ingest(engine, [feed_source("tr", server.url("/feed.xml"), language="en")], NOW)
    with engine.begin() as conn:  # a row folded before: its match_text holds the dot
        conn.execute(
            sa.text("update articles set match_text = :m where canonical_url like '%/b'"),
            {"m": "thousands marched in i\u0307stanbul on sunday."},
        )
    topics = parse_topics(
        "version: 1\ntopics:\n  - {key: ist, name: Istanbul, terms: [Istanbul]}\n"
        "  - {key: ist2, name: İstanbul, terms: [İstanbul]}\n",
        "topics.yaml",
    )
    sync_topics(engine, topics)
    match_articles(engine, topics)
    with engine.connect() as conn:
        hits = conn.execute(
            sa.text(
                "select m.topic, right(a.canonical_url, 2) as page, m.title_hits, m.body_hits"
                " from mentions m join articles a using (article_id) order by 1, 2"
            )
        ).all()
    assert [tuple(h) for h in hits] == [
        ("ist", "/a", 1, 1), ("ist", "/b", 0, 1), ("ist2", "/a", 1, 1), ("ist2", "/b", 0, 1),
    ]  # fmt: skip
    assert fold("İSTANBUL") == fold("Istanbul") == "istanbul"
    snippet = make_snippet(list(topics.topics[0].rules), "Protests in İstanbul today.")
    assert snippet is not None and snippet.hits == ("İstanbul",)


def test_a_sources_file_naming_an_archive_behind_an_unreadable_link_still_loads(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """An archive `path:` through a link that may not be read (/proc/1/fd/0, EACCES even
    to root): before, resolving it raised PermissionError out of load_sources, a traceback
    from ingest, status and the plan task, every other source stopped with it."""
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.txt").write_text(
        "<!--1713600000000-->\n[好](https://example.com/a)\n------\n<p>" + PARAGRAPH + "</p>\n"
    )
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        "  - {name: hidden, kind: archive, path: /proc/1/fd/0/x}\n"
        "  - {name: good, kind: archive, path: good}\n"
    )
    hidden, ok = load_sources(path)
    assert hidden.location == "/proc/1/fd/0/x" and ok.location == str(good)
    stats = run_ingest(engine, [hidden, ok], NOW)
    assert stats["hidden"].poll == "failed"
    assert stats["hidden"].errors == [
        "/proc/1/fd/0/x: cannot be read (permission denied); not read"
    ]
    assert stats["good"].new == 1


def test_the_trigger_forms_source_list_never_waits_on_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEDIAMON_SOURCES a FIFO (a shell's `<(…)`, a pipe left in the file's place): the
    tasks refuse it at once, but the ingest DAG's trigger form read it at parse time with
    a plain open(), which waits for a writer: the DAG processor held until its timeout,
    the DAG broken in the UI. Here a writer comes after a while with a source named
    `late`; before, the form then listed it."""
    import threading

    from mediamon_airflow import configured_source_names

    fifo = tmp_path / "sources.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("MEDIAMON_SOURCES", str(fifo))
    done = threading.Event()

    def late_writer() -> None:
        if not done.wait(5):  # the form is still waiting: give it something to read
            with open(fifo, "w") as pipe:
                pipe.write("sources:\n  - {name: late, url: http://example.org/f}\n")

    writer = threading.Thread(target=late_writer, daemon=True)
    writer.start()
    names = configured_source_names()
    done.set()
    assert names == []
    big = tmp_path / "sources.yaml"  # 2,000 sources: the form lists the first 1,000
    big.write_text(
        "sources:\n"
        + "".join(f"  - {{name: s{i}, url: http://e{i}.org/f}}\n" for i in range(2_000))
    )
    monkeypatch.setenv("MEDIAMON_SOURCES", str(big))
    assert configured_source_names() == [f"s{i}" for i in range(1_000)]
