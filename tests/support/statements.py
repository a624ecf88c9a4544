"""The SQL statements a piece of code sends, for tests that bound how many it takes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def sent_statements(engine: sa.Engine | type[sa.Engine]) -> Iterator[list[str]]:
    """The statements sent to the server meanwhile (an executemany counts once). Pass
    ``sa.Engine`` itself to count those of every engine, as code under test may make
    its own."""
    sent: list[str] = []

    def record(*args: object) -> None:
        sent.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
