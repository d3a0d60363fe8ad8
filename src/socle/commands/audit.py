"""`socle audit …`: verify the audit chain, sign a checkpoint now, export the audit public keys.

Exit codes: 0 the chain is intact, 1 it was tampered with (each finding says where: seq and id),
2 usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from socle.commands._options import DatabaseOption, open_engine
from socle.config import get_settings

audit_app = typer.Typer(help="The audit chain of accesses to health data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

_SHOWN = 50


@audit_app.command("verify")
def verify_command(
    database: DatabaseOption = None,
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks",
            help="Trust only these audit public keys (kept outside the database, from `socle audit jwks`).",
        ),
    ] = None,
) -> None:
    """Re-hash the whole chain and check every signed checkpoint; say where it was tampered with."""
    from socle.trust.audit.verify import count, verify

    pinned = orjson.loads(jwks.read_bytes()) if jwks is not None else None
    engine = open_engine(database)
    settings = get_settings()
    try:
        with engine.connect() as conn:
            total = count(conn)
            columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
                task = progress.add_task("verify", total=total)
                report = verify(
                    conn, settings, pinned=pinned, progress=lambda n: progress.update(task, advance=n)
                )
    finally:
        engine.dispose()
    for finding in report.findings[:_SHOWN]:
        console.print(f"[red]✗[/] {finding}", highlight=False)
    if len(report.findings) > _SHOWN:
        console.print(f"… and {len(report.findings) - _SHOWN} more findings", highlight=False)
    tail = report.head_seq - report.last_checkpoint
    console.print(
        f"{report.events} events, head seq {report.head_seq} ({report.head_hash[:16]}…); "
        f"{report.checkpoints_valid}/{report.checkpoints} checkpoints valid, last at seq "
        f"{report.last_checkpoint} ({tail} later events protected by the chain only)",
        highlight=False,
    )
    if not report.keys_authenticated:
        console.print(
            "[yellow]warning:[/] the audit keys could not be authenticated with the master key "
            "(not available here): checkpoints were checked against the keys stored in the database; "
            "pass --jwks with a copy kept elsewhere",
            highlight=False,
        )
    if report.ok:
        console.print("[green]✓ audit chain intact[/]")
        return
    console.print(f"[red]✗ audit chain tampered with: {len(report.findings)} findings[/]")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint_command(database: DatabaseOption = None) -> None:
    """Sign a checkpoint of the chain head now (also done every SOCLE_AUDIT_CHECKPOINT_EVERY events)."""
    from socle.trust.audit.chain import checkpoint

    engine = open_engine(database)
    try:
        with engine.connect() as conn, conn.begin():
            signed = checkpoint(conn, get_settings())
    finally:
        engine.dispose()
    if signed is None:
        console.print("Nothing to sign: the chain is empty or its head is already signed")
    else:
        console.print(f"Checkpoint signed at seq {signed[0]} ({signed[1][:16]}…)", highlight=False)


@audit_app.command("jwks")
def jwks_command(database: DatabaseOption = None) -> None:
    """Print the audit public keys (JWKS) to keep outside the database, for `verify --jwks`."""
    from socle.trust.audit.signing import public_jwks

    engine = open_engine(database)
    try:
        with engine.connect() as conn:
            keys = public_jwks(conn)
    finally:
        engine.dispose()
    typer.echo(orjson.dumps(keys, option=orjson.OPT_INDENT_2).decode())
