"""What every `socle` command that touches the database shares: the --database option, the engine."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Engine

from socle.config import get_settings

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL (default: SOCLE_DATABASE_URL or ./var/socle.db)."),
]


def database_url(database: str | None) -> str:
    return database or get_settings().database_url


def open_engine(database: str | None) -> Engine:
    """An engine on the chosen database, migrated to the latest schema (the caller disposes it)."""
    from socle.store.engine import make_engine
    from socle.store.migrate import upgrade

    engine = make_engine(database_url(database))
    upgrade(engine)
    return engine
