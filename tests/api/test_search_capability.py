"""Custom SearchParameters in the CapabilityStatement; the read path's registry check. Both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.fhir.search_params import registry
from socle.services import search_parameters
from socle.store.repository import Store

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(autouse=True)
def _core_registry() -> Iterator[None]:
    """Custom SearchParameters live in the process-wide registry: start and end each test without."""
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])
    yield
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])


def nickname(code: str = "nickname") -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": f"http://example.org/SearchParameter/{code}",
        "name": "Nickname",
        "status": "active",
        "description": "A name the patient goes by",
        "code": code,
        "base": ["Patient", "RelatedPerson"],
        "type": "string",
        "expression": "Patient.name.where(use = 'nickname').given | RelatedPerson.name.given",
    }


def advertised(client: TestClient, resource_type: str) -> dict[str, dict[str, Any]]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200, response.text
    resources = response.json()["rest"][0]["resource"]
    entry = next(r for r in resources if r["type"] == resource_type)
    return {p["name"]: p for p in entry["searchParam"]}


def test_custom_parameter_is_advertised_until_deleted(client: TestClient) -> None:
    assert "nickname" not in advertised(client, "Patient")
    assert "family" in advertised(client, "Patient")  # core parameters are there throughout

    response = client.post("/fhir/SearchParameter", json=nickname(), headers=FHIR)
    assert response.status_code == 201, response.text
    sp_id = response.json()["id"]
    for resource_type in ("Patient", "RelatedPerson"):
        param = advertised(client, resource_type)["nickname"]
        assert param == {
            "name": "nickname",
            "definition": "http://example.org/SearchParameter/nickname",
            "type": "string",
        }
    assert "nickname" not in advertised(client, "Practitioner")

    assert client.delete(f"/fhir/SearchParameter/{sp_id}").status_code == 204
    assert "nickname" not in advertised(client, "Patient")
    assert "family" in advertised(client, "Patient")


def test_reads_check_other_processes_changes_at_most_every_staleness_bound(
    engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read reuses the last check of the same database for READ_STALENESS seconds; a write never."""
    clock = [1000.0]
    monkeypatch.setattr(search_parameters.time, "monotonic", lambda: clock[0])
    assert client.get("/fhir/Patient").status_code == 200  # checks: nothing stored
    store = Store(engine)  # another process writes a SearchParameter straight into the database
    with store.write() as conn:
        store.create(conn, nickname())

    clock[0] += search_parameters.READ_STALENESS / 2
    assert client.get("/fhir/Patient?nickname=bob", headers={"Prefer": "handling=strict"}).status_code == 400
    assert "nickname" not in advertised(client, "Patient")  # still within the bound

    clock[0] += search_parameters.READ_STALENESS
    assert client.get("/fhir/Patient?nickname=bob", headers={"Prefer": "handling=strict"}).status_code == 200
    assert "nickname" in advertised(client, "Patient")

    with store.write() as conn:  # deleted by the other process: a write here sees it at once
        key = conn.exec_driver_sql(
            "SELECT id FROM resource WHERE resource_type = 'SearchParameter'"
        ).scalar_one()
        store.delete(conn, "SearchParameter", key)
    patient = {"resourceType": "Patient", "name": [{"use": "nickname", "given": ["Bob"]}]}
    assert client.post("/fhir/Patient", json=patient, headers=FHIR).status_code == 201
    assert "nickname" not in advertised(client, "Patient")


def test_each_database_is_checked_on_its_own() -> None:
    """The bound is per database: a check of one never stands for another (tests, the CLI)."""
    sync = search_parameters.SearchParameterSync()
    sync._generation = (0, 0, 0)  # as loaded: nothing stored
    calls: list[str] = []

    class Conn:
        def __init__(self, url: str) -> None:
            self.engine = type("E", (), {"url": type("U", (), {"render_as_string": lambda s, **_: url})()})()

    def generation(conn: Any) -> tuple[int, int, int]:
        calls.append(conn.engine.url.render_as_string())
        return (0, 0, 0)

    original = search_parameters._generation
    search_parameters._generation = generation
    try:
        sync.refresh(Conn("a"), max_staleness=60)  # type: ignore[arg-type]
        sync.refresh(Conn("a"), max_staleness=60)  # type: ignore[arg-type]
        sync.refresh(Conn("b"), max_staleness=60)  # type: ignore[arg-type]
        sync.refresh(Conn("b"))  # type: ignore[arg-type]
    finally:
        search_parameters._generation = original
    assert calls == ["a", "b", "b"]
