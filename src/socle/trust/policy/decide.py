"""Principal → decision: a denial (Forbidden, 403) or an access filter plus a write rule.

Deny by default: a principal whose kind the policy does not know, a citizen with no patient, a
professional or emergency responder with no Practitioner identity, an app with neither a user nor
system scopes, or any non-system principal with no resource scope at all, is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from socle.fhir.errors import Forbidden
from socle.store.access import SYSTEM, AccessFilter
from socle.trust.policy.filters import CitizenFilter, DenyAll, Narrowed, ProfessionalFilter
from socle.trust.policy.labels import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    RESTRICTED,
    VERY_RESTRICTED,
)
from socle.trust.policy.matrix import ProfessionRights, rights_of
from socle.trust.policy.relations import cached_relations
from socle.trust.principal import Principal

PUBLIC_PATHS = frozenset({"metadata", ".well-known/smart-configuration"})
# Operations that act on the whole database rather than on records: the platform's operators only.
OPERATOR_OPERATIONS = frozenset({"$reindex"})

# What a delegate or the patient may not see, by relationship to the patient.
HIDDEN_FROM = {
    "self": frozenset({INVISIBLE_PATIENT}),
    "guardian": frozenset({INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX}),
    # A helper (aidant) has limited rights: read-only, and no masked or sensitive items.
    "helper": frozenset(
        {INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS, RESTRICTED, VERY_RESTRICTED}
    ),
}


@dataclass(frozen=True)
class Decision:
    """What one request may do. `base` is the effective kind the rules were taken from."""

    principal: Principal
    base: str  # system | citizen | professional | emergency
    access: AccessFilter
    patient: str | None = None  # citizen: the patient whose record it is
    relationship: str = "self"
    hidden: frozenset[str] = frozenset()
    # professional / emergency: patients with a relationship, and the profession's rights
    full: frozenset[str] = frozenset()
    matrix: frozenset[str] = frozenset()
    rights: ProfessionRights | None = None
    refs: frozenset[str] = frozenset()
    masked: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # patients under a running break-glass grant → its declared reason (recorded in AuditEvents)
    break_glass: Mapping[str, str] = field(default_factory=dict)

    @property
    def practitioner(self) -> str | None:
        return next((r for r in sorted(self.refs) if r.startswith("Practitioner/")), None)


def _reference_id(reference: str | None, resource_type: str) -> str | None:
    if reference and reference.startswith(f"{resource_type}/"):
        return reference.split("/", 1)[1] or None
    return None


def _citizen(principal: Principal) -> Decision:
    patient = principal.acting_for or principal.patient or _reference_id(principal.fhir_user, "Patient")
    if not patient:
        raise Forbidden("This citizen account is not linked to a patient record")
    relationship = (principal.relationship or "self") if principal.acting_for else "self"
    if relationship not in HIDDEN_FROM:
        raise Forbidden(f"Unknown relationship {relationship!r} to the patient")
    hidden = HIDDEN_FROM[relationship]
    return Decision(principal, "citizen", CitizenFilter(patient, hidden), patient, relationship, hidden)


def _professional(conn: Connection, principal: Principal, now: datetime, *, emergency: bool) -> Decision:
    practitioner = principal.fhir_user if (principal.fhir_user or "").startswith("Practitioner/") else None
    if practitioner is None:
        raise Forbidden("This account is not linked to a Practitioner: no access to patient records")
    rel = cached_relations(conn, practitioner, now)
    emergencies = rel.emergency.keys() - rel.blocked
    full = frozenset(emergencies if emergency else (rel.gp - rel.blocked) | emergencies)
    matrix = frozenset() if emergency else frozenset((rel.team | rel.granted) - rel.blocked - full)
    profession = principal.practice.profession if principal.practice else None
    rights = ProfessionRights("urgence", None, None) if emergency else rights_of(profession)
    access = ProfessionalFilter(
        full, matrix, rights.resources, rights.documents, rel.refs, frozenset(rel.masked)
    )
    return Decision(
        principal,
        "emergency" if emergency else "professional",
        access,
        full=full,
        matrix=matrix,
        rights=rights,
        refs=rel.refs,
        masked=frozenset(rel.masked),
        break_glass={p: rel.emergency[p] for p in emergencies},
    )


def _base(conn: Connection, principal: Principal, now: datetime) -> Decision:
    kind = principal.kind
    if kind == "app":  # a client acting for its user, or for itself (backend, system/ scopes)
        if (principal.fhir_user or "").startswith("Practitioner/"):
            kind = "professional"
        elif principal.fhir_user or principal.patient:
            kind = "citizen"
        elif any(g.context == "system" for g in principal.scopes.grants):
            return Decision(principal, "system", SYSTEM)
        else:
            raise Forbidden("This client acts for no user and holds no system/ scope")
    if kind == "citizen":
        return _citizen(principal)
    if kind == "professional":
        return _professional(conn, principal, now, emergency=False)
    if kind == "emergency":
        return _professional(conn, principal, now, emergency=True)
    raise Forbidden(f"Unknown principal kind {principal.kind!r}: access denied")


def _narrow(decision: Decision) -> Decision:
    """Apply the SMART scopes: only types granted for reading (r or s), patient/ ones in context."""
    principal = decision.principal
    user_types: set[str] = set()
    patient_types: set[str] = set()
    for grant in principal.scopes.grants:
        if not grant.permissions & {"r", "s"}:
            continue
        (patient_types if grant.context == "patient" else user_types).add(grant.resource_type)
    if not user_types and not patient_types:
        if not principal.scopes.grants:
            raise Forbidden("The access token carries no resource scope")
        return Decision(**{**decision.__dict__, "access": DenyAll()})
    patient = principal.patient or decision.patient
    if "*" in user_types and not patient_types:
        return decision
    narrowed = Narrowed(decision.access, frozenset(user_types), frozenset(patient_types), patient)
    return Decision(**{**decision.__dict__, "access": narrowed})


def decide(conn: Connection, principal: Principal, now: datetime | None = None) -> Decision:
    """The decision for one request (raises Forbidden for a principal that may see nothing)."""
    if principal.is_system:
        return Decision(principal, "system", SYSTEM)
    decision = _base(conn, principal, now or datetime.now(UTC))
    return _narrow(decision)


def decide_or_deny_all(
    conn: Connection, principal: Principal, segments: list[str], now: datetime | None = None
) -> Decision:
    """As `decide`, but public paths (metadata) are served to anyone, with a filter that admits nothing."""
    if segments and segments[-1] in OPERATOR_OPERATIONS and not principal.is_system:
        decision = decide(conn, principal, now)
        if decision.base != "system" or "*" not in {g.resource_type for g in principal.scopes.grants}:
            raise Forbidden(f"{segments[-1]} is an operator operation (system principal only)")
    try:
        return decide(conn, principal, now)
    except Forbidden:
        if "/".join(segments) in PUBLIC_PATHS:
            return Decision(principal, "denied", DenyAll())
        raise
