"""`socle clients …`, `socle token`, `socle accounts …`, `socle launch create`: the authorization
server for operators.

- `socle clients add ID [--public|--confidential|--backend] [--redirect-uri URI]… [--jwks-url URL]`
- `socle clients list`, `socle clients remove ID`
- `socle token --client-id ID --scope S`: an operator with database access mints an access token
  for a registered client (as a client_credentials grant would), printed on the last line.
- `socle accounts add-professional IDNAT` (refused unless the idNat_PS is in the directory),
  `socle accounts add-citizen --patient ID --email E` (refused unless the identity is QUAL),
  `socle accounts list`, `socle accounts outbox`
- `socle launch create --patient ID --client-id ID [--encounter ID]`: a SMART EHR launch context,
  the `launch` value printed on the last line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from socle.commands._options import DatabaseOption, open_engine
from socle.config import get_settings

clients_app = typer.Typer(help="OAuth / SMART clients of the authorization server.", no_args_is_help=True)
console = Console(stderr=True)


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Argument(help="The client_id.")],
    backend: Annotated[
        bool, typer.Option("--backend", help="SMART Backend Services (private_key_jwt).")
    ] = False,
    public: Annotated[bool, typer.Option("--public", help="Public client (PKCE, no secret).")] = False,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Allowed redirect URI.")
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--post-logout-redirect-uri", help="Allowed RP-initiated logout return URI."),
    ] = None,
    jwks_url: Annotated[str | None, typer.Option("--jwks-url", help="Backend client's JWKS URL.")] = None,
    jwks_file: Annotated[
        Path | None, typer.Option("--jwks-file", help="Backend client's JWKS (inline).")
    ] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="Most scopes the client may get.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Register a client; a confidential client's secret is printed once, on the last line."""
    from socle.trust.auth.clients import add_client

    if backend and public:
        raise typer.BadParameter("--backend and --public exclude each other")
    kind = "backend" if backend else "public" if public else "confidential"
    jwks = orjson.loads(jwks_file.read_bytes()) if jwks_file else None
    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            secret = add_client(
                conn,
                get_settings(),
                client_id,
                kind=kind,
                name=name,
                redirect_uris=list(redirect_uri or []),
                scope=scope,
                jwks_uri=jwks_url,
                jwks=jwks,
                post_logout_redirect_uris=list(post_logout_redirect_uri or []),
            )
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(f"client {client_id!r} registered ({kind})", highlight=False)
    if secret:
        console.print("client secret (shown once, stored hashed):")
        typer.echo(secret)


@clients_app.command("list")
def clients_list(database: DatabaseOption = None) -> None:
    """List the registered clients."""
    from socle.trust.auth.clients import list_clients

    engine = open_engine(database)
    with engine.connect() as conn:
        clients = list_clients(conn)
    engine.dispose()
    table = Table("client_id", "kind", "redirect URIs", "scope")
    for c in clients:
        table.add_row(c.client_id, c.kind, " ".join(c.redirect_uris), c.scope)
    Console().print(table)


@clients_app.command("remove")
def clients_remove(client_id: Annotated[str, typer.Argument()], database: DatabaseOption = None) -> None:
    """Remove a client (its tokens stay valid until they expire)."""
    from socle.trust.auth.clients import remove_client

    engine = open_engine(database)
    with engine.begin() as conn:
        removed = remove_client(conn, client_id)
    engine.dispose()
    if not removed:
        console.print(f"[red]error:[/] no client {client_id!r}", highlight=False)
        raise typer.Exit(1)
    console.print(f"client {client_id!r} removed", highlight=False)


def token(
    client_id: Annotated[str, typer.Option("--client-id", help="A registered client.")],
    scope: Annotated[str, typer.Option("--scope", help='Scopes, e.g. "system/*.cruds".')],
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="Issuer URL (default: SOCLE_ISSUER).")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Print an access token for a client (operators: the database access is the credential)."""
    from socle.trust.auth.clients import get_client
    from socle.trust.auth.grants import token_response
    from socle.trust.auth.scopes import ScopeSet

    settings = get_settings()
    iss = (issuer or settings.issuer or "http://127.0.0.1:8080").rstrip("/")
    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            client = get_client(conn, client_id)
            if client is None:
                console.print(f"[red]error:[/] no client {client_id!r}", highlight=False)
                raise typer.Exit(1)
            granted = ScopeSet.parse(scope).narrow_to(ScopeSet.parse(client.scope))
            if not granted.raw:
                console.print(f"[red]error:[/] {scope!r} is outside the client's scopes ({client.scope})")
                raise typer.Exit(1)
            kind = "app" if client.kind == "backend" else "system"
            grant = {"sub": client_id, "client_id": client_id, "scope": str(granted), "kind": kind}
            body = token_response(conn, settings, iss, grant, family=None, with_id_token=False)
    finally:
        engine.dispose()
    console.print(f"issuer {iss}, scope {granted}, expires in {body['expires_in']} s", highlight=False)
    typer.echo(body["access_token"])


# -- accounts ---------------------------------------------------------------------------------

accounts_app = typer.Typer(help="People's accounts (professionals, citizens).", no_args_is_help=True)


@accounts_app.command("add-professional")
def accounts_add_professional(
    idnat: Annotated[str, typer.Argument(help="idNat_PS of a Practitioner in the directory.")],
    password: Annotated[
        str, typer.Option("--password", prompt=True, hide_input=True, help="Initial password.")
    ],
    totp: Annotated[
        bool, typer.Option("--totp/--no-totp", help="Generate a TOTP secret (printed once).")
    ] = True,
    database: DatabaseOption = None,
) -> None:
    """A professional's account; refused when the idNat_PS is not in the directory."""
    import pyotp

    from socle.services.enrolment import EnrolmentRefused, add_professional
    from socle.store.repository import Store

    secret = pyotp.random_base32() if totp else None
    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            account = add_professional(
                Store(engine), conn, get_settings(), idnat, password=password, totp_secret=secret
            )
    except EnrolmentRefused as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(f"account {idnat} created for {account.claims['fhirUser']}", highlight=False)
    if secret:
        console.print("TOTP secret (shown once):")
        typer.echo(secret)


@accounts_app.command("add-citizen")
def accounts_add_citizen(
    patient: Annotated[str, typer.Option("--patient", help="Patient id with a QUALIFIED INS identity.")],
    email: Annotated[str, typer.Option("--email", help="Login and delivery address.")],
    database: DatabaseOption = None,
) -> None:
    """A citizen's account (inactive until `/activation`); the activation code goes through the
    delivery interface (outbox or SMTP)."""
    from socle.services.enrolment import EnrolmentRefused, add_citizen
    from socle.store.repository import Store

    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            add_citizen(Store(engine), conn, get_settings(), patient_id=patient, email=email)
    except EnrolmentRefused as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(f"account {email} created for Patient/{patient}; activation code sent", highlight=False)


@accounts_app.command("list")
def accounts_list(database: DatabaseOption = None) -> None:
    """List the accounts (no secrets)."""
    from sqlalchemy import select

    from socle.trust.auth.schema import auth_account

    engine = open_engine(database)
    with engine.connect() as conn:
        rows = list(conn.execute(select(auth_account).order_by(auth_account.c.kind, auth_account.c.login)))
    engine.dispose()
    table = Table("login", "kind", "fhirUser", "active", "TOTP")
    for r in rows:
        table.add_row(
            r.login, r.kind, str(r.claims.get("fhirUser", "")), str(r.active), str(bool(r.totp_secret))
        )
    Console().print(table)


@accounts_app.command("outbox")
def accounts_outbox(
    recipient: Annotated[str | None, typer.Option("--to", help="Only messages to this address.")] = None,
    database: DatabaseOption = None,
) -> None:
    """The local outbox (the demo's mailbox): activation and one-time codes."""
    from socle.trust.auth.accounts import outbox

    engine = open_engine(database)
    with engine.connect() as conn:
        messages = outbox(conn, recipient)
    engine.dispose()
    for m in messages:
        typer.echo(f"--- to {m['recipient']}: {m['subject']}\n{m['body']}")


# -- SMART EHR launch -----------------------------------------------------------------------------

launch_app = typer.Typer(help="SMART EHR launch contexts.", no_args_is_help=True)


@launch_app.command("create")
def launch_create(
    patient: Annotated[str, typer.Option("--patient", help="Patient id in context.")],
    client_id: Annotated[str, typer.Option("--client-id", help="The app the context is for.")],
    encounter: Annotated[str | None, typer.Option("--encounter", help="Encounter id in context.")] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=10, max=3600, help="Seconds before it expires.")] = 300,
    database: DatabaseOption = None,
) -> None:
    """Create a single-use launch context; prints the `launch` value on the last line."""
    from socle.store.access import SYSTEM
    from socle.store.repository import Store
    from socle.trust.auth.clients import get_client
    from socle.trust.auth.launch import create_launch

    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            store = Store(engine)
            problem = None
            if get_client(conn, client_id) is None:
                problem = f"no client {client_id!r}"
            elif not store.find(conn, "Patient", f"_id={patient}", SYSTEM):
                problem = f"no Patient {patient!r}"
            elif encounter and not store.find(conn, "Encounter", f"_id={encounter}", SYSTEM):
                problem = f"no Encounter {encounter!r}"
            if problem:
                console.print(f"[red]error:[/] {problem}", highlight=False)
                raise typer.Exit(1)
            launch = create_launch(
                conn,
                client_id=client_id,
                patient=patient,
                encounter=encounter,
                created_by="operator",
                ttl=ttl,
            )
    finally:
        engine.dispose()
    console.print(f"launch context for Patient/{patient} ({client_id}), single use, {ttl} s", highlight=False)
    typer.echo(launch)
