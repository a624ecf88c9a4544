"""The ops mails as people see them: rendered by headless Debian chromium at phone and
desktop widths (no sideways scrolling), with everything a source supplied escaped."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

from mediamon.ops import mail as ops_mail

AT = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="alert(1)"> feed said: </td></table><b>bold</b>'
# Appended to a copy of the mail (never to the mail itself): the layout facts, as the title.
PROBE = (
    "<script>parent.postMessage([document.documentElement.scrollWidth,"
    " document.documentElement.clientWidth, document.images.length,"
    " document.querySelectorAll('b').length].join(','), '*');</script>"
)
# Headless chromium's window is at least 500 px wide: a phone's width is an iframe's.
FRAME = (
    '<!DOCTYPE html><html><head><title>-</title></head><body style="margin:0">'
    '<iframe src="{src}" style="border:0;width:{width}px;height:900px"></iframe>'
    "<script>addEventListener('message', e => {{ document.title = e.data; }});</script>"
    "</body></html>"
)


def render(message: EmailMessage, width: int, tmp_path: Path) -> tuple[list[int], str]:
    """Open the mail's HTML part in chromium, in a frame ``width`` px wide; return the
    probe's figures (scrollWidth, clientWidth, images, bold elements) and the mail's DOM."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (Debian package chromium)")
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    html = part.get_content()
    mail = tmp_path / f"mail-{width}.html"
    mail.write_text(html.replace("</body>", PROBE + "</body>"), "utf-8")
    frame = tmp_path / f"frame-{width}.html"
    frame.write_text(FRAME.format(src=mail.name, width=width), "utf-8")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
         "--allow-file-access-from-files", "--virtual-time-budget=5000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", frame.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    title = result.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    return [int(v) for v in title.split(",")], html


def incident(**changes: object) -> SimpleNamespace:
    row = {
        "incident_id": 7,
        "dedupe_key": "source_failing:rfi-cn",
        "summary": "source rfi-cn failed its last 3 polls",
        "detail": "https://www.rfi.fr/cn/" + "very-long-path-" * 20 + ": " + HOSTILE,
        "advice": "Open the feed URL from the worker host.",
        "since": AT - timedelta(hours=1),
        "opened_at": AT,
        "resolved_at": None,
    }
    return SimpleNamespace(**(row | changes))


@pytest.mark.parametrize("width", [390, 1280])
def test_incident_and_recovery_mail_fit_and_escape(width: int, tmp_path: Path) -> None:
    for recovery in (False, True):
        row = incident(resolved_at=AT + timedelta(hours=2) if recovery else None)
        message = ops_mail.incident_message(row, recovery, "m <m@x.org>", ["ops@x.org"], AT)
        (scroll, client, images, bold), dom = render(message, width, tmp_path)
        assert scroll <= client <= width, (scroll, client)
        assert images == 0 and bold == 0  # the source's markup is text, not markup
        assert "&lt;img src=x onerror=" in dom and "<b>" not in dom
        assert ("Cleared" in dom) is recovery


@pytest.mark.parametrize("width", [390, 1280])
def test_weekly_report_fits(width: int, tmp_path: Path) -> None:
    rows = [
        {"source": f"source-{n}-with-a-long-name", "polls": 672, "failures": n,
         "articles": 1200 + n, "median_latency_ms": 350, "trend": "+12%"}
        for n in range(12)
    ]  # fmt: skip
    message = ops_mail.report_message(rows, AT - timedelta(days=7), AT, "m@x.org", ["o@x.org"])
    (scroll, client, _, _), dom = render(message, width, tmp_path)
    assert scroll <= client <= width, (scroll, client)
    assert dom.count("<tr>") == 13  # a header row and one per source
    text = message.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    assert text.get_content().splitlines()[3].split() == [
        "source-0-with-a-long-name", "672", "0", "1200", "350", "+12%"
    ]  # fmt: skip
