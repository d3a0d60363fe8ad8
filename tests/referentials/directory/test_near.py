"""Proximity on both databases: the SQL band + approximation agrees with the exact distance."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from socle.fhir.errors import Invalid
from socle.referentials.directory import DirectoryImporter
from socle.referentials.directory.communes import commune, distance_km, find_communes
from socle.referentials.directory.near import locations_near, parse_near, roles_near
from socle.referentials.directory.synthetic import write_extraction
from socle.store.access import SYSTEM
from socle.store.repository import Store


def test_parse_near() -> None:
    assert parse_near("48.85|2.35|2|km") == (48.85, 2.35, 2.0)
    assert parse_near("48.85|2.35") == (48.85, 2.35, 5.0)
    assert parse_near("48.85|2.35|500|m")[2] == pytest.approx(0.5)
    for bad in ("48.85", "a|b|1|km", "48.85|2.35|1|furlong", "95|2.35|1|km", "48|2|1000|km"):
        with pytest.raises(Invalid):
            parse_near(bad)


def test_communes_lookup() -> None:
    paris = commune("75056")
    assert paris is not None and paris.name == "Paris" and paris.precision == "geonames"
    assert [c.code for c in find_communes("75015")] == ["75115", "75056"]
    assert "69123" in [c.code for c in find_communes("lyon")]
    assert [c.code for c in find_communes("Saint-Étienne")] == ["42218"]
    assert distance_km(48.8566, 2.3522, 45.764, 4.8357) == pytest.approx(392, abs=3)  # Paris-Lyon


def test_near_matches_exact_distances(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    people, finess, _ = write_extraction(tmp_path, 400, seed=7)
    DirectoryImporter(store).import_files([people, finess])
    with store.read() as conn:
        page, _, _ = store.search_page(conn, "Location", [], SYSTEM, count=5000, after=None, strict=True)
        every = {
            v.id: (v.resource["position"]["latitude"], v.resource["position"]["longitude"])
            for v in page
            if "position" in v.resource
        }
        centre = next(iter(every.values()))
        for km in (30.0, 150.0):
            expected = {i for i, (la, lo) in every.items() if distance_km(centre[0], centre[1], la, lo) <= km}
            found = locations_near(conn, centre[0], centre[1], km, SYSTEM)
            assert locations_near(conn, centre[0], centre[1], km, SYSTEM, limit=3) == found[:3]
            assert {i for i, _ in found} == expected and expected
            assert [d for _, d in found] == sorted(d for _, d in found)
        roles = roles_near(store, conn, SYSTEM, centre[0], centre[1], 150.0, count=5)
        assert 0 < len(roles) <= 5
        assert [r.distance_km for r in roles] == sorted(r.distance_km for r in roles)
        assert all(r.distance_km <= 150 and r.role.resource["active"] for r in roles)
        gps = roles_near(store, conn, SYSTEM, centre[0], centre[1], 150.0, criteria=[("specialty", "SM54")])
        assert all(
            "SM54" in {c["code"] for s in r.role.resource.get("specialty", ()) for c in s["coding"]}
            for r in gps
        )


def test_imported_locations_answer_r4_near(engine: Engine, tmp_path: Path) -> None:
    """Every imported Location carries `position`, so the search compiler's `Location?near=` finds it."""
    store = Store(engine)
    people, finess, _ = write_extraction(tmp_path, 200, seed=11)
    DirectoryImporter(store).import_files([people, finess])
    with store.read() as conn:
        page, _, _ = store.search_page(conn, "Location", [], SYSTEM, count=5000, after=None, strict=True)
        located = [v.resource for v in page if "position" in v.resource]
        assert page and len(located) == len(page)  # French communes: all positioned
        target = located[0]["position"]
        lat, lon = target["latitude"], target["longitude"]
        expected = {
            r["id"]
            for r in located
            if distance_km(lat, lon, r["position"]["latitude"], r["position"]["longitude"]) <= 20
        }
        found, _, unknown = store.search_page(
            conn, "Location", [("near", f"{lat}|{lon}|20|km")], SYSTEM, count=5000, after=None, strict=True
        )
    assert unknown == []
    assert {v.id for v in found} == expected and located[0]["id"] in expected
