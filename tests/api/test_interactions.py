"""The RESTful interactions on instances and types, on both backends (R4 §3.1.0)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Martin", "given": ["Hélène"]}], **extra}


def create(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers={**FHIR, **headers})
    assert response.status_code == 201, response.text
    return response


def test_create_assigns_id_version_and_headers(client: TestClient) -> None:
    response = create(client, patient(id="client-chosen", meta={"versionId": "99", "tag": [{"code": "x"}]}))
    body = response.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["tag"] == [{"code": "x"}]
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert "Last-Modified" in response.headers


def test_read_vread_update_history(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    read = client.get(f"/fhir/Patient/{id}")
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "Martin"

    updated = client.put(f"/fhir/Patient/{id}", json=patient(id=id, gender="female"), headers=FHIR)
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2" and updated.headers["ETag"] == 'W/"2"'

    v1 = client.get(f"/fhir/Patient/{id}/_history/1")
    assert v1.status_code == 200 and "gender" not in v1.json()
    assert client.get(f"/fhir/Patient/{id}/_history/2").json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{id}/_history/3").status_code == 404

    history = client.get(f"/fhir/Patient/{id}/_history").json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]


def test_update_as_create_and_id_rules(client: TestClient) -> None:
    created = client.put("/fhir/Patient/chosen-id", json=patient(id="chosen-id"), headers=FHIR)
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/Patient/chosen-id/_history/1")
    mismatch = client.put("/fhir/Patient/chosen-id", json=patient(id="other"), headers=FHIR)
    assert mismatch.status_code == 400
    assert mismatch.json()["resourceType"] == "OperationOutcome"
    missing_id = client.put("/fhir/Patient/chosen-id", json=patient(), headers=FHIR)
    assert missing_id.status_code == 400
    bad_id = client.put("/fhir/Patient/bad_id!", json=patient(id="bad_id!"), headers=FHIR)
    assert bad_id.status_code == 400


def test_if_match_versioned_update(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    ok = client.put(
        f"/fhir/Patient/{id}", json=patient(id=id, gender="male"), headers={**FHIR, "If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200
    stale = client.put(
        f"/fhir/Patient/{id}", json=patient(id=id, gender="other"), headers={**FHIR, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/fhir/Patient/{id}").json()["gender"] == "male"
    garbage = client.put(f"/fhir/Patient/{id}", json=patient(id=id), headers={**FHIR, "If-Match": "banana"})
    assert garbage.status_code == 400


def test_conditional_read_304(client: TestClient) -> None:
    response = create(client, patient())
    id = response.json()["id"]
    assert client.get(f"/fhir/Patient/{id}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/fhir/Patient/{id}", headers={"If-None-Match": 'W/"7"'}).status_code == 200
    later = "Tue, 01 Jan 2999 00:00:00 GMT"
    assert client.get(f"/fhir/Patient/{id}", headers={"If-Modified-Since": later}).status_code == 304
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/fhir/Patient/{id}", headers={"If-Modified-Since": earlier}).status_code == 200


def test_delete_is_a_tombstone_version(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    deleted = client.delete(f"/fhir/Patient/{id}")
    assert deleted.status_code == 204 and deleted.headers["ETag"] == 'W/"2"'
    gone = client.get(f"/fhir/Patient/{id}")
    assert gone.status_code == 410 and gone.json()["resourceType"] == "OperationOutcome"
    assert client.delete(f"/fhir/Patient/{id}").status_code == 204  # idempotent, no new version
    history = client.get(f"/fhir/Patient/{id}/_history").json()["entry"]
    assert [e["request"]["method"] for e in history] == ["DELETE", "POST"]
    assert "resource" not in history[0]
    assert client.get(f"/fhir/Patient/{id}/_history/1").status_code == 200
    recreated = client.put(f"/fhir/Patient/{id}", json=patient(id=id), headers=FHIR)
    assert recreated.status_code == 201 and recreated.json()["meta"]["versionId"] == "3"


def test_prefer_return(client: TestClient) -> None:
    minimal = create(client, patient(), Prefer="return=minimal")
    assert minimal.content == b"" and minimal.headers["Location"]
    outcome = create(client, patient(), Prefer="return=OperationOutcome")
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert create(client, patient(), Prefer="return=representation").json()["resourceType"] == "Patient"


def test_json_patch(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    ops = [
        {"op": "add", "path": "/gender", "value": "female"},
        {"op": "replace", "path": "/name/0/family", "value": "Durand"},
    ]
    patched = client.patch(
        f"/fhir/Patient/{id}",
        content=orjson.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["gender"] == "female" and patched.json()["name"][0]["family"] == "Durand"
    assert patched.json()["meta"]["versionId"] == "2"
    invalid = [{"op": "add", "path": "/gender", "value": "banana"}]
    rejected = client.patch(
        f"/fhir/Patient/{id}",
        content=orjson.dumps(invalid),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert rejected.status_code == 400
    bad_path = [{"op": "remove", "path": "/nothing/here"}]
    assert (
        client.patch(
            f"/fhir/Patient/{id}",
            content=orjson.dumps(bad_path),
            headers={"Content-Type": "application/json-patch+json"},
        ).status_code
        == 400
    )
    assert client.get(f"/fhir/Patient/{id}").json()["meta"]["versionId"] == "2"


def test_conditional_create_update_delete(client: TestClient) -> None:
    # An INS identifier: a valid NIR (key, and sex 2 agreeing with the later gender female), as the
    # identity rules check on every write.
    ident = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "284051234567832"}
    body = patient(identifier=[ident])
    criteria = "identifier=urn:oid:1.2.250.1.213.1.4.8|284051234567832"
    first = create(client, body, **{"If-None-Exist": criteria})
    again = client.post("/fhir/Patient", json=body, headers={**FHIR, "If-None-Exist": criteria})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    updated = client.put(f"/fhir/Patient?{criteria}", json={**body, "gender": "female"}, headers=FHIR)
    assert updated.status_code == 200 and updated.json()["id"] == first.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    fresh = client.put(
        "/fhir/Patient?identifier=urn:x|new",
        json=patient(identifier=[{"system": "urn:x", "value": "new"}]),
        headers=FHIR,
    )
    assert fresh.status_code == 201

    create(client, patient(identifier=[ident]))  # now two match
    assert (
        client.post("/fhir/Patient", json=body, headers={**FHIR, "If-None-Exist": criteria}).status_code
        == 412
    )
    assert client.delete(f"/fhir/Patient?{criteria}").status_code == 412
    assert client.delete("/fhir/Patient?identifier=urn:x|new").status_code == 204
    assert client.get(f"/fhir/Patient/{fresh.json()['id']}").status_code == 410


def test_history_type_system_since_and_paging(client: TestClient) -> None:
    ids = [create(client, patient()).json()["id"] for _ in range(5)]
    create(client, {"resourceType": "Organization", "name": "CHU"})
    page = client.get("/fhir/Patient/_history?_count=2").json()
    seen = [e["resource"]["id"] for e in page["entry"]]
    while next_link := next((x["url"] for x in page["link"] if x["relation"] == "next"), None):
        create(client, patient())  # a concurrent write must not shift the pages
        page = client.get(next_link.replace("http://testserver", "")).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert seen == list(reversed(ids))
    system = client.get("/fhir/_history").json()
    assert {e["resource"]["resourceType"] for e in system["entry"]} == {"Patient", "Organization"}
    since = client.get("/fhir/Patient/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
    assert since.get("entry", []) == []
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400


def test_history_at(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    first = client.get(f"/fhir/Patient/{id}").json()["meta"]["lastUpdated"]
    client.put(f"/fhir/Patient/{id}", json=patient(id=id, gender="male"), headers=FHIR)
    at_first = client.get(f"/fhir/Patient/{id}/_history", params={"_at": first}).json()
    assert [e["resource"]["meta"]["versionId"] for e in at_first["entry"]] == ["1"]


def test_capability_statement_is_generated(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch", "history-system"}
    patient_caps = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient_caps["interaction"]}
    assert codes == {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert patient_caps["conditionalDelete"] == "single" and patient_caps["versioning"] == "versioned-update"
    assert len(rest["resource"]) == 146


def test_pretty_and_format(client: TestClient) -> None:
    id = create(client, patient()).json()["id"]
    pretty = client.get(f"/fhir/Patient/{id}?_pretty=true")
    assert b'\n  "resourceType"' in pretty.content
    assert client.get(f"/fhir/Patient/{id}?_format=json").status_code == 200
    plain = client.get(f"/fhir/Patient/{id}", headers={"Accept": "application/json"})
    assert plain.headers["Content-Type"].startswith("application/json")
