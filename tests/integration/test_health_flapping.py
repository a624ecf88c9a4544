"""A problem that clears and comes back every few polls (a flaky feed, the only source):
the watchdog mails it a bounded number of times, not twice per flap, and says that it
flaps. Real PostgreSQL, a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mediamon.ops import health, runs
from mediamon.ops.thresholds import HealthThresholds
from tests.integration.test_health import Mailbox
from tests.support.smtp_server import Sink, serve_smtp, smtp_send

T0 = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
FAILED = [{"source": "flaky", "poll": "failed", "errors": ["HTTP 503 Service Unavailable"]}]
POLLED = [{"source": "flaky", "poll": "polled", "new": 1}]


def _ingest(engine: sa.Engine, at: datetime, *, ok: bool) -> None:
    with engine.begin() as conn:
        key = f"flap:{at.isoformat()}"
        runs.record(conn, key, at, runs.summarize(POLLED if ok else FAILED))
        if ok:
            runs.record_checks(conn, key, at, [])


def test_a_flapping_failure_is_mailed_three_times_then_once_when_it_stays_clear(
    engine: sa.Engine,
) -> None:
    """Every other ingest run failed for three hours. Before: an INCIDENT and a RESOLVED
    mail per flap, 12 here (a source answering one poll in four, as the only source,
    measured over a day through the real ingest: 66). Now the first episode is mailed as
    before, the second once, as flapping, and then nothing until it has stayed clear for
    MEDIAMON_HEALTH_FLAP_MINUTES (6 h): one RESOLVED mail. A failure after that is a new,
    ordinary incident."""
    mailbox = Mailbox(Sink())
    limits = HealthThresholds()
    with serve_smtp(mailbox.sink) as port:
        send = smtp_send(port)

        def watchdog(at: datetime) -> None:
            health.run(engine, at, send=send, sender="mediamon@example.org",
                       recipients=["ops@example.org"], limits=limits)  # fmt: skip

        at = T0
        for n in range(12):  # failed, ok, failed, ok, ... every 15 minutes
            _ingest(engine, at, ok=n % 2 == 1)
            watchdog(at + timedelta(minutes=5))
            at += timedelta(minutes=15)
        flaps = [m["Subject"] for m in mailbox.messages]
        while at < T0 + timedelta(hours=3 + 6, minutes=30):  # past the 6 h of calm
            _ingest(engine, at, ok=True)
            watchdog(at + timedelta(minutes=5))
            at += timedelta(minutes=15)
        after_calm = len(mailbox.messages)
        _ingest(engine, at, ok=False)
        watchdog(at + timedelta(minutes=5))

    assert flaps == [
        "[mediamon] INCIDENT: the latest ingest run failed",
        "[mediamon] RESOLVED: the latest ingest run failed",
        "[mediamon] INCIDENT: the latest ingest run failed",
    ]
    texts = [m.get_body(("plain",)).get_content() for m in mailbox.messages]  # type: ignore[union-attr]
    assert "Flapping:" not in texts[0] and "Flapping:" not in texts[1]
    assert "Flapping: It cleared less than 6 h ago and is back." in texts[2], texts[2]
    assert after_calm == 4
    assert mailbox.messages[3]["Subject"] == "[mediamon] RESOLVED: the latest ingest run failed"
    assert "Flapping: It came back soon after clearing before; it has now stayed clear" in texts[3]
    assert mailbox.messages[4]["Subject"] == "[mediamon] INCIDENT: the latest ingest run failed"
    assert "Flapping:" not in texts[4]
    with engine.connect() as conn:
        episodes = conn.execute(
            sa.text(
                "select flapping, is_open, notified_at is not null, recovery_notified_at"
                " is not null from bi.incidents order by incident_id"
            )
        ).all()
    # The second episode held the four flaps after it: one row, closed once it calmed.
    assert [tuple(e) for e in episodes] == [
        (False, False, True, True),
        (True, False, True, True),
        (False, True, True, False),
    ]
