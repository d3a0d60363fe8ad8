"""Compartment search (R4 §3.1.0.9.4) and Patient/$everything, including over the Synthea bundles."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.test_search import FHIR, create, ids, link, outcome, search, walk
from tests.conftest import synthea_bundles


@pytest.fixture
def records(client: TestClient) -> dict[str, str]:
    """Two patients; O2 is about P2 but performed by P1, so it is in BOTH compartments."""
    made: dict[str, str] = {}
    made["Org"] = create(client, {"resourceType": "Organization", "name": "Clinic"})
    made["Dr"] = create(client, {"resourceType": "Practitioner", "name": [{"family": "House"}]})
    made["Med"] = create(client, {"resourceType": "Medication", "code": {"text": "aspirin"}})
    made["P1"] = create(
        client,
        {"resourceType": "Patient", "managingOrganization": {"reference": f"Organization/{made['Org']}"}},
    )
    made["P2"] = create(client, {"resourceType": "Patient"})
    obs = {"resourceType": "Observation", "status": "final"}
    made["O1"] = create(
        client,
        {
            **obs,
            "code": {"coding": [{"system": "http://loinc.org", "code": "1-1"}]},
            "subject": {"reference": f"Patient/{made['P1']}"},
            "performer": [{"reference": f"Practitioner/{made['Dr']}"}],
        },
    )
    made["O2"] = create(
        client,
        {
            **obs,
            "code": {"coding": [{"system": "http://loinc.org", "code": "2-2"}]},
            "subject": {"reference": f"Patient/{made['P2']}"},
            "performer": [{"reference": f"Patient/{made['P1']}"}],
        },
    )
    made["C1"] = create(
        client,
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{made['P1']}"},
            "code": {"text": "flu"},
        },
    )
    made["M1"] = create(
        client,
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{made['P1']}"},
            "medicationReference": {"reference": f"Medication/{made['Med']}"},
        },
    )
    return made


def names(records: dict[str, str], found: list[str]) -> list[str]:
    by_id = {v: k for k, v in records.items()}
    return sorted(by_id[i] for i in found)


def test_compartment_search(client: TestClient, records: dict[str, str]) -> None:
    p1, p2 = records["P1"], records["P2"]
    assert names(records, ids(search(client, f"/fhir/Patient/{p1}/Observation"))) == ["O1", "O2"]
    assert names(records, ids(search(client, f"/fhir/Patient/{p2}/Observation"))) == ["O2"]
    coded = search(client, f"/fhir/Patient/{p1}/Observation?code=http://loinc.org|2-2")
    assert names(records, ids(coded)) == ["O2"] and coded["total"] == 1
    assert link(coded, "self") == (
        f"http://testserver/fhir/Patient/{p1}/Observation?code=http%3A%2F%2Floinc.org%7C2-2"
    )
    every = search(client, f"/fhir/Patient/{p1}/*?_sort=_lastUpdated")
    assert [names(records, [i])[0] for i in ids(every)] == ["P1", "O1", "O2", "C1", "M1"]
    with_include = search(client, f"/fhir/Patient/{p1}/Observation?_include=Observation:performer")
    assert names(records, ids(with_include, "include")) == ["Dr", "P1"]
    assert ids(search(client, "/fhir/Patient/nobody/Observation")) == []
    assert search(client, f"/fhir/Patient/{p1}/Organization", 400)["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Encounter/{p1}/Observation").status_code == 400
    assert client.get(f"/fhir/Patient/{p1}/Nope").status_code == 404


def test_everything_of_one_patient(client: TestClient, records: dict[str, str]) -> None:
    bundle = search(client, f"/fhir/Patient/{records['P1']}/$everything")
    assert names(records, ids(bundle)) == ["C1", "M1", "O1", "O2", "P1"] and bundle["total"] == 5
    # Referenced from the compartment, outside it: O1.performer, M1.medication, P1.managingOrganization,
    # and O2.subject (another patient: referenced, hence returned; the access policy has the last word).
    assert names(records, ids(bundle, "include")) == ["Dr", "Med", "Org", "P2"]
    assert [e["search"]["mode"] for e in bundle["entry"]].count("include") == 4
    only = search(client, f"/fhir/Patient/{records['P2']}/$everything?_type=Observation,Patient")
    assert names(records, ids(only)) == ["O2", "P2"]
    assert names(records, ids(only, "include")) == ["P1"]  # O2.performer: a Patient, listed in _type
    search(client, "/fhir/Patient/nobody/$everything", 404)
    search(client, f"/fhir/Patient/{records['P1']}/$everything?_since=yesterday", 400)
    lenient = search(client, f"/fhir/Patient/{records['P1']}/$everything?start=2020&_count=0")
    assert [i["expression"][0] for i in outcome(lenient)] == ["start"] and lenient["total"] == 5
    strict = client.get(
        f"/fhir/Patient/{records['P1']}/$everything?start=2020", headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_everything_pages_and_since(client: TestClient, records: dict[str, str]) -> None:
    pages = walk(client, f"/fhir/Patient/{records['P1']}/$everything?_count=2")
    assert [names(records, ids(p)) for p in pages] == [["O1", "P1"], ["C1", "O2"], ["M1"]]
    assert [names(records, ids(p, "include")) for p in pages] == [["Dr", "Org"], ["P2"], ["Med"]]
    stamp = client.get(f"/fhir/Condition/{records['C1']}").json()["meta"]["lastUpdated"]
    recent = client.get(f"/fhir/Patient/{records['P1']}/$everything", params={"_since": stamp}).json()
    assert names(records, ids(recent)) == ["C1", "M1"]


def test_everything_type_level(client: TestClient, records: dict[str, str]) -> None:
    bundle = search(client, "/fhir/Patient/$everything")
    assert names(records, ids(bundle)) == ["C1", "M1", "O1", "O2", "P1", "P2"]
    assert names(records, ids(bundle, "include")) == ["Dr", "Med", "Org"]
    assert client.get("/fhir/Observation/$everything").status_code == 400
    statement = client.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {
        "name": "everything",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    } in (patient["operation"])
    assert (
        "Observation:subject" in patient["searchRevInclude"]
        and "Patient:organization" in patient["searchInclude"]
    )
    assert statement["rest"][0]["compartment"] == ["http://hl7.org/fhir/CompartmentDefinition/patient"]
    assert {"search-system"} <= {i["code"] for i in statement["rest"][0]["interaction"]}
    assert {p["name"] for p in statement["rest"][0]["searchParam"]} == {
        "_id",
        "_lastUpdated",
        "_tag",
        "_profile",
        "_security",
        "_source",
    }


def _located(entries: list[dict[str, Any]]) -> set[str]:
    return {"/".join(e["response"]["location"].split("/")[:2]) for e in entries}


def test_everything_returns_each_synthea_patient_bundle(client: TestClient) -> None:
    """Each Synthea patient bundle holds the patient, its records and the Organizations and
    Practitioners they reference: exactly what `$everything` must give back, across pages."""
    loaded: list[set[str]] = []
    for name, bundle in synthea_bundles():
        response = client.post("/fhir", json=bundle, headers={**FHIR, "Prefer": "return=minimal"})
        assert response.status_code == 200, name
        if not name.startswith(("hospital", "practitioner")):
            loaded.append(_located(response.json()["entry"]))
    assert len(loaded) == 21
    for expected in loaded[::5]:
        patient = next(ref for ref in expected if ref.startswith("Patient/"))
        found: set[str] = set()
        matches = 0
        for page in walk(client, f"/fhir/{patient}/$everything?_count=40"):
            for entry in page["entry"]:
                found.add(entry["fullUrl"].removeprefix("http://testserver/fhir/"))
                matches += entry["search"]["mode"] == "match"
        assert found == expected
        assert matches == len({r for r in expected if not r.startswith(("Organization/", "Practitioner/"))})
