"""Identity rules on the API's write and read paths, on both backends (issue 5).

- Patient writes (create, update, patch, transaction entries): the INS must be well formed and agree
  with the traits it encodes; RECUP/QUAL record the INSi retrieval, VALI/QUAL the document checked.
- Shared-record documents (DocumentReference with a subject Patient) need a qualified subject.
- Other actors never receive the INS of an identity that is not qualified.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.api.http import FhirEndpoint
from socle.api.request import FhirRequest, FhirResponse
from socle.config import Settings
from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.profile import OID_NIR, PROFILE_INS, Reliability, patient_resource
from socle.referentials.identity.traits import PartialDate, Traits
from socle.store.repository import Store
from socle.trust.auth.scopes import ScopeSet
from socle.trust.principal import SYSTEM_PRINCIPAL, Principal

NIR = make_nir(1, 1950, 3, "75114", 17)
TRAITS = Traits("Dupont", ("Jean", "Paul"), PartialDate(1950, 3, 2), "male", "75114", ins=NIR)
QUAL = Reliability("QUAL", method="INSI", collection_date="2026-01-05", validation_mode="CN")
RECUP = Reliability("RECUP", method="INSI", collection_date="2026-01-05")
# Another information system (a backend client with system scopes): it reads everything the policy
# admits, but it is another actor than Socle itself.
LAB = Principal(kind="app", subject="lab-client", scopes=ScopeSet.parse("system/*.rs"), client_id="lab")


def patient(traits: Traits = TRAITS, reliability: Reliability = QUAL, **changes: Any) -> dict[str, Any]:
    body = patient_resource(traits, reliability=reliability, ins_system=OID_NIR if traits.ins else None)
    body.update(changes)
    return body


def issues(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return list(body["issue"])


def expressions(response: Any) -> set[str]:
    return {e for i in issues(response) for e in i.get("expression", [])}


def document(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": subject},
        "content": [{"attachment": {"contentType": "text/plain", "data": "Q1I="}}],
    }


# --- Patient writes ---------------------------------------------------------------------------


def test_a_consistent_qualified_patient_is_accepted(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json=patient())
    assert response.status_code == 201, response.text
    assert response.json()["identifier"][0]["value"] == NIR


def test_a_malformed_ins_is_refused_naming_the_identifier(client: TestClient) -> None:
    body = patient()
    body["identifier"][0]["value"] = NIR[:13] + f"{(int(NIR[13:]) % 97) + 1:02d}"
    response = client.post("/fhir/Patient", json=body)
    assert response.status_code == 422
    assert "Patient.identifier[0].value" in expressions(response)
    assert any("key" in i["diagnostics"] for i in issues(response))


@pytest.mark.parametrize(
    ("traits", "field", "words"),
    [
        (
            Traits("Dupont", ("Jeanne",), PartialDate(1950, 3, 2), "female", "75114", ins=NIR),
            "Patient.gender",
            "male matricule",
        ),
        (
            Traits("Dupont", ("Jean",), PartialDate(1951, 3, 2), "male", "75114", ins=NIR),
            "Patient.birthDate",
            "birth year",
        ),
        (
            Traits("Dupont", ("Jean",), PartialDate(1950, 4, 2), "male", "75114", ins=NIR),
            "Patient.birthDate",
            "birth month",
        ),
        (
            Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male", "69381", ins=NIR),
            "Patient.extension('patient-birthPlace')",
            "birthplace",
        ),
    ],
)
def test_an_ins_contradicting_the_traits_is_refused(
    client: TestClient, traits: Traits, field: str, words: str
) -> None:
    response = client.post("/fhir/Patient", json=patient(traits))
    assert response.status_code == 422, response.text
    assert field in expressions(response)
    assert any(words in i["diagnostics"] for i in issues(response))


def test_corsica_before_1976_and_north_africa_agree_with_their_birthplace(client: TestClient) -> None:
    corsica = make_nir(2, 1950, 6, "20004", 12)  # department 20 in the NIR, 2A004 in today's COG
    body = patient(Traits("Santoni", ("Marie",), PartialDate(1950, 6, 1), "female", "2A004", ins=corsica))
    assert client.post("/fhir/Patient", json=body).status_code == 201
    algeria = make_nir(1, 1955, 1, "91352", 3)  # born in Algeria before 1962
    body = patient(Traits("Benali", ("Karim",), PartialDate(1955, 1, 9), "male", "99352", ins=algeria))
    assert client.post("/fhir/Patient", json=body).status_code == 201


def test_status_rules_name_the_missing_evidence(client: TestClient) -> None:
    no_lookup = patient(reliability=Reliability("QUAL", validation_mode="CN"))
    response = client.post("/fhir/Patient", json=no_lookup)
    assert response.status_code == 422
    assert any("methodCollection" in i["diagnostics"] for i in issues(response))
    no_document = patient(reliability=Reliability("QUAL", method="INSI"))
    response = client.post("/fhir/Patient", json=no_document)
    assert response.status_code == 422
    assert any("validationMode" in i["diagnostics"] for i in issues(response))
    flagged = patient(
        reliability=Reliability("QUAL", comments=("DOUT",), method="INSI", validation_mode="CN")
    )
    response = client.post("/fhir/Patient", json=flagged)
    assert response.status_code == 422
    assert any("must stay PROV" in i["diagnostics"] for i in issues(response))


def test_patients_outside_the_ins_rules_are_untouched(client: TestClient) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "Smith"}], "gender": "male"}
    assert client.post("/fhir/Patient", json=body).status_code == 201


def test_update_patch_and_transactions_are_checked_too(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient()).json()
    id = created["id"]
    wrong = dict(created, gender="female")
    response = client.put(f"/fhir/Patient/{id}", json=wrong)
    assert response.status_code == 422 and "Patient.gender" in expressions(response)
    response = client.patch(
        f"/fhir/Patient/{id}",
        json=[{"op": "replace", "path": "/birthDate", "value": "1960-03-02"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 422 and "Patient.birthDate" in expressions(response)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7f0c7e1e-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Organization", "name": "Clinique"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "fullUrl": "urn:uuid:7f0c7e1e-0000-4000-8000-000000000002",
                "resource": dict(patient(), gender="female"),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 422, response.text
    assert "Bundle.entry[1].resource.gender" in expressions(response)
    assert client.get("/fhir/Organization?name=Clinique").json()["total"] == 0  # rolled back
    assert client.get(f"/fhir/Patient/{id}").json()["gender"] == "male"


# --- Shared-record documents -------------------------------------------------------------------


def test_documents_need_a_qualified_subject(client: TestClient) -> None:
    recup = client.post("/fhir/Patient", json=patient(reliability=RECUP)).json()
    response = client.post("/fhir/DocumentReference", json=document(f"Patient/{recup['id']}"))
    assert response.status_code == 422, response.text
    assert "DocumentReference.subject" in expressions(response)
    assert any("RECUP, not QUAL" in i["diagnostics"] for i in issues(response))
    local = client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "X"}]}).json()
    response = client.post("/fhir/DocumentReference", json=document(f"Patient/{local['id']}"))
    assert response.status_code == 422 and "has no INS" in issues(response)[0]["diagnostics"]
    qual = client.post("/fhir/Patient", json=patient()).json()
    response = client.post("/fhir/DocumentReference", json=document(f"Patient/{qual['id']}"))
    assert response.status_code == 201, response.text
    # An update that points the document at an unqualified identity is refused as well.
    moved = dict(response.json(), subject={"reference": f"Patient/{recup['id']}"})
    response = client.put(f"/fhir/DocumentReference/{moved['id']}", json=moved)
    assert response.status_code == 422
    # Documents about something else than a Patient are not the shared record's business.
    other = dict(document("Group/g1"), subject=None)
    del other["subject"]
    assert client.post("/fhir/DocumentReference", json=other).status_code == 201


def test_a_transaction_sees_the_subject_created_with_the_document(client: TestClient) -> None:
    def bundle(reliability: Reliability) -> dict[str, Any]:
        patient_url = "urn:uuid:1b6f3a52-0000-4000-8000-00000000000a"
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": patient_url,
                    "resource": patient(reliability=reliability),
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": document(patient_url),
                    "request": {"method": "POST", "url": "DocumentReference"},
                },
            ],
        }

    response = client.post("/fhir", json=bundle(RECUP))
    assert response.status_code == 422, response.text
    assert client.get("/fhir/Patient").json()["total"] == 0  # the whole transaction rolled back
    response = client.post("/fhir", json=bundle(QUAL))
    assert response.status_code == 200, response.text
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["201", "201"]


# --- What other actors see ---------------------------------------------------------------------


def run(engine: Engine, principal: Principal, method: str, url: str, body: Any = None) -> FhirResponse:
    """One request through the FHIR endpoint as `principal` (what the bearer middleware hands it)."""
    endpoint = FhirEndpoint(Store(engine), Settings(database_url="sqlite://", base_url="http://t/fhir"))
    return endpoint._execute(FhirRequest.from_url(method, url, body=body), "http://t/fhir", principal)


def json_of(response: FhirResponse) -> Any:
    import orjson

    body = response.body
    return orjson.loads(body if isinstance(body, bytes) else orjson.dumps(body))


def has_ins(resource: dict[str, Any]) -> bool:
    return any("1.2.250.1.213.1.4" in str(i.get("system")) for i in resource.get("identifier", []))


def test_other_actors_never_receive_an_unqualified_ins(client: TestClient, engine: Engine) -> None:
    recup = client.post("/fhir/Patient", json=patient(reliability=RECUP)).json()
    qual_traits = Traits("Durand", ("Anne",), PartialDate(1971, 12, 1), "female", "33063")
    qual_traits = Traits(**{**qual_traits.__dict__, "ins": make_nir(2, 1971, 12, "33063", 45)})
    qual = client.post("/fhir/Patient", json=patient(qual_traits)).json()
    assert has_ins(recup)  # the platform itself (system principal) keeps and sees it
    assert has_ins(json_of(run(engine, SYSTEM_PRINCIPAL, "GET", f"Patient/{recup['id']}")))

    read = json_of(run(engine, LAB, "GET", f"Patient/{recup['id']}"))
    assert not has_ins(read) and PROFILE_INS not in read.get("meta", {}).get("profile", [])
    assert read["name"] == recup["name"]  # only the INS is withheld
    assert not has_ins(json_of(run(engine, LAB, "GET", f"Patient/{recup['id']}/_history/1")))
    assert has_ins(json_of(run(engine, LAB, "GET", f"Patient/{qual['id']}")))

    for url in ("Patient", "Patient/_history", f"Patient/{recup['id']}/_history", "Patient?_summary=true"):
        bundle = json_of(run(engine, LAB, "GET", url))
        by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"] if "resource" in e}
        assert not has_ins(by_id[recup["id"]]), url
        if qual["id"] in by_id and url != "Patient?_summary=true":
            assert has_ins(by_id[qual["id"]]), url
    match = run(
        engine,
        LAB,
        "POST",
        "Patient/$match",
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "resource",
                    "resource": {k: recup[k] for k in ("resourceType", "name", "birthDate", "gender")},
                }
            ],
        },
    )
    entries = json_of(match)["entry"]
    assert entries and not any(has_ins(e["resource"]) for e in entries if "resource" in e)


def test_a_flagged_qualified_identity_is_not_shared(engine: Engine) -> None:
    from socle.referentials.identity.sharing import patient_for

    flagged = patient(reliability=Reliability("PROV", comments=("DOUT",)))
    assert has_ins(patient_for(flagged, SYSTEM_PRINCIPAL))
    assert not has_ins(patient_for(flagged, LAB))
    qualified = patient()
    assert patient_for(qualified, LAB) is qualified


def test_the_response_filter_walks_bundles_parameters_and_contained_resources() -> None:
    import orjson

    import socle.api.identity  # noqa: F401  (registers the identity filter)
    from socle.api.resource_hooks import filter_response

    recup = patient(reliability=RECUP, id="r1")
    qual = patient(id="q1")
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": orjson.Fragment(orjson.dumps(recup))},
            {"resource": orjson.Fragment(orjson.dumps(qual))},
            {"resource": {"resourceType": "Parameters", "parameter": [{"name": "p", "resource": recup}]}},
            {"resource": {"resourceType": "Observation", "contained": [recup], "status": "final"}},
        ],
    }
    response = FhirResponse(200, body)
    assert filter_response(response, SYSTEM_PRINCIPAL) is response  # Socle itself: untouched, not walked
    out = json_of(filter_response(response, LAB))
    assert not has_ins(out["entry"][0]["resource"]) and has_ins(out["entry"][1]["resource"])
    assert not has_ins(out["entry"][2]["resource"]["parameter"][0]["resource"])
    assert not has_ins(out["entry"][3]["resource"]["contained"][0])
    assert has_ins(recup)  # the input objects are not modified
    raw = FhirResponse(200, orjson.dumps(recup))
    assert not has_ins(json_of(filter_response(raw, LAB)))
    other = FhirResponse(200, orjson.dumps({"resourceType": "Observation", "status": "final"}))
    assert filter_response(other, LAB) is other  # no INS marker: passed through unparsed
