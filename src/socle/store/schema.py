"""The database schema: SQLAlchemy Core tables on one MetaData, for SQLite and PostgreSQL alike.

Every table that belongs to a patient carries `compartment` (the id of the Patient whose
compartment the row is in): it is the access-control anchor and the distribution column if
PostgreSQL is sharded (Citus). Times are integer microseconds since the epoch (UTC) so that both
dialects compare and sort them identically and cheaply.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT identity.
ResourceKey = BigInteger().with_variant(Integer(), "sqlite")
# The resource JSON: JSONB on PostgreSQL; on SQLite the exact orjson bytes (no re-encoding on read).
# none_as_null: a tombstone has SQL NULL content, not the JSON value null.
Content = LargeBinary().with_variant(JSONB(none_as_null=True), "postgresql")

resource = Table(
    "resource",
    metadata,
    Column("resource_key", ResourceKey, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("compartment", String(64), nullable=True),
    # Security labels as "system|code" strings: the policy filters on them without reading content.
    Column("security", JSON(none_as_null=True), nullable=True),
    Column("content", Content, nullable=True),
    UniqueConstraint("resource_type", "id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "resource_type", "updated_at", "resource_key"),
    Index("ix_resource_type_key", "resource_type", "resource_key"),  # a type in key order (pages)
    Index("ix_resource_compartment", "compartment", "resource_type"),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("resource_key", ResourceKey, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # The interaction that made this version: create, update, patch or delete (Bundle.entry.request.method).
    Column("method", String(8), nullable=False),
    Column("compartment", String(64), nullable=True),
    Column("content", Content, nullable=True),
    Index("ix_history_updated", "updated_at"),
    Index("ix_history_type_updated", "resource_type", "updated_at"),
)
