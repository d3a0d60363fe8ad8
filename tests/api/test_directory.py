"""Directory operations and searches through the FHIR API, on both databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from starlette.testclient import TestClient

from socle.fhir.search_params import registry
from socle.referentials.directory import DirectoryImporter
from socle.referentials.directory.synthetic import general_practitioner, write_extraction
from socle.store.repository import Store


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    yield
    registry().replace_custom([])


@pytest.fixture
def directory(engine: Engine, tmp_path: Path) -> None:
    people, finess, _ = write_extraction(tmp_path, 300, seed=11)
    DirectoryImporter(Store(engine)).import_files([people, finess])


def test_near_a_commune(client: TestClient, directory: None) -> None:
    gp = general_practitioner(0)
    response = client.get(
        "/fhir/PractitionerRole/$near", params={"commune": gp.commune.code, "distance": "50", "_count": "5"}
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert 0 < len(matches) <= 5 and bundle["total"] == len(matches)
    distances = [e["search"]["extension"][0]["valueDistance"]["value"] for e in matches]
    assert distances == sorted(distances) and distances[-1] <= 50
    # the GP practises in that commune: the nearest role is at distance 0
    assert distances[0] == 0
    included = {e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {"Practitioner", "Location"}
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert gp.commune.name in outcome[0]["resource"]["issue"][0]["diagnostics"]


def test_near_with_criteria_and_errors(client: TestClient, directory: None) -> None:
    gp = general_practitioner(1)
    bundle = client.get(
        "/fhir/PractitionerRole/$near",
        params={
            "latitude": str(gp.commune.latitude),
            "longitude": str(gp.commune.longitude),
            "distance": "100",
            "specialty": "SM54",
        },
    ).json()
    for entry in (e for e in bundle["entry"] if e["search"]["mode"] == "match"):
        assert "SM54" in {c["code"] for s in entry["resource"]["specialty"] for c in s["coding"]}
    assert client.get("/fhir/PractitionerRole/$near", params={"commune": "Atlantide"}).status_code == 404
    assert client.get("/fhir/PractitionerRole/$near").status_code == 400
    assert (
        client.get("/fhir/PractitionerRole/$near", params={"commune": "75056", "distance": "900"}).status_code
        == 400
    )


def test_near_reads_nothing_type_wide_without_statistics(
    client: TestClient, engine: Engine, directory: None
) -> None:
    """`$near` includes each role's Practitioner and Location, nearest first; and none of its
    statements walks every resource of a type when SQLite has no planner statistics (an import
    stopped before its ANALYZE): an `_id` search did, ordered by key, for minutes at a million lines."""
    statements: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
        # (the registry's check for custom SearchParameters reads that small type whole)
        if sql.lstrip().upper().startswith("SELECT") and "SearchParameter" not in str(params):
            statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        gp = general_practitioner(0)
        bundle = client.get(
            "/fhir/PractitionerRole/$near",
            params={"commune": gp.commune.code, "distance": "50", "_count": "8"},
        ).json()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    roles = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert roles
    for kind, refs in (
        ("Practitioner", [r["practitioner"]["reference"] for r in roles]),
        ("Location", [loc["reference"] for r in roles for loc in r["location"]]),
    ):
        assert [f"{kind}/{r['id']}" for r in included if r["resourceType"] == kind] == list(
            dict.fromkeys(refs)
        )
    if engine.dialect.name != "sqlite":
        return
    raw = sqlite3.connect(str(engine.url.database))
    try:
        raw.execute("DELETE FROM sqlite_stat1")
        raw.commit()
        raw.close()
        raw = sqlite3.connect(str(engine.url.database))  # plans without statistics
        for sql, params in statements:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params)]  # type: ignore[arg-type]
            walks = [p for p in plan if p.startswith("SCAN resource") or p.endswith("(resource_type=?)")]
            assert not walks, (sql, plan)
    finally:
        raw.close()


def test_search_by_name_identifier_and_mailbox(client: TestClient, directory: None) -> None:
    gp = general_practitioner(2)
    by_rpps = client.get(
        "/fhir/Practitioner", params={"identifier": f"https://rpps.esante.gouv.fr|{gp.rpps}"}
    )
    [entry] = by_rpps.json()["entry"]
    assert entry["resource"]["name"][0]["family"] == gp.family
    by_name = client.get("/fhir/Practitioner", params={"family": gp.family.lower(), "given": gp.given})
    assert gp.practitioner_id in {e["resource"]["id"] for e in by_name.json()["entry"]}
    qualified = client.get(
        "/fhir/Practitioner", params={"qualification-code": "SM54", "_count": "500"}
    ).json()
    assert gp.practitioner_id in {e["resource"]["id"] for e in qualified["entry"]}


def test_check_identifier(client: TestClient) -> None:
    ok = client.get("/fhir/$check-identifier", params={"kind": "finess", "value": "300017985"})
    assert ok.status_code == 200
    assert {p["name"]: p.get("valueBoolean", p.get("valueCode")) for p in ok.json()["parameter"]}[
        "valid"
    ] is True
    warned = client.get("/fhir/$check-identifier", params={"kind": "rpps", "value": "10003461033"}).json()
    assert [p["valueString"] for p in warned["parameter"] if p["name"] == "warning"]
    bad = client.get("/fhir/$check-identifier", params={"kind": "siret", "value": "73282932000075"})
    assert bad.status_code == 400 and "check digit" in bad.json()["issue"][0]["diagnostics"]


def test_mailbox_search_over_http(client: TestClient, engine: Engine, tmp_path: Path) -> None:
    """The MSSanté extraction's addresses are found by `mailbox-mss` through the FHIR API."""
    from socle.referentials.directory.mssante_file import parse_mailbox
    from socle.referentials.directory.synthetic import MSSANTE_FILE

    people, finess, _ = write_extraction(tmp_path, 120, seed=13)
    mss = tmp_path / MSSANTE_FILE
    DirectoryImporter(Store(engine)).import_files([people, finess, mss])
    first = parse_mailbox(mss.read_text().splitlines()[1])
    response = client.get("/fhir/Practitioner", params={"mailbox-mss": first.address})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["total"] == 1
    [entry] = bundle["entry"]
    assert entry["resource"]["id"] == f"ps-{first.idnat}"
    telecom = [t for t in entry["resource"]["telecom"] if t["value"] == first.address]
    assert telecom and telecom[0]["extension"][0]["valueCoding"]["code"] == "MSSANTE"
    unknown = client.get("/fhir/Practitioner", params={"mailbox-mss": "nobody@nowhere.mssante.fr"})
    assert unknown.status_code == 200 and unknown.json()["total"] == 0
