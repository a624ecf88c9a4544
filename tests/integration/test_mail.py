"""Alert mail from the command line through the ``mediamon_smtp`` connection, to a real
SMTP server (aiosmtpd) on 127.0.0.1, on the demo's invented history with its burst."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediamon.alerts import smtp as mail
from mediamon.cli import main
from mediamon.devtools.demo import mail_sink
from mediamon.devtools.demo_history import write_history

BURST_END = "2024-04-17T02:00:00+00:00"


def test_connection_from_env_json_and_uri() -> None:
    json_conn = {
        "AIRFLOW_CONN_MEDIAMON_SMTP": json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": 8025, "login": "u",
             "password": "hunter2", "extra": {"disable_ssl": True, "from_email": "a@b.c"}}
        )
    }  # fmt: skip
    settings = mail.settings_from_env(environ=json_conn)
    assert settings is not None
    assert (settings.host, settings.port, settings.login) == ("127.0.0.1", 8025, "u")
    assert not settings.use_ssl and settings.use_starttls and settings.sender == "a@b.c"
    assert "hunter2" not in repr(settings)  # the password stays out of logs

    uri = mail.settings_from_env(
        environ={
            "AIRFLOW_CONN_MEDIAMON_SMTP": "smtp://me:s%40cret@mail.example.org:25?disable_ssl=true&disable_tls=true"
        }
    )
    assert uri is not None and uri.password == "s@cret" and not uri.use_starttls
    assert mail.settings_from_env(environ={}) is None
    with pytest.raises(mail.MailConfigError, match="AIRFLOW_CONN_MEDIAMON_SMTP: not valid JSON"):
        mail.settings_from_env(environ={"AIRFLOW_CONN_MEDIAMON_SMTP": "{nope"})


@pytest.fixture()
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    from datetime import datetime

    folder = tmp_path / "history"
    write_history(folder, datetime.fromisoformat(BURST_END), weeks=2)
    monkeypatch.setenv("MEDIAMON_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIAMON_VAR_DIR", str(tmp_path / "var"))
    return folder


def test_alerts_run_mails_once_through_the_connection(
    history: Path,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import-archive", str(history), "--source-name", "history"]) == 0
    capsys.readouterr()

    assert main(["alerts", "run", "--at", BURST_END, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from alerts")).scalar_one() == 0

    with mail_sink(tmp_path / "mail") as (sink, port):
        monkeypatch.setenv(
            "AIRFLOW_CONN_MEDIAMON_SMTP",
            json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                        "extra": {"disable_ssl": True, "disable_tls": True}}),
        )  # fmt: skip
        assert main(["alerts", "run", "--at", BURST_END]) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(["alerts", "run", "--at", BURST_END]) == 0  # a re-run sends nothing
        second = json.loads(capsys.readouterr().out)
        saved = list(sink.saved)

    assert len(first["alerts_created"]) == 1, first
    assert first["delivery"]["sent"] >= 1
    assert second["alerts_created"] == [] and second["delivery"]["sent"] == 0
    immediate = [p for p in saved if b"desk@example.org" in p.read_bytes()]
    assert len(immediate) == 1
    message = message_from_bytes(immediate[0].read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("[mediamon] 台湾: 9 stories")
    assert message["To"] == "desk@example.org"
    with engine.connect() as conn:
        state = conn.execute(sa.text("select state from bi.alerts")).scalar_one()
    assert state == "notified"
