"""The store's result side on both backends: sort keys, cursors, keyset pages, totals, includes, access."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import ColumnElement, Engine, FromClause, false

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.query import parse_query
from socle.store.access import SYSTEM
from socle.store.includes import IncludeSpec, fetch_included, parse_include
from socle.store.matches import EverythingMatches, TypeMatches
from socle.store.repository import Store
from socle.store.results import Cursor, SortKey, parse_sort


@dataclass(frozen=True)
class DenyAll:
    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return false()


@dataclass(frozen=True)
class OnlyCompartment:
    patient: str

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.compartment == self.patient


def test_parse_sort() -> None:
    keys, rejected = parse_sort("family, -birthdate,-_lastUpdated,nope,,_id,identifier,near", ["Patient"])
    assert [(k.name, k.descending, k.kind) for k in keys] == [
        ("family", False, "string"),
        ("birthdate", True, "date"),
        ("_lastUpdated", True, "_lastUpdated"),
        ("_id", False, "_id"),
        ("identifier", False, "token"),
    ]
    assert rejected == ["nope", "near"]
    # Across types: a parameter one type lacks still sorts (the others as missing values).
    keys, rejected = parse_sort("family,date", ["Patient", "Observation"])
    assert [(k.name, len(k.hashes)) for k in keys] == [("family", 1), ("date", 1)] and rejected == []
    assert parse_sort("code-value-quantity", ["Observation"]) == ([], ["code-value-quantity"])  # composite


def test_cursor_round_trip_and_validation() -> None:
    sort = [SortKey("birthdate", True, "date", (1,)), SortKey("family", False, "string", (2,))]
    cursor = Cursor((123, None), 7, 99, backward=True)
    assert Cursor.decode(cursor.encode(sort), sort) == cursor
    with pytest.raises(Invalid):
        Cursor.decode(cursor.encode(sort), sort[:1])  # another _sort

    def token(payload: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()

    good = orjson.loads(base64.urlsafe_b64decode(cursor.encode(sort) + "=="))
    bad_payloads = [
        [*good[:4], ["x", None], good[5]],  # a string where a date (int) is expected
        [*good[:4], [True, None], good[5]],
        [*good[:4], [2**70, None], good[5]],
        [*good[:4], [1, "a\x00b"], good[5]],
        [good[0], good[1], -1, *good[3:]],
        [good[0], good[1], good[2], 2**64, *good[4:]],
        [good[0], 2, *good[2:]],
        [2, *good[1:]],
        good[:5],
        {"a": 1},
    ]
    for payload in bad_payloads:
        with pytest.raises(Invalid):
            Cursor.decode(token(payload), sort)
    for text in ("", "!!!", "bm90IGpzb24", "é"):
        with pytest.raises(Invalid):
            Cursor.decode(text, sort)


def test_parse_include() -> None:
    assert parse_include("_include", "Observation:subject:Patient") == IncludeSpec(
        "Observation", "subject", "Patient", False, False
    )
    assert parse_include("_revinclude:iterate", "Provenance:*") == IncludeSpec(
        "Provenance", "*", None, True, True
    )
    assert parse_include("_include:recurse", "*") == IncludeSpec(None, "*", None, False, True)
    for value in (
        "Observation:code",
        "Nope:subject",
        "Observation:subject:Nope",
        "Observation:subject:Medication",
    ):
        with pytest.raises(NotSupported):
            parse_include("_include", value)
    for name, value in (
        ("_include", "Observation"),
        ("_include:x", "Observation:subject"),
        ("_revinclude", "*"),
    ):
        with pytest.raises(Invalid):
            parse_include(name, value)


def _patient(store: Store, conn: Any, family: str) -> Any:
    return store.create(conn, {"resourceType": "Patient", "name": [{"family": family}]})


def test_pages_and_totals_obey_the_access_filter(engine: Engine, backend: str) -> None:
    store = Store(engine)
    with store.write() as conn:
        mine = _patient(store, conn, "B")
        other = _patient(store, conn, "A")
        obs = store.create(
            conn,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{mine.id}"},
                "performer": [{"reference": f"Patient/{other.id}"}],
            },
        )
    matches = TypeMatches((parse_query("Patient", []),))
    sort, _ = parse_sort("family", ["Patient"])
    with store.read() as conn:
        page = store.search_results(conn, matches, SYSTEM, sort=sort, count=1)
        assert [v.id for v in page.versions] == [other.id] and page.next is not None and page.previous is None
        following = store.search_results(conn, matches, SYSTEM, sort=sort, count=1, cursor=page.next)
        assert [v.id for v in following.versions] == [mine.id] and following.next is None
        back = store.search_results(conn, matches, SYSTEM, sort=sort, count=5, cursor=following.previous)
        assert [v.id for v in back.versions] == [other.id] and back.previous is None
        assert store.search_total(conn, matches, SYSTEM) == 2
        estimate = store.search_total(conn, matches, SYSTEM, estimate=True)
        assert estimate == 2 if backend == "sqlite" else estimate >= 1
        own = OnlyCompartment(mine.id)
        assert [v.id for v in store.search_results(conn, matches, own, count=5).versions] == [mine.id]
        assert store.search_total(conn, matches, own) == 1
        assert store.search_results(conn, matches, DenyAll(), count=5).versions == []
        # Includes read through the same filter: the performer (another patient) stays hidden.
        specs = [parse_include("_include", "Observation:*")]
        observation = TypeMatches((parse_query("Observation", []),))
        sources = store.search_results(conn, observation, SYSTEM, count=5).versions
        assert [v.id for v in sources] == [obs.id]
        everyone = store.search_included(conn, observation, SYSTEM, sources, specs).versions
        assert sorted(v.id for v in everyone) == sorted([mine.id, other.id])
        filtered = store.search_included(conn, observation, own, sources, specs).versions
        assert [v.id for v in filtered] == [mine.id]
        # The compartment: one row, two patients (subject in the column, performer via the index).
        for patient in (mine, other):
            scoped = TypeMatches((parse_query("Observation", []),), compartment=patient.id)
            assert [v.id for v in store.search_results(conn, scoped, SYSTEM, count=5).versions] == [obs.id]
        everything = store.search_results(conn, EverythingMatches(other.id), SYSTEM, count=5).versions
        assert sorted(v.id for v in everything) == sorted([other.id, obs.id])


def test_include_rounds_and_row_caps(engine: Engine) -> None:
    """A chain of Patient.link longer than the caps stops and says it was truncated."""
    store = Store(engine)
    with store.write() as conn:
        chain = [_patient(store, conn, "P0")]
        for i in range(1, 15):
            body = {
                "resourceType": "Patient",
                "name": [{"family": f"P{i}"}],
                "link": [{"other": {"reference": f"Patient/{chain[-1].id}"}, "type": "seealso"}],
            }
            chain.append(store.create(conn, body))
    spec = [parse_include("_include:iterate", "Patient:link")]
    with store.read() as conn:
        head = [store.get(conn, "Patient", chain[-1].id, SYSTEM)]
        content = store._content
        full = fetch_included(conn, SYSTEM, content, head, spec, rounds=20)
        assert [v.id for v in full.versions] == [p.id for p in reversed(chain[:-1])] and not full.truncated
        rounds = fetch_included(conn, SYSTEM, content, head, spec, rounds=3)
        assert len(rounds.versions) == 3 and rounds.truncated
        rows = fetch_included(conn, SYSTEM, content, head, spec, cap=5)
        assert len(rows.versions) == 5 and rows.truncated
