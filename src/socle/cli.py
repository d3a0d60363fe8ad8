"""The `socle` command line: thin commands over the same code the API runs.

Exit codes: 0 success, 1 failure (a FHIR error, with its diagnostics on stderr), 2 usage error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from socle.config import get_settings

app = typer.Typer(help="Socle: a self-hostable digital-health platform (FHIR R4).", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL (default: SOCLE_DATABASE_URL or ./var/socle.db)."),
]


def _database_url(database: str | None) -> str:
    return database or get_settings().database_url


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    database: DatabaseOption = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the FHIR API (under /fhir) and the web pages; upgrades the schema first."""
    import uvicorn

    from socle.store.engine import make_engine
    from socle.store.migrate import upgrade

    url = _database_url(database)
    os.environ["SOCLE_DATABASE_URL"] = url  # the app factory (and every worker) reads its settings
    get_settings.cache_clear()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    console.print(
        f"Socle serving http://{host}:{port}/fhir on {engine.url.render_as_string(hide_password=True)}"
    )
    uvicorn.run(
        "socle.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the schema to the latest revision."""
    from socle.store.engine import make_engine
    from socle.store.migrate import current, upgrade

    engine = make_engine(_database_url(database))
    upgrade(engine)
    console.print(f"Database at revision {current(engine)}")
    engine.dispose()


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", help="What the revision changes.")],
    database: DatabaseOption = None,
) -> None:
    """Generate a migration from the difference between schema.py and a database at head (developers)."""
    from socle.store.engine import make_engine
    from socle.store.migrate import revision

    revision(make_engine(_database_url(database)), message)


@app.command()
def load(
    paths: Annotated[
        list[Path], typer.Argument(help="Bundles (.json), NDJSON (.ndjson), archives (.tgz) or folders.")
    ],
    database: DatabaseOption = None,
) -> None:
    """Load FHIR data: transaction/batch Bundles as sent, collections and NDJSON resource by resource."""
    from socle.loader import load_paths

    summary = load_paths(paths, _database_url(database), console)
    if summary.rejected and not summary.loaded:
        raise typer.Exit(1)


def main() -> None:
    app()
