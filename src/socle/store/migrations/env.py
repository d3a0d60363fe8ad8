"""Alembic environment: runs on the connection handed in by `socle.store.migrate`."""

from __future__ import annotations

from alembic import context

import socle.store.audit_tables  # noqa: F401  (audit chain tables)
import socle.store.auth_tables  # noqa: F401  (authorization server tables)
import socle.store.identity_tables  # noqa: F401  (identity referential tables)
import socle.store.indexes  # noqa: F401  (registers the index tables on the metadata)
import socle.store.policy_stamp  # noqa: F401  (the access policy's cache stamp)
import socle.store.positions  # noqa: F401  (Location positions for `near`)
from socle.store.fulltext import include_name
from socle.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_name=include_name
)
with context.begin_transaction():
    context.run_migrations()
