"""Headless Debian chromium for tests of what people look at (a page, a rendered mail):
the client is ``mediamon.devtools.chromium`` (``make superset-check`` drives it too); here
the tests' artifacts folder and a mail's HTML made ready for it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path

from mediamon.devtools.chromium import Chromium, ChromiumMissing, Page, chromium, chromium_path

__all__ = ["ARTIFACTS", "Chromium", "ChromiumMissing", "Page", "chromium", "chromium_path"]

REPO = Path(__file__).resolve().parents[2]
# Screenshots and rendered pages a test run leaves for people to look at.
ARTIFACTS = REPO / "var" / "test-artifacts"


def mail_html_file(message: EmailMessage, path: Path) -> Path:
    """The message's HTML part written to ``path`` with its ``cid:`` images as data: URIs
    (what a mail client does), ready for :meth:`Chromium.open`."""
    html_part = message.get_body(("html",))
    assert html_part is not None, "the mail has no HTML part"
    text = html_part.get_content()
    images: Mapping[str, bytes] = {
        str(part["Content-ID"]).strip("<>"): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "image"
    }
    for cid, data in images.items():
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        text = text.replace(f"cid:{cid}", uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
