"""SQL shapes chosen for speed at scale (bench/README.md, Search): same results, cheaper plans.

- `$everything` of one patient is sorted after it is fetched (its key is an expression), so that
  PostgreSQL does not merge-join the record against the whole primary key from its first row.
- A bounded count (`up_to`) stops after `up_to + 1` rows and agrees with the full count below it.
- Probes are `EXISTS (SELECT 1 ...)`, which SQLite answers from a covering index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, FromClause, event

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


def _roles_after_organizations(store: Store, engine: Engine) -> None:
    """Many resources of another type first, then roles: the directory's key order (FINESS first)."""
    with store.write() as conn:
        store.create_many(conn, [{"resourceType": "Organization", "name": f"O{n}"} for n in range(3000)])
        roles = [
            {
                "resourceType": "PractitionerRole",
                "code": [{"coding": [{"system": "urn:role", "code": "10" if n % 4 else "21"}]}],
                "specialty": [{"coding": [{"system": "urn:sp", "code": "SM54" if n % 3 else "SM40"}]}],
            }
            for n in range(600)
        ]
        store.create_many(conn, roles)


def test_a_streamed_page_takes_its_key_order_from_the_index(engine: Engine) -> None:
    """`role=X&specialty=Y`: the page walks the driving index in key order, joined to `resource` on
    an expression of the key, so that PostgreSQL cannot take the order from `resource`'s primary key
    (at 1M directory lines it walked it from the first row, past every resource of other types)."""
    store = Store(engine)
    _roles_after_organizations(store, engine)
    query = parse_query("PractitionerRole", [("role", "10"), ("specialty", "SM54")])
    statement = compile_search(query, SYSTEM, key_order=True).limit(21)
    with engine.connect() as conn:
        keys = [row[0] for row in conn.execute(statement)]
        every = [row[0] for row in conn.execute(compile_search(query, SYSTEM))]
    assert len(every) == 300 and keys == every[:21] == sorted(keys)
    assert "ON resource.resource_key = driving.resource_key + " in str(statement.compile(engine))


def test_a_bounded_count_probes_each_candidate(engine: Engine) -> None:
    """A count stopped at a bound tests its candidates one by one (`OFFSET 0` on PostgreSQL): a
    semi-join first hashed every row of the other criterion (the whole specialty at 1M lines)."""
    store = Store(engine)
    _roles_after_organizations(store, engine)
    query = parse_query("PractitionerRole", [("role", "10"), ("specialty", "SM54")])
    matches = TypeMatches((query,))
    with store.read() as conn:
        assert store.search_total(conn, matches, SYSTEM) == 300
        assert store.search_total(conn, matches, SYSTEM, up_to=50) == 51
    bounded = str(compile_search(query, SYSTEM, bounded=True).compile(engine))
    page = str(compile_search(query, SYSTEM, key_order=True).compile(engine))
    assert ("OFFSET 0" in bounded) == (engine.dialect.name == "postgresql") and "OFFSET 0" not in page


@dataclass(frozen=True)
class _Only:
    """An access filter admitting the resources with these ids."""

    ids: tuple[str, ...]

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.id.in_(self.ids)


def test_a_bounded_count_of_one_criterion_reads_its_index_alone(engine: Engine) -> None:
    """Under a filter admitting every row, its distinct index keys are the matches: a resource with
    two matching names counts once, a deleted one (no index rows left) and other types not at all."""
    store = Store(engine)
    with store.write() as conn:
        for n in range(6):
            names: list[dict[str, Any]] = [{"family": f"Martin{n}"}]
            if n % 2:
                names.append({"family": "Dupont", "given": ["Marc"]})  # a second matching row
            store.create(conn, {"resourceType": "Practitioner", "id": f"pr{n}", "name": names})
        store.create(conn, {"resourceType": "Patient", "name": [{"family": "Martin"}]})
        store.delete(conn, "Practitioner", "pr5")
    query = parse_query("Practitioner", [("name", "mar")])
    matches = TypeMatches((query,))
    with store.read() as conn:
        assert store.search_total(conn, matches, SYSTEM) == 5
        assert store.search_total(conn, matches, SYSTEM, up_to=10) == 5
        assert store.search_total(conn, matches, SYSTEM, up_to=3) == 4
        assert store.search_total(conn, matches, _Only(("pr0", "pr1", "pr5")), up_to=10) == 2
    assert "FROM resource" not in str(compile_search(query, SYSTEM, bounded=True).compile(engine))
    assert "FROM resource" in str(compile_search(query, _Only(("pr0",)), bounded=True).compile(engine))
