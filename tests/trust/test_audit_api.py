"""AuditEvents through the FHIR API (both backends): what each interaction records, denied
attempts, same-transaction atomicity, immutability, and the patient's listing with paging."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.fhir.validation import validate_resource
from socle.store.audit_tables import audit_event
from socle.store.repository import Store
from socle.trust.audit import chain
from socle.trust.audit.verify import verify
from socle.trust.auth.grants import token_response
from tests.conftest import system_token
from tests.server import MASTER_KEY, TEST_CLIENT

BASE = "http://testserver/fhir"


def _settings(**changes: Any) -> Settings:
    """Bearer protection off unless asked: these tests are about the audit, not tokens (the
    SYSTEM principal); `test_denied_attempts_are_recorded` switches it on."""
    values: dict[str, Any] = {"auth_required": False, "max_body_bytes": 2_000_000, **changes}
    return Settings(database_url="sqlite://", base_url=BASE, auth_master_key=MASTER_KEY, **values)


@pytest.fixture
def api(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(), store=Store(engine)), raise_server_exceptions=False) as client:
        yield client


def _patient(api: TestClient, family: str = "Durand") -> str:
    response = api.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _observation(patient: str, text: str = "x") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient}"},
    }


def _events(api: TestClient, query: str = "") -> list[dict[str, Any]]:
    response = api.get(f"/fhir/AuditEvent?_count=1000{query}")
    assert response.status_code == 200, response.text
    return [
        e["resource"]
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] == "AuditEvent"
    ]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_event)).scalar_one())


def _subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def _whats(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if "what" in e]


def test_every_interaction_kind_is_recorded(api: TestClient, engine: Engine) -> None:
    pid = _patient(api)
    created = api.post("/fhir/Observation", json=_observation(pid))
    oid = created.json()["id"]
    assert api.get(f"/fhir/Observation/{oid}").status_code == 200
    assert api.get(f"/fhir/Observation/{oid}/_history/1").status_code == 200
    assert api.put(f"/fhir/Observation/{oid}", json={**_observation(pid, "y"), "id": oid}).status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    headers = {"Content-Type": "application/json-patch+json"}
    assert (
        api.patch(
            f"/fhir/Observation/{oid}", content=__import__("orjson").dumps(patch), headers=headers
        ).status_code
        == 200
    )
    assert api.get(f"/fhir/Observation?subject=Patient/{pid}").status_code == 200
    assert api.get(f"/fhir/Observation/{oid}/_history").status_code == 200
    assert api.get(f"/fhir/Patient/{pid}/$everything").status_code == 200
    assert api.get(f"/fhir/Patient/{pid}/Observation").status_code == 200
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Observation/{oid}"}}],
    }
    assert api.post("/fhir", json=batch).status_code == 200
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": _observation(pid, "z"), "request": {"method": "POST", "url": "Observation"}}],
    }
    assert api.post("/fhir", json=transaction).status_code == 200
    assert api.delete(f"/fhir/Observation/{oid}").status_code in (200, 204)

    events = _events(api, f"&patient={pid}")
    seen = [(_subtype(e), e["action"]) for e in reversed(events)]  # oldest first
    assert seen == [
        ("create", "C"),  # the Patient
        ("create", "C"),
        ("read", "R"),
        ("vread", "R"),
        ("update", "U"),
        ("patch", "U"),
        ("search-type", "E"),
        ("history-instance", "R"),
        ("operation", "E"),
        ("search", "E"),
        ("batch", "R"),
        ("transaction", "C"),
        ("delete", "D"),
    ]
    for event in events:
        validate_resource(event, resource_type="AuditEvent")  # valid R4
        assert event["outcome"] == "0"
        assert f"Patient/{pid}" in _whats(event)
        assert any(a["requestor"] for a in event["agent"])
    read = next(e for e in events if _subtype(e) == "read")
    assert f"Observation/{oid}/_history/1" in _whats(read)
    search = next(e for e in events if _subtype(e) == "search-type")
    query = next(e["query"] for e in search["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(query).decode() == f"GET Observation?subject=Patient%2F{pid}"
    with engine.connect() as conn:
        assert verify(conn, _settings()).ok


def test_reads_without_patient_data_and_metadata_are_not_recorded(api: TestClient, engine: Engine) -> None:
    api.post("/fhir/Practitioner", json={"resourceType": "Practitioner", "name": [{"family": "Martin"}]})
    before = _count(engine)
    assert api.get("/fhir/metadata").status_code == 200
    assert api.get("/fhir/Practitioner").status_code == 200
    assert api.get("/fhir/AuditEvent").status_code == 200  # reading the trail does not grow it
    assert _count(engine) == before


def test_audit_rows_stay_out_of_system_history_and_search(api: TestClient) -> None:
    pid = _patient(api)
    for _ in range(3):
        assert api.get(f"/fhir/Patient/{pid}").status_code == 200
    history = api.get("/fhir/_history").json()
    assert [e["resource"]["resourceType"] for e in history["entry"]] == ["Patient"]
    assert api.get("/fhir?_type=AuditEvent").json().get("total", 0) == 0
    kinds = [_subtype(e) for e in _events(api, f"&patient={pid}")]
    assert kinds == ["history-system", "read", "read", "read", "create"]  # the history read shows the Patient


def test_a_failed_write_leaves_no_audit_event(api: TestClient, engine: Engine) -> None:
    pid = _patient(api)
    before = _count(engine)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _observation(pid), "request": {"method": "POST", "url": "Observation"}},
            {"resource": _observation("missing"), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    assert api.post("/fhir", json=transaction).status_code == 400
    assert api.put("/fhir/Observation/x", json={"resourceType": "Patient"}).status_code == 400
    assert _count(engine) == before
    assert api.get(f"/fhir/Observation?subject=Patient/{pid}").json()["total"] == 0


def test_a_failed_audit_append_rolls_the_write_back(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> list[int]:
        raise RuntimeError("audit storage unavailable")

    monkeypatch.setattr(chain, "append", broken)
    response = api.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Lost"}]})
    assert response.status_code == 500
    monkeypatch.undo()
    assert api.get("/fhir/Patient?family=Lost").json()["total"] == 0


def test_audit_events_cannot_be_written(api: TestClient, engine: Engine) -> None:
    pid = _patient(api)
    event = _events(api, f"&patient={pid}")[0]
    before = _count(engine)
    forged = {**event, "outcome": "4"}
    answers = [
        api.post("/fhir/AuditEvent", json={k: v for k, v in forged.items() if k != "id"}),
        api.put(f"/fhir/AuditEvent/{event['id']}", json=forged),
        api.patch(
            f"/fhir/AuditEvent/{event['id']}",
            content=b'[{"op":"replace","path":"/outcome","value":"4"}]',
            headers={"Content-Type": "application/json-patch+json"},
        ),
        api.delete(f"/fhir/AuditEvent/{event['id']}"),
        api.delete(f"/fhir/AuditEvent?patient={pid}"),
        api.post(
            "/fhir",
            json={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {k: v for k, v in forged.items() if k != "id"},
                        "request": {"method": "POST", "url": "AuditEvent"},
                    }
                ],
            },
        ),
    ]
    for answer in answers:
        assert answer.status_code == 405, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert answers[0].headers["allow"] == "GET, HEAD"
    assert _count(engine) == before
    assert api.get(f"/fhir/AuditEvent/{event['id']}").json() == event


def test_read_vread_and_unknown(api: TestClient) -> None:
    pid = _patient(api)
    event = _events(api, f"&patient={pid}")[0]
    assert api.get(f"/fhir/AuditEvent/{event['id']}").json() == event
    assert api.get(f"/fhir/AuditEvent/{event['id']}/_history/1").json() == event
    assert api.get(f"/fhir/AuditEvent/{event['id']}/_history/2").status_code == 404
    assert api.get("/fhir/AuditEvent/nope").status_code == 404


def test_patient_listing_pages_newest_first(api: TestClient) -> None:
    pid = _patient(api)
    other = _patient(api, "Autre")
    for _ in range(6):
        api.get(f"/fhir/Patient/{pid}")
        api.get(f"/fhir/Patient/{other}")
    first = api.get(f"/fhir/AuditEvent?patient=Patient/{pid}&_count=3").json()
    assert first["total"] == 7
    ids: list[str] = []
    recorded: list[str] = []
    page: dict[str, Any] | None = first
    while page is not None:
        for entry in page.get("entry", []):
            ids.append(entry["resource"]["id"])
            recorded.append(entry["resource"]["recorded"])
            assert f"Patient/{pid}" in _whats(entry["resource"])
        nxt = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        page = api.get(nxt.replace("http://testserver", "")).json() if nxt else None
    assert len(ids) == len(set(ids)) == 7
    assert recorded == sorted(recorded, reverse=True)
    compartment = api.get(f"/fhir/Patient/{pid}/AuditEvent?_count=100").json()
    assert [e["resource"]["id"] for e in compartment["entry"]] == ids
    oldest = api.get(f"/fhir/AuditEvent?patient={pid}&_sort=date&_count=100").json()
    assert [e["resource"]["id"] for e in oldest["entry"]] == ids[::-1]


def test_search_parameters(api: TestClient) -> None:
    pid = _patient(api)
    oid = api.post("/fhir/Observation", json=_observation(pid)).json()["id"]
    api.get(f"/fhir/Observation/{oid}")
    events = _events(api, f"&patient={pid}")
    agent = events[0]["agent"][0]["who"]
    who = agent.get("reference") or f"{agent['identifier']['system']}|{agent['identifier']['value']}"
    created = events[-1]["recorded"]

    def ids(query: str) -> set[str]:
        return {e["id"] for e in _events(api, f"&patient={pid}&{query}")}

    assert ids(f"entity=Observation/{oid}") == {e["id"] for e in events[:2]}
    assert ids("action=R") == {events[0]["id"]}
    assert ids("action=C,R") == {e["id"] for e in events}
    assert ids("outcome=4") == set()
    assert ids("subtype=http://hl7.org/fhir/restful-interaction|read") == {events[0]["id"]}
    assert ids(f"agent={who}") == ids(f"who={who}") == {e["id"] for e in events}
    assert ids("agent=Practitioner/nobody") == set()
    assert ids(f"date=gt{created}") == {e["id"] for e in events[:-1]}
    assert ids(f"date=le{created}") == {events[-1]["id"]}
    assert ids(f"date={created[:10]}") == {e["id"] for e in events}
    assert ids("date=lt2000-01-01") == set()
    assert ids(f"_id={events[1]['id']}") == {events[1]["id"]}
    bad = api.get("/fhir/AuditEvent?date=notadate")
    assert bad.status_code == 400
    lenient = api.get(f"/fhir/AuditEvent?patient={pid}&site=x").json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    strict = api.get(f"/fhir/AuditEvent?patient={pid}&site=x", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_capability_statement_advertises_audit_support(api: TestClient) -> None:
    statement = api.get("/fhir/metadata").json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in entry["interaction"]} == {"read", "vread", "history-instance", "search-type"}
    assert {"patient", "date", "agent", "entity", "action", "outcome"} <= {
        p["name"] for p in entry["searchParam"]
    }
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"create", "update", "delete"} <= {i["code"] for i in patient["interaction"]}


def test_audit_off_records_nothing(engine: Engine) -> None:
    with TestClient(create_app(_settings(audit=False), store=Store(engine))) as api:
        pid = _patient(api)
        assert api.get(f"/fhir/Patient/{pid}").status_code == 200
    assert _count(engine) == 0


def _token(engine: Engine, settings: Settings, scope: str) -> str:
    system_token(engine, settings)  # registers the test client
    with engine.begin() as conn:
        grant = {"sub": TEST_CLIENT, "client_id": TEST_CLIENT, "scope": scope, "kind": "app"}
        body = token_response(conn, settings, "http://testserver", grant, family=None, with_id_token=False)
    return str(body["access_token"])


def test_denied_attempts_are_recorded(engine: Engine) -> None:
    settings = _settings(auth_required=True)
    app = create_app(settings, store=Store(engine))
    full = _token(engine, settings, "system/*.cruds")
    narrow = _token(engine, settings, "system/Practitioner.rs")
    with TestClient(app, raise_server_exceptions=False) as api:
        pid = api.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "name": [{"family": "Durand"}]},
            headers={"Authorization": f"Bearer {full}"},
        ).json()["id"]
        assert api.get(f"/fhir/Patient/{pid}").status_code == 401
        assert api.get(f"/fhir/Patient/{pid}", headers={"Authorization": "Bearer forged"}).status_code == 401
        assert (
            api.get(f"/fhir/Patient/{pid}", headers={"Authorization": f"Bearer {narrow}"}).status_code == 403
        )
        listed = api.get(
            f"/fhir/AuditEvent?patient={pid}&outcome=4&_count=50", headers={"Authorization": f"Bearer {full}"}
        ).json()
    denied = [e["resource"] for e in listed["entry"]]
    assert len(denied) == 3
    for event in denied:
        validate_resource(event, resource_type="AuditEvent")
        assert (event["action"], _subtype(event), event["outcome"]) == ("R", "read", "4")
        assert event["outcomeDesc"]
        assert f"Patient/{pid}" in _whats(event)
        assert event["agent"][0]["network"]["address"]
    with engine.connect() as conn:
        assert verify(conn, settings).ok
