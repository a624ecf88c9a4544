"""Sending mail through the ``mediamon_smtp`` connection, with or without Airflow.

Airflow tasks hand us the Connection's fields; the CLI reads the same connection from
``AIRFLOW_CONN_MEDIAMON_SMTP`` (JSON or URI, as Airflow accepts them), so an alert sent
from the command line goes through the same server as one sent by the DAG. Defaults
follow Airflow's SMTP provider: implicit TLS unless ``disable_ssl``, then STARTTLS unless
``disable_tls``.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mediamon.errors import ConfigError

logger = logging.getLogger(__name__)

SMTP_CONN_ID = "mediamon_smtp"
TRUE = ("1", "true", "yes", "on")


class MailConfigError(ConfigError):
    """The SMTP connection is missing or malformed; the message names it."""


@dataclass(frozen=True)
class SmtpSettings:
    """The fields of an Airflow SMTP connection that sending needs."""

    host: str
    port: int = 465
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

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

    @property
    def timeout_s(self) -> float:
        return float(self.extra.get("timeout", 30))


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in TRUE


def settings_from_env(
    conn_id: str = SMTP_CONN_ID, environ: Mapping[str, str] | None = None
) -> SmtpSettings | None:
    """The connection from ``AIRFLOW_CONN_<ID>``, or None when the variable is unset.

    Raises:
        MailConfigError: the variable is set but is neither connection JSON nor a URI.
    """
    env = os.environ if environ is None else environ
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise MailConfigError(f"{name}: not valid JSON: {error}") from error
        return connection_settings(data, name)
    parts = urlsplit(raw)
    if not parts.hostname:
        raise MailConfigError(f"{name}: expected connection JSON or a URI like smtp://host:25")
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or 465,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        extra=dict(parse_qsl(parts.query)),
    )


def connection_settings(data: Mapping[str, Any], name: str = SMTP_CONN_ID) -> SmtpSettings:
    """An SMTP connection's fields (Airflow's connection JSON: host, port, login,
    password, extra as a dict or a JSON string) as :class:`SmtpSettings`.

    Raises:
        MailConfigError: the connection has no host.
    """
    if not data.get("host"):
        raise MailConfigError(f"{name}: the connection has no host")
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    return SmtpSettings(
        host=data["host"],
        port=int(data.get("port") or 465),
        login=data.get("login"),
        password=data.get("password"),
        extra=extra,
    )


def smtp_sender(settings: SmtpSettings) -> Callable[[EmailMessage], None]:
    """A function that sends one message through ``settings``' server (a new connection
    per message: alerts are few, and a dropped connection then costs nothing)."""

    def send(message: EmailMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if settings.use_ssl:
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            if settings.use_starttls:
                client.starttls(context=context)
            if settings.login:
                client.login(settings.login, settings.password or "")
            client.send_message(message)
        logger.info("sent %r to %s", message["Subject"], message["To"])

    return send
