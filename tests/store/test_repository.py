"""The store on both backends: versions, tombstones, history, compartments, the access-filter seam."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, FromClause, false, select

from socle.fhir.errors import Gone, NotFound, PreconditionFailed
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.store.schema import resource, resource_history


@dataclass(frozen=True)
class DenyAll:
    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return false()


@dataclass(frozen=True)
class OnlyCompartment:
    patient: str

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.compartment == self.patient


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **extra}


def test_create_update_delete_versions(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        created = store.create(conn, patient(gender="male"))
    assert created.version == 1 and created.resource["meta"]["versionId"] == "1"
    with store.write() as conn:
        updated, was_created = store.update(conn, patient(id=created.id, gender="female"))
    assert (updated.version, was_created) == (2, False)
    assert updated.updated_at > created.updated_at
    with store.write() as conn:
        tombstone = store.delete(conn, "Patient", created.id)
        assert tombstone is not None and tombstone.version == 3
        assert store.delete(conn, "Patient", created.id) is None
    with store.read() as conn:
        with pytest.raises(Gone):
            store.get(conn, "Patient", created.id, SYSTEM)
        assert store.get_version(conn, "Patient", created.id, 2, SYSTEM).resource["gender"] == "female"
        with pytest.raises(Gone):
            store.get_version(conn, "Patient", created.id, 3, SYSTEM)
        page = store.history(conn, SYSTEM, resource_type="Patient", id=created.id)
    assert [(v.version, v.method) for v in page.versions] == [(3, "DELETE"), (2, "PUT"), (1, "POST")]


def test_if_match_mismatch_is_precondition_failed(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        created = store.create(conn, patient())
    with store.write() as conn, pytest.raises(PreconditionFailed):
        store.update(conn, patient(id=created.id), if_match=5)
    with store.write() as conn:
        version, _ = store.update(conn, patient(id=created.id), if_match=1)
    assert version.version == 2


def test_rolled_back_write_leaves_nothing(engine: Engine) -> None:
    store = Store(engine)
    with pytest.raises(RuntimeError), store.write() as conn:
        store.create_many(conn, [patient(), patient()])
        raise RuntimeError("crash in the middle of a transaction")
    with engine.connect() as conn:
        assert conn.execute(select(resource)).all() == []
        assert conn.execute(select(resource_history)).all() == []


def test_concurrent_updates_without_if_match_lose_nothing(engine: Engine) -> None:
    """Each writer appends a version; none overwrites another's version number."""
    store = Store(engine)
    with store.write() as conn:
        created = store.create(conn, patient())
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with store.write() as conn:
                    store.update(conn, patient(id=created.id, gender="other", birthDate=f"20{n}{i}-01-01"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as conn:
        page = store.history(conn, SYSTEM, resource_type="Patient", id=created.id, count=100)
    assert sorted(v.version for v in page.versions) == list(range(1, 22))


def test_patient_compartment_key(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        p = store.create(conn, patient())
        obs = store.create(
            conn,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{p.id}"},
            },
        )
        org = store.create(conn, {"resourceType": "Organization", "name": "x"})
    assert (p.compartment, obs.compartment, org.compartment) == (p.id, p.id, None)


def test_every_read_path_obeys_the_access_filter(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        mine = store.create(conn, patient())
        other = store.create(conn, patient())
    deny, own = DenyAll(), OnlyCompartment(mine.id)
    with store.read() as conn:
        with pytest.raises(NotFound):
            store.get(conn, "Patient", mine.id, deny)
        with pytest.raises(NotFound):
            store.get_version(conn, "Patient", mine.id, 1, deny)
        assert store.history(conn, deny).versions == []
        assert store.existing_ids(conn, "Patient", [mine.id], deny) == set()
        assert store.get_many(conn, [mine.resource_key], deny) == []
        assert store.find(conn, "Patient", f"_id={mine.id}", deny) == []

        assert store.get(conn, "Patient", mine.id, own).id == mine.id
        with pytest.raises(NotFound):
            store.get(conn, "Patient", other.id, own)
        assert [v.id for v in store.history(conn, own).versions] == [mine.id]
        assert store.find(conn, "Patient", f"_id={mine.id},{other.id}", own) == [mine.id]
        versions, _, _ = store.search_page(conn, "Patient", [], own, count=10, after=None, strict=False)
        assert [v.id for v in versions] == [mine.id]
