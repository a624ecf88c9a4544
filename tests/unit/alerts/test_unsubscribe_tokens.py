"""Unsubscribe tokens: signed per recipient and topic, verified without a database, and
refused in one line when forged, altered or made with a retired key."""

from __future__ import annotations

import base64
import secrets

import pytest

from mediamon.alerts.unsubscribe import (
    ALL_TOPICS,
    Subscription,
    TokenRefused,
    page_link,
    sign,
    verify,
)

# Made per run: no key is ever written in the repository.
KEY, OLD_KEY, OTHER_KEY = (secrets.token_urlsafe(32) for _ in range(3))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_a_token_names_its_recipient_and_topic() -> None:
    token = sign([KEY], "Desk@Example.org", "taiwan")
    assert verify([KEY], token) == Subscription("desk@example.org", "taiwan")
    assert verify([KEY], sign([KEY], "desk@example.org", ALL_TOPICS)).everything
    # Unguessable: another recipient's or topic's token shares nothing but the prefix.
    assert sign([KEY], "duty@example.org", "taiwan").split(".")[2] != token.split(".")[2]


def refusal(keys: list[str], token: str) -> str:
    with pytest.raises(TokenRefused) as caught:
        verify(keys, token)
    line = str(caught.value)
    assert "\n" not in line
    return line


def test_an_altered_token_cannot_unsubscribe_someone_else() -> None:
    version, _, mac = sign([KEY], "desk@example.org", "taiwan").split(".")
    for payload in (b"duty@example.org\ntaiwan", b"desk@example.org\n*", b"desk@example.org\nx"):
        forged = f"{version}.{_b64(payload)}.{mac}"
        assert "signature does not match" in refusal([KEY], forged)
    # A MAC of one's own, made without the key, is refused too.
    payload = b"duty@example.org\ntaiwan"
    assert "signature does not match" in refusal(
        [KEY], f"{version}.{_b64(payload)}.{_b64(secrets.token_bytes(32))}"
    )
    assert "signature does not match" in refusal([KEY], sign([OTHER_KEY], "x@example.org", "t"))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "u1",
        "u1.a.b.c",
        "u2.ZGVzaw.AAAA",
        "u1.!!!.AAAA",
        "u1." + "A" * 700 + ".AA",
        "u1.ZGVzaw.AAAA",
    ],
)
def test_a_malformed_token_is_refused_in_one_line(token: str) -> None:
    assert refusal([KEY], token) == (
        "this unsubscribe link is not one mediamon made (malformed); use the link of the"
        " mail itself"
    )


def test_keys_rotate_the_first_signs_every_one_verifies() -> None:
    old = sign([OLD_KEY], "desk@example.org", "taiwan")
    assert verify([KEY, OLD_KEY], old).recipient == "desk@example.org"
    new = sign([KEY, OLD_KEY], "desk@example.org", "taiwan")
    assert verify([KEY], new).topic == "taiwan"
    assert "key retired" in refusal([KEY], old)  # the old key dropped: its links stop


def test_no_link_without_the_public_url_or_a_key() -> None:
    assert page_link(None, [KEY], "desk@example.org", "taiwan") is None
    assert page_link("https://m.example", [], "desk@example.org", "taiwan") is None
    link = page_link("https://m.example", [KEY], "desk@example.org", "taiwan")
    assert link is not None and link.startswith("https://m.example/mediamon-unsubscribe/?t=u1.")
