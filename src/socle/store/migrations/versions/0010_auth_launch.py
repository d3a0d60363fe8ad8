"""authentication additions: SMART EHR launch contexts and WebAuthn challenges; the last TOTP step used
(socle.store.auth_tables, `auth_launch` and `auth_challenge`)

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("auth_account", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "auth_launch",
        sa.Column("launch_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("patient", sa.String(length=64), nullable=False),
        sa.Column("encounter", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("launch_hash"),
    )
    op.create_table(
        "auth_challenge",
        sa.Column("challenge_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("challenge_hash"),
    )


def downgrade() -> None:
    with op.batch_alter_table("auth_account") as batch:
        batch.drop_column("totp_last_step")
    op.drop_table("auth_challenge")
    op.drop_table("auth_launch")
