"""search: `ix_resource_type_key (resource_type, resource_key)`, one type's resources in key order

A page read in key order without a driving criterion (a dense `_has`, socle.store.selectivity)
walks the type's resources one by one until it has `_count + 1` matches. Without this index
PostgreSQL walks the primary key and reads every resource of every type on the way (measured on a
1,000,075-resource database, `Patient?_has:Condition:patient:code=…&_count=50`: 18,346 rows of
other types read and filtered out, 93 ms; with the index 161 rows, 10 ms, cold cache).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_type_key", "resource", ["resource_type", "resource_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_resource_type_key", table_name="resource")
