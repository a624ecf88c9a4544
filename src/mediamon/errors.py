"""Errors a user can fix, and how the command line turns any failure into one line.

A :class:`UserError` carries a message that names what is wrong (the file, the field,
the variable, the server) and the exit status the ``mediamon`` command ends with.
:func:`explain` turns the known failures of libraries (a database that does not answer,
a database URL SQLAlchemy cannot read, memory running out) into one; ``mediamon
--debug`` shows the traceback instead. Commands add their own cases by raising a
subclass or by extending :func:`explain`.
"""

from __future__ import annotations

import re

EXIT_USAGE = 2  # the command line, a configuration file or variable is wrong
EXIT_DATABASE = 3  # the database cannot be reached or used
EXIT_RESOURCES = 4  # the machine ran out of something (memory)


class UserError(Exception):
    """A problem the user can fix; ``str(error)`` is the whole message."""

    exit_code = EXIT_USAGE


class ConfigError(UserError, ValueError):
    """A configuration file, environment variable or option is invalid."""


class InputError(UserError, ValueError):
    """A file or value given on the command line cannot be used."""


class DatabaseUnavailable(UserError):
    """The database does not answer, does not exist or refuses us."""

    exit_code = EXIT_DATABASE


class SchemaMismatch(DatabaseUnavailable):
    """The database's migrations are not this mediamon's: it was upgraded by a newer
    mediamon, or an applied migration's file differs from the one that was applied."""


class MailNotSent(RuntimeError):
    """Some mails could not be sent; they are tried again by the next run (the alert
    and digest runs raise subclasses). Defined here so that the command line can tell
    them apart without importing the mail stack."""


class OutOfMemory(UserError):
    exit_code = EXIT_RESOURCES


def explain(error: BaseException) -> UserError | None:
    """The :class:`UserError` a library failure amounts to, or None for a bug."""
    if isinstance(error, UserError):
        return error
    if isinstance(error, MemoryError):
        return OutOfMemory("out of memory (a file or a database row too large to hold?)")
    import sqlalchemy as sa

    if isinstance(error, sa.exc.NoSuchModuleError | sa.exc.ArgumentError):
        return ConfigError(f"database URL: {_first_line(error)}")
    if isinstance(error, sa.exc.DBAPIError):
        reason = _first_line(error.orig or error)
        refusal = _refusal(str(getattr(error.orig, "sqlstate", None) or ""), reason)
        if refusal is not None:
            return DatabaseUnavailable(refusal)
    if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError):
        return DatabaseUnavailable(f"database unavailable: {_first_line(error.orig or error)}")
    return None


def _refusal(sqlstate: str, reason: str) -> str | None:
    """What a database that answers but will not do mediamon's work means, by the error's
    SQLSTATE: a read-only database, a login without mediamon's rights, a server out of disk.
    Before, the first two were tracebacks holding the statement, the third said
    "unavailable" of a server that answered."""
    if sqlstate == "25006":  # read_only_sql_transaction
        return (
            f"database is read-only: {reason} (a standby server, or"
            " default_transaction_read_only set); mediamon needs a database it can write"
        )
    if sqlstate == "42501":  # insufficient_privilege
        return (
            f"database login lacks a right: {reason} (the login of MEDIAMON_DATABASE_URL or"
            " the mediamon_db connection; use the database's owner or the writer role of"
            " `mediamon db roles`, not a BI login)"
        )
    if sqlstate.startswith("53"):  # insufficient_resources: disk full, out of memory, limits
        return f"database server out of resources: {reason} (free disk space on the server)"
    return None


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, without the driver's noise or a password."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"\s+", " ", text.replace("FATAL:", "")).strip()
    text = text.removeprefix("connection failed: ")
    return " ".join(_without_password(word) for word in text.split(" "))


def _without_password(word: str) -> str:
    """``word`` with the password of a URL in it (``scheme://user:password@host``) as
    ``***``. Read by hand, not by a pattern: a pattern tried from every ``://`` read the
    rest of the line each time (a line of many ``://a:`` took 1.5 s at 25 kB)."""
    start = word.find("://")
    at = word.rfind("@")
    if start < 0 or at < start:
        return word
    colon = word.find(":", start + 3, at)
    if colon < 0:
        return word
    return f"{word[: colon + 1]}***{word[at:]}"
