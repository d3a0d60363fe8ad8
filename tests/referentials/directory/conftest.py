"""The directory registers its SearchParameters in the process-wide registry: forget them after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from socle.fhir.search_params import registry


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    yield
    registry().replace_custom([])
