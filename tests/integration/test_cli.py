"""The ``mediamon`` command on the seed, a mixed archive folder and local HTML files."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.cli import main
from mediamon.settings import DEFAULT_CONFIG_DIR, DEMO_DIR


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))


def test_import_archive_of_the_seed(
    env: None, engine: sa.Engine, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import-archive", str(shared_dir / "seeds")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["new"] == 1 and first["failed"] == 0

    with engine.connect() as conn:
        (row,) = conn.execute(sa.text("select * from bi.articles")).mappings().all()
    assert row["title"] == "拜登习近平通话 在台湾和高技术出口问题上针锋相对"
    assert row["url"] == (
        "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240402-%E6%8B%9C%E7%99%BB%E4%B9%A0%E8%BF%91"
        "%E5%B9%B3%E9%80%9A%E8%AF%9D-%E5%9C%A8%E5%8F%B0%E6%B9%BE%E5%92%8C%E9%AB%98%E6%8A%80%E6"
        "%9C%AF%E5%87%BA%E5%8F%A3%E9%97%AE%E9%A2%98%E4%B8%8A%E9%92%88%E9%94%8B%E7%9B%B8%E5%AF%B9"
    )
    assert row["published_at"] == datetime(2024, 4, 2, 20, 45, 1, tzinfo=UTC)
    assert row["language"] == "zh"
    body = row["body_text"]
    assert body.startswith("美国总统拜登与中国国家主席习近平周二通话")
    assert "限制高科技出口" in body and "高科技出口管理" in body and "技术出口的限制" in body
    assert body.count("台湾") == 5
    assert "布林肯将" in body  # the last paragraph
    for share in ("分享", "facebook", "whatsapp", "rfi.my", "02/04/2024"):
        assert share not in body
    assert row["duplicate_of"] is None

    assert main(["import-archive", str(shared_dir / "seeds")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["new"] == 0 and again["unchanged"] == 1


def test_bad_archive_files_are_named_and_the_rest_load(
    env: None, engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(DEMO_DIR / "archive" / "000_206a002612bb7ab9.txt", folder / "001.txt")
    (folder / "002_broken.txt").write_text("no header at all\n<p>text</p>", "utf-8")
    assert main(["import-archive", str(folder), "--source-name", "mixed"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["new"] == 1 and summary["failed"] == 1
    assert summary["errors"] == ["002_broken.txt: line 1 must be <!--epoch milliseconds-->"]
    with engine.connect() as conn:
        error = conn.execute(
            sa.text("select error from bi.fetch_log where url like '%002_broken.txt'")
        ).scalar_one()
    assert error.startswith("002_broken.txt: line 1")


def test_extract_prints_one_json_line_per_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site = DEMO_DIR / "site" / "news" / "2024" / "04"
    missing = tmp_path / "missing.html"
    assert (
        main(
            [
                "extract",
                str(site / "chip-export.html"),
                str(site / "hk-tw-trade.html"),
                str(missing),
            ]
        )
        == 1  # a file failed
    )
    gbk, traditional, absent = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert gbk["encoding"] == "gb18030" and "出口管制" in gbk["text"]
    assert gbk["title"].startswith("美国拟进一步收紧对华芯片出口管制")
    assert gbk["language"] == "zh"
    assert set(gbk) >= {"path", "title", "text", "published_at", "language"}
    assert "臺灣" in traditional["text"]
    assert absent == {"path": str(missing), "error": f"{missing}: no such file"}


def test_bad_sources_file_is_a_clear_error(
    env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - {name: a, url: 'gopher://x'}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(bad))
    assert main(["ingest"]) == 2
    assert f"{bad}: source 'a'.url" in capsys.readouterr().err


def test_a_broken_sources_file_is_a_failed_run_the_watchdog_names(
    env: None,
    engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: `mediamon ingest` (from cron) on a sources file edited into invalid YAML
    exited 2 and recorded nothing, so the watchdog found no failed run: ops heard of it
    hours later as "no successful ingest run", without the cause. The Airflow task
    records such a run; the command now does too."""
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - name: a\n    url: [broken\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    assert main(["ingest"]) == 2
    assert capsys.readouterr().err.startswith(f"mediamon: {sources}: not valid YAML")
    with engine.connect() as conn:
        latest = conn.execute(
            sa.text("select status, error from ingest_runs order by run_at desc limit 1")
        ).one()
    assert latest.status == "failed"
    assert latest.error.startswith(f"configuration error: {sources}: not valid YAML")
    assert main(["health", "run"]) == 1  # recorded; no mail server set up for this test
    findings = capsys.readouterr().out
    assert "ingest_failed:ingest: the latest ingest run failed" in findings
    assert "config_invalid:sources: the sources file cannot be read" in findings
    with engine.connect() as conn:
        detail = conn.execute(
            sa.text("select detail from bi.incidents where kind = 'ingest_failed'")
        ).scalar_one()
    assert f"configuration error: {sources}: not valid YAML" in detail  # the mail's text


@pytest.mark.parametrize(
    ("edited", "half_edited"),
    [
        # `mediamon ingest` read the sources file twice, to plan and again to ingest: a
        # file saved half-edited in between failed the run with exit 2, and nothing
        # recorded it (the watchdog only saw, hours later, no successful run). The run now
        # ingests what it planned, from its one reading.
        ("sources.yaml", "sources:\n  - name: archive\n    kind: [arch\n"),
        # The extraction rules are asked for twice, to check them when it plans and to
        # ingest; the second asking does not read the file again (load_site_rules is cached
        # by path for the process): the run extracts with the rules it checked. A guard:
        # this passed before it was written.
        ("extraction.yaml", "sites:\n  - domain: [example.com\n"),
    ],
    ids=["sources.yaml", "extraction.yaml"],
)
def test_an_edit_to_a_config_file_during_a_run_does_not_fail_it(
    edited: str,
    half_edited: str,
    env: None,
    engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file saved half-edited (here: invalid YAML, written just after the plan) while
    `mediamon ingest` runs does not fail the run: it ingests what it planned."""
    from mediamon.ingest import plan

    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  - {{name: archive, kind: archive, path: '{DEMO_DIR / 'archive'}'}}\n",
        "utf-8",
    )
    extraction = tmp_path / "extraction.yaml"
    extraction.write_text("sites:\n  - {domain: example.com, drop_lines: ['^Share$']}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    monkeypatch.setenv("MEDIAMON_EXTRACTION_CONFIG", str(extraction))
    planned = plan.plan_sources

    def plan_then_edit(*args: object, **kwargs: object) -> object:
        due = planned(*args, **kwargs)  # planned from the files as they were
        (tmp_path / edited).write_text(half_edited, "utf-8")
        return due

    monkeypatch.setattr(plan, "plan_sources", plan_then_edit)
    assert main(["ingest"]) == 0, capsys.readouterr().err
    with engine.connect() as conn:
        run = conn.execute(sa.text("select status, sources_due from ingest_runs")).one()
        stored = conn.execute(sa.text("select count(*) from articles")).scalar_one()
    assert tuple(run) == ("success", 1) and stored == 1


def test_status_warns_of_a_broken_sources_or_topics_file(
    env: None,
    engine: sa.Engine,  # emptied: the table holds no source of an earlier test
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: `mediamon status` read the database alone, so with sources.yaml or
    topics.yaml edited into invalid YAML it showed every source as the last run left it,
    nothing amiss, while every ingest run failed (or alerts kept old topics)."""
    sources, topics = tmp_path / "sources.yaml", tmp_path / "topics.yaml"
    sources.write_text("sources:\n  - name: a\n    url: [broken\n", "utf-8")
    topics.write_text("topics:\n  - key: x\n    terms: [台湾\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    monkeypatch.setenv("MEDIAMON_TOPICS", str(topics))
    assert main(["status"]) == 0  # the table as the database has it, then the warnings
    captured = capsys.readouterr()
    assert captured.out.startswith("(no sources yet")
    first, second = captured.err.splitlines()
    assert first.startswith(f"mediamon: warning: {sources}: not valid YAML")
    assert first.endswith("(ingest runs fail until it is fixed)")
    assert second.startswith(f"mediamon: warning: {topics}")
    assert second.endswith("(alerts and digests keep the stored topics until it is fixed)")
    assert main(["status", "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["config_problems"]
    assert [p.split(":")[0] for p in problems] == [str(sources), str(topics)]


def test_status_is_a_table_with_the_last_error_and_json_for_scripts(
    env: None,
    engine: sa.Engine,
    shared_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  - {{name: down, url: '{down}', allow_private_network: true}}\n", "utf-8"
    )
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    monkeypatch.setenv("MEDIAMON_HTTP_RETRIES", "0")
    assert main(["import-archive", str(shared_dir / "seeds"), "--source-name", "seed"]) == 0
    assert main(["ingest"]) == 1  # its only source failed: the run failed
    assert "run failed: all 1 due source(s) failed: down" in capsys.readouterr().err

    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SOURCE", "STATE", "WHY", "LAST", "SUCCESS", "(UTC)", "ARTICLES",
                                "24H", "LAST", "ERROR"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:3]}
    assert rows["down"].split()[1:5] == ["failing", "never", "fetched", "successfully"]
    assert "Connection refused" in rows["down"] or "connect" in rows["down"].lower()
    # imported once from the command line, not polled: the sources file does not name it
    assert rows["seed"].split()[1:6] == ["disabled", "not", "in", "the", "sources"]

    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {s["source"]: s for s in report["sources"]}
    assert by_name["down"]["last_error"]
    assert by_name["seed"]["articles_24h"] == 1
    # The command states what the analysts' view states, word for word.
    with engine.connect() as conn:
        health = conn.execute(sa.text("select source, status, status_reason from bi.source_health"))
        assert {row.source: (row.status, row.status_reason) for row in health} == {
            name: (s["state"], s["state_reason"]) for name, s in by_name.items()
        }
    assert by_name["down"]["state"] == "failing"


def test_status_times_and_long_errors(
    env: None,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A long last error, a success and an open incident, written as the tasks write them.
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: slow, url: 'http://example.org/feed'}\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_SOURCES", str(sources))
    assert main(["db", "upgrade"]) == 0
    error = "connection to example.org failed: " + "timeout waiting for the answer " * 4
    with engine.begin() as conn:
        source_id = conn.execute(
            sa.text(
                "insert into sources (name, kind, location, poll_interval)"
                " values ('slow', 'feed', 'http://example.org/feed', '1 hour')"
                " returning source_id"
            )
        ).scalar_one()
        conn.execute(
            sa.text(
                "insert into source_state (source_id, base_interval, poll_interval,"
                " next_poll_at, last_polled_at, last_success_at, last_outcome,"
                " consecutive_failures, last_error, run_key)"
                " values (:id, '1 hour', '1 hour', now(), now(),"
                " '2026-12-01 04:54:16.728644+00', 'failed', 1, :error, 'test')"
            ),
            {"id": source_id, "error": error},
        )
        conn.execute(
            sa.text(
                "insert into incidents (dedupe_key, kind, subject, summary, detail, advice,"
                " since, opened_at, last_seen_at) values ('source_failing:slow',"
                " 'source_failing', 'slow', 'source slow failed', '', '',"
                " '2026-12-01 04:58:00+00', now(), now())"
            )
        )
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["sources"]
    # ISO 8601, as every other command prints times (before: str(), a space for the T)
    assert row["last_success"] == "2026-12-01T04:54:16.728644+00:00"
    assert report["open_incidents"][0]["since"] == "2026-12-01T04:58:00+00:00"

    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2026-12-01 04:54" in lines[1]
    # cut at a word and marked (before: cut mid-word, no mark)
    shown = lines[1][lines[0].index("LAST ERROR") :]
    assert len(shown) <= 70 and shown.endswith("…") and error.startswith(shown[:-1])
    assert error[len(shown) - 1] == " "
    # the incident's time names its zone, as the table's headings do (before: none)
    assert lines[-1] == "  source_failing: source slow failed (since 2026-12-01 04:58 UTC)"


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", [["status"], ["ingest"], ["health", "run"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line_and_exit_3(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "MEDIAMON_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{_closed_port()}/mediamon"
    )
    assert main(command) == 3  # errors.EXIT_DATABASE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("mediamon: database unavailable: ") and "Traceback" not in err
    with pytest.raises(sa.exc.OperationalError):
        main(["--debug", *command])


def test_topics_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDIAMON_TOPICS", str(DEFAULT_CONFIG_DIR / "topics.yaml"))
    assert main(["topics", "check"]) == 0
    assert ": valid, " in capsys.readouterr().out

    bad = tmp_path / "topics.yaml"
    bad.write_text("version: 1\ntopics:\n  - key: x\n    terms: 12\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(bad))
    assert main(["topics", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mediamon: {bad}") and err.count("\n") == 1


def test_a_zone_the_database_server_lacks_is_one_line(
    env: None,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A zone newer than the server's tz data (America/Coyhaique on the embedded server):
    # here a zone only this process's tz search path has, a copy of UTC.
    import zoneinfo

    (tmp_path / "tz" / "Mars").mkdir(parents=True)
    shutil.copy(Path(zoneinfo.TZPATH[0]) / "UTC", tmp_path / "tz" / "Mars" / "Olympus")
    zoneinfo.reset_tzpath([str(tmp_path / "tz"), *zoneinfo.TZPATH])
    try:
        monkeypatch.setenv("MEDIAMON_TIMEZONE", "Mars/Olympus")
        assert main(["status"]) == 2
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache(only_keys=["Mars/Olympus"])  # other tests refuse it
    assert capsys.readouterr().err == (
        "mediamon: MEDIAMON_TIMEZONE: the database server's time zone data lacks"
        " 'Mars/Olympus' (older than this machine's?); choose another zone or update the"
        " server's tz data\n"
    )
    with engine.connect() as conn:  # unchanged, and the database still usable
        assert conn.execute(sa.text("select timezone from bi.settings")).scalar_one() != (
            "Mars/Olympus"
        )


def test_a_second_demo_beside_a_running_one_is_one_line_and_changes_nothing(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the second demo served the sample site on another port (the first held
    # 18765), loaded its six articles again as copies under those URLs, failed the
    # data-quality check with 30 lines of traceback, and rewrote the first's files.
    import fcntl

    demo_var = tmp_path / "var" / "demo"
    demo_var.mkdir(parents=True)
    (demo_var / "airflow.log").write_text("the first demo's log\n", "utf-8")
    with (demo_var / "demo.lock").open("a+", encoding="utf-8") as held:  # the first demo
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        f"mediamon: another `mediamon demo` is running on {tmp_path / 'var'} (pid 4242);"
        " wait for it to end\n"
    )
    assert (demo_var / "airflow.log").read_text("utf-8") == "the first demo's log\n"
    assert not (demo_var / "history").exists()


def test_stop_with_a_database_url_says_that_server_is_not_mediamons(
    env: None, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "database: not running", read as if the database were down.
    name = sa.make_url(database_url).database
    assert main(["stop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Airflow: not running"
    assert lines[1].startswith("database: not mediamon's to stop: ")
    assert lines[1].endswith(f"/{name} (MEDIAMON_DATABASE_URL)")
    assert main(["db", "stop"]) == 0
    assert capsys.readouterr().out == lines[1].removeprefix("database: ") + "\n"


def test_a_demo_whose_earlier_port_is_taken_is_one_line_and_changes_nothing(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the sample site moved to any free port, its six articles were new URLs,
    # loaded again as copies of the earlier run's; the data-quality check failed.
    import socket

    demo_var = tmp_path / "var" / "demo"
    demo_var.mkdir(parents=True)
    with socket.socket() as other:  # another program on the earlier run's port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        earlier = f"sources:\n  - name: demo-news\n    url: http://127.0.0.1:{port}/feed.xml\n"
        (demo_var / "sources.yaml").write_text(earlier, "utf-8")
        assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        f"mediamon: 127.0.0.1:{port} is in use by another program; the demo serves its"
        f" sample site there, as its earlier run on {tmp_path / 'var'} did (on another port"
        " its articles would be loaded again, as copies): free the port\n"
    )
    assert (demo_var / "sources.yaml").read_text("utf-8") == earlier
    assert not (demo_var / "history").exists()


def test_an_embedded_server_that_cannot_start_is_one_line_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: pgserver's 40-line ERROR record (initdb's command, output and log), then a
    # CalledProcessError traceback, exit 1; a full disk under MEDIAMON_VAR_DIR read the
    # same ("could not write to file "pg_wal/xlogtemp.…": No space left on device").
    pgdata = tmp_path / "var" / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "notes.txt").write_text("not a database\n", "utf-8")  # no PG_VERSION
    monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MEDIAMON_PG_PORT", "0")
    assert main(["status"]) == 3  # errors.EXIT_DATABASE
    captured = capsys.readouterr()
    assert captured.err == (
        f"mediamon: the embedded PostgreSQL in {pgdata} did not start:"
        f' directory "{pgdata}" exists but is not empty\n'
    )
    assert captured.out == ""


def test_an_embedded_server_with_a_bad_setting_names_it_not_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "could not start on 127.0.0.1:PORT; set MEDIAMON_PG_PORT to a free port",
    # whatever the server's reason, after pgserver's 40-line ERROR record.
    from mediamon import db

    var = tmp_path / "var"
    port = _closed_port()
    db.embedded_url(var, tcp_port=port)
    try:
        assert db.stop_embedded(var)
        with (var / "pgdata" / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("shared_buffers = lots\n")
        monkeypatch.delenv("MEDIAMON_DATABASE_URL", raising=False)
        monkeypatch.setenv("MEDIAMON_VAR_DIR", str(var))
        monkeypatch.setenv("MEDIAMON_PG_PORT", str(port))
        assert main(["status"]) == 3
        assert capsys.readouterr().err == (
            f"mediamon: the embedded PostgreSQL could not start on 127.0.0.1:{port}:"
            f' configuration file "{var / "pgdata" / "postgresql.conf"}" contains errors;'
            f" server log: {var / 'pgdata' / 'log'}\n"
        )
    finally:
        db.stop_embedded(var)


def test_a_folder_without_archive_files_is_one_line_and_adds_no_source(
    env: None, engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: {"items": 0, ...}, exit 0, and a source archive-news stayed in the sources
    # table (and in every `mediamon status`) for a mistyped or parent folder.
    folder = tmp_path / "news"
    (folder / "2024").mkdir(parents=True)  # the files are one level down
    (folder / "2024" / "0001.txt").write_text("<!--1712090701000-->\n", "utf-8")
    assert main(["import-archive", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"mediamon: {folder}: no archive files in this folder (*.txt or *.html; subfolders"
        " are not read); nothing imported\n"
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from sources")).scalar_one() == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # Before: stored as the source's language, the line break and all, shown in status
        # and BI; 5,000 characters too.
        ("--language", "zh\nERROR all sources failed", "--language: expected a language tag"),
        ("--language", "Chinese", "--language: expected a language tag such as zh or zh-CN"),
        ("--language", "z" * 5000, "--language: expected a language tag"),
        # Before: the 5,000 characters echoed whole, and "pass --source-name" to one who had.
        ("--source-name", "x" * 5000, "is not a valid source name (letters, digits, _ . -"),
    ],
    ids=["language-line-break", "language-not-a-tag", "language-5000", "name-5000"],
)
def test_import_archive_options_are_checked_before_anything_is_stored(
    env: None,
    engine: sa.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    message: str,
) -> None:
    folder = tmp_path / "news"
    folder.mkdir()
    shutil.copy(DEMO_DIR / "archive" / "000_206a002612bb7ab9.txt", folder / "001.txt")
    assert main(["import-archive", str(folder), option, value]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.splitlines()) == 1 and len(error) < 300, error[:400]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from sources")).scalar_one() == 0


def test_a_demo_whose_dag_fails_says_why(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the log's last 30 lines, Airflow's bookkeeping after the run ("DagRun
    # failed", "Marking run … failed"), and not a word of the cause far above them.
    bad = tmp_path / "extraction.yaml"
    bad.write_text("sites:\n  - [\n", "utf-8")
    monkeypatch.setenv("MEDIAMON_EXTRACTION_CONFIG", str(bad))
    with pytest.raises(SystemExit) as failed:
        main(["demo"])
    lines = str(failed.value.code).splitlines()
    assert lines[0].startswith("mediamon: airflow dags test mediamon_ingest ")
    assert lines[1:-1] == [
        f"  AirflowFailException: configuration error: {bad}: not valid YAML: expected the"
        " node content, but found '<stream end>' (line 3, column 1)"
    ]
    assert lines[-1] == f"the whole log: {tmp_path / 'var' / 'demo' / 'airflow.log'}"


def test_ctrl_c_mid_import_is_one_line_and_a_rerun_loads_the_rest_once(
    env: None, engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a KeyboardInterrupt traceback from wherever the command was, exit -2.
    import os
    import signal
    import subprocess
    import sys
    import time

    from mediamon.devtools.demo import BURST_END
    from mediamon.devtools.demo_history import write_history

    folder = tmp_path / "history"
    files = write_history(folder, BURST_END)
    command = [sys.executable, "-m", "mediamon", "import-archive", str(folder)]
    importing = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own group: Ctrl-C reaches the extraction workers too
    )  # fmt: skip
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while not conn.execute(sa.text("select count(*) from articles")).scalar_one():
            assert time.monotonic() < deadline and importing.poll() is None
            time.sleep(0.2)
            conn.rollback()
    os.killpg(importing.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
    out, err = importing.communicate(timeout=60)
    assert importing.returncode == 130, err
    assert err.endswith("\nmediamon: interrupted\n") and "Traceback" not in err, err
    assert out == ""

    assert main(["import-archive", str(folder)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == files and summary["failed"] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from articles")).scalar_one() == files


def test_a_dry_run_on_a_broken_topics_file_warns_in_one_line(
    env: None,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: exit 0 and nothing on stderr; the reason sat in the JSON's topics_error
    # while the windows shown were the stored (old) rules'.
    bad = tmp_path / "topics.yaml"
    text = (DEFAULT_CONFIG_DIR / "topics.yaml").read_text("utf-8")
    bad.write_text(text.replace("      - 台海\n", "      - (台海\n", 1), "utf-8")
    monkeypatch.setenv("MEDIAMON_TOPICS", str(bad))
    assert main(["alerts", "run", "--dry-run", "--at", "2024-04-17T02:00"]) == 0
    captured = capsys.readouterr()
    error = json.loads(captured.out)["topics_error"]
    assert error.startswith(f"{bad}:") and "( without )" in error
    assert captured.err == (
        f"mediamon: warning: {error}; the dry run used the stored topic definitions\n"
    )
