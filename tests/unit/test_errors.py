"""How a library's failure becomes the one line the command prints: never a password."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mediamon.errors import ConfigError, DatabaseUnavailable, explain


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://news:s3cret@db.example.org/news",
            "postgresql://news:***@db.example.org/news",
        ),
        # an unencoded @ in the password: all of it is hidden, not the part before the @
        (
            "postgresql://news:s3@cret@db.example.org/news",
            "postgresql://news:***@db.example.org/news",
        ),
        ("postgresql://news@db.example.org/news", "postgresql://news@db.example.org/news"),
        ("postgresql://db.example.org:5432/news", "postgresql://db.example.org:5432/news"),
    ],
)
def test_a_url_in_an_error_is_shown_without_its_password(url: str, shown: str) -> None:
    explained = explain(sa.exc.ArgumentError(f"could not read {url} (a bad port)"))
    assert isinstance(explained, ConfigError)
    assert str(explained) == f"database URL: could not read {shown} (a bad port)"


def test_only_the_first_line_of_a_driver_error_is_shown() -> None:
    error = sa.exc.OperationalError(
        "connect", {}, Exception('FATAL:  the  database "x" does not exist\nDETAIL: …')
    )
    explained = explain(error)
    assert isinstance(explained, DatabaseUnavailable)
    assert str(explained) == 'database unavailable: the database "x" does not exist'
