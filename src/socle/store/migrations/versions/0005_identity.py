"""identity referential (socle.referentials.identity.registry_schema): INS registry, lookup and status
logs, master patient index traits and blocking keys, merges

The MPI tables start empty on an existing database: `socle mpi index` fills them from the stored
Patients (and repairs them at any time).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ins_registry",
        sa.Column("matricule", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("birth_name", sa.String(length=100), nullable=False),
        sa.Column("given_names", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.Column("birthplace", sa.String(length=5), nullable=False),
        sa.Column("vitale_nir", sa.String(length=15), nullable=True),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("birth_year", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("matricule"),
    )
    with op.batch_alter_table("ins_registry", schema=None) as batch_op:
        batch_op.create_index("ix_ins_registry_lookup", ["name_key", "birth_year"], unique=False)
        batch_op.create_index("ix_ins_registry_vitale", ["vitale_nir"], unique=False)

    op.create_table(
        "ins_lookup_log",
        sa.Column("lookup_id", _KEY, autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("matricule", sa.String(length=15), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("lookup_id"),
    )
    with op.batch_alter_table("ins_lookup_log", schema=None) as batch_op:
        batch_op.create_index("ix_ins_lookup_log_at", ["at"], unique=False)

    op.create_table(
        "identity_status_log",
        sa.Column("event_id", _KEY, autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column("status_before", sa.String(length=5), nullable=False),
        sa.Column("status_after", sa.String(length=5), nullable=False),
        sa.Column("version_after", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("identity_status_log", schema=None) as batch_op:
        batch_op.create_index("ix_identity_status_log_patient", ["compartment", "at"], unique=False)

    op.create_table(
        "mpi_traits",
        sa.Column("resource_key", _KEY, autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("birth_name", sa.String(length=200), nullable=True),
        sa.Column("used_name", sa.String(length=200), nullable=True),
        sa.Column("given_names", sa.String(length=300), nullable=True),
        sa.Column("used_given", sa.String(length=100), nullable=True),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birthplace", sa.String(length=5), nullable=True),
        sa.Column("ins", sa.String(length=15), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("resource_key"),
    )

    op.create_table(
        "mpi_block",
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("resource_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key_hash", "resource_key"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("mpi_block", schema=None) as batch_op:
        batch_op.create_index("ix_mpi_block_resource", ["resource_key"], unique=False)

    op.create_table(
        "mpi_merge",
        sa.Column("merge_id", _KEY, autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("source_version", sa.Integer(), nullable=False),
        sa.Column("target_version", sa.Integer(), nullable=False),
        sa.Column("source_before", sa.JSON(), nullable=False),
        sa.Column("target_before", sa.JSON(), nullable=False),
        sa.Column("repointed", sa.JSON(), nullable=False),
        sa.Column("undone_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("merge_id"),
    )
    with op.batch_alter_table("mpi_merge", schema=None) as batch_op:
        batch_op.create_index("ix_mpi_merge_source", ["source_id"], unique=False)
        batch_op.create_index("ix_mpi_merge_target", ["target_id"], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("mpi_merge", ("ix_mpi_merge_target", "ix_mpi_merge_source")),
        ("mpi_block", ("ix_mpi_block_resource",)),
        ("mpi_traits", ()),
        ("identity_status_log", ("ix_identity_status_log_patient",)),
        ("ins_lookup_log", ("ix_ins_lookup_log_at",)),
        ("ins_registry", ("ix_ins_registry_vitale", "ix_ins_registry_lookup")),
    ):
        if indexes:
            with op.batch_alter_table(table, schema=None) as batch_op:
                for name in indexes:
                    batch_op.drop_index(name)
        op.drop_table(table)
