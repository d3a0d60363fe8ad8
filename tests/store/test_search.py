"""Searches compiled to SQL over the index tables, on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, FromClause, insert

from socle.fhir.compartment import patient_compartment
from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.query import parse_query
from socle.store.access import SYSTEM
from socle.store.indexes import write_indexes
from socle.store.schema import resource
from socle.store.search import compile_search, find_keys, supported_search_params


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "helene",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1234"}, {"value": "local-1"}],
        "name": [{"family": "Dupont", "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1980-05-17",
        "telecom": [{"system": "email", "value": "h@x.fr"}],
    },
    {
        "resourceType": "Patient",
        "id": "obrien",
        "name": [{"family": "O’Brien", "given": ["Sean"]}],
        "gender": "male",
        "birthDate": "1980",
        "generalPractitioner": [{"reference": "https://annuaire.example/fhir/Practitioner/d9"}],
    },
    {"resourceType": "Patient", "id": "percent", "name": [{"family": "100%_sure"}], "gender": "other"},
    {
        "resourceType": "Observation",
        "id": "height",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}], "text": "Body height"},
        "subject": {"reference": "Patient/helene"},
        "effectiveDateTime": "2020-01-01T10:00:00Z",
        "valueQuantity": {"value": 178, "system": "http://unitsofmeasure.org", "code": "cm"},
    },
    {
        "resourceType": "Observation",
        "id": "weight",
        "status": "amended",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": "Body weight"},
        "subject": {"reference": "Patient/obrien", "identifier": {"system": "urn:oid:1.2", "value": "99"}},
        "effectivePeriod": {"start": "2020-01-01", "end": "2020-01-31"},
        "valueQuantity": {"value": 72.5, "system": "http://unitsofmeasure.org", "code": "kg"},
    },
    {
        "resourceType": "Observation",
        "id": "group",
        "status": "final",
        "subject": {"reference": "Group/helene"},
    },
    {
        "resourceType": "RiskAssessment",
        "id": "risk",
        "status": "final",
        "prediction": [{"probabilityDecimal": 0.8}],
    },
    {"resourceType": "ValueSet", "id": "vs", "status": "active", "url": "http://socle.example/ValueSet/vs"},
]


@dataclass(frozen=True)
class CompartmentOnly:
    """A policy admitting one patient's compartment, as the trust layer will build them."""

    patient: str

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.compartment == self.patient


@pytest.fixture
def db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        items: list[tuple[int, str, str | None, dict[str, Any]]] = []
        for n, body in enumerate(RESOURCES):
            compartment = patient_compartment(body)
            key: int = conn.execute(
                insert(resource).returning(resource.c.resource_key),
                {
                    "resource_type": body["resourceType"],
                    "id": body["id"],
                    "version": 1,
                    "updated_at": us("2024-01-01T00:00:00") + n * 1_000_000,
                    "deleted": False,
                    "compartment": compartment,
                },
            ).scalar_one()
            items.append((key, body["resourceType"], compartment, body))
        write_indexes(conn, items)
        # A deleted resource keeps no index rows in real life; keep some here to prove the filter.
        gone: int = conn.execute(
            insert(resource).returning(resource.c.resource_key),
            {"resource_type": "Patient", "id": "gone", "version": 2, "updated_at": 0, "deleted": True},
        ).scalar_one()
        write_indexes(
            conn, [(gone, "Patient", None, {"resourceType": "Patient", "id": "gone", "gender": "female"})]
        )
    return engine


def ids(engine: Engine, resource_type: str, query: str, access: Any = SYSTEM) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(compile_search(parse_query(resource_type, query), access)).all()
    return sorted(row.id for row in rows)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gender=female", ["helene"]),
        ("gender=female,male", ["helene", "obrien"]),
        ("identifier=urn:oid:1.2.250.1.213.1.4.8|1234", ["helene"]),
        ("identifier=1234", ["helene"]),
        ("identifier=|local-1", ["helene"]),
        ("identifier=|1234", []),
        ("identifier=urn:oid:1.2.250.1.213.1.4.8|", ["helene"]),
        ("identifier=other|1234", []),
        ("gender:not=female", ["obrien", "percent"]),
        ("email=h@x.fr", ["helene"]),
        ("_id=helene,obrien", ["helene", "obrien"]),
        ("_id:not=helene", ["obrien", "percent"]),
        ("gender=female&gender=male", []),
        ("gender=female&identifier=1234", ["helene"]),
    ],
)
def test_token(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Patient", query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("family=dup", ["helene"]),
        ("family=DUPONT", ["helene"]),
        ("given=helene", ["helene"]),
        ("name=Hél", ["helene"]),
        ("family=o'b", ["obrien"]),
        ("family=o’brien", ["obrien"]),
        ("family:exact=Dupont", ["helene"]),
        ("family:exact=dupont", []),
        ("family:contains=pon", ["helene"]),
        ("family:contains=%", ["percent"]),
        ("family:contains=_", ["percent"]),
        ("family=upont", []),
        ("name=sean,dupont", ["helene", "obrien"]),
    ],
)
def test_string(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Patient", query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("birthdate=1980-05-17", ["helene"]),
        ("birthdate=1980", ["helene", "obrien"]),  # the year contains the day, and itself
        ("birthdate=1980-05", ["helene"]),
        ("birthdate=ne1980-05-17", ["obrien"]),
        ("birthdate=gt1980-05-17", ["obrien"]),  # the year reaches past the day
        ("birthdate=lt1980-05-17", ["obrien"]),
        ("birthdate=ge1980-05-17", ["helene", "obrien"]),
        ("birthdate=le1980-05-16", ["obrien"]),
        ("birthdate=sa1979-12-31", ["helene", "obrien"]),
        ("birthdate=sa1980-01-01", ["helene"]),
        ("birthdate=eb1981", ["helene", "obrien"]),
        ("birthdate=eb1980-12-31", ["helene"]),
        ("birthdate=eb1980-05-17", []),
        ("birthdate=ap1980-05-17", ["helene", "obrien"]),
        ("birthdate=ge1981", []),
        ("birthdate=1979,1980-05-17", ["helene"]),
    ],
)
def test_date(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Patient", query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date=2020-01-01", ["height"]),  # the period is wider than the day
        ("date=2020-01", ["height", "weight"]),
        ("date=2020-01-01T10:00:00Z", ["height"]),
        ("date=2020-01-01T11:00:00+01:00", ["height"]),
        ("date=gt2020-01-15", ["weight"]),
        ("date=lt2020-01-15", ["height", "weight"]),
        ("date=sa2019-12-31", ["height", "weight"]),
        ("date=ge2020-02", []),
    ],
)
def test_date_periods_and_timezones(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Observation", query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("subject=Patient/helene", ["height"]),
        ("subject=helene", ["group", "height"]),  # Group/helene and Patient/helene: both targets
        ("subject:Patient=helene", ["height"]),
        ("patient=obrien", ["weight"]),
        ("subject=Patient/helene,Patient/obrien", ["height", "weight"]),
        ("subject:identifier=urn:oid:1.2|99", ["weight"]),
        ("subject:identifier=99", ["weight"]),
        ("subject=Patient/nobody", []),
    ],
)
def test_reference(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Observation", query) == expected


def test_absolute_reference(db: Engine) -> None:
    url = "https://annuaire.example/fhir/Practitioner/d9"
    assert ids(db, "Patient", f"general-practitioner={url}") == ["obrien"]
    assert ids(db, "Patient", "general-practitioner=Practitioner/d9") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("value-quantity=178", ["height"]),
        ("value-quantity=178.0", ["height"]),
        ("value-quantity=72", []),  # 72 means [71.5, 72.5): 72.5 is outside
        ("value-quantity=72.5", ["weight"]),
        ("value-quantity=gt100", ["height"]),
        ("value-quantity=lt100", ["weight"]),
        ("value-quantity=ge72.5", ["height", "weight"]),
        ("value-quantity=le72.5", ["weight"]),
        ("value-quantity=ne178", ["weight"]),
        ("value-quantity=ap180", ["height"]),
        ("value-quantity=178|http://unitsofmeasure.org|cm", ["height"]),
        ("value-quantity=178||cm", ["height"]),
        ("value-quantity=178||kg", []),
        ("value-quantity=gt0||kg", ["weight"]),
        ("value-quantity=178|http://other|cm", []),
    ],
)
def test_quantity(db: Engine, query: str, expected: list[str]) -> None:
    assert ids(db, "Observation", query) == expected


def test_token_text_number_uri_and_last_updated(db: Engine) -> None:
    assert ids(db, "Observation", "code:text=body h") == ["height"]
    assert ids(db, "Observation", "code=http://loinc.org|29463-7&status=amended") == ["weight"]
    assert ids(db, "RiskAssessment", "probability=gt0.5") == ["risk"]
    assert ids(db, "RiskAssessment", "probability=0.8") == ["risk"]
    assert ids(db, "RiskAssessment", "probability=lt0.5") == []
    assert ids(db, "ValueSet", "url=http://socle.example/ValueSet/vs") == ["vs"]
    assert ids(db, "ValueSet", "url=http://socle.example/ValueSet") == []
    assert ids(db, "Patient", "_lastUpdated=ge2024-01-01T00:00:01Z") == ["obrien", "percent"]
    assert ids(db, "Patient", "_lastUpdated=lt2024-01-01T00:00:01Z") == ["helene"]
    assert ids(db, "Patient", "_lastUpdated=2024-01-01") == ["helene", "obrien", "percent"]


def test_deleted_and_other_types_are_excluded(db: Engine) -> None:
    assert ids(db, "Patient", "") == ["helene", "obrien", "percent"]
    assert ids(db, "Patient", "gender=female") == ["helene"]  # not "gone"


def test_access_filter_is_applied(db: Engine) -> None:
    assert ids(db, "Observation", "status=final,amended", CompartmentOnly("obrien")) == ["weight"]
    assert ids(db, "Patient", "gender=female", CompartmentOnly("obrien")) == []


def test_find_keys_for_conditional_operations(db: Engine) -> None:
    with db.connect() as conn:
        found = find_keys(conn, "Patient", "identifier=urn:oid:1.2.250.1.213.1.4.8|1234", SYSTEM, 2)
        assert [id_ for _key, id_ in found] == ["helene"]
        assert len(find_keys(conn, "Patient", "birthdate=1980", SYSTEM, 1)) == 1
        with pytest.raises(Invalid):
            find_keys(conn, "Patient", "foo=1&gender=female", SYSTEM, 2)
        with pytest.raises(Invalid):
            find_keys(conn, "Patient", "_count=1", SYSTEM, 2)


def test_terminology_modifiers_are_not_supported(db: Engine) -> None:
    for resource_type, query in [
        ("Observation", "code:in=http://loinc.org/vs"),
        ("Observation", "code:above=http://snomed.info/sct|235856003"),
    ]:
        with pytest.raises(NotSupported):
            compile_search(parse_query(resource_type, query), SYSTEM)


def test_supported_search_params_lists_searchable_ones() -> None:
    names = {name for name, _url, _type in supported_search_params("Patient")}
    assert {"_id", "_lastUpdated", "identifier", "name", "birthdate", "general-practitioner"} <= names
    observation = {name for name, _url, _type in supported_search_params("Observation")}
    assert {"code-value-quantity", "combo-code-value-concept", "component-code-value-quantity"} <= observation
    assert "_text" not in names
