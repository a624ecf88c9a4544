"""The database: engines and the embedded server (``engine``), table definitions
(``tables``), numbered migrations (``migrate``) and named queries (``queries``).

The engine helpers are re-exported here because every stage needs them: ``db.make_engine``.
"""

from mediamon.db.engine import (
    EMBEDDED_DATABASES,
    bounded_connect_timeout,
    embedded_url,
    ensure_database,
    local_server_answers,
    make_engine,
    normalize_url,
    resolve_url,
    scratch_admin_url,
    scratch_database,
    server_of,
    stop_embedded,
)

__all__ = [
    "EMBEDDED_DATABASES",
    "embedded_url",
    "ensure_database",
    "local_server_answers",
    "bounded_connect_timeout",
    "make_engine",
    "normalize_url",
    "resolve_url",
    "scratch_admin_url",
    "scratch_database",
    "server_of",
    "stop_embedded",
]
