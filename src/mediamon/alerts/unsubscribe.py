"""Unsubscribe links any recipient can follow, like Google Alerts': a token per recipient
and topic (or every topic) signed with HMAC-SHA256, and the URIs a mail carries.

Pure. The token holds what it unsubscribes (the address and the topic key) and its MAC,
so the page verifies it without a database lookup, and a token changed in any way (to
leave someone else's list, or another topic) fails the MAC. The keys come from
``MEDIAMON_UNSUBSCRIBE_SECRET`` only: the first signs, every one verifies, so a key is
rotated by putting the new one first and dropping the old one later. A token does not
expire: a mail read months later still lets its reader leave (until its key is dropped).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from mediamon.errors import InputError

logger = logging.getLogger(__name__)

# The "topic" of a token that unsubscribes the recipient from every mediamon mail (a
# digest's: it gathers all their topics). No topic key can be it (topics.file.KEY_PATTERN).
ALL_TOPICS = "*"
VERSION = "u1"
# What the MAC covers besides the payload: a MAC made for anything else with the same key
# is never a valid token.
MAC_CONTEXT = b"mediamon unsubscribe v1\x00"
# Where the api-server's plugin mounts the page (plugins/mediamon_dashboard.py).
PAGE_PATH = "/mediamon-unsubscribe/"
# The recipient's list of their alerts ("Manage your alerts", Google Alerts' "View all
# your alerts"), on the same app: opened only with an ALL_TOPICS token.
MANAGE_PATH = PAGE_PATH + "alerts"
# A token longer than this is no token of ours (an address is at most 254 characters, a
# key 64): refused before any decoding.
MAX_TOKEN_CHARS = 600


class TokenRefused(InputError):
    """An unsubscribe token that is malformed or whose MAC does not match."""


@dataclass(frozen=True)
class Subscription:
    """Whom a token names: the recipient (lower case) and a topic key or
    :data:`ALL_TOPICS`."""

    recipient: str
    topic: str

    @property
    def everything(self) -> bool:
        return self.topic == ALL_TOPICS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, payload: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), MAC_CONTEXT + payload, hashlib.sha256).digest()


def sign(keys: Sequence[str], recipient: str, topic: str) -> str:
    """The token that unsubscribes ``recipient`` from ``topic`` (or :data:`ALL_TOPICS`),
    signed with the first key.

    Raises:
        ValueError: no key, or a newline in the recipient or topic (none can hold one:
            settings and topics.file refuse them).
    """
    if not keys:
        raise ValueError("no unsubscribe key (MEDIAMON_UNSUBSCRIBE_SECRET)")
    if "\n" in recipient or "\n" in topic:
        raise ValueError("a recipient or topic key with a newline")
    payload = f"{recipient.lower()}\n{topic}".encode()
    return f"{VERSION}.{_b64(payload)}.{_b64(_mac(keys[0], payload))}"


def verify(keys: Sequence[str], token: str) -> Subscription:
    """Whom ``token`` unsubscribes, after checking its MAC against every key.

    Raises:
        TokenRefused: one line saying why (malformed; altered or made with a key no
            longer configured; no key configured).
    """
    if not keys:
        raise TokenRefused(
            "unsubscribe links are not enabled here (no MEDIAMON_UNSUBSCRIBE_SECRET)"
        )
    parts = token.split(".") if len(token) <= MAX_TOKEN_CHARS else []
    try:
        version, encoded, mac_text = parts
        if version != VERSION:
            raise ValueError(version)
        payload, mac = _unb64(encoded), _unb64(mac_text)
        recipient, topic = payload.decode("utf-8").split("\n")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenRefused(
            "this unsubscribe link is not one mediamon made (malformed); use the link of"
            " the mail itself"
        ) from None
    # Every key is tried (compare_digest: no early exit an attacker could time).
    if not any(hmac.compare_digest(_mac(key, payload), mac) for key in keys):
        raise TokenRefused(
            "this unsubscribe link was altered or its key retired: its signature does not"
            " match; use the link of a recent mail"
        )
    return Subscription(recipient, topic)


def page_link(
    public_url: str | None, keys: Sequence[str], recipient: str, topic: str
) -> str | None:
    """The https page that unsubscribes ``recipient`` from ``topic`` (its GET asks, its
    POST unsubscribes; RFC 8058's one-click URI), or None when ``MEDIAMON_PUBLIC_URL``
    or the key is not set: then mails offer the mailbox only, never a broken link."""
    if not public_url or not keys:
        return None
    return f"{public_url}{PAGE_PATH}?t={quote(sign(keys, recipient, topic), safe='')}"


def manage_link(public_url: str | None, keys: Sequence[str], recipient: str) -> str | None:
    """The page listing every topic ``recipient`` gets, each to leave or rejoin: their
    :data:`ALL_TOPICS` token is its key (the one a digest's unsubscribe link carries), so
    a topic's token never opens it. None without ``MEDIAMON_PUBLIC_URL`` or a key."""
    if not public_url or not keys:
        return None
    return f"{public_url}{MANAGE_PATH}?t={quote(sign(keys, recipient, ALL_TOPICS), safe='')}"
