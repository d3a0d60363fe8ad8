"""Indexes that upper layers own (e.g. the MPI's blocking keys), written in the resource's transaction.

The store cannot import the referentials (imports point down), so a referential registers its
writer here once, when it is imported; the repository then calls it next to the search indexes on
every create, update and delete of the resource types it names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

# (resource_key, resource_type, compartment, resource)
IndexItem = tuple[int, str, str | None, dict[str, Any]]
WriteHook = Callable[[Connection, Sequence[IndexItem]], None]
DeleteHook = Callable[[Connection, Sequence[int]], None]

_HOOKS: list[tuple[frozenset[str], WriteHook, DeleteHook]] = []


def register(resource_types: Sequence[str], write: WriteHook, delete: DeleteHook) -> None:
    if not any(w is write for _, w, _ in _HOOKS):
        _HOOKS.append((frozenset(resource_types), write, delete))


def write(conn: Connection, items: Sequence[IndexItem]) -> None:
    for types, hook, _ in _HOOKS:
        selected = [item for item in items if item[1] in types]
        if selected:
            hook(conn, selected)


def delete(conn: Connection, resource_type: str, keys: Sequence[int]) -> None:
    for types, _, hook in _HOOKS:
        if resource_type in types and keys:
            hook(conn, keys)
