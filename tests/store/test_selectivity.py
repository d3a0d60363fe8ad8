"""Equally ranked criteria: the one matching fewer rows drives (store.selectivity), on both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from socle.fhir.query import parse_query
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.store.search import compile_search, driving_criterion
from socle.store.selectivity import prefer_selective

SCT = "http://snomed.info/sct"


def role(n: int, code: str, specialty: str) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": f"r{n}",
        "code": [{"coding": [{"system": SCT, "code": code}]}],
        "specialty": [{"coding": [{"system": SCT, "code": specialty}]}],
    }


def test_the_rarer_of_two_codes_drives(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        store.create_many(
            conn, [role(n, "doctor", "cardio" if n % 10 == 0 else "general") for n in range(60)]
        )
    query = parse_query("PractitionerRole", f"role={SCT}|doctor&specialty={SCT}|cardio")
    with engine.connect() as conn:
        reordered = prefer_selective(conn, query)
        assert [c.name for c in reordered.clauses] == ["specialty", "role"]
        assert driving_criterion(reordered.clauses) == 0
        before = sorted(r.id for r in conn.execute(compile_search(query, SYSTEM)))
        after = sorted(r.id for r in conn.execute(compile_search(reordered, SYSTEM)))
        # already in the best order, or not tied (a reference outranks a code): left alone
        assert prefer_selective(conn, reordered) is reordered
        single = parse_query("PractitionerRole", f"role={SCT}|doctor&practitioner=Practitioner/p1")
        assert prefer_selective(conn, single) is single
    assert before == after == [f"r{n}" for n in sorted(range(0, 60, 10), key=lambda n: f"r{n}")]
