"""One access, described neutrally, becomes FHIR R4 AuditEvents (R4 §6.4 auditevent.html).

The API layer describes what a request did (`Access`: the interaction, each resource it touched with
that resource's patient compartment, the outcome) and who did it (the request's `Principal`); this
module turns that into AuditEvent resources shaped after IHE BALP (Basic Audit Log Patterns):

- one event per patient touched (BALP "one AuditEvent per patient", so that each patient's
  `AuditEvent?patient=` lists exactly the accesses to their record, and the event lives on their
  shard); resources in no patient compartment (Practitioner, Organization…) count as part of the
  patient the request targeted (`Patient/1/$everything`), else share one more event without
  patient. Inside a batch or transaction, events are further split by action (C/R/U/D/E).
- `type` = audit-event-type `rest`; `subtype` = the restful-interaction code (read, vread,
  search-type, create, transaction, operation, …); `action` C/R/U/D/E (searches and operations
  are E, "execute … a query/search operation"); `outcome` 0 success, 4 minor failure (a 4xx, such
  as a denied 401/403), 8 serious failure (5xx).
- `agent[0]` is the requestor (the user, or the backend client): `who` = their fhirUser reference
  (Practitioner/…, Patient/…, RelatedPerson/…) or an identifier of the account; `altId` the token
  subject; `role` the profession (TRE_G15) and specialty. A SMART app used by that person is a
  second agent (DICOM 110150 Application, not requestor).
- Acting for someone (a guardian or helper for a patient): R4 AuditEvent has no `onBehalfOf`, so
  the requestor agent carries the extension `…/StructureDefinition/auditevent-on-behalf-of`
  (valueReference to the represented Patient) and a role from `…/CodeSystem/delegation`
  (guardian | helper); the represented patient is also a `datasubject` agent (extra-security-role-
  type), not requestor. Searching `agent=` finds the actor; `patient=` finds the represented patient.
- `purposeOfEvent` (v3-ActReason): TREAT for professionals, PATRQT for patients, FAMRQT for
  delegates, HOPERAT for the system, and for break-glass ETREAT + BTG with the declared reason as
  text: the `$break-glass` request itself, and every later access to that patient's record while
  the grant runs.
- `entity`: the patient (audit-entity-type 1 Person, object-role 1 Patient), each resource touched
  (2 System Object, role 4 Domain Resource; version-specific reference when known), and for searches
  and operations the request itself (role 24 Query, `query` = base64 of "METHOD path?query").
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from socle.store.clock import from_instant, to_instant
from socle.trust.principal import Principal

SOCLE = "https://socle.esante.example/fhir"
ON_BEHALF_OF = f"{SOCLE}/StructureDefinition/auditevent-on-behalf-of"
DELEGATION = f"{SOCLE}/CodeSystem/delegation"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
PRINCIPAL_ID = "urn:socle:principal"
CLIENT_ID = "urn:socle:client"

ACTIONS = ("C", "R", "U", "D", "E")
OUTCOMES = ("0", "4", "8", "12")
_REASONS = {
    "TREAT": "treatment",
    "ETREAT": "Emergency Treatment",
    "BTG": "break the glass",
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "HOPERAT": "healthcare operations",
}


@dataclass(frozen=True)
class Touched:
    """One resource a request read or wrote."""

    reference: str  # Type/id
    compartment: str | None  # the Patient id whose compartment it is in
    action: str  # C R U D E
    version: int | None = None
    outcome: str = "0"


@dataclass
class Access:
    """What one request did, as the API layer saw it."""

    interaction: str  # restful-interaction code
    action: str  # the action when nothing in particular was touched
    touched: list[Touched] = field(default_factory=list)
    outcome: str = "0"
    outcome_desc: str | None = None
    # "GET Observation?code=…": recorded as the Query entity of searches and operations.
    query: str | None = None
    # The patient the request was about even when it touched nothing (a denied read, an empty search).
    patient: str | None = None
    # The declared reason of a break-glass access, when the policy granted one.
    break_glass: str | None = None
    # Patients this principal reaches under a running break-glass grant → its reason: every event
    # about one of them says so (purpose ETREAT + BTG, the reason as text), reads included.
    break_glass_for: dict[str, str] = field(default_factory=dict)
    address: str | None = None  # the client's network address


def outcome_of(status: int) -> str:
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def build_events(access: Access, principal: Principal, *, site: str, now: int) -> list[dict[str, Any]]:
    """The AuditEvents for one access: one per (patient, action, outcome), in a stable order."""
    groups: dict[tuple[str | None, str, str], list[Touched]] = {}
    for item in access.touched:
        # Resources outside any compartment reached through a patient (`Patient/1/$everything`
        # returns their Practitioners) are part of that patient's access.
        patient = item.compartment or access.patient
        groups.setdefault((patient, item.action, item.outcome), []).append(item)
    if not groups:
        groups[(access.patient, access.action, access.outcome)] = []
    recorded = to_instant(now)
    return [
        _event(access, principal, site, recorded, patient, action, outcome, items)
        for (patient, action, outcome), items in groups.items()
    ]


def _event(
    access: Access,
    principal: Principal,
    site: str,
    recorded: str,
    patient: str | None,
    action: str,
    outcome: str,
    items: list[Touched],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": recorded},
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": INTERACTION, "code": access.interaction}],
        "action": action,
        "recorded": recorded,
        "outcome": outcome,
    }
    if access.outcome_desc and outcome != "0":
        event["outcomeDesc"] = access.outcome_desc[:500]
    reason = access.break_glass
    if reason is None and patient is not None:
        reason = access.break_glass_for.get(patient)
    event["purposeOfEvent"] = _purpose(principal, reason)
    event["agent"] = _agents(principal, access.address)
    event["source"] = {
        "site": site,
        "observer": {"display": "Socle"},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities: list[dict[str, Any]] = []
    if patient is not None:
        entities.append(
            {
                "what": {"reference": f"Patient/{patient}"},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    for item in _unique(items):
        what = item.reference if item.version is None else f"{item.reference}/_history/{item.version}"
        entities.append(
            {
                "what": {"reference": what},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    if access.query is not None:
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(access.query.encode("utf-8")).decode("ascii"),
            }
        )
    if entities:
        event["entity"] = entities
    return event


def _unique(items: Iterable[Touched]) -> list[Touched]:
    seen: set[tuple[str, int | None]] = set()
    kept = []
    for item in items:
        key = (item.reference, item.version)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def who_of(principal: Principal) -> str:
    """The requestor as stored in the `agent` column and matched by `agent=`: a reference or an id."""
    if principal.fhir_user:
        return principal.fhir_user
    if principal.kind == "app" and principal.client_id:
        return f"{CLIENT_ID}|{principal.client_id}"
    return f"{PRINCIPAL_ID}|{principal.subject}"


def _agents(principal: Principal, address: str | None) -> list[dict[str, Any]]:
    who: dict[str, Any]
    if principal.fhir_user:
        who = {"reference": principal.fhir_user}
    else:
        system, _, value = who_of(principal).partition("|")
        who = {"identifier": {"system": system, "value": value}}
    if principal.kind == "system":
        kind = _coding(ROLE_TYPE, "dataprocessor", "data processor")
    elif principal.kind == "app" and not principal.fhir_user:
        kind = _coding(DICOM, "110150", "Application")
    else:
        kind = _coding(ROLE_TYPE, "humanuser", "human user")
    requestor: dict[str, Any] = {"type": {"coding": [kind]}, "who": who, "altId": principal.subject}
    roles: list[dict[str, Any]] = []
    practice = principal.practice
    if practice is not None and practice.profession:
        roles.append({"coding": [{"system": PROFESSION, "code": practice.profession}]})
    if practice is not None and practice.specialty:
        roles.append({"coding": [{"system": SPECIALTY, "code": practice.specialty}]})
    if principal.kind == "emergency":
        roles.append({"text": "emergency responder"})
    represented = principal.acting_for
    if represented:
        relationship = principal.relationship or "delegate"
        roles.append({"coding": [{"system": DELEGATION, "code": relationship}]})
        requestor["extension"] = [
            {"url": ON_BEHALF_OF, "valueReference": {"reference": _patient_ref(represented)}}
        ]
    if roles:
        requestor["role"] = roles
    requestor["requestor"] = True
    if address:
        requestor["network"] = {"address": address, "type": "2"}  # 2: IP address
    agents = [requestor]
    if represented:
        agents.append(
            {
                "type": {"coding": [_coding(ROLE_TYPE, "datasubject", "data subject")]},
                "who": {"reference": _patient_ref(represented)},
                "requestor": False,
            }
        )
    if principal.client_id and (principal.kind != "app" or principal.fhir_user):
        agents.append(
            {
                "type": {"coding": [_coding(DICOM, "110150", "Application")]},
                "who": {"identifier": {"system": CLIENT_ID, "value": principal.client_id}},
                "requestor": False,
            }
        )
    return agents


def _patient_ref(value: str) -> str:
    return value if "/" in value else f"Patient/{value}"


def _purpose(principal: Principal, break_glass: str | None) -> list[dict[str, Any]]:
    if break_glass is not None:
        return [
            {
                "coding": [
                    _coding(ACT_REASON, "ETREAT", _REASONS["ETREAT"]),
                    _coding(ACT_REASON, "BTG", _REASONS["BTG"]),
                ],
                "text": break_glass[:500],
            }
        ]
    if principal.acting_for:
        code = "FAMRQT"
    elif principal.kind == "citizen":
        code = "PATRQT"
    elif principal.kind == "emergency":
        code = "ETREAT"
    elif principal.kind == "system":
        code = "HOPERAT"
    else:
        code = "TREAT"
    return [{"coding": [_coding(ACT_REASON, code, _REASONS[code])]}]


def columns(event: dict[str, Any]) -> dict[str, Any]:
    """The searchable columns of an event row, derived from its content (written and re-checked)."""
    patient = None
    refs = []
    for entity in event.get("entity", []):
        reference = entity.get("what", {}).get("reference")
        if not isinstance(reference, str):
            continue
        if entity.get("role", {}).get("code") == "1" and reference.startswith("Patient/"):
            patient = reference.split("/", 1)[1]
        refs.append(reference.split("/_history/", 1)[0])
    requestor: dict[str, Any] = next((a for a in event.get("agent", []) if a.get("requestor")), {})
    who = requestor.get("who", {})
    agent = who.get("reference")
    if agent is None and "identifier" in who:
        agent = f"{who['identifier'].get('system')}|{who['identifier'].get('value')}"
    return {
        "id": event["id"],
        "recorded": from_instant(event["recorded"]),
        "resource_type": "AuditEvent",
        "compartment": patient,
        "agent": agent,
        "action": event["action"],
        "outcome": event["outcome"],
        "subtype": event["subtype"][0]["code"],
        "entity": " " + " ".join(dict.fromkeys(refs)) + " " if refs else " ",
    }
