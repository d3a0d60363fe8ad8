"""A database-wide stamp of the writes the access policy's relationship lookups read (migration 0016).

The policy caches a professional's care relationships per process (`socle.trust.policy.relations`);
several `socle serve` workers and the CLI write the same database, so the cache key must come from
the database: `policy_stamp` holds one row whose `generation` is bumped, in the writing transaction
(just before its commit), by every create, update and delete of a resource type the lookups read. A
request reads the row first (one primary-key SELECT): a cached entry of another generation is stale.
Bumping in the same transaction makes the new generation visible exactly when the write is.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, Table, event

from socle.store import index_hooks
from socle.store.index_hooks import IndexItem
from socle.store.schema import metadata

# What `relations_of` reads: GP links, care teams, patient choices, a professional's roles.
POLICY_TYPES = ("Patient", "CareTeam", "Consent", "PractitionerRole")

policy_stamp = Table(
    "policy_stamp",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("generation", BigInteger, nullable=False),
)
_BUMPED = "socle.policy_stamp.bumped"  # Connection.info key: the transaction that bumped the stamp


def mark(conn: Connection) -> None:
    """Note that this transaction wrote something the lookups read: the stamp is bumped at commit."""
    conn.info[_BUMPED] = conn.get_transaction()


def bumped_here(conn: Connection) -> bool:
    """Whether this transaction wrote something the lookups read: what it reads is not committed,
    so not cacheable (a rollback would leave a cached entry remembering the lost write)."""
    transaction = conn.get_transaction()
    return transaction is not None and conn.info.get(_BUMPED) is transaction


@event.listens_for(Engine, "commit")
def _bump_at_commit(conn: Connection) -> None:
    """The UPDATE runs last, just before the commit: on PostgreSQL its row lock serializes writers
    of these types only for that instant, not for the whole transaction (a Bundle of a patient)."""
    if conn.info.get(_BUMPED) is not None and bumped_here(conn):
        stamp = policy_stamp.c.generation
        conn.execute(policy_stamp.update().where(policy_stamp.c.id == 1).values(generation=stamp + 1))
    conn.info.pop(_BUMPED, None)


def generation(conn: Connection) -> int | None:
    """The current generation (None when the row is missing: then nothing may be cached)."""
    # a driver-level statement: read on every professional's request, it skips SQLAlchemy's compile
    value = conn.exec_driver_sql("SELECT generation FROM policy_stamp WHERE id = 1").scalar()
    return None if value is None else int(value)


def _written(conn: Connection, items: Sequence[IndexItem]) -> None:
    mark(conn)


def _deleted(conn: Connection, keys: Sequence[int]) -> None:
    mark(conn)


index_hooks.register(POLICY_TYPES, _written, _deleted)
