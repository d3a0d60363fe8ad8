"""Applying an identity event to a stored Patient: a new version, checked, and an audit row.

The Patient's own history keeps every version (before/after); `identity_status_log` says who did
what, when, and on which evidence (document type, INS lookup). For `insi-retrieved` the evidence is
an `$ins-lookup` call that answered 00: its INS and traits replace the local strict traits, as the
RNIV asks when an identity is retrieved from INSi (the local used names are kept).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from socle.fhir.errors import Invalid, Unprocessable
from socle.referentials.identity import index  # noqa: F401  (registers the MPI index hook)
from socle.referentials.identity.profile import (
    BIRTH_LIST_GIVEN_NAME,
    BIRTH_PLACE,
    INS_SYSTEMS,
    PROFILE_INS,
    PROFILE_PATIENT,
    Reliability,
    birthplace_extension,
    ins_identifier,
    read_reliability,
    write_reliability,
)
from socle.referentials.identity.registry import RegistryEntry, entry_from_row
from socle.referentials.identity.registry_schema import identity_status_log, ins_lookup_log, ins_registry
from socle.referentials.identity.status import IdentityEvent, apply_event, check_patient_identity
from socle.store.access import AccessFilter
from socle.store.clock import now_us
from socle.store.repository import Store
from socle.store.versioned import StoredVersion

__all__ = ["StatusChange", "change_status"]


@dataclass(frozen=True)
class StatusChange:
    version: StoredVersion
    before: Reliability
    after: Reliability


def _retrieved_entry(conn: Connection, lookup: str) -> RegistryEntry:
    if not lookup.isdigit():
        raise Invalid(f"lookup must be the id of an $ins-lookup call, got {lookup!r}", expression="lookup")
    row = conn.execute(select(ins_lookup_log).where(ins_lookup_log.c.lookup_id == int(lookup))).first()
    if row is None:
        raise Invalid(f"No $ins-lookup call {lookup}", expression="lookup")
    if row.outcome != "00" or not row.matricule:
        raise Unprocessable(
            f"$ins-lookup call {lookup} did not return one identity (outcome {row.outcome})",
            expression="lookup",
        )
    registry_row = conn.execute(select(ins_registry).where(ins_registry.c.matricule == row.matricule)).first()
    if registry_row is None:
        raise Unprocessable(
            f"The INS returned by call {lookup} is no longer in the registry", expression="lookup"
        )
    return entry_from_row(registry_row)


def _with_ins_traits(patient: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
    """The Patient with the INS and the five strict traits as INSi returned them."""
    body = copy.deepcopy(patient)
    others = [
        i
        for i in body.get("identifier") or []
        if not (isinstance(i, dict) and i.get("system") in INS_SYSTEMS)
    ]
    old = [
        {**i, "use": "old"}
        for i in body.get("identifier") or []
        if isinstance(i, dict) and i.get("system") in INS_SYSTEMS and i.get("value") != entry.matricule
    ]
    body["identifier"] = [ins_identifier(entry.matricule, entry.system), *old, *others]
    official = {
        "use": "official",
        "family": entry.birth_name,
        "given": [entry.given_names[0]],
        "extension": [{"url": BIRTH_LIST_GIVEN_NAME, "valueString": " ".join(entry.given_names)}],
    }
    names = [
        n for n in body.get("name") or [] if isinstance(n, dict) and n.get("use") not in ("official", None)
    ]
    body["name"] = [official, *names]
    body["gender"] = entry.sex
    body["birthDate"] = entry.birth_date.to_fhir()
    extensions = [
        e for e in body.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == BIRTH_PLACE)
    ]
    body["extension"] = [*extensions, birthplace_extension(entry.birthplace)]
    return body


def change_status(
    store: Store,
    conn: Connection,
    access: AccessFilter,
    patient_id: str,
    event: IdentityEvent,
    *,
    principal: str = "system",
    if_match: int | None = None,
) -> StatusChange:
    current = store.get(conn, "Patient", patient_id, access)
    body = copy.deepcopy(current.resource)
    before = read_reliability(body)
    after = apply_event(before, event)
    if event.kind == "insi-retrieved":
        assert event.lookup is not None
        body = _with_ins_traits(body, _retrieved_entry(conn, event.lookup))
    body = write_reliability(body, after)
    profiles = [p for p in (body.get("meta") or {}).get("profile") or [] if p != PROFILE_INS]
    if PROFILE_PATIENT not in profiles:
        profiles.insert(0, PROFILE_PATIENT)
    if after.status == "QUAL":
        profiles.append(PROFILE_INS)
    body.setdefault("meta", {})["profile"] = profiles
    check_patient_identity(body)
    written, _ = store.update(conn, body, if_match=if_match if if_match is not None else current.version)
    conn.execute(
        insert(identity_status_log).values(
            at=now_us(),
            compartment=patient_id,
            principal=principal,
            event=event.kind,
            status_before=before.status,
            status_after=after.status,
            version_after=written.version,
            evidence={
                k: v
                for k, v in (
                    ("document", event.document),
                    ("lookup", event.lookup),
                    ("method", event.method),
                    ("date", event.date),
                    ("reason", event.reason),
                )
                if v
            },
        )
    )
    return StatusChange(written, before, after)
