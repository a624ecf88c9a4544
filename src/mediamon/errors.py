"""Errors a user can fix. The CLI prints their message as one line (no traceback unless
``--debug``); the DAG glue fails a task at once, without retries, when it meets a
:class:`ConfigError` — retrying cannot fix a file."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message is one line naming the file, source or field."""


class ConfigError(UserError, ValueError):
    """Configuration is invalid: the sources or topics file, a threshold, an unknown name.

    A ``ValueError`` too, so code that caught the older ``ValueError`` still does.
    """
