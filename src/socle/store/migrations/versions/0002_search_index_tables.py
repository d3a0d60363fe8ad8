"""search index tables (socle.store.indexes): one per search type, hashed, covering indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idx_date",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_date", schema=None) as batch_op:
        batch_op.create_index("ix_idx_date_param_high", ["param_hash", "high", "resource_key"], unique=False)
        batch_op.create_index(
            "ix_idx_date_param_low_high", ["param_hash", "low", "high", "resource_key"], unique=False
        )

    op.create_table(
        "idx_number",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_number", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_number_param_value", ["param_hash", "value", "resource_key"], unique=False
        )

    op.create_table(
        "idx_quantity",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("units_hash", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_quantity_param_value", ["param_hash", "value", "resource_key"], unique=False
        )
        batch_op.create_index(
            "ix_idx_quantity_units_value", ["units_hash", "value", "resource_key"], unique=False
        )

    op.create_table(
        "idx_reference",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_url", sa.Text(), nullable=True),
        sa.Column("target_hash", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.create_index("ix_idx_reference_target", ["target_hash", "resource_key"], unique=False)

    op.create_table(
        "idx_string",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column(
            "value_normalized",
            sa.String(length=200).with_variant(sa.String(length=200, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("value_exact", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_string", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idx_string_param_value_normalized",
            ["param_hash", "value_normalized", "resource_key"],
            unique=False,
        )

    op.create_table(
        "idx_token",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("value_hash", sa.BigInteger(), nullable=False),
        sa.Column("sys_value_hash", sa.BigInteger(), nullable=False),
        sa.Column("sys_hash", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.create_index("ix_idx_token_sys_value", ["sys_value_hash", "resource_key"], unique=False)
        batch_op.create_index("ix_idx_token_value", ["value_hash", "resource_key"], unique=False)

    op.create_table(
        "idx_uri",
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("param_hash", sa.BigInteger(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("uri_hash", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key", "seq"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.create_index("ix_idx_uri_uri", ["uri_hash", "resource_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_uri_uri")

    op.drop_table("idx_uri")
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_token_value")
        batch_op.drop_index("ix_idx_token_sys_value")

    op.drop_table("idx_token")
    with op.batch_alter_table("idx_string", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_string_param_value_normalized")

    op.drop_table("idx_string")
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_reference_target")

    op.drop_table("idx_reference")
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_quantity_units_value")
        batch_op.drop_index("ix_idx_quantity_param_value")

    op.drop_table("idx_quantity")
    with op.batch_alter_table("idx_number", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_number_param_value")

    op.drop_table("idx_number")
    with op.batch_alter_table("idx_date", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_date_param_low_high")
        batch_op.drop_index("ix_idx_date_param_high")

    op.drop_table("idx_date")
