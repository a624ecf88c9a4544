"""Content codings a fetched body may come in (gzip, deflate), undone with bounds: a
small compressed body can expand a thousandfold, and urllib3 returns a gzip body cut in
the middle as if it were whole. Used by :mod:`mediamon.ingest.fetch`, which asks only
for these codings (its Accept-Encoding)."""

from __future__ import annotations

import zlib
from typing import Any


class DecodeFailed(Exception):
    """The body's content coding is corrupt or incomplete."""


class BodyDecoder:
    """Undoes gzip or deflate with a bound on the output of every step (a small
    compressed body can expand a thousandfold), and checks the compressed stream ended:
    urllib3 returns a gzip body cut in the middle as if it were whole."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        self._first = True
        if encoding in ("", "identity"):
            return
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise ValueError(f"unsupported content coding {encoding!r}")

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode ``data``; return at most ``room + 1`` bytes (more means over the cap)."""
        if self._zlib is None:
            return data
        try:
            out = self._decompress(data, room)
        except zlib.error as error:
            if not (self.encoding == "deflate" and self._first):
                raise DecodeFailed(str(error)) from error
            # Servers often send raw deflate without the zlib header the spec asks for.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                out = self._decompress(data, room)
            except zlib.error as raw_error:
                raise DecodeFailed(str(raw_error)) from raw_error
        self._first = False
        return out

    def _decompress(self, data: bytes, room: int) -> bytes:
        out: bytes = self._zlib.decompress(data, max(room, 0) + 1)
        # A finished gzip member may be followed by another (concatenated gzip).
        while self._zlib.eof and self._zlib.unused_data and len(out) <= room:
            rest = self._zlib.unused_data
            if self.encoding not in ("gzip", "x-gzip") or not rest.startswith(b"\x1f\x8b"):
                break  # trailing garbage after the stream: ignored, as browsers do
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += self._zlib.decompress(rest, max(room - len(out), 0) + 1)
        return out

    def finish(self) -> bytes:
        if self._zlib is None:
            return b""
        if not self._zlib.eof:
            raise DecodeFailed(
                f"truncated {self.encoding} stream (the body ends before the compressed data)"
            )
        return b""
