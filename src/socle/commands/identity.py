"""`socle ins …` and `socle mpi …`: the identity referential for operators.

- `socle ins check NIR`: validate a NIR/NIA and show its parts (exit 1 with the faulty part named).
- `socle mpi index`: rebuild the master patient index tables from the stored Patients.
- `socle mpi duplicates`: report pairs of Patients that look like one person.
- `socle mpi merge SOURCE TARGET` / `socle mpi unmerge SOURCE`: the `$merge`/`$unmerge` of the API.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from socle.commands._options import DatabaseOption, open_engine

ins_app = typer.Typer(help="INS (Identifiant National de Santé).", no_args_is_help=True)
mpi_app = typer.Typer(help="Master patient index: duplicates, merges.", no_args_is_help=True)
console = Console(stderr=True)
out_console = Console()


@ins_app.command("check")
def ins_check(
    nir: Annotated[str, typer.Argument(help="The 15-character NIR or NIA (spaces allowed).")],
) -> None:
    """Check the syntax and key of a NIR/NIA and print its parts."""
    from socle.referentials.identity.nir import NirError, format_nir, parse_nir
    from socle.referentials.identity.reference_data import communes, countries

    try:
        parsed = parse_nir(nir)
    except NirError as error:
        console.print(f"[red]invalid[/] ({error.part}): {error.diagnostics}", highlight=False)
        raise typer.Exit(1) from None
    if parsed.born_abroad:
        place = f"born abroad, country {parsed.place} ({countries()[1].get(parsed.place, 'unknown code')})"
    else:
        commune = communes()[1].get(parsed.place)
        place = f"commune {parsed.place} ({commune.name if commune else 'not in the current COG'})"
    month = (
        f"{parsed.month} (special value: incomplete civil status)" if parsed.special_month else parsed.month
    )
    out_console.print(
        f"valid  {format_nir(parsed.value)}\n"
        f"sex    {'male' if parsed.sex == 1 else 'female'}\n"
        f"born   year ..{parsed.year}, month {month}\n"
        f"place  {place}, department {parsed.department}\n"
        f"order  {parsed.order}\nkey    {parsed.key:02d}",
        highlight=False,
    )


@mpi_app.command("index")
def mpi_index(database: DatabaseOption = None) -> None:
    """Rebuild the MPI tables (normalised traits, blocking keys) from every stored Patient."""
    from socle.referentials.identity.index import rebuild

    engine = open_engine(database)
    started = time.perf_counter()
    with engine.begin() as conn:
        total = rebuild(conn)
    engine.dispose()
    console.print(f"{total} Patients indexed in {time.perf_counter() - started:.1f} s")


@mpi_app.command("duplicates")
def mpi_duplicates(
    database: DatabaseOption = None,
    min_grade: Annotated[
        str, typer.Option(help="Lowest grade reported: certain, probable or possible.")
    ] = "probable",
    out: Annotated[Path | None, typer.Option(help="Also write the pairs as NDJSON to this file.")] = None,
    limit: Annotated[int, typer.Option(help="Pairs shown in the table (all are written to --out).")] = 50,
) -> None:
    """Report pairs of live Patients that look like the same person, best first."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from socle.referentials.identity.mpi import find_duplicates
    from socle.referentials.identity.registry_schema import mpi_traits
    from socle.store.access import SYSTEM

    if min_grade not in ("certain", "probable", "possible"):
        raise typer.BadParameter("use certain, probable or possible", param_hint="--min-grade")
    engine = open_engine(database)
    started = time.perf_counter()
    pairs = []
    scanned = 0
    with engine.connect() as conn, conn.begin():
        total = conn.execute(select(func.count()).select_from(mpi_traits)).scalar_one()
        columns = (TextColumn("duplicates"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("scan", total=total)

            def advance(patients: int, candidate_pairs: int) -> None:
                nonlocal scanned
                scanned += candidate_pairs
                progress.update(task, advance=patients)

            pairs = list(find_duplicates(conn, SYSTEM, min_grade=min_grade, progress=advance))
    engine.dispose()
    seconds = time.perf_counter() - started
    pairs.sort(key=lambda p: -p.weight)
    if out is not None:
        with out.open("wb") as handle:
            for p in pairs:
                handle.write(
                    orjson.dumps(
                        {
                            "a": p.id_a,
                            "b": p.id_b,
                            "grade": p.grade,
                            "probability": p.probability,
                            "weight": p.weight,
                            "levels": list(p.levels),
                        }
                    )
                    + b"\n"
                )
    table = Table("Patient A", "Patient B", "grade", "p", "family", "given", "date", "sex", "place", "ins")
    for p in pairs[:limit]:
        table.add_row(p.id_a, p.id_b, p.grade, f"{p.probability:.4f}", *p.levels)
    out_console.print(table)
    by_grade = {g: sum(1 for p in pairs if p.grade == g) for g in ("certain", "probable", "possible")}
    console.print(
        f"{total} Patients, {scanned} candidate pairs scored in {seconds:.1f} s "
        f"({total / seconds if seconds else 0:.0f} Patients/s): "
        + ", ".join(f"{n} {g}" for g, n in by_grade.items() if n or g != "possible"),
        highlight=False,
    )


@mpi_app.command("merge")
def mpi_merge(
    source: Annotated[str, typer.Argument(help="Id of the Patient merged away (kept, deactivated).")],
    target: Annotated[str, typer.Argument(help="Id of the surviving Patient.")],
    preview: Annotated[bool, typer.Option(help="Show what would change, write nothing.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Merge two Patient records of one person (as `Patient/$merge`)."""
    from socle.fhir.errors import FhirError
    from socle.referentials.identity.merge import merge
    from socle.store.access import SYSTEM
    from socle.store.repository import Store

    engine = open_engine(database)
    store = Store(engine)
    try:
        with store.write() as conn:
            result = merge(store, conn, SYSTEM, source, target, preview=preview, principal="cli")
    except FhirError as error:
        console.print(f"[red]error:[/] {error.diagnostics}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    moved = sum(len(paths) for _, _, paths in result.repointed)
    verb = "would merge" if preview else f"merged (merge id {result.merge_id})"
    console.print(
        f"Patient/{source} {verb} into Patient/{target}: {moved} references in "
        f"{len(result.repointed)} resources",
        highlight=False,
    )


@mpi_app.command("unmerge")
def mpi_unmerge(
    source: Annotated[str, typer.Argument(help="Id of the Patient that was merged away.")],
    database: DatabaseOption = None,
) -> None:
    """Undo the last merge of a Patient: both records and the moved references are restored."""
    from socle.fhir.errors import FhirError
    from socle.referentials.identity.merge import unmerge
    from socle.store.access import SYSTEM
    from socle.store.repository import Store

    engine = open_engine(database)
    store = Store(engine)
    try:
        with store.write() as conn:
            result = unmerge(store, conn, SYSTEM, source_id=source, principal="cli")
    except FhirError as error:
        console.print(f"[red]error:[/] {error.diagnostics}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(
        f"merge {result.merge_id} undone: {len(result.repointed)} resources pointed back", highlight=False
    )
