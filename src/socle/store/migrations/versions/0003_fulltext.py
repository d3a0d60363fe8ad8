"""full-text index for _text and _content (socle.store.fulltext)

SQLite: `idx_text` holds the texts and an external-content FTS5 table `idx_text_fts` (rowid =
resource_key) indexes them, kept in sync by triggers. PostgreSQL: `idx_text` holds French tsvectors
with a GIN index each. The FTS5 table, its shadow tables and the GIN indexes are not declared on the
metadata (see `socle.store.fulltext.include_name`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEXT = sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")

_SQLITE_UP = (
    # remove_diacritics 2: "hélène" and "Helene" are the same token; detail=full keeps positions
    # (phrases); columnsize=0 drops the per-row sizes that only bm25() ranking would read.
    "CREATE VIRTUAL TABLE idx_text_fts USING fts5(narrative, content, content='idx_text', "
    "content_rowid='resource_key', tokenize='unicode61 remove_diacritics 2', columnsize=0)",
    "CREATE TRIGGER idx_text_ai AFTER INSERT ON idx_text BEGIN "
    "INSERT INTO idx_text_fts(rowid, narrative, content) "
    "VALUES (new.resource_key, new.narrative, new.content); END",
    "CREATE TRIGGER idx_text_ad AFTER DELETE ON idx_text BEGIN "
    "INSERT INTO idx_text_fts(idx_text_fts, rowid, narrative, content) "
    "VALUES ('delete', old.resource_key, old.narrative, old.content); END",
    "CREATE TRIGGER idx_text_au AFTER UPDATE ON idx_text BEGIN "
    "INSERT INTO idx_text_fts(idx_text_fts, rowid, narrative, content) "
    "VALUES ('delete', old.resource_key, old.narrative, old.content); "
    "INSERT INTO idx_text_fts(rowid, narrative, content) "
    "VALUES (new.resource_key, new.narrative, new.content); END",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS idx_text_au",
    "DROP TRIGGER IF EXISTS idx_text_ad",
    "DROP TRIGGER IF EXISTS idx_text_ai",
    "DROP TABLE IF EXISTS idx_text_fts",
)


def upgrade() -> None:
    op.create_table(
        "idx_text",
        sa.Column(
            "resource_key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("compartment", sa.String(length=64), nullable=True),
        sa.Column("narrative", _TEXT, nullable=True),
        sa.Column("content", _TEXT, nullable=True),
        sa.PrimaryKeyConstraint("resource_key"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_idx_text_narrative_gin ON idx_text USING gin (narrative)")
        op.execute("CREATE INDEX ix_idx_text_content_gin ON idx_text USING gin (content)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    op.drop_table("idx_text")  # drops the GIN indexes with it on PostgreSQL
