"""smtplib's clients with a bound on the size of a server's reply.

smtplib reads a multi-line reply (``250-…`` lines until one without the dash) into a
list without any bound but the 8 kB of a line: a server (hostile, compromised, or one
an attacker sits in front of on a plain connection) answering the greeting or EHLO with
endless continuation lines filled memory at wire speed until the message's deadline,
848 MB in 4 s on loopback, gigabytes in the 120 s a message may take. Real replies are
a few lines (EHLO lists 10 to 20 extensions).
"""

from __future__ import annotations

import smtplib
from typing import Any

MAX_LINE_BYTES = 8192  # smtplib's own bound on a line (its _MAXLINE)
MAX_REPLY_LINES = 1_000  # at most 8 MB of lines


class ReplyTooLong(smtplib.SMTPServerDisconnected):
    """A reply ran past MAX_REPLY_LINES; the connection is closed (the mail is not sent
    and stays due, as for a server that hung up)."""


class _BoundedReplies(smtplib.SMTP):
    def __init__(self, *args: Any, server: str = "", **kwargs: Any) -> None:
        """``server``: ``host:port`` as errors name it."""
        super().__init__(*args, **kwargs)
        self.server = server

    def getreply(self) -> tuple[int, bytes]:
        """smtplib's reading of a reply (its code, its lines joined), bounded."""
        lines: list[bytes] = []
        if self.file is None:
            if self.sock is None:
                raise smtplib.SMTPServerDisconnected("please run connect() first")
            self.file = self.sock.makefile("rb")
        while True:
            try:
                line = self.file.readline(MAX_LINE_BYTES + 1)
            except OSError as error:
                self.close()
                raise smtplib.SMTPServerDisconnected(
                    f"Connection unexpectedly closed: {error}"
                ) from error
            if not line:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            if len(line) > MAX_LINE_BYTES:
                self.close()
                raise smtplib.SMTPResponseException(500, "Line too long.")
            if len(lines) == MAX_REPLY_LINES:
                self.close()
                raise ReplyTooLong(
                    f"the SMTP server {self.server} sent a reply of more than {MAX_REPLY_LINES:,}"
                    " lines: connection closed, not sent"
                )
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1  # no continuation read after a broken code, as smtplib does
                break
            if line[3:4] != b"-":
                break
        return code, b"\n".join(lines)


class BoundedSMTP(_BoundedReplies, smtplib.SMTP):
    """smtplib.SMTP whose replies are bounded (see MAX_REPLY_LINES)."""


class BoundedSMTPSSL(_BoundedReplies, smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL whose replies are bounded (see MAX_REPLY_LINES)."""
