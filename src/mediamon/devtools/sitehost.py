"""A small HTTP server for a folder of static news pages, on 127.0.0.1 only.

Serves the demo site and the test sites. ``{{BASE}}`` in XML files becomes the server's
own address, so a feed can link to the pages beside it whatever port it got. HTML is
sent without a charset parameter: pages declare their own (one demo page is GBK).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONTENT_TYPES = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".html": "text/html",
}


class _SiteHandler(SimpleHTTPRequestHandler):
    base_url = ""

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.suffix in (".xml", ".atom") and path.is_file():
            body = path.read_text("utf-8").replace("{{BASE}}", self.base_url).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)
            return None
        return super().send_head()

    def guess_type(self, path: Any) -> str:
        return CONTENT_TYPES.get(Path(str(path)).suffix, super().guess_type(path))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the fetch log is the record; keep the console for the summary


@contextmanager
def serve_folder(folder: Path, port: int = 0) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 in a background thread; yield the base URL."""
    handler_class: type[_SiteHandler] = type("SiteHandler", (_SiteHandler,), {})  # one per server
    server = ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(handler_class, directory=str(folder))
    )
    base = f"http://127.0.0.1:{server.server_address[1]}"
    handler_class.base_url = base
    thread = threading.Thread(target=server.serve_forever, name="sitehost", daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
