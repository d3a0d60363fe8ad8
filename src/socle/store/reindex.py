"""Rebuild the search index rows (all index tables and `idx_text`) of stored resources.

Needed after a custom SearchParameter is added or changed (existing resources are indexed by the
parameters the registry knew when they were written) and after an upgrade that changes what is
indexed. It is a backfill in the manner of STYLE.md §5: an explicit, resumable command.

The work goes in batches of resources in resource-key order, each batch its own transaction: a
crash or Ctrl-C loses at most one batch, `after` resumes past the last key done, and no lock is held
longer than one batch. On PostgreSQL the batch's resource rows are read `FOR UPDATE`, so a
concurrent update of one of them waits for the batch (or the batch waits for it) instead of having
its fresh index rows replaced by ones computed from the older content. On SQLite writers are
serialised anyway.

The caller makes sure the search-parameter registry is current first
(`socle.services.search_parameters.refresh`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, false, func, select

from socle.store.access import SYSTEM
from socle.store.indexes import delete_indexes, write_indexes
from socle.store.schema import resource

__all__ = ["DEFAULT_BATCH_SIZE", "ReindexResult", "count_resources", "reindex", "reindex_batch"]

DEFAULT_BATCH_SIZE = 500


@dataclass
class ReindexResult:
    resources: int = 0
    batches: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    last_key: int | None = None  # resume with `after=last_key`
    seconds: float = 0.0


def count_resources(conn: Connection, resource_type: str | None = None, after: int = 0) -> int:
    """How many live resources a reindex would visit (the progress bar's total)."""
    stmt = select(func.count()).select_from(resource).where(*_conditions(resource_type, after))
    return int(conn.scalar(stmt) or 0)


def reindex(
    engine: Engine,
    *,
    resource_type: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexResult:
    """Reindex every live resource (of `resource_type`, when given) with a key above `after`."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    result = ReindexResult()
    started = time.perf_counter()
    last = after
    while True:
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                done = reindex_batch(conn, resource_type=resource_type, after=last, limit=batch_size)
        if not done:
            break
        result.batches += 1
        result.resources += len(done)
        result.by_type.update(rt for _key, rt in done)
        last = done[-1][0]
        result.last_key = last
        if progress is not None:
            progress(len(done), last)  # (resources in the batch, last key done)
    result.seconds = time.perf_counter() - started
    return result


def reindex_batch(
    conn: Connection, *, resource_type: str | None, after: int, limit: int
) -> list[tuple[int, str]]:
    """Rewrite the index rows of the next `limit` resources after key `after`, in the caller's
    transaction; returns their (key, type), empty when there are none left."""
    stmt = (
        select(resource.c.resource_key, resource.c.resource_type, resource.c.compartment, resource.c.content)
        .where(*_conditions(resource_type, after))
        .order_by(resource.c.resource_key)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    rows: list[Any] = list(conn.execute(stmt))
    if not rows:
        return []
    items = [(int(key), rt, compartment, _body(content)) for key, rt, compartment, content in rows]
    delete_indexes(conn, [key for key, *_ in items])
    write_indexes(conn, items)
    return [(key, rt) for key, rt, _c, _b in items]


def _conditions(resource_type: str | None, after: int) -> list[Any]:
    conditions = [resource.c.resource_key > after, resource.c.deleted == false(), SYSTEM.condition(resource)]
    if resource_type is not None:
        conditions.append(resource.c.resource_type == resource_type)
    return conditions


def _body(content: Any) -> dict[str, Any]:
    # PostgreSQL JSONB arrives parsed; SQLite keeps the exact bytes (see socle.store.schema).
    return content if isinstance(content, dict) else orjson.loads(content)
