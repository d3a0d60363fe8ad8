"""SQL shapes chosen for speed at scale (bench/README.md, Search): same results, cheaper plans.

- `$everything` of one patient is sorted after it is fetched (its key is an expression), so that
  PostgreSQL does not merge-join the record against the whole primary key from its first row.
- A bounded count (`up_to`) stops after `up_to + 1` rows and agrees with the full count below it.
- Probes are `EXISTS (SELECT 1 ...)`, which SQLite answers from a covering index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from socle.fhir.query import parse_query
from socle.store.access import SYSTEM
from socle.store.matches import EverythingMatches, TypeMatches
from socle.store.repository import Store
from socle.store.search import compile_search


def _record(store: Store, engine: Engine, patients: int, observations: int) -> list[str]:
    ids = []
    with engine.begin() as conn:
        for n in range(patients):
            patient = store.create(conn, {"resourceType": "Patient", "name": [{"family": f"F{n}"}]})
            ids.append(patient.id)
            for _ in range(observations):
                body = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
                    "subject": {"reference": f"Patient/{patient.id}"},
                }
                store.create(conn, body)
    return ids


def test_everything_pages_its_record_in_key_order(engine: Engine) -> None:
    store = Store(engine)
    patients = _record(store, engine, patients=3, observations=4)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    with store.read() as conn:
        matches = EverythingMatches(patients[1])
        first = store.search_results(conn, matches, SYSTEM, count=3)
        second = store.search_results(conn, matches, SYSTEM, count=3, cursor=first.next)
        total = store.search_total(conn, matches, SYSTEM, high=first.high)
    event.remove(engine, "before_cursor_execute", record)
    keys = [v.resource_key for v in first.versions + second.versions]
    assert keys == sorted(keys) and len(keys) == 5 and second.next is None and total == 5
    assert {v.resource_type for v in first.versions} == {"Patient", "Observation"}
    assert all(v.compartment == patients[1] for v in first.versions + second.versions)
    assert "resource_key + " in seen[0]  # the sort key is an expression: fetched, then sorted


def test_bounded_count_stops_after_the_bound(engine: Engine) -> None:
    store = Store(engine)
    _record(store, engine, patients=2, observations=5)
    matches = TypeMatches((parse_query("Observation", [("code", "http://loinc.org|1234-5")]),))
    with store.read() as conn:
        assert store.search_total(conn, matches, SYSTEM) == 10
        assert store.search_total(conn, matches, SYSTEM, up_to=20) == 10
        assert store.search_total(conn, matches, SYSTEM, up_to=3) == 4  # "more than 3"


def test_probes_select_a_constant(engine: Engine) -> None:
    store = Store(engine)
    patients = _record(store, engine, patients=2, observations=2)
    query = parse_query(
        "Observation", [("subject", f"Patient/{patients[0]}"), ("code", "http://loinc.org|1234-5")]
    )
    statement = compile_search(query, SYSTEM)
    sql = str(statement.compile(engine))
    assert "EXISTS (SELECT 1" in sql and "SELECT *" not in sql
    with engine.connect() as conn:
        assert len(conn.execute(statement).all()) == 2
