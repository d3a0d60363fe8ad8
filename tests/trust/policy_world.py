"""A small shared record for the policy tests: patients, professionals, documents, choices.

Principals are real `Principal` objects; requests run through `FhirEndpoint._execute`, the one place
the HTTP endpoint builds a request's context, so they take exactly the production path.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, text

from socle.api.http import FhirEndpoint
from socle.api.request import FhirRequest, FhirResponse
from socle.config import Settings
from socle.fhir.errors import FhirError
from socle.services.demo_people import qualified_patient
from socle.store.engine import make_engine
from socle.store.repository import Store
from socle.trust.auth.scopes import ScopeSet
from socle.trust.policy.labels import CONFIDENTIALITY_SYSTEM
from socle.trust.principal import SYSTEM_PRINCIPAL, Practice, Principal

BASE = "http://testserver/fhir"
TRE_A07 = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
TRE_A07_PDSM = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
)
ALL = ScopeSet.parse("user/*.cruds")


def second_engine(engine: Engine) -> Engine:
    """Another engine on the same database (as another `socle serve` worker): its own pool and its
    own relationship cache. The caller disposes of it."""
    if engine.dialect.name == "sqlite":
        return make_engine(str(engine.url))
    from tests.conftest import pg_engine

    with engine.connect() as conn:
        return pg_engine(str(conn.execute(text("SELECT current_schema()")).scalar()))


def endpoint(engine: Engine, **settings: Any) -> FhirEndpoint:
    return FhirEndpoint(Store(engine), Settings(database_url="sqlite://", base_url=BASE, **settings))


def call(ep: FhirEndpoint, principal: Principal, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """(status, body) of one request; FhirErrors become their status, as the HTTP layer renders them."""
    content_type = "application/json-patch+json" if isinstance(body, list) else "application/fhir+json"
    req = FhirRequest.from_url(method, url, {"content-type": content_type}, body)
    try:
        response: FhirResponse = ep._execute(req, BASE, principal)
    except FhirError as exc:
        return exc.status, exc.outcome()
    body_out = response.body
    if body_out is not None:  # bundles embed stored JSON as orjson Fragments
        body_out = orjson.loads(body_out if isinstance(body_out, bytes) else orjson.dumps(body_out))
    return response.status, body_out


def ids(bundle: Any, mode: str | None = None) -> set[str]:
    out = set()
    for entry in (bundle or {}).get("entry") or []:
        res = entry.get("resource")
        if res is None or (mode and (entry.get("search") or {}).get("mode") != mode):
            continue
        out.add(f"{res['resourceType']}/{res['id']}")
    return out


# -- principals -----------------------------------------------------------------------------------


def citizen(patient: str, relationship: str | None = None, scopes: ScopeSet = ALL) -> Principal:
    if relationship is None:
        return Principal(
            "citizen", f"acct-{patient}", scopes, fhir_user=f"Patient/{patient}", patient=patient
        )
    return Principal(
        "citizen",
        f"acct-{relationship}-{patient}",
        scopes,
        fhir_user=f"RelatedPerson/{relationship}-{patient}",
        patient=patient,
        acting_for=patient,
        relationship=relationship,
    )


def professional(practitioner: str, profession: str = "10", scopes: ScopeSet = ALL) -> Principal:
    return Principal(
        "professional",
        f"ps-{practitioner}",
        scopes,
        fhir_user=f"Practitioner/{practitioner}",
        practice=Practice(national_id=f"8{practitioner}", profession=profession),
    )


def emergency(practitioner: str) -> Principal:
    return Principal("emergency", f"samu-{practitioner}", ALL, fhir_user=f"Practitioner/{practitioner}")


SYSTEM = SYSTEM_PRINCIPAL
DENIED = Principal("visitor", "nobody", ALL)


# -- data -----------------------------------------------------------------------------------------

PRACTITIONERS = {"gp": "10", "nurse": "60", "pharma": "21", "stranger": "10", "er": "10", "dentist": "40"}


def label(code: str, system: str = TRE_A07) -> dict[str, str]:
    return {"system": system, "code": code}


def document(
    id: str,
    patient: str,
    type_code: str,
    author: str | None = None,
    labels: list[dict[str, str]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": id,
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": id}}],
    }
    if author:
        body["author"] = [{"reference": f"Practitioner/{author}"}]
    if labels:
        body["securityLabel"] = [{"coding": [lab]} for lab in labels]
    return body


def observation(id: str, patient: str, security: list[dict[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 70, "unit": "kg"},
    }
    if security:
        body["meta"] = {"security": list(security)}
    return body


def consent(id: str, patient: str, provision: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": id,
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "policyRule": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
        },
        "provision": provision,
    }


def actor(practitioner: str) -> list[dict[str, Any]]:
    return [
        {
            "role": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
                ]
            },
            "reference": {"reference": f"Practitioner/{practitioner}"},
        }
    ]


def patient(id: str, sex: str, order: int, gp: list[dict[str, str]]) -> dict[str, Any]:
    """A Patient with a qualified INS identity (the shared record accepts documents only for those)."""
    body = qualified_patient(id, id.upper(), id.capitalize(), sex, "1990-01-01", order=order)
    if gp:
        body["generalPractitioner"] = gp
    return body


def world() -> list[dict[str, Any]]:
    """alice (GP gp via a role; nurse in her care team; pharma granted), bob (a minor, GP gp), carol."""
    out: list[dict[str, Any]] = []
    for pid in PRACTITIONERS:
        out.append({"resourceType": "Practitioner", "id": pid, "name": [{"family": pid}]})
    out.append(
        {
            "resourceType": "PractitionerRole",
            "id": "gp-role",
            "practitioner": {"reference": "Practitioner/gp"},
        }
    )
    out += [
        patient("alice", "female", 1, [{"reference": "PractitionerRole/gp-role"}]),
        patient("bob", "male", 2, [{"reference": "Practitioner/gp"}]),
        patient("carol", "female", 3, []),
        {
            "resourceType": "CareTeam",
            "id": "team-alice",
            "status": "active",
            "subject": {"reference": "Patient/alice"},
            "participant": [{"member": {"reference": "Practitioner/nurse"}}],
        },
        document("a-consult", "alice", "11488-4", "gp"),
        document("a-rx", "alice", "57833-6", "gp"),
        document("a-summary", "alice", "60591-5", "stranger"),
        document("a-invisible", "alice", "11502-2", "gp", [label("INVISIBLE_PATIENT")]),
        document("a-masked", "alice", "11490-0", "nurse", [label("MASQUE_PS", TRE_A07_PDSM)]),
        observation("a-weight", "alice"),
        observation("a-secret", "alice", [{"system": CONFIDENTIALITY_SYSTEM, "code": "R"}]),
        document("b-consult", "bob", "11488-4", "gp"),
        document("b-teen", "bob", "11488-4", "gp", [label("INVISIBLE_REPRESENTANTS_LEGAUX")]),
        observation("b-weight", "bob"),
        document("c-consult", "carol", "11488-4", "stranger"),
        observation("c-weight", "carol"),
        consent("alice-grants-pharma", "alice", {"type": "permit", "actor": actor("pharma")}),
        {"resourceType": "Medication", "id": "med-1", "code": {"text": "paracétamol"}},
    ]
    return out


def load(ep: FhirEndpoint, resources: list[dict[str, Any]]) -> None:
    for body in resources:
        status, out = call(ep, SYSTEM, "PUT", f"{body['resourceType']}/{body['id']}", body)
        assert status in (200, 201), (body["resourceType"], body["id"], out)
