"""Schema migrations (Alembic), run by `socle db upgrade` and by tests on fresh databases.

Procedure for a schema change: edit `schema.py`/`indexes.py`, then generate a revision with
`socle db revision -m "..."` (autogenerate against a database at head), review it, and add a test
that upgrades a database saved at the previous revision.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

_HERE = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def revision(engine: Engine, message: str) -> None:
    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def downgrade(engine: Engine, revision: str) -> None:
    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
