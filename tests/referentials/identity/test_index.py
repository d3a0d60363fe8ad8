"""MPI tables: written, deleted, rebuilt; candidates honour the access filter."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Engine, FromClause, func, select

from socle.referentials.identity import index
from socle.referentials.identity.comparison import record_from_traits
from socle.referentials.identity.profile import Reliability, patient_resource
from socle.referentials.identity.registry_schema import mpi_block, mpi_traits
from socle.referentials.identity.traits import PartialDate, Traits
from socle.store.access import SYSTEM
from socle.store.repository import Store
from tests.referentials.identity._fixtures import store_patients

JEAN = Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male", "75114")
ANNE = Traits("Durand", ("Anne",), PartialDate(1971, 12, 1), "female", "33063")


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(mpi_traits)).scalar_one(),
            conn.execute(select(func.count()).select_from(mpi_block)).scalar_one(),
        )


def test_write_refresh_delete_and_rebuild(engine: Engine) -> None:
    written = store_patients(engine, {"jean": JEAN, "anne": ANNE})
    traits_rows, block_rows = counts(engine)
    assert traits_rows == 2 and block_rows >= 10
    with engine.begin() as conn:
        index.refresh(conn, written.values())  # idempotent
    assert counts(engine) == (traits_rows, block_rows)
    with engine.begin() as conn:
        index.delete_blocking_keys(conn, [written["jean"].resource_key])
    assert counts(engine)[0] == 1
    with engine.begin() as conn:
        assert index.rebuild(conn) == 2
    assert counts(engine) == (traits_rows, block_rows)


def test_non_patients_are_ignored_and_inactive_patients_are_not_candidates(engine: Engine) -> None:
    store = Store(engine)
    inactive = patient_resource(JEAN, reliability=Reliability(), id="old")
    inactive["active"] = False
    with engine.begin() as conn:
        written = store.create_many(
            conn, [inactive, {"resourceType": "Organization", "id": "o1", "name": "X"}]
        )
        index.refresh(conn, written)
        index.write_blocking_keys(
            conn, [(written[1].resource_key, "Organization", None, written[1].resource)]
        )
        assert index.candidates(conn, record_from_traits(JEAN), SYSTEM) == []
    assert counts(engine)[0] == 1


class _OnlyCompartment:
    def __init__(self, patient: str) -> None:
        self.patient = patient

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.compartment == self.patient


def test_candidates_honour_the_access_filter(engine: Engine) -> None:
    store_patients(engine, {"jean": JEAN, "jean2": JEAN})
    with engine.connect() as conn:
        assert {r.id for r in index.candidates(conn, record_from_traits(JEAN), SYSTEM)} == {"jean", "jean2"}
        seen = index.candidates(conn, record_from_traits(JEAN), _OnlyCompartment("jean2"))
        assert [r.id for r in seen] == ["jean2"]


def test_patient_writes_through_the_store_keep_the_index(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        store.create(conn, patient_resource(JEAN, reliability=Reliability(), id="jean"))
    with store.read() as conn:
        assert [r.id for r in index.candidates(conn, record_from_traits(JEAN), SYSTEM)] == ["jean"]
    with store.write() as conn:
        store.delete(conn, "Patient", "jean")
    with store.read() as conn:
        assert index.candidates(conn, record_from_traits(JEAN), SYSTEM) == []


def test_stored_rows_keep_the_traits_and_the_refined_keys(engine: Engine) -> None:
    """Rows go through the store's bulk insert (COPY on PostgreSQL): traits, active flag and keys."""
    partial = Traits("Martin", ("Marie", "Claire"), PartialDate(1950), "female")
    store_patients(engine, {"marie": partial})
    with engine.connect() as conn:
        row = conn.execute(select(mpi_traits)).one()
        assert (row.birth_name, row.given_names, row.birth_date, row.sex, row.active) == (
            "MARTIN",
            "MARIE|CLAIRE",
            "1950",
            "F",
            True,
        )
        # A common surname with a date without month: found by a full date through the month-refined
        # surname-and-year key (`-` stored, probed by every query), the first names differing.
        query = Traits("Martin", ("Madeleine",), PartialDate(1950, 3, 2), "female")
        assert [r.id for r in index.candidates(conn, record_from_traits(query), SYSTEM)] == ["marie"]
