"""Batch and transaction Bundles (R4 §3.1.0.11), and the Synthea bundles end to end."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from tests.conftest import synthea_bundles

FHIR = {"Content-Type": "application/fhir+json"}
PATIENT_URN = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def observation(subject: str, value: float = 72) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def count(client: TestClient, resource_type: str) -> int:
    return len(client.get(f"/fhir/{resource_type}?_count=1000").json().get("entry", []))


def test_transaction_resolves_urn_references(client: TestClient) -> None:
    bundle = transaction(
        post(observation(PATIENT_URN), "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"),
        post({"resourceType": "Patient", "name": [{"family": "Petit"}]}, PATIENT_URN),
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location = result["entry"][1]["response"]["location"]
    patient_id = patient_location.split("/")[1]
    obs_id = result["entry"][0]["response"]["location"].split("/")[1]
    stored = client.get(f"/fhir/Observation/{obs_id}").json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_is_all_or_nothing(client: TestClient) -> None:
    bad = observation(PATIENT_URN)
    bad["status"] = "not-a-status"
    bundle = transaction(
        post({"resourceType": "Patient"}, PATIENT_URN),
        post(observation(PATIENT_URN)),
        post(bad),
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert issue["expression"][0].startswith("Bundle.entry[2].resource")
    assert count(client, "Patient") == 0 and count(client, "Observation") == 0


def test_transaction_failure_after_writes_rolls_back(client: TestClient) -> None:
    """A later entry (a stale If-Match) fails after the creates ran: nothing remains."""
    existing = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR).json()
    bundle = transaction(
        post({"resourceType": "Patient", "gender": "male"}),
        {
            "resource": {"resourceType": "Patient", "id": existing["id"], "gender": "female"},
            "request": {"method": "PUT", "url": f"Patient/{existing['id']}", "ifMatch": 'W/"9"'},
        },
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 412
    assert count(client, "Patient") == 1
    assert "gender" not in client.get(f"/fhir/Patient/{existing['id']}").json()


def test_transaction_processing_order_and_conditionals(client: TestClient) -> None:
    doomed = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR).json()
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": "urn:finess", "value": "750712184"}],
        "name": "AP-HP",
    }
    client.post("/fhir/Organization", json=org, headers=FHIR)
    bundle = transaction(
        {"request": {"method": "GET", "url": f"Patient/{doomed['id']}"}},
        {
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:ins", "value": "1"}],
                "managingOrganization": {"reference": "Organization?identifier=urn:finess|750712184"},
            },
            "request": {"method": "PUT", "url": "Patient?identifier=urn:ins|1"},
        },
        post(org, ifNoneExist="identifier=urn:finess|750712184"),
        {"request": {"method": "DELETE", "url": f"Patient/{doomed['id']}"}},
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [e["response"]["status"] for e in result["entry"]]
    # The GET runs after the DELETE, whatever its place in the Bundle.
    assert statuses == ["410 Gone", "201 Created", "200 OK", "204 No Content"]
    assert count(client, "Organization") == 1
    created = client.get("/fhir/Patient?identifier=urn:ins|1").json()["entry"][0]["resource"]
    assert created["managingOrganization"]["reference"].startswith("Organization/")


def test_conditional_reference_must_match_one(client: TestClient) -> None:
    bundle = transaction(post(observation("Patient?identifier=urn:ins|nobody")))
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 412
    assert "Bundle.entry[0]" in response.json()["issue"][0]["diagnostics"]


def test_batch_entries_are_independent(client: TestClient) -> None:
    bad = observation("Patient/missing")
    good = {"resourceType": "Patient", "name": [{"family": "Bernard"}]}
    bundle = transaction(
        post(good),
        post(bad),
        {"request": {"method": "GET", "url": "Patient/unknown"}},
        {"request": {"method": "BANANA", "url": "Patient"}},
        kind="batch",
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "400", "404", "400"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert count(client, "Patient") == 1


def test_patch_in_a_transaction(client: TestClient) -> None:
    patient = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR).json()
    ops = orjson.dumps([{"op": "add", "path": "/gender", "value": "female"}])
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    bundle = transaction(
        {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{patient['id']}"}}
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text
    assert client.get(f"/fhir/Patient/{patient['id']}").json()["gender"] == "female"


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Patient"},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient"}}],
        },
        {"resourceType": "Bundle", "type": "transaction", "entry": "nope"},
    ],
)
def test_malformed_bundles(client: TestClient, bundle: dict[str, Any]) -> None:
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def _rewrite(node: Any, ids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (ids.get(v, v) if k == "reference" else _rewrite(v, ids)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, ids) for v in node]
    return node


def test_synthea_bundles_load_and_read_back_equal(client: TestClient) -> None:
    bundles = synthea_bundles()
    assert len(bundles) == 23
    total = 0
    for name, bundle in bundles:
        sent = copy.deepcopy(bundle)
        response = client.post("/fhir", json=bundle, headers={**FHIR, "Prefer": "return=minimal"})
        assert response.status_code == 200, f"{name}: {response.text[:500]}"
        entries = response.json()["entry"]
        assert all(e["response"]["status"] == "201 Created" for e in entries)
        ids = {
            entry["fullUrl"]: "/".join(result["response"]["location"].split("/")[:2])
            for entry, result in zip(sent["entry"], entries, strict=True)
        }
        for entry, result in zip(sent["entry"], entries, strict=True):
            stored = client.get("/fhir/" + "/".join(result["response"]["location"].split("/")[:2])).json()
            assert _strip(stored) == _rewrite(_strip(entry["resource"]), ids), name
            assert stored["meta"]["versionId"] == "1"
            if "tag" in entry["resource"].get("meta", {}):
                assert stored["meta"]["tag"] == entry["resource"]["meta"]["tag"]
            total += 1
    assert total == 2036
