"""Shared helpers of the identity tests: stored Patients with their MPI rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from socle.referentials.identity import index
from socle.referentials.identity.profile import OID_NIR, Reliability, patient_resource
from socle.referentials.identity.traits import Traits
from socle.store.repository import Store
from socle.store.versioned import StoredVersion


def store_patients(
    engine: Engine, people: dict[str, Traits], *, status: str = "PROV"
) -> dict[str, StoredVersion]:
    """Create Patients (ids = keys) and refresh their MPI rows, in one transaction."""
    store = Store(engine)
    bodies: list[dict[str, Any]] = []
    for id, traits in people.items():
        reliability = Reliability(status, method="INSI") if status == "RECUP" else Reliability(status)
        bodies.append(
            patient_resource(
                traits, reliability=reliability, id=id, ins_system=OID_NIR if traits.ins else None
            )
        )
    with store.write() as conn:
        written = store.create_many(conn, bodies)
        index.refresh(conn, written)
    return {v.id: v for v in written}
