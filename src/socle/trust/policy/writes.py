"""The write check, in one place: a store index hook that runs inside every create, update, patch and
delete the repository performs (in the write's own transaction, so a refusal rolls it back).

The decision of the current request is held in a context variable for the duration of the request
(`enforce`); writes made without one (the CLI, the loader, internal jobs) are operator writes.
Rules (data/trust/README.md):
- system: anything its scopes allow;
- citizen: only into their own (or their ward's) compartment, only the patient-entered kinds, never
  over an item hidden from them; a helper (aidant) writes nothing;
- professional: only into the compartment of a patient they have a care relationship with, only
  kinds their profession may see, never over an item masked from them; never Consent or AuditEvent;
  no change to directory/terminology resources (operators load those);
- emergency responder: read-only (the grant itself is written by $break-glass as the system);
- AuditEvent: written by the system only (the audit chain).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from sqlalchemy import Connection, select

from socle.fhir.errors import Forbidden
from socle.fhir.resource_types import resource_types
from socle.store import index_hooks
from socle.store.schema import resource, resource_history
from socle.trust.policy.decide import Decision
from socle.trust.policy.filters import PATIENT_PRIVATE_TYPES, PUBLIC_TYPES
from socle.trust.policy.labels import MASQUE_PS, labels_of

# What a patient (or guardian) may enter in their own record (Mon espace santé "profil médical").
CITIZEN_WRITABLE = frozenset(
    {
        "Patient",
        "RelatedPerson",
        "Observation",
        "AllergyIntolerance",
        "Condition",
        "MedicationStatement",
        "Immunization",
        "FamilyMemberHistory",
        "Procedure",
        "DocumentReference",
        "Binary",
        "Consent",
        "QuestionnaireResponse",
        "Communication",
    }
)

_current: ContextVar[Decision | None] = ContextVar("socle_policy_decision", default=None)


@contextmanager
def enforce(decision: Decision) -> Iterator[None]:
    token = _current.set(decision)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Decision | None:
    """The decision of the request being served (None outside a request)."""
    return _current.get()


@contextmanager
def as_system() -> Iterator[None]:
    """Writes made by the platform itself on a principal's behalf (e.g. a break-glass grant)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def check(
    decision: Decision,
    letter: str,
    resource_type: str,
    compartment: str | None,
    previous: tuple[str | None, frozenset[str]] | None,
) -> None:
    """Raise Forbidden unless `decision` may make this write (letter c, u or d)."""
    principal = decision.principal
    if principal.is_system:
        return
    if not principal.scopes.permits(resource_type, letter):
        raise Forbidden(f"The token's scopes do not allow writing {resource_type} ({letter})")
    base = decision.base
    if base == "system":
        return
    where = f"{resource_type} in the record of patient {compartment or '(none)'}"
    if resource_type == "AuditEvent":
        raise Forbidden("AuditEvents are written by the platform only")
    compartments = {compartment} | ({previous[0]} if previous is not None else set())
    old_labels = previous[1] if previous is not None else frozenset()
    if base == "citizen":
        if decision.relationship == "helper":
            raise Forbidden("A helper (aidant) has read-only access")
        if compartments != {decision.patient} or resource_type not in CITIZEN_WRITABLE:
            raise Forbidden(f"A citizen may not write {where}")
        if old_labels & decision.hidden:
            raise Forbidden(f"A citizen may not change an item hidden from them ({where})")
        return
    if base == "professional":
        if resource_type in PATIENT_PRIVATE_TYPES:
            raise Forbidden(f"Only the patient records their choices: a professional may not write {where}")
        if compartments == {None}:
            if resource_type in PUBLIC_TYPES:
                raise Forbidden(f"{resource_type} is reference data, maintained by operators")
            return
        rights = decision.rights
        for patient in compartments:
            if patient in decision.full:
                continue
            if patient not in decision.matrix:
                raise Forbidden(f"No care relationship allows writing {where}")
            if rights is not None and rights.resources is not None and resource_type not in rights.resources:
                raise Forbidden(f"The profession {rights.label!r} may not write {resource_type}")
        if MASQUE_PS in old_labels:
            raise Forbidden(f"{where}: the patient masked this item from professionals")
        return
    raise Forbidden(f"This principal ({principal.kind}) may not write {where}")


def _previous(conn: Connection, key: int, version: int) -> tuple[str | None, frozenset[str]] | None:
    if version <= 1:
        return None
    row = conn.execute(
        select(resource_history.c.compartment, resource_history.c.content).where(
            resource_history.c.resource_key == key, resource_history.c.version == version - 1
        )
    ).first()
    if row is None:
        return None
    content = row[1]
    body: Any = {} if content is None else (content if isinstance(content, dict) else orjson.loads(content))
    return row[0], labels_of(body)


def _on_write(conn: Connection, items: Sequence[index_hooks.IndexItem]) -> None:
    decision = _current.get()
    if decision is None or decision.principal.is_system:
        return
    for key, resource_type, compartment, body in items:
        version = int((body.get("meta") or {}).get("versionId") or 1)
        previous = _previous(conn, key, version)
        check(decision, "c" if previous is None else "u", resource_type, compartment, previous)


def _on_delete(conn: Connection, keys: Sequence[int]) -> None:
    decision = _current.get()
    if decision is None or decision.principal.is_system:
        return
    rows: list[Any] = list(
        conn.execute(
            select(
                resource.c.resource_key, resource.c.resource_type, resource.c.compartment, resource.c.version
            ).where(resource.c.resource_key.in_(list(keys)), resource.c.deleted.is_(True))
        )
    )
    for key, resource_type, compartment, version in rows:  # an update's delete step is checked on write
        check(decision, "d", resource_type, compartment, _previous(conn, key, version))


index_hooks.register(sorted(resource_types()), _on_write, _on_delete)
