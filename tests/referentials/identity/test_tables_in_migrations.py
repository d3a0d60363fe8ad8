"""The identity tables are declared where the migration environment sees them (autogenerate would
otherwise drop them): a fresh interpreter importing only what `migrations/env.py` imports finds the
schema at head equal to the declared metadata, identity tables included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import socle.store.migrations

ENV = Path(socle.store.migrations.__path__[0]) / "env.py"

SCRIPT = """
import ast, importlib, sys
from sqlalchemy import create_engine
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
for node in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("socle."):
                importlib.import_module(alias.name)
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("socle."):
        importlib.import_module(node.module)
assert "socle.referentials.identity" not in sys.modules, "env.py must not need the referential"
from socle.store.fulltext import include_name
from socle.store.migrate import upgrade
from socle.store.schema import metadata
engine = create_engine("sqlite://")
upgrade(engine)
with engine.connect() as conn:
    diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), metadata)
assert diff == [], diff
assert {"ins_registry", "mpi_block", "mpi_traits", "mpi_merge"} <= set(metadata.tables)
print("ok")
"""


def test_migration_environment_declares_the_identity_tables() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ENV)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
