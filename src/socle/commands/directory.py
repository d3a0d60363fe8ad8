"""`socle directory …`: import the public directory extractions, check identifiers.

Thin commands over `socle.referentials.directory`; Rich renders progress and the summary. Exit
codes: 0 done (bad lines are reported, not fatal), 1 a file could not be imported at all or an
identifier is invalid, 2 usage.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from socle.commands._options import DatabaseOption, open_engine

directory_app = typer.Typer(
    help="Directory of professionals and structures (RPPS, ADELI, FINESS).", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)  # long paths and reasons stay on one line

_SHOWN_ERRORS = 20


@directory_app.command("import")
def import_files(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="PS_LibreAcces_Personne_activite, FINESS etalab, Extraction_Correspondance_MSSante files."
        ),
    ],
    database: DatabaseOption = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Not a full extraction: do not end-date who is absent.")
    ] = False,
    batch_lines: Annotated[int, typer.Option(min=1, max=50_000, help="Lines per transaction.")] = 2000,
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="Write every rejected line (file, line, reason) to this CSV."),
    ] = None,
) -> None:
    """Import extraction files: idempotent, streaming; bad lines are counted and reported, never fatal."""
    from socle.app import warm_up
    from socle.referentials.directory import DirectoryImporter
    from socle.store.repository import Store

    warm_up()  # the FHIR definitions out of the garbage collector's sight (long-lived, ~300,000 objects)
    engine = open_engine(database)
    importer = DirectoryImporter(Store(engine), batch_lines=batch_lines, full=not partial)
    total = sum(p.stat().st_size for p in files if p.exists())
    columns = (
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("import", total=total)
            reports = importer.import_files(files, progress=lambda n: progress.update(task, advance=n))
    finally:
        engine.dispose()
    for r in reports:
        console.print(
            f"[bold]{r.path.name}[/] ({r.kind}): {r.lines} lines, {r.accepted} accepted, "
            f"{r.rejected} rejected, "
            f"{r.non_utf8_lines} not UTF-8; {r.seconds:.1f} s, {r.lines_per_second:,.0f} lines/s",
            highlight=False,
        )
        for label, counter in (
            ("created", r.counts.created),
            ("updated", r.counts.updated),
            ("unchanged", r.counts.unchanged),
            ("end-dated", r.end_dated),
        ):
            console.print(f"  {label}: {_counts(counter)}", highlight=False)
    for r in reports:
        if r.failure:
            console.print(f"[red]{r.path}: {r.failure}[/]", highlight=False)
        for note in r.notes:
            console.print(f"[yellow]{r.path.name}: {note}[/]", highlight=False)
        for number, reason in r.errors[:_SHOWN_ERRORS]:
            console.print(f"{r.path.name}:{number}: {reason}", highlight=False)
        if r.rejected > _SHOWN_ERRORS:
            console.print(
                f"… {r.rejected - _SHOWN_ERRORS} more rejected lines in {r.path.name}", highlight=False
            )
        if r.warnings:
            number, message = r.warning_examples[0]
            console.print(
                f"{r.path.name}: {r.warnings} warnings, e.g. line {number}: {message}", highlight=False
            )
    if errors is not None:
        with open(errors, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "line", "reason"])
            for r in reports:
                writer.writerows((str(r.path), number, reason) for number, reason in r.errors)
    if any(r.failure or (r.lines and not r.accepted) for r in reports):
        raise typer.Exit(1)


def _counts(counter: Mapping[str, int]) -> str:
    items = sorted(counter.items())
    return ", ".join(f"{k} {v}" for k, v in items if v) or "-"


@directory_app.command("check")
def check(
    kind: Annotated[str, typer.Argument(help="rpps, adeli, idnat_ps, finess, siren or siret.")],
    value: Annotated[str, typer.Argument(help="The identifier.")],
) -> None:
    """Validate an identifier (format and check digit); exit 1 if it is invalid."""
    from socle.referentials.directory import InvalidIdentifier, check_identifier

    try:
        result = check_identifier(kind, value)
    except InvalidIdentifier as error:
        console.print(f"[red]invalid:[/] {error.diagnostics}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"{result.kind} {result.value}: valid")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
