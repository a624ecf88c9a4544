"""Sending mail through the ``mediamon_smtp`` connection, with or without Airflow.

Airflow tasks hand us the Connection's fields; the CLI reads the same connection from
``AIRFLOW_CONN_MEDIAMON_SMTP`` (JSON or URI, as Airflow accepts them), so an alert sent
from the command line goes through the same server as one sent by the DAG. Defaults
follow Airflow's SMTP provider: implicit TLS unless ``disable_ssl``, then STARTTLS unless
``disable_tls``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mediamon.alerts.render import ascii_domain
from mediamon.alerts.smtp_client import BoundedSMTP, BoundedSMTPSSL
from mediamon.deadline import shut_down, watchdog
from mediamon.errors import ConfigError
from mediamon.text import one_line

logger = logging.getLogger(__name__)

SMTP_CONN_ID = "mediamon_smtp"
TRUE = ("1", "true", "yes", "on")
DEFAULT_PORT = 465
DEFAULT_TIMEOUT_S = 30.0
TIMEOUT_RANGE_S = (1.0, 300.0)  # a timeout from the connection is clamped to this
# The timeout bounds each socket read; a server trickling a byte at a time never trips
# it, so one message (connect, TLS, login, DATA, QUIT) also gets this many timeouts in all.
DEADLINE_TIMEOUTS = 4
MAX_HOST_CHARS = 253
# The most a goodbye waits for the server's answer to QUIT (the connection's timeout if
# shorter); one goodbye per server waits at a time (see _say_goodbye).
GOODBYE_WAIT_S = 5.0
_GOODBYES_LOCK = threading.Lock()
_AWAITED_GOODBYES: set[tuple[str, int]] = set()  # (host, port) of a goodbye waiting
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")


class MailConfigError(ConfigError):
    """The SMTP connection is missing or malformed; the message names it."""


class MailDeadlineError(OSError):
    """The server took longer than the total deadline for one message; the connection was
    broken. An OSError, as a timeout is: the mail counts as not sent and is tried again."""


@dataclass(frozen=True)
class SmtpSettings:
    """The fields of an Airflow SMTP connection that sending needs."""

    host: str
    port: int = 465
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S  # extra's "timeout", checked and clamped

    @property
    def deadline_s(self) -> float:
        """The most one message may take, from connecting to QUIT."""
        return self.timeout_s * DEADLINE_TIMEOUTS

    @property
    def use_ssl(self) -> bool:
        return not _flag(self.extra.get("disable_ssl"))

    @property
    def use_starttls(self) -> bool:
        return not self.use_ssl and not _flag(self.extra.get("disable_tls"))

    @property
    def sender(self) -> str | None:
        value = self.extra.get("from_email")
        return str(value) if value else None


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in TRUE


def settings_from_env(
    conn_id: str = SMTP_CONN_ID, environ: Mapping[str, str] | None = None
) -> SmtpSettings | None:
    """The connection from ``AIRFLOW_CONN_<ID>``, or None when the variable is unset.

    Raises:
        MailConfigError: the variable is set but is neither connection JSON nor a URI,
            or a field is unusable (the message names the variable and the field).
    """
    env = os.environ if environ is None else environ
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if raw.startswith("{"):
        data = _json(raw, name, "not valid JSON")
        if not isinstance(data, dict):
            raise MailConfigError(f"{name}: expected connection JSON (an object)")
        return connection_settings(data, name)
    try:
        parts = urlsplit(raw)
        hostname = parts.hostname
    except ValueError as error:  # "Invalid IPv6 URL" and the like; the URI is not echoed
        raise MailConfigError(f"{name}: not a valid URI ({error})") from None
    if not hostname:
        raise MailConfigError(f"{name}: expected connection JSON or a URI like smtp://host:25")
    # parts.port raises for a port out of range or not a number: read it ourselves.
    port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    return connection_settings(
        {
            "host": hostname,
            "port": port,
            "login": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "extra": dict(parse_qsl(parts.query)),
        },
        name,
    )


def connection_settings(data: Mapping[str, Any], name: str = SMTP_CONN_ID) -> SmtpSettings:
    """An SMTP connection's fields (Airflow's connection JSON: host, port, login,
    password, extra as a dict or a JSON string) as :class:`SmtpSettings`, each checked.

    Raises:
        MailConfigError: the connection has no host, or a field is unusable: a host that
            is not a host name, a port outside 1-65535, extra not a JSON object, a timeout
            that is not a finite number; one line naming ``name`` and the field (a
            password is never quoted).
    """
    host = data.get("host")
    if host is None or host == "":
        raise MailConfigError(f"{name}: the connection has no host")
    extra = _extra(data.get("extra"), name)
    sender = extra.get("from_email")
    if sender is not None and not _text(sender):
        raise MailConfigError(
            f"{name}: extra.from_email: expected an address without control characters,"
            f" got {_shown(sender)}"
        )
    return SmtpSettings(
        host=_host(host, name),
        port=_port(data.get("port"), name),
        login=_optional_text(data.get("login"), name, "login", show=True),
        password=_optional_text(data.get("password"), name, "password", show=False),
        extra=extra,
        timeout_s=_timeout(extra.get("timeout"), name),
    )


def _shown(value: object) -> str:
    """``value`` as an error message quotes it: repr (control characters escaped), cut."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    """What ``value`` is, without quoting it (for a password, or a big structure)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _text(value: object) -> bool:
    """Whether ``value`` is a string without control or format characters (line breaks,
    NUL, bidi controls: nothing that could break or disguise a header). The characters
    :func:`mediamon.text.one_line` escapes in a log line, refused here: a value of the
    mail settings goes into a header or to the server as it is."""
    return isinstance(value, str) and all(c.isprintable() for c in value)


def _json(text: str, name: str, problem: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise MailConfigError(f"{name}: {problem}: {error}") from None
    except RecursionError:
        raise MailConfigError(f"{name}: {problem}: nested too deeply") from None
    except ValueError as error:  # an integer of thousands of digits
        raise MailConfigError(f"{name}: {problem}: {str(error).split(';')[0]}") from None


def _extra(value: object, name: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = _json(value, name, "extra: not valid JSON")
    if not isinstance(value, dict):
        raise MailConfigError(f"{name}: extra: expected a JSON object, got {_kind(value)}")
    return value


def _host(value: object, name: str) -> str:
    if (
        not isinstance(value, str)
        or not _text(value)
        or any(c.isspace() for c in value)
        or len(value) > MAX_HOST_CHARS
    ):
        raise MailConfigError(
            f"{name}: host: expected a host name without spaces or control characters,"
            f" got {_shown(value)}"
        )
    return value


def _port(value: object, name: str) -> int:
    if value is None or value == "":
        return DEFAULT_PORT
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    port: int | None = None
    if isinstance(number, int) and not isinstance(number, bool):
        port = number
    elif isinstance(number, str) and number.isascii() and number.isdigit() and len(number) <= 5:
        port = int(number)
    if port is None or not 1 <= port <= 65535:
        raise MailConfigError(
            f"{name}: port: expected a whole number from 1 to 65535, got {_shown(value)}"
        )
    return port


def _timeout(value: object, name: str) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT_S
    seconds = math.nan
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):  # clamped before float(), which overflows on 10**400
        seconds = float(max(-1, min(value, 10**6)))
    elif isinstance(value, float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        seconds = float(value)
    if not math.isfinite(seconds):
        raise MailConfigError(
            f"{name}: extra.timeout: expected a number of seconds, got {_shown(value)}"
        )
    low, high = TIMEOUT_RANGE_S
    return min(max(seconds, low), high)


def _optional_text(value: object, name: str, what: str, *, show: bool) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        shown = _shown(value) if show else _kind(value)
        raise MailConfigError(f"{name}: {what}: expected text, got {shown}")
    return value


# RFC 4954's answers about authentication (530 required, 534 mechanism too weak, 535
# credentials invalid, 538 encryption required): about the session, whatever the mail.
AUTH_REPLY_CODES = frozenset({530, 534, 535, 538})
# A relay refusing to pass mail on for us (Postfix "Relay access denied", Sendmail
# "Relaying denied", Exchange "Unable to relay", Exim "relay not permitted").
_RELAY_DENIED = re.compile(r"\brelay", re.IGNORECASE)
MAX_ANSWER_CHARS = 300


class MailServerRefusal(MailConfigError):
    """The SMTP server refuses every mail of this connection, not one mail: a 5xx answer
    before any recipient is named (greeting, EHLO, AUTH, ``MAIL FROM``: the same for every
    mail), an authentication answer (530, 535 ...) wherever it comes, or a relay denial.
    The run stops at the first; nothing is recorded, so the mails stay due once the
    operator has fixed the connection or the relay. A ConfigError: in Airflow the task
    fails at once, without retries (a retry gets the same answer)."""


class MailServerLacks(MailServerRefusal):
    """The SMTP server does not offer what the connection needs: STARTTLS (TLS required,
    the default on a port without implicit TLS), AUTH (the connection has a login), or an
    AUTH mechanism smtplib speaks. A setting to change, on one side or the other, like a
    refusal of every mail: the run stops at the first, nothing is recorded, and in Airflow
    the task fails on its first try. (smtplib's ``SMTPNotSupportedError`` was taken for a
    passing failure: every mail tried and left pending, the task retried.)"""


# What smtplib.SMTP.login tries, in its order.
SMTPLIB_AUTH_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


def _answer(code: int, text: bytes | str) -> str:
    """A server's answer on one line (a multi-line answer's lines joined), cut."""
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return one_line(f"{code} {' '.join(words.split())}", MAX_ANSWER_CHARS)


_STAGE = {
    smtplib.SMTPConnectError: "the greeting",
    smtplib.SMTPHeloError: "EHLO",
    smtplib.SMTPAuthenticationError: "AUTH",
    smtplib.SMTPSenderRefused: "MAIL FROM",
    smtplib.SMTPDataError: "DATA",
}


def server_refusal(error: BaseException, server: str = "") -> MailServerRefusal | None:
    """``error`` as a :class:`MailServerRefusal` when it says the server refuses every
    mail of this connection (see there); else None. Postfix defers such mail too rather
    than bounce it (``smtp_sasl_auth_soft_bounce``, ``smtp_skip_5xx_greeting``): it is
    the operator's to fix, and the mail goes once it is fixed. ``server``: its
    ``host:port``, for the message."""
    if isinstance(error, MailServerRefusal):
        return error
    if isinstance(error, AddressNeedsSmtpUtf8):  # its recipients only (a host "relay.…")
        return None
    who = f"the SMTP server {server}".rstrip()
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
        if answers and all(
            500 <= code < 600
            and (code in AUTH_REPLY_CODES or _RELAY_DENIED.search(_answer(code, text)))
            for code, text in answers
        ):
            said = "; ".join(_answer(code, text) for code, text in answers)
            return MailServerRefusal(f"{who} refuses every mail: {said} (to RCPT TO)")
        return None
    if not isinstance(error, smtplib.SMTPResponseException):
        return None
    code = error.smtp_code
    stage = _STAGE.get(type(error), "the server")
    before_recipients = not isinstance(error, smtplib.SMTPDataError)
    if 500 <= code < 600 and (before_recipients or code in AUTH_REPLY_CODES):
        said = _answer(code, error.smtp_error)
        return MailServerRefusal(f"{who} refuses every mail: {said} (to {stage})")
    return None


def refused_for_good(error: BaseException) -> str | None:
    """The server's answer, on one line, when it refused this one mail for good (RFC
    5321: a 5xx answer is permanent): every recipient of the mail refused at ``RCPT TO``
    (550 no such mailbox, 553 bad address), or the message refused at ``DATA`` or at its
    end (552 too large, 554 rejected as spam: the same message is refused again, and
    offering it every run gets the sender listed as a spammer). Else None: a 4xx answer
    or a lost connection may pass on another try, and a refusal of every mail is
    :func:`server_refusal`'s."""
    if server_refusal(error) is not None:
        return None
    if isinstance(error, AddressNeedsSmtpUtf8):
        return str(error)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
        if not answers or not all(500 <= code < 600 for code, _ in answers):
            return None
        return "; ".join(_answer(code, text) for code, text in answers)
    if isinstance(error, smtplib.SMTPDataError) and 500 <= error.smtp_code < 600:
        return f"{_answer(error.smtp_code, error.smtp_error)} (to DATA)"
    return None


def smtp_sender(settings: SmtpSettings) -> Callable[[EmailMessage], None]:
    """A function that sends one message through ``settings``' server (a new connection
    per message: alerts are few, and a dropped connection then costs nothing)."""

    def send(message: EmailMessage) -> None:
        context = ssl.create_default_context()
        # Built unconnected, so that the watchdog can reach its socket from the start.
        client: smtplib.SMTP
        server = f"{settings.host}:{settings.port}"
        if settings.use_ssl:
            client = BoundedSMTPSSL(server=server, timeout=settings.timeout_s, context=context)
        else:
            client = BoundedSMTP(server=server, timeout=settings.timeout_s)
        accepted = False
        try:
            # At the deadline the connection is shut down, which ends the read the
            # conversation is blocked in (smtplib then raises SMTPServerDisconnected).
            with watchdog(settings.deadline_s, lambda: shut_down(client)) as overran:
                try:
                    refused = _converse(client, settings, message, context, overran)
                except (smtplib.SMTPException, OSError) as error:
                    if overran.is_set():
                        raise MailDeadlineError(
                            f"the SMTP server {settings.host}:{settings.port} took longer"
                            f" than {settings.deadline_s:g} s for one message:"
                            " connection broken, not sent"
                        ) from error
                    refusal = server_refusal(error, f"{settings.host}:{settings.port}")
                    if refusal is not None:
                        raise refusal from error
                    raise
            accepted = True
        finally:
            if not accepted:
                client.close()
        # Accepted: the caller records the mail now, while the goodbye goes on. A server
        # slow to answer QUIT (20 s) held the record back; a run killed meanwhile had
        # not recorded the accepted mail, and the next run mailed it again.
        _say_goodbye(client, settings)
        logger.info("sent %r to %s", message["Subject"], message["To"])
        if refused:
            logger.warning(
                "%r not accepted for %s (the others got it): %s",
                message["Subject"],
                ", ".join(refused),
                "; ".join(
                    f"{address}: {code} {text.decode('utf-8', 'replace')}"
                    for address, (code, text) in refused.items()
                ),
            )

    return send


def _converse(
    client: smtplib.SMTP,
    settings: SmtpSettings,
    message: EmailMessage,
    context: ssl.SSLContext,
    overran: threading.Event,
) -> dict[str, tuple[int, bytes]]:
    """Connect and send ``message`` (the goodbye is :func:`_say_goodbye`'s); the
    recipients the server refused."""
    client.connect(settings.host, settings.port)
    if overran.is_set():  # the deadline passed while connecting, before the socket existed
        raise TimeoutError("deadline passed while connecting")
    if settings.use_starttls:
        client.ehlo_or_helo_if_needed()
        if not client.has_extn("starttls"):
            raise MailServerLacks(
                f"the SMTP server {settings.host}:{settings.port} does not offer STARTTLS,"
                f" which the {SMTP_CONN_ID} connection requires (extra.disable_ssl without"
                " extra.disable_tls): use the server's implicit-TLS port (465) without"
                " disable_ssl, or set extra.disable_tls for a relay that takes mail"
                " unencrypted"
            )
        client.starttls(context=context)
    if settings.login:
        _check_auth_offered(client, settings)
        client.login(settings.login, settings.password or "")
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("8bitmime"):
        message = seven_bit(message)
    unreachable: dict[str, tuple[int, bytes]] = {}
    recipients = None  # smtplib's own reading of the headers
    if not client.has_extn("smtputf8"):
        _check_sender_writable(message, settings)
        recipients, unreachable = _without_utf8_addresses(message, settings)
    # Some recipients refused, the others accepted (an ops mail to several
    # addresses): sent, so not sent again (the others would get it twice), but
    # said, naming who did not get it and why; smtplib returns it silently.
    return {**unreachable, **client.send_message(message, to_addrs=recipients)}


def seven_bit(message: EmailMessage) -> EmailMessage:
    """``message`` with every 8-bit body (UTF-8 text, HTML) in base64, the body
    encoding of its charset: for a server that does not offer 8BITMIME (RFC 6152), which
    may take 8-bit bytes for 7-bit ones, strip the eighth bit or refuse the mail
    (RFC 5321 2.4: a client MUST NOT send them otherwise). smtplib sent them as they
    were. A copy: the caller's message is left as it is."""
    if not any(
        str(part.get("Content-Transfer-Encoding", "")).lower() in ("8bit", "binary")
        for part in message.walk()
    ):
        return message
    copied = copy.deepcopy(message)
    for part in copied.walk():
        if str(part.get("Content-Transfer-Encoding", "")).lower() in ("8bit", "binary"):
            # Set anew rather than by a 7-bit policy at flattening: that encoded the
            # lines with the CRLF of the wire inside the base64 (read back, "\r\n").
            text = part.get_content()
            charset = part.get_content_charset() or "utf-8"
            part.set_content(
                text, subtype=part.get_content_subtype(), charset=charset, cte="base64"
            )
    return copied


class AddressNeedsSmtpUtf8(smtplib.SMTPRecipientsRefused):
    """Every recipient of a mail has a local part that is not ASCII (``用户@example.org``)
    and the server does not offer SMTPUTF8 (RFC 6531), without which no such address can
    be written: the same answer on every try, a refusal for good (:func:`refused_for_good`).
    smtplib raised ``SMTPNotSupportedError``, taken for a passing failure: the mail was
    tried again every hour, and failed, for as long as it was due."""

    def __init__(self, recipients: dict[str, tuple[int, bytes]], said: str) -> None:
        super().__init__(recipients)
        self.said = said

    def __str__(self) -> str:
        return self.said


def _check_sender_writable(message: EmailMessage, settings: SmtpSettings) -> None:
    """Raise :class:`MailServerLacks` when the sender's local part is not ASCII
    (``警报@example.org``) and the server does not offer SMTPUTF8: no mail can go out
    with it, whatever the recipients. smtplib raised ``SMTPNotSupportedError``, taken
    for a passing failure: every mail tried and left pending at every run, the task
    retried, for as long as the setting stood."""
    header = message["Sender"] or message["From"]
    sender = getaddresses([str(header)])[0][1] if header is not None else ""
    if ascii_domain(sender).isascii():
        return
    raise MailServerLacks(
        f"the SMTP server {settings.host}:{settings.port} does not offer SMTPUTF8, without"
        f" which the sender {_shown(sender)} (a local part not in ASCII) cannot be written:"
        f" set the {SMTP_CONN_ID} connection's extra.from_email to an ASCII address, or use"
        " a server that offers SMTPUTF8"
    )


def _without_utf8_addresses(
    message: EmailMessage, settings: SmtpSettings
) -> tuple[list[str] | None, dict[str, tuple[int, bytes]]]:
    """For a server without SMTPUTF8: (the recipients to send ``message`` to, None for
    smtplib's own reading of the headers; those left out, with a 553 5.6.7 answer as
    RFC 6531 has a server give for them). A domain in Unicode is no reason: it is
    written in IDNA (:func:`mediamon.alerts.render.ascii_domain`)."""
    fields = [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
    addresses = [address for _, address in getaddresses(fields) if address]
    reachable = [a for a in addresses if ascii_domain(a).isascii()]
    if len(reachable) == len(addresses):
        return None, {}
    server = f"the SMTP server {settings.host}:{settings.port}"
    left_out = {
        a: (553, f"5.6.7 {server} does not offer SMTPUTF8, which {a} needs".encode())
        for a in addresses
        if a not in reachable
    }
    if not reachable:
        shown = ", ".join(left_out)
        raise AddressNeedsSmtpUtf8(
            left_out,
            f"{server} does not offer SMTPUTF8, without which {shown} (a local part not"
            " in ASCII) cannot be written: not sent, and not tried again",
        )
    return [ascii_domain(a) for a in reachable], left_out


def _check_auth_offered(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    """Raise :class:`MailServerLacks` when the server offers no AUTH, or none smtplib
    speaks, to a connection with a login (smtplib raised ``SMTPNotSupportedError`` or a
    bare ``SMTPException``, both taken for a server down)."""
    client.ehlo_or_helo_if_needed()
    server = f"the SMTP server {settings.host}:{settings.port}"
    if not client.has_extn("auth"):
        # Postfix (smtpd_tls_auth_only) and others offer AUTH only once TLS is on.
        hint = "" if settings.use_ssl or settings.use_starttls else " (many offer it only over TLS)"
        raise MailServerLacks(
            f"{server} does not offer AUTH{hint}, but the {SMTP_CONN_ID} connection has a"
            f" login ({_shown(settings.login)}): remove the login for a relay that needs"
            " none, or use a server or port that offers AUTH"
        )
    offered = client.esmtp_features.get("auth", "").split()
    if not any(mechanism in offered for mechanism in SMTPLIB_AUTH_MECHANISMS):
        raise MailServerLacks(
            f"{server} offers AUTH only by {one_line(' '.join(offered), 100)}, none of which"
            f" mediamon speaks ({', '.join(SMTPLIB_AUTH_MECHANISMS)})"
        )


def _say_goodbye(client: smtplib.SMTP, settings: SmtpSettings) -> threading.Thread | None:
    """QUIT and close ``client``. Whatever the server answers to QUIT (or nothing), the
    mail it accepted is sent. (A `with` block raised a non-221 answer, the mail counted as
    not sent and every later run mailed it again.)

    One goodbye per server waits for its answer, in a thread of its own, at most
    :data:`GOODBYE_WAIT_S`; while it waits, the goodbyes of the mails after it say QUIT
    and close without waiting. (Each waited in a thread of its own: a server slow to
    answer QUIT held a thread and a connection per mail, 50 of them for a digest hour of
    50 readers, each up to the connection's timeout, 30 s, or two minutes for a server
    trickling its answer.) Not a daemon thread: a
    process that ends waits for it, :data:`GOODBYE_WAIT_S` at most. The thread, or None
    when the goodbye was said without waiting."""
    server = (settings.host, settings.port)
    with _GOODBYES_LOCK:
        wait = server not in _AWAITED_GOODBYES
        _AWAITED_GOODBYES.add(server)
    wait_s = min(GOODBYE_WAIT_S, settings.timeout_s)
    if not wait:
        _quit_without_waiting(client, wait_s)
        return None

    def goodbye() -> None:
        try:
            with watchdog(wait_s, lambda: shut_down(client)):
                try:
                    if client.sock is not None:
                        client.sock.settimeout(wait_s)
                    client.quit()
                except (smtplib.SMTPException, OSError) as error:
                    logger.info("SMTP goodbye after a sent mail failed: %s", error)
                finally:
                    client.close()
        finally:
            with _GOODBYES_LOCK:
                _AWAITED_GOODBYES.discard(server)

    thread = threading.Thread(target=goodbye, name="smtp-goodbye")
    try:
        thread.start()
    except RuntimeError:  # "can't start new thread": the goodbye is said here instead
        with _GOODBYES_LOCK:
            _AWAITED_GOODBYES.discard(server)
        _quit_without_waiting(client, wait_s)
        return None
    return thread


def _quit_without_waiting(client: smtplib.SMTP, wait_s: float) -> None:
    """Say QUIT and close at once (RFC 5321 asks the client to wait for the answer, a
    SHOULD; the mail is accepted whatever it is)."""
    try:
        if client.sock is not None:
            client.sock.settimeout(wait_s)
        client.send("QUIT\r\n")
    except (smtplib.SMTPException, OSError) as error:
        logger.info("SMTP goodbye after a sent mail failed: %s", error)
    finally:
        client.close()
