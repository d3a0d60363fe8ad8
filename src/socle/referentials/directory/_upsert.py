"""Idempotent batch writes through the store: create what is new, update what changed, skip the rest.

A re-import of an unchanged extraction must not create a new version of a million resources, so each
batch first reads the current versions of its ids (one `_id` search per type and 500 ids), compares
them with the freshly mapped bodies (server-owned `meta` fields aside), sends every new resource in
one `create_many` (the store's bulk path: one multi-row INSERT per table) and updates only the
resources that differ. Ownership rules (which import may overwrite what) come from `meta.source`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from socle.store.access import SYSTEM
from socle.store.repository import Store

__all__ = ["UpsertCounts", "Upserter", "strip_server_meta"]

Resource = dict[str, Any]
# (existing body, new body) -> the body to write, or None to leave the existing one as it is.
Merge = Callable[[Resource, Resource], Resource | None]

_CHUNK = 500


@dataclass
class UpsertCounts:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def add(self, other: UpsertCounts) -> None:
        self.created.update(other.created)
        self.updated.update(other.updated)
        self.unchanged.update(other.unchanged)


def strip_server_meta(body: Resource) -> Resource:
    """The resource without the fields the store sets on every write (versionId, lastUpdated)."""
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    stripped = {k: v for k, v in body.items() if k != "meta"}
    if meta:
        stripped["meta"] = meta
    return stripped


class Upserter:
    def __init__(self, store: Store) -> None:
        self.store = store

    def existing(self, conn: Connection, resource_type: str, ids: Sequence[str]) -> dict[str, Resource]:
        """Current bodies of those ids (absent and deleted ones left out), through the search API."""
        found: dict[str, Resource] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            page, _, _ = self.store.search_page(
                conn,
                resource_type,
                [("_id", ",".join(chunk))],
                SYSTEM,
                count=len(chunk),
                after=None,
                strict=True,
            )
            for version in page:
                found[version.id] = version.resource
        return found

    def write(self, conn: Connection, bodies: Iterable[Resource], merge: Merge | None = None) -> UpsertCounts:
        counts = UpsertCounts()
        by_type: dict[str, dict[str, Resource]] = {}
        for body in bodies:
            by_type.setdefault(body["resourceType"], {})[body["id"]] = body  # last one wins
        creates: list[Resource] = []
        for resource_type, wanted in by_type.items():
            current = self.existing(conn, resource_type, list(wanted))
            for id_, body in wanted.items():
                old = current.get(id_)
                if old is None:
                    creates.append(body)
                    counts.created[resource_type] += 1
                    continue
                before = strip_server_meta(old)
                target = merge(before, body) if merge is not None else body
                if target is None or target == before:
                    counts.unchanged[resource_type] += 1
                    continue
                self.store.update(conn, target, method="PUT")
                counts.updated[resource_type] += 1
        if creates:
            self.store.create_many(conn, creates)
        return counts
