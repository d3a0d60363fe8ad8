"""Index rows as the repository writes them, on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from socle.fhir.hashing import param_hash, system_value_hash, value_hash
from socle.fhir.search_params import extract_index_values
from socle.store.indexes import (
    INDEX_TABLES,
    MAX_STRING_LENGTH,
    delete_indexes,
    idx_date,
    idx_reference,
    idx_string,
    idx_token,
    write_indexes,
)
from socle.store.schema import resource

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1234"}],
    "name": [{"family": "Hélène-" + "x" * 300, "given": ["Marie"]}],
    "birthDate": "1980-05-17",
    "gender": "female",
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2020-01-01T10:00:00Z",
    "valueQuantity": {"value": 178, "system": "http://unitsofmeasure.org", "code": "cm"},
}


def add_resource(conn: Connection, body: dict[str, Any], compartment: str | None = None) -> int:
    key: int = conn.execute(
        insert(resource).returning(resource.c.resource_key),
        {
            "resource_type": body["resourceType"],
            "id": body["id"],
            "version": 1,
            "updated_at": 1_700_000_000_000_000,
            "deleted": False,
            "compartment": compartment,
        },
    ).scalar_one()
    return int(key)


def counts(conn: Connection) -> dict[str, int]:
    return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in INDEX_TABLES}


def test_rows_match_extracted_values(engine: Engine) -> None:
    with engine.begin() as conn:
        patient_key = add_resource(conn, PATIENT, "p1")
        observation_key = add_resource(conn, OBSERVATION, "p1")
        write_indexes(
            conn,
            [(patient_key, "Patient", "p1", PATIENT), (observation_key, "Observation", "p1", OBSERVATION)],
        )
        total = sum(counts(conn).values())
    assert total == extract_index_values(PATIENT).count() + extract_index_values(OBSERVATION).count()
    with engine.connect() as conn:
        token = conn.execute(
            select(idx_token).where(idx_token.c.resource_key == patient_key, idx_token.c.code == "1234")
        ).one()
        assert token.compartment == "p1"
        assert token.param_hash == param_hash("Patient", "identifier")
        assert token.value_hash == value_hash("Patient", "identifier", "1234")
        assert token.sys_value_hash == system_value_hash(
            "Patient", "identifier", "urn:oid:1.2.250.1.213.1.4.8", "1234"
        )
        assert token.sys_hash == value_hash("Patient", "identifier", "urn:oid:1.2.250.1.213.1.4.8")
        reference = conn.execute(
            select(idx_reference).where(idx_reference.c.resource_key == observation_key)
        ).all()
        assert {(r.target_type, r.target_id, r.target_hash) for r in reference} == {
            ("Patient", "p1", system_value_hash("Observation", "subject", "Patient", "p1")),
            ("Patient", "p1", system_value_hash("Observation", "patient", "Patient", "p1")),
        }
        date = conn.execute(
            select(idx_date.c.low, idx_date.c.high).where(idx_date.c.resource_key == observation_key)
        ).one()
        assert date.high - date.low == 1_000_000


def test_long_strings_are_truncated_in_the_normalised_column_only(engine: Engine) -> None:
    with engine.begin() as conn:
        key = add_resource(conn, PATIENT)
        write_indexes(conn, [(key, "Patient", None, PATIENT)])
        row = conn.execute(
            select(idx_string).where(idx_string.c.param_hash == param_hash("Patient", "family"))
        ).one()
    assert len(row.value_normalized) == MAX_STRING_LENGTH
    assert row.value_normalized.startswith("helene-xxx")
    assert row.value_exact == PATIENT["name"][0]["family"]
    assert row.compartment is None


def test_delete_removes_only_the_given_resources(engine: Engine) -> None:
    with engine.begin() as conn:
        first = add_resource(conn, PATIENT)
        second = add_resource(conn, OBSERVATION)
        write_indexes(conn, [(first, "Patient", None, PATIENT), (second, "Observation", None, OBSERVATION)])
        delete_indexes(conn, [first])
        remaining: set[int] = set()
        for table in INDEX_TABLES:
            remaining.update(conn.execute(select(table.c.resource_key)).scalars())
        assert remaining == {second}
        delete_indexes(conn, [second, 999_999])
        assert sum(counts(conn).values()) == 0


def test_update_is_delete_then_write(engine: Engine) -> None:
    with engine.begin() as conn:
        key = add_resource(conn, PATIENT)
        write_indexes(conn, [(key, "Patient", None, PATIENT)])
        before = sum(counts(conn).values())
        changed = PATIENT | {"gender": "male", "birthDate": "1981"}
        delete_indexes(conn, [key])
        write_indexes(conn, [(key, "Patient", None, changed)])
        assert sum(counts(conn).values()) == before
        genders = select(idx_token.c.code).where(idx_token.c.param_hash == param_hash("Patient", "gender"))
        assert list(conn.execute(genders).scalars()) == ["male"]


def test_bulk_write_of_many_resources(engine: Engine) -> None:
    items = []
    with engine.begin() as conn:
        for n in range(300):
            body = OBSERVATION | {"id": f"o{n}", "valueQuantity": {"value": n, "code": "cm"}}
            items.append((add_resource(conn, body, "p1"), "Observation", "p1", body))
        write_indexes(conn, items)
        write_indexes(conn, [])
        assert sum(counts(conn).values()) == sum(extract_index_values(body).count() for *_, body in items)


def test_revision_0004_upgrades_a_database_with_rows(engine: Engine) -> None:
    """Rows written before 0004 survive it; new writes fill the canonical and composite columns."""
    from sqlalchemy import text

    from socle.store.indexes import idx_composite, idx_quantity
    from socle.store.migrate import downgrade, upgrade

    downgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO idx_quantity (resource_key, seq, compartment, param_hash, value, system, code, "
                "units_hash) VALUES (999999, 0, 'p1', 7, 178.0, 'http://unitsofmeasure.org', 'cm', 8)"
            )
        )
    upgrade(engine)
    with engine.begin() as conn:
        old = conn.execute(select(idx_quantity).where(idx_quantity.c.resource_key == 999_999)).one()
        assert (old.value, old.canonical, old.canonical_units_hash) == (178.0, None, None)
        key = add_resource(conn, OBSERVATION, "p1")
        write_indexes(conn, [(key, "Observation", "p1", OBSERVATION)])
        new = conn.execute(
            select(idx_quantity.c.canonical).where(
                idx_quantity.c.resource_key == key,
                idx_quantity.c.param_hash == param_hash("Observation", "value-quantity"),
            )
        ).scalar_one()
        assert new == 1.78  # 178 cm in m
        composite_rows = conn.execute(select(idx_composite).where(idx_composite.c.resource_key == key)).all()
        assert {(r.value, r.canonical) for r in composite_rows} == {(178.0, 1.78)}
