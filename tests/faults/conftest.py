"""The fault suites' fault server (tests/support/fault_server.py), one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fault_server import FaultServer, fault_server


@pytest.fixture()
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running
