"""What goes over the wire to a real SMTP server (aiosmtpd on 127.0.0.1) with alerts and
digests: Message-IDs at the sender's domain, 7-bit bodies for a server without 8BITMIME,
one mail per mailbox however its domain is spelled, and an address no server without
SMTPUTF8 can take refused for good, the other recipients served."""

from __future__ import annotations

import email
import logging
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
import sqlalchemy as sa

from mediamon.alerts.deliver import DeliveryError, deliver_pending
from mediamon.alerts.digest import run_digests
from mediamon.alerts.render import Rendered, build_message
from mediamon.alerts.smtp import connection_settings, smtp_sender
from mediamon.spikes.detect import detect
from mediamon.topics.file import parse_topics
from mediamon.topics.store import sync_topics
from tests.integration.test_alert_stages import AT, T0, alert_on_burst, rows
from tests.integration.test_digests import OPTIONS, TOPICS_YAML
from tests.support.smtp_server import SevenBitOnly, Sink, serve_smtp

DIGEST_TIME = T0 + timedelta(days=1, hours=8, minutes=3)


def plain_sender(port: int) -> Callable[[EmailMessage], None]:
    """The ``mediamon_smtp`` sender for the server on ``port`` (no TLS)."""
    fields = {"host": "127.0.0.1", "port": port, "extra": {"disable_ssl": True,
              "disable_tls": True}}  # fmt: skip
    return smtp_sender(connection_settings(fields))


def parsed(raw: bytes) -> EmailMessage:
    """A message as received, its lines as a mailbox stores them (the wire's CRLF read
    as line ends: a quoted-printable body kept them as "\r\n")."""
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def test_message_ids_are_at_the_sender_domain(engine: sa.Engine) -> None:
    """Every alert and digest had a Message-ID ending in `@mediamon.invalid`, a domain
    that cannot exist and is not the From address's (spam filters score that). Now the
    id is at the sender's domain, in IDNA when it is written in Unicode, and still the
    same for the same mail (a mail sent again after a crash is recognized)."""
    topics = parse_topics(TOPICS_YAML)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    sink = Sink()
    sender = "mediamon <alerts@News.Example.org>"
    with serve_smtp(sink) as port:
        send = plain_sender(port)
        deliver_pending(engine, send, AT + timedelta(minutes=5), topics=topics, sender=sender)
        run_digests(engine, topics, DIGEST_TIME, send, sender="m@例子.中国", options=OPTIONS)
    ids = {r[0]: parsed(raw)["Message-ID"] for _, r, raw in sink.messages}
    assert ids["desk@example.org"].startswith("<alert-")
    assert ids["desk@example.org"].endswith("@news.example.org>")
    assert ids["editors@example.org"].startswith("<digest-daily-")
    assert ids["editors@example.org"].endswith("@xn--fsqu00a.xn--fiqs8s>")
    assert not any("invalid" in i for i in ids.values())
    recorded = rows(engine, "select message_id from alert_deliveries where status = 'sent'")
    assert recorded == [(ids["desk@example.org"],)]


def test_a_server_without_8bitmime_gets_7bit_bodies_that_read_the_same(
    engine: sa.Engine,
) -> None:
    """A server that does not offer 8BITMIME was sent the digest's UTF-8 text and HTML
    as raw 8-bit bytes (Content-Transfer-Encoding: 8bit), which RFC 5321 forbids: such a
    relay may strip the eighth bit (the Chinese text garbled) or refuse the mail. Now the
    bodies go in base64 to such a server: every byte received is 7-bit, and the text
    and HTML decode to what was composed. A server offering 8BITMIME still gets 8bit."""
    topics = parse_topics(TOPICS_YAML)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    composed: dict[str, tuple[str, str]] = {}

    def keeping(send: Callable[[EmailMessage], None]) -> Callable[[EmailMessage], None]:
        def kept(message: EmailMessage) -> None:
            plain, html_part = message.get_body(("plain",)), message.get_body(("html",))
            assert isinstance(plain, EmailMessage) and isinstance(html_part, EmailMessage)
            composed[str(message["To"])] = (plain.get_content(), html_part.get_content())
            send(message)

        return kept

    sink = SevenBitOnly()
    with serve_smtp(sink) as port:
        stats = run_digests(
            engine, topics, DIGEST_TIME, keeping(plain_sender(port)), sender="m@x.org",
            options=OPTIONS,
        )  # fmt: skip
    assert stats.sent == 2 and sink.ehlo and not any("8BITMIME" in line for line in sink.ehlo)
    assert len(sink.messages) == 2  # editors@ (zh-CN, daily), weekly@ (en)
    for _, [address], raw in sink.messages:
        assert max(raw) < 0x80, f"8-bit bytes sent to a server without 8BITMIME ({address})"
        message = parsed(raw)
        plain, html_part = message.get_body(("plain",)), message.get_body(("html",))
        assert isinstance(plain, EmailMessage) and isinstance(html_part, EmailMessage)
        assert (plain.get_content(), html_part.get_content()) == composed[address]
        assert "台湾" in plain.get_content()
        # base64 where the text was 8-bit (CJK); quoted-printable, which the email
        # package chose for mostly-ASCII text, is 7-bit already and left as it was.
        encodings = {p["Content-Transfer-Encoding"] for p in (plain, html_part)}
        assert encodings <= {"base64", "quoted-printable"}, encodings

    # A mail whose lines all fit in 78 characters is the one the email package writes
    # as 8bit (a digest's or alert's longer lines went quoted-printable or base64):
    # before, its UTF-8 bytes went to this server as they were.
    short = build_message(
        Rendered("磁盘已满", "台湾海峡\n磁盘已满。\n", "<p>台湾海峡</p>\n"),
        "m@x.org",
        ["a@example.org"],
    )
    assert short.get_body(("plain",))["Content-Transfer-Encoding"] == "8bit"
    seven_bit_server = SevenBitOnly()
    with serve_smtp(seven_bit_server) as port:
        plain_sender(port)(short)
    [(_, _, raw)] = seven_bit_server.messages
    assert max(raw) < 0x80, "8-bit bytes sent to a server without 8BITMIME"
    received = parsed(raw)
    for kind, text in (("plain", "台湾海峡\n磁盘已满。\n"), ("html", "<p>台湾海峡</p>\n")):
        part = received.get_body((kind,))
        assert isinstance(part, EmailMessage) and part.get_content() == text
    assert short.get_body(("plain",))["Content-Transfer-Encoding"] == "8bit"  # not changed

    eight_bit = Sink()  # aiosmtpd offers 8BITMIME by default
    rendered = Rendered("主题", "台湾海峡\n", "<p>台湾海峡</p>")
    with serve_smtp(eight_bit) as port:
        plain_sender(port)(build_message(rendered, "m@x.org", ["a@example.org"]))
    [(_, _, raw)] = eight_bit.messages
    assert "台湾海峡".encode() in raw


def test_one_mailbox_with_its_domain_spelled_two_ways_gets_one_digest(
    engine: sa.Engine,
) -> None:
    """`editors@例子.中国` under one topic and `editors@xn--fsqu00a.xn--fiqs8s` under the
    other are one mailbox (IDNA is how DNS reads the first), but they were two
    recipients: two daily digests to the same inbox, each with half the topics. Now the
    domain is compared in IDNA: one digest of both topics."""
    unicode_spelling, ascii_spelling = "editors@例子.中国", "editors@xn--fsqu00a.xn--fiqs8s"
    header = TOPICS_YAML[: TOPICS_YAML.index("topics:")]
    topic = "  - {{key: {}, name: {}, terms: [{}], recipients: [{{address: {}, mode: daily}}]}}\n"
    topics = parse_topics(
        header
        + "topics:\n"
        + topic.format("taiwan", "台湾", "台湾", unicode_spelling)
        + topic.format("strait", "海峡", "台湾海峡", ascii_spelling)
    )
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    sink = Sink()
    with serve_smtp(sink) as port:
        stats = run_digests(
            engine, topics, DIGEST_TIME, plain_sender(port), sender="m@x.org", options=OPTIONS
        )
    editors = [(r, raw) for _, r, raw in sink.messages if r[0].startswith("editors@")]
    assert len(editors) == 1, stats.as_dict()  # before: 2
    [([address], raw)] = editors
    assert address == ascii_spelling
    body = parsed(raw).get_body(("plain",))
    assert isinstance(body, EmailMessage)
    assert "== 台湾" in body.get_content() and "== 海峡" in body.get_content()
    assert rows(engine, "select recipient, status, topics from digest_deliveries") == [
        (unicode_spelling, "sent", ["taiwan", "strait"])
    ]


def test_a_non_ascii_local_part_without_smtputf8_is_refused_for_good_and_said_once(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """`用户@example.org` can only be written to a server that offers SMTPUTF8 (no
    encoding exists for a local part). To one that does not, smtplib raised
    SMTPNotSupportedError, taken for a passing failure: the alert stayed pending and was
    tried again at every run for a day, the task red each time. Now it is refused for
    good at once: recorded `refused` with one line naming the server and the address,
    the other recipient mailed, and the next run quiet."""
    user = "用户@example.org"
    both = f"{{address: {user}, mode: immediate}}\n      - {{address: duty@example.org}}"
    topics = parse_topics(TOPICS_YAML.replace("{address: desk@example.org, mode: immediate}", both))
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    sink = Sink()
    with (
        serve_smtp(sink, enable_SMTPUTF8=False) as port,
        caplog.at_level(logging.WARNING, logger="mediamon.alerts"),
    ):
        send = plain_sender(port)
        with pytest.raises(DeliveryError) as first:
            deliver_pending(engine, send, AT + timedelta(minutes=5), topics=topics)
        later = deliver_pending(engine, send, AT + timedelta(minutes=20), topics=topics)
        digests = run_digests(engine, topics, DIGEST_TIME, send, sender="m@x.org", options=OPTIONS)
    stats = first.value.stats
    assert (stats.sent, stats.failed, stats.refused) == (1, 0, 1), stats.as_dict()
    assert (later.sent, later.failed, later.refused) == (0, 0, 0)  # not tried again
    assert digests.sent == 2
    note = (
        f"refused for good: the SMTP server 127.0.0.1:{port} does not offer SMTPUTF8,"
        f" without which {user} (a local part not in ASCII) cannot be written: not sent,"
        " and not tried again"
    )
    assert rows(engine, "select recipient, status, note from alert_deliveries order by 1") == [
        ("duty@example.org", "sent", None),
        (user, "refused", note),
    ]
    assert str(first.value) == f"1 recipient(s) refused for good, not tried again: {user}: {note}"
    assert rows(engine, "select state from alerts") == [("notified",)]


def test_one_message_to_several_gets_to_those_without_smtputf8_needs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ops mail to `ops@example.org` and `值班@example.org` through a server without
    SMTPUTF8: smtplib refused the whole message, so neither got it. Now the first does,
    and the second is said to be left out, with why."""
    sink = Sink()
    message = build_message(
        Rendered("disk full", "disk full\n", "<p>disk full</p>"),
        "m@x.org",
        ["ops@example.org", "值班@example.org"],
    )
    with (
        serve_smtp(sink, enable_SMTPUTF8=False) as port,
        caplog.at_level(logging.WARNING, logger="mediamon.alerts"),
    ):
        plain_sender(port)(message)
    assert [r for _, r, _ in sink.messages] == [["ops@example.org"]]
    [said] = [r.getMessage() for r in caplog.records if "not accepted for" in r.getMessage()]
    assert "值班@example.org" in said and "does not offer SMTPUTF8" in said


def test_a_sender_at_an_internationalized_domain_is_mailed_by_any_server(
    engine: sa.Engine,
) -> None:
    """A From address at a domain written in Unicode (`mediamon <alerts@例子.中国>`) went
    into the From header as an encoded word (`alerts@=?utf-8?b?…?=`, no address to a
    reader's client) and into MAIL FROM as it was: a server without SMTPUTF8 refused
    every mail (smtplib's SMTPNotSupportedError), each tried again every run. Now the
    domain is written in IDNA in both."""
    topics = parse_topics(TOPICS_YAML)
    sync_topics(engine, topics)
    alert_on_burst(engine, topics)
    sink = Sink()
    sender = "mediamon <alerts@例子.中国>"
    with serve_smtp(sink, enable_SMTPUTF8=False) as port:
        stats = deliver_pending(
            engine, plain_sender(port), AT + timedelta(minutes=5), topics=topics, sender=sender
        )
    assert (stats.sent, stats.failed) == (1, 0)
    [(mail_from, _, raw)] = sink.messages
    assert mail_from == "alerts@xn--fsqu00a.xn--fiqs8s"
    assert b"\r\nFrom: mediamon <alerts@xn--fsqu00a.xn--fiqs8s>\r\n" in raw


def test_an_alerts_message_id_is_the_same_at_every_try_and_its_own_after_a_rebuild(
    engine: sa.Engine,
) -> None:
    """A mail's Message-ID was ``alert-<id>`` and a hash of the recipient alone: a
    database made again (a restore, a new deployment, staging beside production with one
    sender) numbered its alerts from 1 again, and its alert #1 went out under the id of
    the old alert #1, which Gmail, keeping one message per Message-ID, drops unseen. Now
    the id also hashes the alert's topic, window and the time its row was stored: the
    same for every try of one mail (a retry after a failure, a crash), another for
    another alert of the same number."""
    topics = parse_topics(TOPICS_YAML)
    sync_topics(engine, topics)
    assert alert_on_burst(engine, topics) == [1]
    tried: list[tuple[str, str]] = []
    failed_once: set[str] = set()

    def flaky(port: int) -> Callable[[EmailMessage], None]:
        send = plain_sender(port)

        def one(message: EmailMessage) -> None:
            recipient = str(message["To"])
            tried.append((recipient, str(message["Message-ID"])))
            if recipient not in failed_once:  # every first try fails: the server away
                failed_once.add(recipient)
                raise ConnectionRefusedError(111, "Connection refused")
            send(message)

        return one

    sink = Sink()
    with serve_smtp(sink) as port:
        with pytest.raises(DeliveryError) as failed:
            deliver_pending(engine, flaky(port), AT + timedelta(minutes=5), topics=topics)
        second = deliver_pending(engine, flaky(port), AT + timedelta(minutes=6), topics=topics)
        assert failed.value.stats.sent == 0 and second.sent == len(sink.messages) > 0
        for recipient in {r for r, _ in tried}:
            assert len({mid for r, mid in tried if r == recipient}) == 1, tried  # every try
        before = {r[0]: parsed(raw)["Message-ID"] for _, r, raw in sink.messages}
        # The database made again: its alerts numbered from 1 again.
        with engine.begin() as conn:
            conn.execute(sa.text("truncate alerts, alert_deliveries restart identity cascade"))
        assert detect(engine, topics, AT) == [1]
        deliver_pending(engine, plain_sender(port), AT + timedelta(minutes=7), topics=topics)
    after = {r[0]: parsed(raw)["Message-ID"] for _, r, raw in sink.messages[len(before) :]}
    assert sorted(after) == sorted(before)
    for recipient, mid in after.items():
        assert mid.startswith("<alert-1.") and before[recipient].startswith("<alert-1.")
        assert mid != before[recipient], recipient
