"""The master patient index tables: normalised traits and blocking keys of every live Patient.

Kept in step with the resource table in the writing transaction: this module registers
`write_blocking_keys`/`delete_blocking_keys` with `socle.store.index_hooks` when imported, and the
repository calls them on every create, update and delete of a Patient, next to the search indexes.
`rebuild` recomputes everything from the stored Patients (`socle mpi index`): after the migration
on an existing database, or to repair. The candidate query ANDs the request's access filter on the
resource rows, as every read of resource rows must.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from socle.fhir.errors import Invalid
from socle.referentials.identity.blocking import block_hashes, index_keys, query_keys
from socle.referentials.identity.comparison import Record, record_from_traits
from socle.referentials.identity.profile import traits_from_patient
from socle.referentials.identity.registry_schema import mpi_block, mpi_traits
from socle.referentials.identity.traits import PartialDate, parse_partial_date
from socle.store import index_hooks
from socle.store.access import AccessFilter
from socle.store.indexes import insert_rows
from socle.store.schema import resource
from socle.store.versioned import StoredVersion

__all__ = [
    "candidates",
    "delete_blocking_keys",
    "is_active",
    "load_records",
    "rebuild",
    "record_from_row",
    "refresh",
    "write_blocking_keys",
]

# Largest number of candidates scored for one query: bounds the cost of pathological queries
# (a very common name with no date) whatever the population.
MAX_CANDIDATES = 2000


def is_active(body: dict[str, Any]) -> bool:
    """A Patient that may be matched: not `active: false` and not replaced by another (merged away)."""
    if body.get("active") is False:
        return False
    return not any(
        isinstance(link, dict) and link.get("type") == "replaced-by" for link in body.get("link") or []
    )


def _rows(
    items: Iterable[tuple[int, str, str | None, dict[str, Any]]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Positional rows of mpi_traits and mpi_block, in the tables' column order."""
    traits_rows: list[tuple[Any, ...]] = []
    block_rows: list[tuple[Any, ...]] = []
    for key, resource_type, compartment, body in items:
        if resource_type != "Patient":
            continue
        record = record_from_traits(traits_from_patient(body), key)
        traits_rows.append(
            (
                key,
                compartment,
                (record.birth or "")[:200] or None,
                (record.used or "")[:200] or None,
                "|".join(record.given)[:300] or None,
                (record.used_given or "")[:100] or None,
                record.date.to_fhir() if record.date else None,
                record.sex,
                record.place,
                record.ins,
                is_active(body),
            )
        )
        block_rows.extend((h, key, compartment) for h in block_hashes(index_keys(record)))
    return traits_rows, block_rows


def write_blocking_keys(
    conn: Connection, items: Sequence[tuple[int, str, str | None, dict[str, Any]]]
) -> None:
    """Insert the traits and blocking keys of the Patients among `items`: through the store's bulk
    insert (COPY on PostgreSQL), as SQLAlchemy's per-row parameter building cost more than the
    database's work (~6 block rows per Patient, a third of a demo load's CPU on PostgreSQL)."""
    traits_rows, block_rows = _rows(items)
    if traits_rows:
        insert_rows(conn, mpi_traits, traits_rows)
    if block_rows:
        insert_rows(conn, mpi_block, block_rows)


def delete_blocking_keys(conn: Connection, keys: Sequence[int]) -> None:
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        conn.execute(delete(mpi_block).where(mpi_block.c.resource_key.in_(chunk)))
        conn.execute(delete(mpi_traits).where(mpi_traits.c.resource_key.in_(chunk)))


# The store keeps these rows in every Patient write's own transaction (see socle.store.index_hooks).
index_hooks.register(("Patient",), write_blocking_keys, delete_blocking_keys)


def refresh(conn: Connection, versions: Iterable[StoredVersion]) -> None:
    """Delete then write the MPI rows of these stored Patients (idempotent): for rows written by a
    process where this module was not imported, i.e. without the store hook."""
    items = [
        (v.resource_key, v.resource_type, v.compartment, v.resource)
        for v in versions
        if v.resource_type == "Patient" and not v.deleted
    ]
    delete_blocking_keys(conn, [item[0] for item in items])
    write_blocking_keys(conn, items)


def rebuild(conn: Connection, *, batch: int = 2000, progress: Callable[[int], None] | None = None) -> int:
    """Recompute the MPI tables from every live Patient; returns the number of Patients indexed."""
    conn.execute(delete(mpi_block))
    conn.execute(delete(mpi_traits))
    last_key = 0
    total = 0
    while True:
        rows = conn.execute(
            select(resource.c.resource_key, resource.c.compartment, resource.c.content)
            .where(
                resource.c.resource_type == "Patient",
                resource.c.deleted.is_(False),
                resource.c.resource_key > last_key,
            )
            .order_by(resource.c.resource_key)
            .limit(batch)
        ).all()
        if not rows:
            return total
        items = [(int(r[0]), "Patient", r[1], _as_dict(r[2])) for r in rows]
        write_blocking_keys(conn, items)
        last_key = items[-1][0]
        total += len(items)
        if progress:
            progress(len(items))


def _as_dict(content: Any) -> dict[str, Any]:
    if isinstance(content, dict):
        return content
    if isinstance(content, str):
        content = content.encode()
    loaded = orjson.loads(bytes(content))
    assert isinstance(loaded, dict)
    return loaded


@functools.lru_cache(maxsize=65536)
def _stored_date(text: str) -> PartialDate | None:
    """A birth date as written by `_rows` (already valid): parsed once per distinct value."""
    try:
        return parse_partial_date(text)
    except Invalid:
        return None


def record_from_row(row: Any) -> Record:
    date = _stored_date(row.birth_date) if row.birth_date else None
    given = tuple(row.given_names.split("|")) if row.given_names else ()
    return Record(
        int(row.resource_key),
        row.birth_name,
        row.used_name,
        given,
        row.used_given,
        date,
        row.sex,
        row.birthplace,
        row.ins,
        row.compartment,
    )


def _traits_query(access: AccessFilter) -> Any:
    t = mpi_traits
    return (
        select(
            t.c.resource_key,
            t.c.birth_name,
            t.c.used_name,
            t.c.given_names,
            t.c.used_given,
            t.c.birth_date,
            t.c.sex,
            t.c.birthplace,
            t.c.ins,
            t.c.compartment,
        )
        .join(resource, resource.c.resource_key == t.c.resource_key)
        .where(t.c.active.is_(True), resource.c.deleted.is_(False), access.condition(resource))
    )


def candidates(
    conn: Connection, query: Record, access: AccessFilter, *, exclude: int | None = None
) -> list[Record]:
    """Stored identities sharing a blocking key with `query` (at most MAX_CANDIDATES), policy applied.

    Two statements, keys first then traits, rather than one with a subquery: each is a primary-key
    seek whatever the planner's statistics (PostgreSQL picked a sequential scan of mpi_traits for the
    subquery form right after a bulk load, before ANALYZE).
    """
    hashes = block_hashes(query_keys(query))
    if not hashes:
        return []
    found: Iterable[Any] = conn.scalars(
        select(mpi_block.c.resource_key)
        .where(mpi_block.c.key_hash.in_(hashes))
        .distinct()
        .limit(MAX_CANDIDATES)
    )
    keys = [int(k) for k in found if k != exclude]
    return list(load_records(conn, keys, access).values())


def load_records(conn: Connection, keys: Sequence[int], access: AccessFilter) -> dict[int, Record]:
    """The indexed records of these resource keys (for duplicate detection), policy applied."""
    found: dict[int, Record] = {}
    for start in range(0, len(keys), 900):
        chunk = list(keys[start : start + 900])
        statement = _traits_query(access).where(mpi_traits.c.resource_key.in_(chunk))
        for row in conn.execute(statement):
            record = record_from_row(row)
            assert record.key is not None
            found[record.key] = record
    return found
