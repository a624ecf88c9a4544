"""The safe ground of every mail: only http(s) URLs become links."""

from __future__ import annotations

import pytest

from mediamon.alerts.render import safe_link


@pytest.mark.parametrize("url", ["HTTP://example.org/", "https://www.rfi.fr/cn/a"])
def test_http_links(url: str) -> None:
    assert safe_link(url) == url


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>", "//example.org/a", "https:///nohost",
     "https://exa mple.org/", "https://example.org/\u202eexe", ""],
)  # fmt: skip
def test_no_other_links(url: str) -> None:
    assert safe_link(url) is None
