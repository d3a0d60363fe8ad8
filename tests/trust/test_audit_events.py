"""The AuditEvents built for a request, without HTTP: who, for whom, why, about which patient."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from socle.api import audit as audit_api
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.config import Settings
from socle.fhir.validation import validate_resource
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.trust.audit.events import ON_BEHALF_OF, Access, Touched, build_events, columns
from socle.trust.principal import Practice, Principal

BASE = "http://testserver/fhir"
GUARDIAN = Principal(
    kind="citizen",
    subject="acc-9",
    fhir_user="RelatedPerson/rp1",
    client_id="mes-sante",
    acting_for="child-1",
    relationship="guardian",
)
EMERGENCY = Principal(
    kind="emergency",
    subject="acc-7",
    fhir_user="Practitioner/urg1",
    practice=Practice("810000000007", profession="10", specialty="SM54", structure="org-1"),
)


def _codes(concepts: list[dict[str, Any]]) -> set[str]:
    return {c["code"] for concept in concepts for c in concept.get("coding", [])}


def test_a_delegate_is_recorded_acting_for_the_patient() -> None:
    access = Access("read", "R", [Touched("Observation/o1", "child-1", "R", 2)])
    [event] = build_events(access, GUARDIAN, site=BASE, now=1_700_000_000_000_000)
    validate_resource(event, resource_type="AuditEvent")
    actor, represented, app = event["agent"]
    assert actor["who"] == {"reference": "RelatedPerson/rp1"} and actor["requestor"] is True
    assert actor["extension"] == [{"url": ON_BEHALF_OF, "valueReference": {"reference": "Patient/child-1"}}]
    assert "guardian" in _codes(actor["role"])
    assert represented["who"] == {"reference": "Patient/child-1"} and represented["requestor"] is False
    assert app["who"]["identifier"]["value"] == "mes-sante"
    assert _codes(event["purposeOfEvent"]) == {"FAMRQT"}
    row = columns(event)
    assert (row["compartment"], row["agent"], row["action"]) == ("child-1", "RelatedPerson/rp1", "R")
    assert row["entity"] == " Patient/child-1 Observation/o1 "


def test_break_glass_is_recorded_with_its_reason(engine: Engine) -> None:
    store = Store(engine)
    settings = Settings(base_url=BASE)
    body = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "x"}]}
    answer = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueReference": {"reference": "Consent/c1"}},
            {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
            {"name": "reason", "valueString": "Patient inconscient aux urgences"},
        ],
    }
    request = FhirRequest("POST", "Patient/p1/$break-glass", body=body)
    with store.read() as conn:
        ctx = Context(store, conn, SYSTEM, settings, BASE, EMERGENCY)
        events = audit_api.events(request, ctx, FhirResponse(200, answer))
    [event] = events  # the Consent and the Patient, both in the patient's compartment
    assert columns(event)["entity"] == " Patient/p1 Consent/c1 "
    validate_resource(event, resource_type="AuditEvent")
    assert (event["action"], event["subtype"][0]["code"]) == ("E", "operation")
    [purpose] = event["purposeOfEvent"]
    assert _codes([purpose]) == {"ETREAT", "BTG"}
    assert purpose["text"] == "Patient inconscient aux urgences"
    requestor = event["agent"][0]
    assert requestor["who"] == {"reference": "Practitioner/urg1"}
    assert {"10", "SM54"} <= _codes(requestor["role"])


def test_audit_event_in_a_batch_is_refused_per_entry() -> None:
    assert audit_api.interaction("POST", [], {"type": "transaction"}) == "transaction"
    assert audit_api.interaction("GET", ["Patient", "1", "Observation"]) == "search"
    assert audit_api.interaction("GET", ["metadata"]) is None
    assert audit_api.interaction("GET", ["Patient", "1", "_history", "2"]) == "vread"
