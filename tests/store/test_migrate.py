"""Alembic revisions: they build exactly the schema declared in schema.py/indexes.py, and undo it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from socle.store import identity_tables, indexes  # noqa: F401  (identity and index tables)
from socle.store.fulltext import include_name
from socle.store.migrate import current, downgrade, upgrade
from socle.store.schema import metadata


def test_head_matches_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    head = current(engine)
    assert head is not None
    downgrade(engine, "base")
    assert not {"resource", "resource_history", "idx_token"} & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert current(engine) == head
    assert {"resource", "resource_history", "idx_token"} <= set(inspect(engine).get_table_names())
