"""``mediamon COMMAND --help`` as a user reads it."""

from __future__ import annotations

import pytest

from mediamon.cli import main

COMMANDS = [
    ["db"],
    ["db", "upgrade"],
    ["db", "url"],
    ["db", "bi-user"],
    ["db", "stop"],
    ["db", "roles"],
    ["ingest"],
    ["import-archive"],
    ["extract"],
    ["status"],
    ["health"],
    ["health", "run"],
    ["health", "report"],
    ["topics"],
    ["topics", "check"],
    ["alerts"],
    ["alerts", "run"],
    ["digest"],
    ["digest", "run"],
    ["demo"],
    ["run"],
    ["stop"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_commands_help_says_what_it_does(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "mediamon ingest --help" showed its usage and options, not a word of what
    # it does (the list of commands said it; the command's own help did not).
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    usage, description = capsys.readouterr().out.split("\n\n")[:2]
    assert usage.startswith(f"usage: mediamon {' '.join(command)}")
    assert description[:1].isupper() and description.endswith("."), description
