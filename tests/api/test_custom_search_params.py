"""Custom SearchParameter resources, `$reindex` and `_text`/`_content` through the API, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.fhir.search_params import registry
from socle.services import search_parameters
from socle.store.repository import Store
from tests.server import running_server

FHIR = {"Content-Type": "application/fhir+json"}
EXTENSION = "http://example.org/birth-place"


@pytest.fixture(autouse=True)
def _core_registry() -> Iterator[None]:
    """Custom SearchParameters live in the process-wide registry: start and end each test without."""
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])
    yield
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])


def birth_place(expression: str = f"Patient.extension('{EXTENSION}').valueString") -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": "http://example.org/SearchParameter/birth-place",
        "name": "BirthPlace",
        "status": "active",
        "description": "Where the patient was born",
        "code": "birth-place",
        "base": ["Patient"],
        "type": "string",
        "expression": expression,
    }


def patient(family: str, place: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family}],
        "extension": [{"url": EXTENSION, "valueString": place}],
    }


def create(client: TestClient | httpx.Client, body: dict[str, Any], base: str = "/fhir") -> str:
    response = client.post(f"{base}/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def found(client: TestClient | httpx.Client, query: str, base: str = "/fhir") -> list[str]:
    response = client.get(f"{base}/Patient?{query}", headers={"Prefer": "handling=strict"})
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["name"][0]["family"] for e in response.json().get("entry", []))


def counts(parameters: dict[str, Any]) -> dict[str, Any]:
    assert parameters["resourceType"] == "Parameters"
    out: dict[str, Any] = {}
    for p in parameters["parameter"]:
        if p["name"] == "type":
            parts = {
                part["name"]: next(v for k, v in part.items() if k.startswith("value")) for part in p["part"]
            }
            out[parts["type"]] = parts["count"]
        else:
            out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out


def test_custom_parameter_end_to_end(client: TestClient) -> None:
    create(client, patient("Dupont", "Lyon"))
    response = client.get("/fhir/Patient?birth-place=lyon", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400  # not a parameter yet

    sp_id = create(client, birth_place())
    create(client, patient("Martin", "Paris"))
    assert found(client, "birth-place=paris") == ["Martin"]  # new writes are indexed at once
    assert found(client, "birth-place=lyon") == []  # older ones wait for $reindex

    response = client.post("/fhir/Patient/$reindex")
    assert response.status_code == 200, response.text
    assert counts(response.json()) == {"resources": 2, "batches": 1, "seconds": pytest.approx(0, abs=60)} | {
        "Patient": 2
    }
    assert found(client, "birth-place=lyon") == ["Dupont"]
    assert found(client, "birth-place:exact=Lyon") == ["Dupont"]

    # An update of the SearchParameter changes what it indexes (here: any value[x] of the extension).
    changed = client.get(f"/fhir/SearchParameter/{sp_id}").json()
    changed["expression"] = f"Patient.extension('{EXTENSION}').value | Patient.name.family"
    assert client.put(f"/fhir/SearchParameter/{sp_id}", json=changed, headers=FHIR).status_code == 200
    assert client.post("/fhir/$reindex").status_code == 200
    assert found(client, "birth-place=martin") == ["Martin"]

    assert client.delete(f"/fhir/SearchParameter/{sp_id}").status_code == 204
    response = client.get("/fhir/Patient?birth-place=lyon", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400  # forgotten again


def test_update_after_a_new_parameter_indexes_it(client: TestClient) -> None:
    """Updates rewrite only the index rows that change, except for types with custom parameters:
    rows written before the parameter existed lack its values, so an update must write them."""
    patient_id = create(client, patient("Dupont", "Lyon"))
    create(client, birth_place())
    body = client.get(f"/fhir/Patient/{patient_id}").json()
    body["gender"] = "female"  # the extension (the new parameter's value) is unchanged
    assert client.put(f"/fhir/Patient/{patient_id}", json=body, headers=FHIR).status_code == 200
    assert found(client, "birth-place=lyon") == ["Dupont"]


def test_unusable_parameter_is_refused(client: TestClient) -> None:
    response = client.post("/fhir/SearchParameter", json=birth_place("Patient.nosuchelement"), headers=FHIR)
    assert response.status_code == 422, response.text
    assert "cannot be compiled for Patient" in response.text
    bundle = client.get("/fhir/SearchParameter").json()
    assert bundle.get("entry", []) == []  # the transaction was rolled back
    assert registry().get("Patient", "birth-place") is None
    wrong_base = birth_place() | {"base": ["Patients"]}
    assert client.post("/fhir/SearchParameter", json=wrong_base, headers=FHIR).status_code in (400, 422)


def test_parameters_stored_by_another_process_are_picked_up(engine: Engine, client: TestClient) -> None:
    create(client, patient("Dupont", "Lyon"))
    store = Store(engine)  # as another worker or `socle load` would: straight into the database
    with store.write() as conn:
        store.create(conn, birth_place())
    assert registry().get("Patient", "birth-place") is None
    assert client.post("/fhir/$reindex").status_code == 200
    assert found(client, "birth-place=lyon") == ["Dupont"]
    # A restart: a fresh process knows only the core parameters until its first request.
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])
    assert found(client, "birth-place=lyon") == ["Dupont"]


def test_two_server_processes_share_custom_parameters(database_url: str) -> None:
    with running_server(database_url) as first, running_server(database_url) as second:
        # Each server is its own token issuer (its origin): one operator token per server.
        with (
            httpx.Client(timeout=30, headers=first.headers) as to_first,
            httpx.Client(timeout=30, headers=second.headers) as to_second,
        ):
            create(to_first, patient("Dupont", "Lyon"), first.url)
            create(to_first, birth_place(), first.url)
            create(to_second, patient("Martin", "Paris"), second.url)  # second indexes it: registry is fresh
            assert found(to_first, "birth-place=paris", first.url) == ["Martin"]
            assert to_second.post(f"{second.url}/$reindex").status_code == 200
            assert found(to_first, "birth-place=lyon", first.url) == ["Dupont"]


def test_reindex_counts_and_errors(client: TestClient) -> None:
    for family in ("A", "B", "C"):
        create(client, patient(family, "Nantes"))
    create(client, {"resourceType": "Organization", "name": "Clinique"})
    response = client.post("/fhir/$reindex?batchSize=2")
    assert response.status_code == 200, response.text
    result = counts(response.json())
    assert (result["resources"], result["batches"], result["Patient"], result["Organization"]) == (4, 2, 3, 1)
    body = {"resourceType": "Parameters", "parameter": [{"name": "batchSize", "valueInteger": 3}]}
    result = counts(client.post("/fhir/Patient/$reindex", json=body, headers=FHIR).json())
    assert (result["resources"], result["batches"]) == (3, 1)
    assert client.post("/fhir/$reindex?batchSize=0").status_code == 400
    assert client.post("/fhir/Patients/$reindex").status_code == 404
    assert client.get("/fhir/$reindex").status_code == 405
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Parameters"}, "request": {"method": "POST", "url": "$reindex"}}
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert "cannot run inside a batch or transaction Bundle" in response.text


def test_text_and_content_search(client: TestClient) -> None:
    create(
        client,
        patient("Dupont", "Lyon")
        | {"text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hélène</div>'}},
    )
    create(client, patient("Martin", "Paris"))
    assert found(client, "_text=helene") == ["Dupont"]
    assert found(client, "_content=paris") == ["Martin"]
    assert found(client, "_content=lyon OR paris") == ["Dupont", "Martin"]
    response = client.get("/fhir/Patient?_content=-paris")
    assert response.status_code == 400
    assert "needs a word" in response.text
