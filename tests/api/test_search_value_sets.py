"""Token `:in` / `:not-in` against value sets (R4 search.html#token), on both backends.

Value sets stored on the server (by url, url|version or ValueSet/id; compose with a concept list,
a whole code system, imported value sets, excludes; or a ready expansion) and those of the R4
core package.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
STRICT = {"Prefer": "handling=strict"}


def create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def observation(name: str, *codings: tuple[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "status": "final", "identifier": [{"value": name}]}
    body["code"] = {"coding": [{"system": s, "code": c} for s, c in codings]} if codings else {"text": name}
    return body


def value_set(url: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": url, "status": "active", **fields}


def found(client: TestClient, query: str, status: int = 200) -> list[str]:
    response = client.get(f"/fhir/{query}", headers=STRICT)
    assert response.status_code == status, response.text
    if status != 200:
        return []
    entries = response.json().get("entry", [])
    return sorted(
        e["resource"]["identifier"][0]["value"] if "identifier" in e["resource"] else e["resource"]["id"]
        for e in entries
    )


@pytest.fixture
def data(client: TestClient) -> dict[str, str]:
    create(client, observation("glucose", (LOINC, "2345-7")))
    create(client, observation("hba1c", (LOINC, "4548-4"), (SNOMED, "43396009")))
    create(client, observation("weight", (LOINC, "29463-7")))
    create(client, observation("snomed-only", (SNOMED, "27113001")))
    create(client, observation("no-code"))
    ids = {}
    ids["labs"] = create(
        client,
        value_set(
            "http://example.org/ValueSet/labs",
            version="1.0",
            compose={"include": [{"system": LOINC, "concept": [{"code": "2345-7"}, {"code": "4548-4"}]}]},
        ),
    )
    ids["expanded"] = create(
        client,
        value_set(
            "http://example.org/ValueSet/expanded",
            expansion={
                "timestamp": "2026-11-25T00:00:00Z",
                "contains": [
                    {"system": SNOMED, "code": "27113001"},
                    {"abstract": True, "contains": [{"system": LOINC, "code": "29463-7"}]},
                ],
            },
        ),
    )
    create(
        client,
        value_set(
            "http://example.org/ValueSet/labs-but-glucose",
            compose={
                "include": [{"valueSet": ["http://example.org/ValueSet/labs"]}],
                "exclude": [{"system": LOINC, "concept": [{"code": "2345-7"}]}],
            },
        ),
    )
    return ids


def test_in_a_stored_value_set(client: TestClient, data: dict[str, str]) -> None:
    labs = "http://example.org/ValueSet/labs"
    assert found(client, f"Observation?code:in={labs}") == ["glucose", "hba1c"]
    assert found(client, f"Observation?code:in={labs}|1.0") == ["glucose", "hba1c"]
    assert found(client, f"Observation?code:in=ValueSet/{data['labs']}") == ["glucose", "hba1c"]
    assert found(client, "Observation?code:in=http://example.org/ValueSet/labs-but-glucose") == ["hba1c"]
    assert found(client, "Observation?code:in=http://example.org/ValueSet/expanded") == [
        "snomed-only",
        "weight",
    ]
    # OR of two value sets, AND with another criterion
    both = f"{labs},http://example.org/ValueSet/expanded"
    assert found(client, f"Observation?code:in={both}") == ["glucose", "hba1c", "snomed-only", "weight"]
    assert found(client, f"Observation?code:in={both}&code={SNOMED}|43396009") == ["hba1c"]


def test_not_in_keeps_resources_without_a_matching_coding(client: TestClient, data: dict[str, str]) -> None:
    labs = "http://example.org/ValueSet/labs"
    assert found(client, f"Observation?code:not-in={labs}") == ["no-code", "snomed-only", "weight"]
    assert found(client, f"Observation?code:not-in={labs}&code:in=ValueSet/{data['expanded']}") == [
        "snomed-only",
        "weight",
    ]


def test_value_set_changes_take_effect_on_the_next_request(client: TestClient, data: dict[str, str]) -> None:
    labs = "http://example.org/ValueSet/labs"
    body = client.get(f"/fhir/ValueSet/{data['labs']}").json()
    body["compose"]["include"][0]["concept"] = [{"code": "29463-7"}]
    assert client.put(f"/fhir/ValueSet/{data['labs']}", json=body, headers=FHIR).status_code == 200
    assert found(client, f"Observation?code:in={labs}") == ["weight"]
    assert found(client, f"Observation?code:in={labs}|1.0") == ["weight"]
    assert found(client, f"Observation?code:in={labs}|2.0", 400) == []  # no such version here
    assert client.delete(f"/fhir/ValueSet/{data['labs']}").status_code == 204
    assert found(client, f"Observation?code:in={labs}", 400) == []


def test_in_a_core_package_value_set(client: TestClient) -> None:
    for family, gender in (("Ann", "female"), ("Bob", "male"), ("Cid", None)):
        body: dict[str, Any] = {"resourceType": "Patient", "id": family.lower(), "name": [{"family": family}]}
        if gender:
            body["gender"] = gender
        assert client.put(f"/fhir/Patient/{body['id']}", json=body, headers=FHIR).status_code == 201
    genders = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert found(client, f"Patient?gender:in={genders}") == ["ann", "bob"]
    assert found(client, f"Patient?gender:not-in={genders}") == ["cid"]
    # through a chain: Observations of patients with a gender from the value set
    obs = observation("of-ann") | {"subject": {"reference": "Patient/ann"}}
    create(client, obs)
    assert found(client, f"Observation?subject:Patient.gender:in={genders}") == ["of-ann"]
    assert found(client, f"Patient?_has:Observation:subject:code:not-in={genders}") == ["ann"]


def test_value_sets_that_cannot_be_searched_by(client: TestClient) -> None:
    create(
        client,
        value_set(
            "http://example.org/ValueSet/filtered",
            compose={
                "include": [
                    {"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}
                ]
            },
        ),
    )
    create(
        client, value_set("http://example.org/ValueSet/all-snomed", compose={"include": [{"system": SNOMED}]})
    )
    for url in (
        "http://example.org/ValueSet/nowhere",
        "http://example.org/ValueSet/filtered",  # needs a terminology server
        "http://example.org/ValueSet/all-snomed",  # a code system Socle does not hold
        "ValueSet/missing",
    ):
        response = client.get(f"/fhir/Observation?code:in={url}", headers=STRICT)
        assert response.status_code == 400, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
