"""One stored version of a resource, as the store hands it to the layers above."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson

from socle.store.clock import to_instant


@functools.lru_cache(maxsize=256)
def instant(us: int) -> str:
    """`to_instant`, cached: the versions written by one batch share their timestamp."""
    return to_instant(us)


@dataclass
class StoredVersion:
    resource_key: int
    resource_type: str
    id: str
    version: int
    updated_at: int
    deleted: bool
    compartment: str | None
    # The JSON exactly as stored (with id and meta): served as-is when no transformation is asked for.
    raw: bytes | None
    method: str = "PUT"
    _parsed: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def resource(self) -> dict[str, Any]:
        if self._parsed is None:
            if self.raw is None:
                raise ValueError(f"{self.resource_type}/{self.id} version {self.version} has no content")
            self._parsed = orjson.loads(self.raw)
        return self._parsed

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def last_updated(self) -> str:
        return instant(self.updated_at)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    @property
    def location(self) -> str:
        return f"{self.resource_type}/{self.id}/_history/{self.version}"
