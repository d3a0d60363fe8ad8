"""`socle demo …`: synthetic data for demonstrations, tests and benchmarks (fictitious identifiers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

demo_app = typer.Typer(help="Synthetic demonstration data.", no_args_is_help=True)
console = Console(stderr=True)


@demo_app.command("directory")
def demo_directory(
    professionals: Annotated[
        int, typer.Option("--professionals", min=1, help="Professionals to generate.")
    ] = 2000,
    out: Annotated[Path, typer.Option("--out", help="Folder for the two extraction files.")] = Path(
        "var/demo"
    ),
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 1,
    encoding: Annotated[
        str,
        typer.Option(help="Encoding of the person file: utf-8 (recent extractions) or cp1252 (older ones)."),
    ] = "utf-8",
) -> None:
    """Write a synthetic person/activity extraction and FINESS file, with the patients' médecins traitants."""
    from socle.referentials.directory.synthetic import gp_count, write_extraction

    if encoding not in ("utf-8", "cp1252", "latin-1"):
        raise typer.BadParameter("use utf-8, cp1252 or latin-1", param_hint="--encoding")
    people, finess, lines = write_extraction(out, professionals, seed=seed, encoding=encoding)
    console.print(
        f"{professionals} professionals ({gp_count(professionals)} GPs of the médecin-traitant pool) in "
        f"{lines} lines: {people}\nFINESS establishments: {finess}\n"
        f"Import with: socle directory import {people} {finess}",
        highlight=False,
    )


@demo_app.command("generate")
def demo_generate(
    patients: Annotated[int, typer.Option("--patients", min=1, help="People to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same people).")] = 1,
    database: Annotated[
        str | None, typer.Option("--database", help="Load into this database (default: SOCLE_DATABASE_URL).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write NDJSON files to this folder.")] = None,
    clinical: Annotated[int, typer.Option(help="People given Synthea clinical content.")] = 100,
    queries: Annotated[int, typer.Option(help="Queries of the labelled matching benchmark.")] = 1000,
    professionals: Annotated[int, typer.Option(help="Directory demo size (médecins traitants).")] = 2000,
    no_database: Annotated[
        bool, typer.Option("--no-database", help="Write files only (with --out).")
    ] = False,
) -> None:
    """A synthetic French population: INS registry, Patients with INS statuses, duplicates, clinical data."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from socle.config import get_settings
    from socle.referentials.identity.demo import generate
    from socle.store.engine import make_engine
    from socle.store.migrate import upgrade

    if no_database and out is None:
        raise typer.BadParameter("--no-database needs --out", param_hint="--no-database")
    engine = None
    if not no_database:
        engine = make_engine(database or get_settings().database_url)
        upgrade(engine)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("patients", total=patients)

            def advance(stage: str, count: int) -> None:
                if stage == "patients":
                    progress.update(task, advance=count)

            summary = generate(
                patients=patients,
                seed=seed,
                engine=engine,
                out=out,
                clinical=min(clinical, patients),
                queries=queries,
                professionals=professionals,
                progress=advance,
            )
    finally:
        if engine is not None:
            engine.dispose()
    console.print(
        f"{summary.patients} people ({summary.duplicates} second records with errors), "
        f"{summary.registry} registry identities, {summary.practitioners} médecins traitants, "
        f"{summary.clinical} clinical resources, {summary.queries} benchmark queries "
        f"in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )
    for path in summary.files:
        console.print(f"  {path}", highlight=False)


@demo_app.command("accounts")
def demo_accounts(
    database: Annotated[
        str | None, typer.Option("--database", help="Database (default: SOCLE_DATABASE_URL).")
    ] = None,
) -> None:
    """Demo people (a GP, a pharmacist, a nurse, a citizen and her child) with their directory and
    identity records and accounts, and a demo SMART app; prints the logins (demo only)."""
    from socle.config import get_settings
    from socle.services.demo_people import DEMO_APP, DEMO_APP_REDIRECT, load_demo_people
    from socle.store.engine import make_engine
    from socle.store.migrate import upgrade
    from socle.store.repository import Store

    settings = get_settings()
    engine = make_engine(database or settings.database_url)
    upgrade(engine)
    try:
        with engine.begin() as conn:
            credentials = load_demo_people(Store(engine), conn, settings)
    finally:
        engine.dispose()
    if not credentials:
        console.print("demo accounts already present (nothing printed again)")
        return
    lines = ["", "Comptes de démonstration (fictifs, pour la démo uniquement)"]
    for c in credentials:
        totp = f", secret TOTP {c.totp_secret}" if c.totp_secret else ", code à usage unique dans l'outbox"
        lines.append(f"  {c.role} : identifiant {c.login}, mot de passe {c.password}{totp} ({c.fhir_user})")
    lines += [
        f"  Application SMART publique : client_id {DEMO_APP}, redirect_uri {DEMO_APP_REDIRECT}",
        "  Code TOTP du moment : .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"",
        "  Messages envoyés (codes) : .venv/bin/socle accounts outbox --database …",
    ]
    typer.echo("\n".join(lines))
