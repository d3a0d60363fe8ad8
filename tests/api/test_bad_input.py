"""Bad input gets a clear 4xx OperationOutcome saying what and where, and writes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"]
    return body


def count_patients(client: TestClient) -> int:
    return len(client.get("/fhir/Patient/_history").json().get("entry", []))


def test_malformed_json(client: TestClient) -> None:
    body = outcome(client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR), 400)
    assert "not valid JSON" in body["issue"][0]["diagnostics"]
    assert "line 1" in body["issue"][0]["diagnostics"]


def test_wrong_resource_type(client: TestClient) -> None:
    body = outcome(client.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=FHIR), 400)
    assert "resourceType" in body["issue"][0]["diagnostics"]
    outcome(client.post("/fhir/Patient", json=[1, 2], headers=FHIR), 400)


def test_unknown_element_names_its_path(client: TestClient) -> None:
    body = outcome(
        client.post(
            "/fhir/Patient", json={"resourceType": "Patient", "name": [{"famly": "X"}]}, headers=FHIR
        ),
        400,
    )
    assert any("Patient.name[0].famly" in (i.get("expression") or [""])[0] for i in body["issue"])
    assert count_patients(client) == 0


def test_invalid_reference(client: TestClient) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/does-not-exist"},
    }
    body = outcome(client.post("/fhir/Observation", json=obs, headers=FHIR), 400)
    assert "Patient/does-not-exist" in body["issue"][0]["diagnostics"]
    obs["subject"] = {"reference": "urn:uuid:0f1c3c3e-0000-4000-8000-000000000000"}
    outcome(client.post("/fhir/Observation", json=obs, headers=FHIR), 400)
    obs["subject"] = {"reference": "Banana/1"}
    outcome(client.post("/fhir/Observation", json=obs, headers=FHIR), 400)


def test_body_over_the_size_limit(client: TestClient) -> None:
    big = {"resourceType": "Patient", "name": [{"family": "x" * 3_000_000}]}
    outcome(client.post("/fhir/Patient", content=orjson.dumps(big), headers=FHIR), 413)


def test_media_types(client: TestClient) -> None:
    xml = b'<Patient xmlns="http://hl7.org/fhir"/>'
    outcome(client.post("/fhir/Patient", content=xml, headers={"Content-Type": "application/fhir+xml"}), 415)
    outcome(client.post("/fhir/Patient", content=b"hello", headers={"Content-Type": "text/plain"}), 415)
    outcome(client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    outcome(client.get("/fhir/metadata?_format=xml"), 406)
    assert client.get("/fhir/metadata", headers={"Accept": "text/html,*/*;q=0.8"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/fhir/Patient/nope", 404),
        ("GET", "/fhir/NotAType/1", 404),
        ("GET", "/nothing/here", 404),
        ("GET", "/fhir/Patient/1/_history/1/extra/path", 404),
        ("DELETE", "/fhir/Patient", 405),
        ("POST", "/fhir/Patient/123", 405),
        ("GET", "/fhir/Patient/$unknown-op", 400),
    ],
)
def test_unknown_routes_are_fhir_errors(client: TestClient, method: str, path: str, status: int) -> None:
    outcome(client.request(method, path), status)


def test_empty_body(client: TestClient) -> None:
    outcome(client.post("/fhir/Patient", content=b"", headers=FHIR), 400)
