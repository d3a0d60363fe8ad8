"""search criteria: composite index table, token `system|`, reference targets for chains and _has

- `idx_composite` (socle.store.indexes): one row per element occurrence of a composite parameter,
  so that `component-code-value-quantity` matches code and value of the same component.
- `ix_idx_token_param_sys (param_hash, sys_hash, resource_key)`: `identifier=system|` and `:missing`.
- `ix_idx_reference_param_target_type_target_id (param_hash, target_type, target_id, resource_key)
  WHERE target_url IS NULL`: chained parameters and `_has` join local references through it.
- `ix_idx_uri_param (param_hash, resource_key)`: `:below` and `:missing` on uri parameters.
- `idx_quantity.canonical`, `canonical_units_hash`: the UCUM canonical form of the row's value,
  indexed (partial: UCUM rows only) by `ix_idx_quantity_canonical_units_canonical`.

Existing rows need `socle reindex` to gain composite rows, UCUM canonical quantity rows
(`<param>:ucum`) and `:of-type` identifier rows; searches stay correct for what is indexed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_LOCAL = sa.text("target_url IS NULL")
_UCUM = sa.text("canonical_units_hash IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "idx_composite",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("key_hash", sa.BigInteger(), nullable=False),
        sa.Column("part1_hash", sa.BigInteger(), nullable=True),
        sa.Column("part2_hash", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("value2", sa.Double(), nullable=True),
        sa.Column("low", sa.BigInteger(), nullable=True),
        sa.Column("high", sa.BigInteger(), nullable=True),
        sa.Column(
            "text",
            sa.String(length=200).with_variant(sa.String(length=200, collation="C"), "postgresql"),
            nullable=True,
        ),
        sa.Column("units_hash", sa.BigInteger(), nullable=True),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("canonical", sa.Double(), nullable=True),
        sa.Column("canonical_units_hash", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_composite", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_composite_key_value", ["key_hash", "value", "resource_key"], unique=False
        )
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_token_param_sys", ["param_hash", "sys_hash", "resource_key"], unique=False
        )
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_reference_param_target_type_target_id",
            ["param_hash", "target_type", "target_id", "resource_key"],
            unique=False,
            postgresql_where=_LOCAL,
            sqlite_where=_LOCAL,
        )
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.create_index("ix_idx_uri_param", ["param_hash", "resource_key"], unique=False)
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("canonical", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("canonical_units_hash", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_quantity_canonical_units_canonical",
            ["canonical_units_hash", "canonical", "resource_key"],
            unique=False,
            postgresql_where=_UCUM,
            sqlite_where=_UCUM,
        )


def downgrade() -> None:
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_quantity_canonical_units_canonical")
        batch_op.drop_column("canonical_units_hash")
        batch_op.drop_column("canonical")
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_uri_param")
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_reference_param_target_type_target_id")
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_token_param_sys")
    with op.batch_alter_table("idx_composite", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_composite_key_value")
    op.drop_table("idx_composite")
