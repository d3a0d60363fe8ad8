"""R4 `Location?near=lat|long|distance|units` (search.html#special), on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.store.migrate import downgrade, upgrade

FHIR = {"Content-Type": "application/fhir+json"}
STRICT = {"Prefer": "handling=strict"}
PARIS = "48.8566|2.3522"

PLACES = {  # name: (latitude, longitude); distances from Paris by great circle
    "paris": (48.8566, 2.3522),
    "versailles": (48.8049, 2.1204),  # 17.9 km
    "lyon": (45.7640, 4.8357),  # 391.5 km
    "taveuni-east": (-16.85, 179.95),  # either side of the antimeridian, 10.7 km apart
    "taveuni-west": (-16.85, -179.95),
    "north-pole": (89.99, 45.0),
    "north-pole-other-side": (89.99, -135.0),  # 2.2 km away across the pole
}


def put_location(client: TestClient, name: str, position: tuple[float, float] | None) -> None:
    body: dict[str, Any] = {"resourceType": "Location", "id": name, "name": name}
    if position is not None:
        body["position"] = {"latitude": position[0], "longitude": position[1]}
    response = client.put(f"/fhir/Location/{name}", json=body, headers=FHIR)
    assert response.status_code in (200, 201), response.text


def found(client: TestClient, query: str) -> list[str]:
    response = client.get(f"/fhir/Location?{query}", headers=STRICT)
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []))


@pytest.fixture
def places(client: TestClient) -> None:
    for name, position in PLACES.items():
        put_location(client, name, position)
    put_location(client, "nowhere", None)


@pytest.mark.usefixtures("places")
def test_near_by_distance_and_units(client: TestClient) -> None:
    assert found(client, f"near={PARIS}|10|km") == ["paris"]
    assert found(client, f"near={PARIS}|17.5|km") == ["paris"]
    assert found(client, f"near={PARIS}|18.5|km") == ["paris", "versailles"]
    assert found(client, f"near={PARIS}|18000|m") == ["paris", "versailles"]
    assert found(client, f"near={PARIS}|12|[mi_i]") == ["paris", "versailles"]  # 19.3 km
    assert found(client, f"near={PARIS}|400|km") == ["lyon", "paris", "versailles"]
    assert found(client, f"near={PARIS}") == ["paris"]  # no distance: 5 km
    assert found(client, f"near={PARIS}|0.001|km") == ["paris"]
    # OR of two points, AND with another criterion
    assert found(client, f"near={PARIS}|1|km,45.76|4.83|2|km") == ["lyon", "paris"]
    assert found(client, f"near={PARIS}|400|km&name=lyon") == ["lyon"]


@pytest.mark.usefixtures("places")
def test_near_across_the_antimeridian_and_the_poles(client: TestClient) -> None:
    assert found(client, "near=-16.85|179.99|8|km") == ["taveuni-east", "taveuni-west"]
    assert found(client, "near=-16.85|179.95|1|km") == ["taveuni-east"]
    assert found(client, "near=89.99|45|3|km") == ["north-pole", "north-pole-other-side"]
    assert found(client, "near=89.99|45|1|km") == ["north-pole"]


@pytest.mark.usefixtures("places")
def test_positions_follow_updates_and_deletes(client: TestClient) -> None:
    put_location(client, "lyon", PLACES["versailles"])  # moved
    assert found(client, f"near={PARIS}|18.5|km") == ["lyon", "paris", "versailles"]
    put_location(client, "versailles", None)  # position removed
    assert found(client, f"near={PARIS}|18.5|km") == ["lyon", "paris"]
    assert client.delete("/fhir/Location/paris").status_code == 204
    assert found(client, f"near={PARIS}|18.5|km") == ["lyon"]


@pytest.mark.parametrize(
    "value",
    ["abc", "48.8", "91|2|5|km", "48|181|5|km", "48|2|5|furlongs", "48|2|-1|km", "48|2|x|km", "1|2|3|km|5"],
)
def test_bad_near_values_are_400(client: TestClient, value: str) -> None:
    response = client.get(f"/fhir/Location?near={value}")
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_near_is_advertised(client: TestClient) -> None:
    resources = client.get("/fhir/metadata").json()["rest"][0]["resource"]
    location = next(r for r in resources if r["type"] == "Location")
    assert {
        "name": "near",
        "definition": "http://hl7.org/fhir/SearchParameter/Location-near",
        "type": "special",
    } in (location["searchParam"])


def test_migration_backfills_existing_locations(engine: Engine, client: TestClient) -> None:
    put_location(client, "paris", PLACES["paris"])
    downgrade(engine, "0010")  # as a database from before the position index
    upgrade(engine)
    assert found(client, f"near={PARIS}|1|km") == ["paris"]
