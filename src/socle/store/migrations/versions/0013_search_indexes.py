"""search: Location positions for `near` (socle.store.positions), backfilled from stored Locations

- `idx_position (resource_key, latitude, longitude, x, y, z)`: one row per Location with a
  `position`, the unit vector (x, y, z) for the exact great-circle test; WITHOUT ROWID on SQLite.
- `ix_idx_position_latitude_longitude (latitude, longitude, x, y, z)`: the bounding-box prefilter,
  covering the exact test.

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from socle.store.positions import position_row  # the same row the write path builds

    op.create_table(
        "idx_position",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("latitude", sa.Double(), nullable=False),
        sa.Column("longitude", sa.Double(), nullable=False),
        sa.Column("x", sa.Double(), nullable=False),
        sa.Column("y", sa.Double(), nullable=False),
        sa.Column("z", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_position", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_position_latitude_longitude",
            ["latitude", "longitude", "x", "y", "z"],
            unique=False,
        )
    conn = op.get_bind()
    table = sa.table(
        "idx_position", *(sa.column(c) for c in ("resource_key", "latitude", "longitude", "x", "y", "z"))
    )
    found = conn.execute(
        sa.text(
            "SELECT resource_key, content FROM resource WHERE resource_type = 'Location'"
            " AND NOT deleted AND content IS NOT NULL"
        )
    )
    rows: list[dict[str, Any]] = []
    for key, content in found:
        body: Any = content if isinstance(content, dict) else orjson.loads(content)  # type: ignore[arg-type]
        row = position_row(int(key), body)  # type: ignore[call-overload]
        if row is not None:
            rows.append(row)
    for start in range(0, len(rows), 1000):
        conn.execute(sa.insert(table), rows[start : start + 1000])


def downgrade() -> None:
    with op.batch_alter_table("idx_position", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_position_latitude_longitude")
    op.drop_table("idx_position")
