"""The HTML frame every mail shares: one column of at most :data:`COLUMN_WIDTH` px, light
by default and dark for a reader in dark mode, held at its width in Outlook for Windows;
the red bar on top and the footer (why the reader got the mail, whom to ask, the
unsubscribe link).

Pure. What goes in the frame is :mod:`mediamon.alerts.compose`'s; text passed here is
composed around :func:`~mediamon.alerts.render.isolate` names and escaped here.
"""

from __future__ import annotations

import html

from mediamon.alerts.catalog import Catalog
from mediamon.alerts.render import clean_composed, esc, esc_composed

# Where the HTML footer's unsubscribe link goes in a composed line (a private-use
# character: no catalogue text holds it, and clean() keeps it).
LINK_SLOT = "\ue000"
COLUMN_WIDTH = 680
# The mail in dark mode: every colour the inline styles set, overridden (they win over a
# style sheet without !important). Without it a reader in dark mode got a white page,
# and a client that darkens the text by itself left the highlighted terms light on yellow.
# Contrasts on the column's #1c1f23: text 14:1, muted text and links about 8:1; a note's
# text on its dark amber about 11:1.
DARK_STYLE = (
    "@media (prefers-color-scheme: dark){"
    ".mm-body{background:#111315!important}"
    ".mm-mail{background:#1c1f23!important;color:#e8eaed!important}"
    ".mm-mail .muted{color:#aeb4bb!important}"
    ".mm-mail .footer{border-top-color:#3c4043!important}"
    ".mm-mail a{color:#8ab4f8!important}"
    ".mm-mail mark,.mm-mail .hit{background:#5c4d00!important;color:#ffffff!important}"
    # A note on a background of its own (a late alert's): the page's light text on its
    # pale amber was 1.2:1.
    ".mm-mail .note{background:#3a2e0f!important;color:#f5e6c4!important}"
    "}"
)
FONT = (
    "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,'Noto Sans CJK SC',"
    "'PingFang SC','Microsoft YaHei',sans-serif"
)


def page(title: str, body: str, locale: str, preheader: str = "") -> str:
    """The mail's HTML document: one column of at most :data:`COLUMN_WIDTH` px, led by
    the hidden ``preheader`` (composed text) if any.

    Inline styles draw it light everywhere; :data:`DARK_STYLE` redraws it dark where the
    reader chose dark mode and the client honours ``prefers-color-scheme`` (Apple Mail,
    iOS, Outlook for Mac, Thunderbird). Outlook for Windows ignores ``max-width``: a table
    of that width, in comments only it reads, keeps its column as wide as elsewhere."""
    return (
        f'<!DOCTYPE html><html lang="{esc(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<meta name="supported-color-schemes" content="light dark">'
        f"<style>{DARK_STYLE}</style>"
        # A <title> holds no elements: the isolate characters themselves stay.
        f"<title>{html.escape(clean_composed(title, 300), quote=True)}</title></head>"
        '<body class="mm-body" style="margin:0;padding:0;background:#f3f4f6">'
        f"{_preheader(preheader)}"
        f'<!--[if mso]><table role="presentation" width="{COLUMN_WIDTH}" align="center"'
        ' cellpadding="0" cellspacing="0" border="0"><tr><td><![endif]-->'
        f'<div class="mm-mail" style="max-width:{COLUMN_WIDTH}px;margin:0 auto;'
        "background:#ffffff;padding:16px;"
        f"box-sizing:border-box;font-family:{FONT};font-size:15px;line-height:1.5;"
        'color:#222222;overflow-wrap:anywhere;word-break:break-word">'
        f"{body}</div>"
        "<!--[if mso]></td></tr></table><![endif]-->"
        "</body></html>"
    )


# After the preheader, blanks an inbox shows instead of the text that follows (the red
# bar, the subject again): a zero-width non-joiner and a no-break space, repeated.
PREHEADER_FILLER = "&zwnj;&nbsp;" * 60
PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
    "overflow:hidden;mso-hide:all"
)


def _preheader(text: str) -> str:
    """The text an inbox previews under the subject (Gmail, Apple Mail, Outlook read the
    first text of the HTML), hidden in the mail itself. Without it the preview was the
    red bar, which repeats the subject (a digest's word for word)."""
    if not text:
        return ""
    return (
        f'<div class="preheader" style="{PREHEADER_STYLE}">'
        f"{esc_composed(text, 400)}{PREHEADER_FILLER}</div>"
    )


def bar(text: str) -> str:
    return (
        '<div id="alert-bar" style="background:#c62828;color:#ffffff;padding:10px 14px;'
        f'border-radius:4px;font-weight:bold;font-size:17px">{esc_composed(text, 200)}</div>'
    )


def footer(
    catalog: Catalog,
    why: str,
    last: str,
    *,
    contact: str,
    topic: str,
    key: str,
    uri: str,
    manage: str | None = None,
) -> tuple[list[str], str]:
    """Why the reader got the mail, whom to ask for a change and how to unsubscribe, the
    "Manage your alerts" page when ``manage`` (every topic they get, each to leave or
    rejoin), and ``last``: (plain text lines, HTML). The plain text shows the URIs; the
    HTML links reading "unsubscribe" (its 90-character ``mailto:`` as text was no link in
    most clients, and took two lines on a phone) and "Manage your alerts"."""

    def change(unsubscribe: str) -> str:
        return catalog(
            "how_to_change", contact=contact, topic=topic, key=key, unsubscribe=unsubscribe
        )

    lines = [why, change(catalog("unsubscribe_plain", uri=uri))]
    words = catalog("unsubscribe_words")
    inner = "".join(
        f'<p style="margin:4px 0">{_esc_with_link(p, uri, words)}</p>'
        for p in (why, change(LINK_SLOT))
    )
    if manage:
        lines.append(catalog("manage_plain", uri=manage))
        link = _esc_with_link(LINK_SLOT, manage, catalog("manage_words"))
        inner += f'<p style="margin:4px 0">{link}</p>'
    lines.append(last)
    inner += f'<p style="margin:4px 0">{esc_composed(last, 2000)}</p>'
    html_part = (
        '<div class="muted footer" style="border-top:1px solid #e0e0e0;margin-top:20px;'
        f'padding-top:8px;color:#666;font-size:12px">{inner}</div>'
    )
    return lines, html_part


def _esc_with_link(line: str, href: str, words: str) -> str:
    """``line`` escaped as :func:`esc_composed` does, its :data:`LINK_SLOT` (if any) a link
    to ``href`` reading ``words``."""
    before, slot, after = line.partition(LINK_SLOT)
    if not slot:
        return esc_composed(line, 2000)
    anchor = f'<a href="{html.escape(href, quote=True)}" style="color:#1a4f8b">{esc(words)}</a>'
    # esc_composed trims each side: the spaces around the link are put back.
    return (
        esc_composed(before, 2000)
        + (" " if before[-1:].isspace() else "")
        + anchor
        + (" " if after[:1].isspace() else "")
        + esc_composed(after, 2000)
    )
