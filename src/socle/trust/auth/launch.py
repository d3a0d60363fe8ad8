"""SMART EHR launch contexts (App Launch v2 §"EHR launch" and §"launch context").

The professional's side (an authenticated professional session through `POST /auth/launch`, or an
operator through `socle launch create`) creates a context: a patient, optionally an encounter, for
one client. It gets an opaque `launch` value that it passes to the app's launch URL with `iss`. The
app sends it back as the `launch` parameter of its authorization request with the `launch` scope;
the context is then consumed (single use) and the token response carries `patient` (and
`encounter`). Contexts expire after `LAUNCH_TTL` seconds; only the hash of the value is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from socle.trust.auth.passwords import new_token, token_hash
from socle.trust.auth.schema import auth_launch

LAUNCH_TTL = 300


@dataclass(frozen=True)
class LaunchContext:
    client_id: str
    patient: str
    encounter: str | None


def create_launch(
    conn: Connection,
    *,
    client_id: str,
    patient: str,
    encounter: str | None = None,
    created_by: str,
    ttl: int = LAUNCH_TTL,
) -> str:
    launch = new_token()
    conn.execute(
        insert(auth_launch).values(
            launch_hash=token_hash(launch),
            client_id=client_id,
            patient=patient,
            encounter=encounter,
            created_by=created_by,
            expires_at=int(time.time()) + ttl,
            used=False,
        )
    )
    return launch


def peek_launch(conn: Connection, launch: str, client_id: str) -> LaunchContext | None:
    """The context if it exists, is unused, unexpired and bound to this client (nothing consumed)."""
    row = conn.execute(select(auth_launch).where(auth_launch.c.launch_hash == token_hash(launch))).first()
    if row is None or row.used or row.expires_at < int(time.time()) or row.client_id != client_id:
        return None
    return LaunchContext(row.client_id, row.patient, row.encounter)


def consume_launch(conn: Connection, launch: str, client_id: str) -> LaunchContext | None:
    """Use the context once: a second consumer (even a concurrent one) gets None."""
    context = peek_launch(conn, launch, client_id)
    if context is None:
        return None
    claimed = conn.execute(
        update(auth_launch)
        .where(auth_launch.c.launch_hash == token_hash(launch), auth_launch.c.used.is_(False))
        .values(used=True)
    ).rowcount
    return context if claimed == 1 else None
