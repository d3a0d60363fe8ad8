"""A `_has` matching a large share of the type: probed in key order instead of driving
(store.selectivity marks the query, store.search compiles it); same results, on both backends."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, FromClause

from socle.fhir.query import SearchQuery, parse_query
from socle.store import selectivity
from socle.store.access import SYSTEM
from socle.store.matches import TypeMatches
from socle.store.repository import Store
from socle.store.results import Cursor, parse_sort
from socle.store.search import compile_search

SCT = "http://snomed.info/sct"


def patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "gender": "female" if n % 2 else "male",
        "birthDate": f"19{50 + n % 40}-01-01",
    }


def condition(n: int, pid: int, *codes: str) -> dict[str, Any]:
    coding = [{"system": SCT, "code": c} for c in codes]
    return {
        "resourceType": "Condition",
        "id": f"c{n}",
        "subject": {"reference": f"Patient/p{pid}"},
        "code": {"coding": coding},
    }


@pytest.fixture
def store(engine: Engine) -> Store:
    store = Store(engine)
    conditions = []
    for n in range(30):
        if n % 3 == 0:  # two conditions with the code, one with it twice: several index rows
            conditions += [condition(2 * n, n, "a", "a"), condition(2 * n + 1, n, "a", "b")]
        elif n % 6 == 1:
            conditions.append(condition(2 * n, n, "b"))
    with store.write() as conn:
        store.create_many(conn, [patient(n) for n in range(30)])
        store.create_many(conn, conditions)
        store.create_many(conn, [condition(999, 29, "a")])
    with store.write() as conn:
        store.delete(conn, "Condition", "c999")  # a deleted source does not count
    return store


QUERIES = [
    f"_has:Condition:patient:code={SCT}|a",
    f"_has:Condition:patient:code={SCT}|a,{SCT}|b",  # OR values
    "_has:Condition:patient:code=b&gender=female",
    f"_has:Condition:patient:code:not={SCT}|a",
    f"_has:Condition:patient:code={SCT}|b&_has:Condition:patient:code={SCT}|a",
    "_has:Condition:subject:code=a&_id:not=p3",
]


def ids(store: Store, query: SearchQuery, sort: str = "", count: int = 7) -> tuple[list[str], int]:
    """Every page of `query` (keyset paged, `count` a page), and the count."""
    matches = TypeMatches((query,))
    keys, _ = parse_sort(sort, ["Patient"]) if sort else ([], [])
    out: list[str] = []
    cursor: Cursor | None = None
    with store.read() as conn:
        while True:
            page = store.search_results(conn, matches, SYSTEM, sort=keys, count=count, cursor=cursor)
            out += [v.id for v in page.versions]
            if page.next is None:
                break
            cursor = page.next
        total = store.search_total(conn, matches, SYSTEM, up_to=1000)
    return out, total


@pytest.mark.parametrize("text", QUERIES)
@pytest.mark.parametrize("sort", ["", "-birthdate,gender"])
def test_probing_in_key_order_finds_what_driving_finds(store: Store, text: str, sort: str) -> None:
    driving = parse_query("Patient", text)
    probing = dataclasses.replace(driving, probe_in_key_order=True)
    expected = ids(store, driving, sort)
    assert expected[0]  # not vacuous
    assert ids(store, probing, sort) == expected
    if not sort:
        assert expected[0] == sorted(expected[0], key=lambda i: int(i[1:]))  # created in key order


def test_a_dense_has_is_marked_and_a_rare_one_is_not(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selectivity, "LARGE_COHORT", 5)
    monkeypatch.setattr(selectivity, "CAP", 18)
    with store.read() as conn:
        dense = selectivity.prefer_selective(
            conn, parse_query("Patient", f"_has:Condition:patient:code={SCT}|a")
        )
        assert dense.probe_in_key_order
        some = selectivity.prefer_selective(
            conn, parse_query("Patient", f"_has:Condition:patient:code={SCT}|b")
        )
        assert some.probe_in_key_order  # 15 rows, under CAP
        monkeypatch.setattr(selectivity, "DENSE_RATIO", 1)  # 30 patients > 1 x 15 rows: too sparse
        sparse = selectivity.prefer_selective(
            conn, parse_query("Patient", f"_has:Condition:patient:code={SCT}|b")
        )
        assert not sparse.probe_in_key_order
        driven = selectivity.prefer_selective(
            conn, parse_query("Patient", f"_id=p3&_has:Condition:patient:code={SCT}|a")
        )
        assert not driven.probe_in_key_order  # `_id` drives
        # the page statement walks the type's resources in key order (`ix_resource_type_key`)
        statement = compile_search(dense, SYSTEM, key_order=True)
        page = str(statement.compile(dialect=conn.dialect))
        if conn.dialect.name == "sqlite":
            compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert "USING INDEX ix_resource_type_key" in plan
        assert " IN (" not in page.replace("sys_value_hash IN (", "")  # no driving set
        assert conn.execute(compile_search(dense, SYSTEM, key_order=True)).all()


def condition_ids(store: Store, text: str, sort: str = "") -> tuple[list[str], int]:
    query = parse_query("Condition", text)
    matches = TypeMatches((query,))
    keys, _ = parse_sort(sort, ["Condition"]) if sort else ([], [])
    out: list[str] = []
    cursor: Cursor | None = None
    with store.read() as conn:
        while True:
            page = store.search_results(conn, matches, SYSTEM, sort=keys, count=4, cursor=cursor)
            out += [v.id for v in page.versions]
            if page.next is None:
                break
            cursor = page.next
        total = store.search_total(conn, matches, SYSTEM, up_to=1000)
        bounded = store.search_total(conn, matches, SYSTEM, up_to=5)
    assert bounded == min(total, 6)
    return out, total


def test_one_code_streams_from_its_index_once_per_resource(store: Store) -> None:
    """`Condition?code=X` joins the index rows (key order) instead of `key IN (...)`: a resource with
    the code twice comes once, a deleted one not at all, pages and counts are unchanged."""
    with_a = [f"c{2 * n}" for n in range(0, 30, 3)] + [f"c{2 * n + 1}" for n in range(0, 30, 3)]
    in_key_order = sorted(with_a, key=lambda i: (int(i[1:]) // 2, int(i[1:])))
    assert condition_ids(store, f"code={SCT}|a") == (in_key_order, 20)
    assert condition_ids(store, "code=a") == (in_key_order, 20)
    assert condition_ids(store, f"code={SCT}|a", "-_id") == (sorted(with_a, reverse=True), 20)
    with_b = [f"c{2 * n + 1}" for n in range(0, 30, 3)] + [f"c{2 * n}" for n in range(1, 30, 6)]
    either = sorted(set(with_a) | set(with_b), key=lambda i: int(i[1:]))
    assert condition_ids(store, f"code={SCT}|a,{SCT}|b") == (either, len(either))  # OR: not streamed
    only_b = sorted(set(with_b) - set(with_a), key=lambda i: int(i[1:]))
    assert condition_ids(store, f"code:not={SCT}|a") == (only_b, len(only_b))
    both = sorted(set(with_a) & set(with_b), key=lambda i: int(i[1:]))
    assert condition_ids(store, f"code={SCT}|a&code={SCT}|b") == (both, len(both))
    with store.read() as conn:
        sql = str(compile_search(parse_query("Condition", "code=a"), SYSTEM).compile(dialect=conn.dialect))
    assert "FROM idx_token AS driving JOIN resource" in sql and "earlier.seq < driving.seq" in sql


@dataclasses.dataclass(frozen=True)
class _Hiding:
    """An access filter admitting every resource but these ids."""

    ids: tuple[str, ...]

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.id.not_in(self.ids)


def test_a_bounded_count_of_a_has_reads_each_target_once_from_the_criterion_rows(engine: Engine) -> None:
    """The bounded count (`_total` default) of a driving `_has` reads the distinct ids that the
    criterion's sources reference (on SQLite one new id at a time, so it stops after `up_to + 1`
    resources), where it built every target first (or, dense, probed the type one by one). Distinct
    live admitted targets only: a patient with two Conditions with the code, or the code twice in
    one, counts once; a deleted Condition or Patient, a dangling reference, a Condition the filter
    hides do not count."""
    store = Store(engine)
    spec = {0: [("c0", "a", "a"), ("c1", "a")], 1: [("c2", "b"), ("c3", "a")], 2: [("c4", "a")]}
    spec |= {3: [("c5", "a")], 4: [("c6", "a"), ("c7", "a")], 5: [("c8", "a")]}
    spec |= {n: [(f"c{n + 3}", "a")] for n in range(6, 12)}
    with store.write() as conn:
        created = store.create_many(conn, [patient(n) for n in range(12)])
        for n, conditions in spec.items():
            bodies = [condition(0, n, *codes) | {"id": cid} for cid, *codes in conditions]
            store.create_many(conn, bodies)
        store.create_many(
            conn, [condition(0, 0, "a") | {"id": "c99", "subject": {"reference": "Patient/none"}}]
        )
        store.delete(conn, "Condition", "c4")  # p2's only one
        store.delete(conn, "Patient", "p3")
    keys = {v.id: v.resource_key for v in created}
    query = parse_query("Patient", f"_has:Condition:patient:code={SCT}|a")
    matches = TypeMatches((query,))
    hiding = _Hiding(("c6", "c8"))  # p4 keeps c7, p5 has no other
    with store.read() as conn:
        assert store.search_total(conn, matches, SYSTEM) == 10  # p0 p1 p4 p5 p6..p11
        for up_to in range(12):
            assert store.search_total(conn, matches, SYSTEM, up_to=up_to) == min(10, up_to + 1)
            assert store.search_total(conn, matches, hiding, up_to=up_to) == min(9, up_to + 1)
        assert store.search_total(conn, matches, SYSTEM, high=keys["p6"], up_to=100) == 5
        assert store.search_total(conn, matches, hiding, high=keys["p6"], up_to=100) == 4
        others = [  # (criterion, total, total under `hiding`)
            ("subject=Patient/p4", 1, 1),  # a criterion on the reference rows themselves
            (f"code={SCT}|a,{SCT}|b", 10, 9),
        ]
        for criterion, total, hidden in others:
            other = TypeMatches((parse_query("Patient", f"_has:Condition:patient:{criterion}"),))
            assert store.search_total(conn, other, SYSTEM) == total
            assert store.search_total(conn, other, SYSTEM, up_to=100) == total
            assert store.search_total(conn, other, hiding, up_to=100) == hidden
        if conn.dialect.name == "sqlite":  # the work stops with the count: SQLite VM steps
            steps = [0]

            def step() -> int:
                steps[0] += 1
                return 0

            raw: Any = conn.connection.driver_connection
            raw.set_progress_handler(step, 10)
            store.search_total(conn, matches, SYSTEM, up_to=1)
            two, steps[0] = steps[0], 0
            store.search_total(conn, matches, SYSTEM, up_to=100)
            raw.set_progress_handler(None, 10)
            assert 0 < 3 * two < steps[0]
    for access in (SYSTEM, hiding):
        sql = str(compile_search(query, access, bounded=True).compile(engine))
        assert "SELECT DISTINCT idx_reference.target_id" in sql and "AS referenced CROSS JOIN resource" in sql
        assert ("JOIN resource AS source" in sql) == (access is hiding)  # no row to read when all admitted
