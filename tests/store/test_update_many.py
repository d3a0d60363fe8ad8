"""`Store.update_many`: bulk new versions with the semantics of `update` without If-Match."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from socle.fhir.errors import Invalid
from socle.store.access import SYSTEM
from socle.store.indexes import idx_reference, idx_string, idx_token
from socle.store.repository import Store
from socle.store.schema import resource_history
from socle.store.versioned import StoredVersion


def test_update_many_versions_creates_and_reindexes(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        kept, changed, gone = store.create_many(
            conn,
            [
                {"resourceType": "Patient", "gender": "male", "name": [{"family": "Martin"}]},
                {"resourceType": "Patient", "gender": "male", "name": [{"family": "Durand"}]},
                {"resourceType": "Organization", "name": "Clinique du Parc"},
            ],
        )
        store.delete(conn, "Organization", gone.id)
    with store.write() as conn:
        results = store.update_many(
            conn,
            [
                {
                    "resourceType": "Patient",
                    "id": changed.id,
                    "gender": "female",
                    "name": [{"family": "Bernard"}],
                },
                {"resourceType": "Organization", "id": gone.id, "name": "Clinique des Lilas"},
                {"resourceType": "Practitioner", "id": "new-1", "name": [{"family": "Petit"}]},
            ],
        )
    assert [(v.reference, v.version, created) for v, created in results] == [
        (f"Patient/{changed.id}", 2, False),
        (f"Organization/{gone.id}", 3, True),  # revived after its deletion, as `update` says
        ("Practitioner/new-1", 1, True),
    ]
    assert results[0][0].resource["meta"]["versionId"] == "2"
    with store.read() as conn:
        assert store.get(conn, "Patient", changed.id, SYSTEM).resource["gender"] == "female"
        assert store.get(conn, "Organization", gone.id, SYSTEM).resource["name"] == "Clinique des Lilas"
        assert store.get(conn, "Practitioner", "new-1", SYSTEM).version == 1
        assert store.find(conn, "Patient", "gender=female", SYSTEM) == [changed.id]
        assert store.find(conn, "Patient", "gender=male", SYSTEM) == [kept.id]
        assert store.find(conn, "Patient", "family=durand", SYSTEM) == []
        assert store.find(conn, "Patient", "family=bernard", SYSTEM) == [changed.id]
        assert store.find(conn, "Organization", "name=lilas", SYSTEM) == []  # prefix match only
        assert store.find(conn, "Organization", "name=clinique", SYSTEM) == [gone.id]
        # the old rows went (no stale row of the previous version left beside the new ones)
        key = results[0][0].resource_key
        tokens = [r[0] for r in conn.execute(select(idx_token.c.code).where(idx_token.c.resource_key == key))]
        strings = [
            r[0]
            for r in conn.execute(
                select(idx_string.c.value_normalized).where(idx_string.c.resource_key == key)
            )
        ]
        assert "female" in tokens and "male" not in tokens
        assert "bernard" in strings and "durand" not in strings
        methods = conn.execute(
            select(resource_history.c.version, resource_history.c.method)
            .where(resource_history.c.resource_key == key)
            .order_by(resource_history.c.version)
        ).all()
        assert [tuple(m) for m in methods] == [(1, "POST"), (2, "PUT")]
        page = store.history(conn, SYSTEM, resource_type="Organization", id=gone.id)
        assert [v.version for v in page.versions] == [3, 2, 1]


def test_update_many_twice_makes_one_version_each_time(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        first = store.update_many(
            conn, [{"resourceType": "Patient", "id": f"p{i}", "gender": "male"} for i in range(3)]
        )
    with store.write() as conn:
        second = store.update_many(
            conn, [{"resourceType": "Patient", "id": f"p{i}", "gender": "other"} for i in range(3)]
        )
    assert [(v.version, c) for v, c in first] == [(1, True)] * 3
    assert [(v.version, c) for v, c in second] == [(2, False)] * 3
    with store.read() as conn:
        assert sorted(store.find(conn, "Patient", "gender=other", SYSTEM, limit=10)) == ["p0", "p1", "p2"]
        assert store.find(conn, "Patient", "gender=male", SYSTEM, limit=10) == []


def test_update_many_refuses_the_same_resource_twice(engine: Engine) -> None:
    store = Store(engine)
    body = {"resourceType": "Patient", "id": "twice"}
    with pytest.raises(Invalid), store.write() as conn:
        store.update_many(conn, [body, dict(body)])
    with store.write() as conn:
        assert store.update_many(conn, []) == []


def _observation(id: str, patient: str, status: str, note: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": note},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.mark.parametrize("bulk", [True, False])
def test_update_rewrites_only_what_changed_and_keeps_rows_right(engine: Engine, bulk: bool) -> None:
    """Index rows of unchanged tables are kept; a new compartment or text still reaches every row."""
    store = Store(engine)

    def write(body: dict[str, Any]) -> StoredVersion:
        with store.write() as conn:
            return store.update_many(conn, [body])[0][0] if bulk else store.update(conn, body)[0]

    with store.write() as conn:
        store.create_many(conn, [{"resourceType": "Patient", "id": p} for p in ("pa", "pb")])
    key = write(_observation("o1", "pa", "preliminary", "weight")).resource_key
    write(_observation("o1", "pa", "final", "weight"))  # one token changes
    with store.read() as conn:
        assert store.find(conn, "Observation", "status=final", SYSTEM) == ["o1"]
        assert store.find(conn, "Observation", "status=preliminary", SYSTEM) == []
        assert store.find(conn, "Observation", "code=29463-7&subject=Patient/pa", SYSTEM) == ["o1"]
    write(_observation("o1", "pb", "final", "body mass"))  # another patient, another text
    with store.read() as conn:
        assert store.find(conn, "Observation", "subject=Patient/pb&code=29463-7", SYSTEM) == ["o1"]
        assert store.find(conn, "Observation", "subject=Patient/pa", SYSTEM) == []
        assert store.find(conn, "Observation", "_content=mass", SYSTEM) == ["o1"]
        for table in (idx_token, idx_string, idx_reference):
            compartments = {
                r[0] for r in conn.execute(select(table.c.compartment).where(table.c.resource_key == key))
            }
            assert compartments == {"pb"}, table.name
