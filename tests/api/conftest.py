"""Fixtures of the API tests that need a real server process (see tests/server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import LiveServer, running_server


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """`socle serve` on a fresh database, on SQLite and on PostgreSQL (through `database_url`)."""
    with running_server(database_url) as live:
        yield live
