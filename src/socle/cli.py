"""The `socle` command line: thin commands over the same code the API runs.

Exit codes: 0 success, 1 failure (a FHIR error, with its diagnostics on stderr), 2 usage error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from socle.commands._options import DatabaseOption, database_url
from socle.commands.audit import audit_app
from socle.commands.auth import accounts_app, clients_app, launch_app
from socle.commands.auth import token as token_command
from socle.commands.demo import demo_app
from socle.commands.directory import directory_app
from socle.commands.identity import ins_app, mpi_app
from socle.config import get_settings

app = typer.Typer(help="Socle: a self-hostable digital-health platform (FHIR R4).", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(directory_app, name="directory")
app.add_typer(demo_app, name="demo")
app.add_typer(ins_app, name="ins")
app.add_typer(mpi_app, name="mpi")
app.add_typer(clients_app, name="clients")
app.add_typer(accounts_app, name="accounts")
app.add_typer(launch_app, name="launch")
app.command("token")(token_command)

console = Console(stderr=True)


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

    url = database_url(database)
    os.environ["SOCLE_DATABASE_URL"] = url  # the app factory (and every worker) reads its settings
    get_settings.cache_clear()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    console.print(
        f"Socle serving http://{host}:{port}/fhir on {engine.url.render_as_string(hide_password=True)}"
    )
    if workers > 1:
        from socle.serving import serve_workers

        serve_workers(host, port, workers)  # a listening socket per worker (see socle.serving)
        return
    uvicorn.run(
        "socle.app:create_app", factory=True, host=host, port=port, log_level="warning", access_log=False
    )


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the schema to the latest revision."""
    from socle.store.engine import make_engine
    from socle.store.migrate import current, upgrade

    engine = make_engine(database_url(database))
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

    revision(make_engine(database_url(database)), message)


@app.command()
def load(
    paths: Annotated[
        list[Path], typer.Argument(help="Bundles (.json), NDJSON (.ndjson), archives (.tgz) or folders.")
    ],
    database: DatabaseOption = None,
) -> None:
    """Load FHIR data: transaction/batch Bundles as sent, collections and NDJSON resource by resource."""
    from socle.loader import load_paths

    summary = load_paths(paths, database_url(database), console)
    if summary.rejected and not summary.loaded:
        raise typer.Exit(1)


@app.command()
def reindex(
    resource_type: Annotated[str | None, typer.Option("--type", help="Only resources of this type.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Resources per transaction.")] = 500,
    after: Annotated[int, typer.Option(min=0, help="Resume after this resource key.")] = 0,
    database: DatabaseOption = None,
) -> None:
    """Rebuild the search indexes of stored resources (after adding a custom SearchParameter)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from socle.fhir.resource_types import is_resource_type
    from socle.services import search_parameters
    from socle.store.engine import make_engine
    from socle.store.reindex import count_resources
    from socle.store.reindex import reindex as run_reindex

    if resource_type is not None and not is_resource_type(resource_type):
        raise typer.BadParameter(f"{resource_type!r} is not a FHIR R4 resource type", param_hint="--type")
    engine = make_engine(database_url(database))
    with engine.connect() as conn, conn.begin():
        search_parameters.refresh(conn)  # index by the stored custom SearchParameters too
        total = count_resources(conn, resource_type, after)
    last_key = after
    columns = (TextColumn("reindexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("reindex", total=total)

        def advance(count: int, key: int) -> None:
            nonlocal last_key
            last_key = key
            progress.update(task, advance=count)

        try:
            result = run_reindex(
                engine, resource_type=resource_type, batch_size=batch_size, after=after, progress=advance
            )
        except KeyboardInterrupt:
            console.print(f"Interrupted: resume with --after {last_key}")
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
    rate = result.resources / result.seconds if result.seconds else 0.0
    console.print(
        f"[bold]{result.resources}[/] resources reindexed in {result.batches} batches, "
        f"{result.seconds:.1f} s ({rate:.0f}/s)"
    )
    for name, count in sorted(result.by_type.items()):
        console.print(f"  {name}: {count}", highlight=False)


@app.command()
def explain(
    query: Annotated[str, typer.Argument(help="A type search: 'Observation?code=http://loinc.org|8867-4'.")],
    analyze: Annotated[bool, typer.Option(help="PostgreSQL: EXPLAIN ANALYZE (runs the query).")] = False,
    database: DatabaseOption = None,
) -> None:
    """Print the SQL of a search (values inlined) and the database's plan for it."""
    from socle.fhir.errors import FhirError
    from socle.fhir.resource_types import is_resource_type
    from socle.services import search_parameters
    from socle.store.access import SYSTEM
    from socle.store.engine import make_engine
    from socle.store.explain import explain_search

    path, _, query_string = query.partition("?")
    resource_type = path.rstrip("/").rsplit("/", 1)[-1]  # `Observation?...`, `/fhir/Observation?...`
    if not is_resource_type(resource_type):
        raise typer.BadParameter(f"{query!r} does not start with a FHIR R4 resource type", param_hint="QUERY")
    engine = make_engine(database_url(database))
    try:
        with engine.connect() as conn:  # never committed: rolled back on close
            search_parameters.refresh(conn)
            explanation = explain_search(conn, resource_type, query_string, SYSTEM, analyze=analyze)
    except FhirError as error:
        console.print(f"[red]error:[/] {error.diagnostics}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if explanation.unknown:
        console.print(f"ignored (unknown to the search): {', '.join(explanation.unknown)}", highlight=False)
    plan = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN" + (" ANALYZE" * analyze)
    typer.echo(f"-- SQL ({engine.dialect.name})\n{explanation.sql};\n-- {plan}")
    for line in explanation.plan:
        typer.echo(f"-- {line}")


def main() -> None:
    app()
