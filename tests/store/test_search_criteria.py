"""Every search type, modifier and prefix, chains, `_has` and composites, on SQLite and PostgreSQL.

The data set is small and hand-made so each expectation can be checked by reading it. Each test
runs a table of (query, expected ids) and reports every mismatch at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, FromClause, insert

from socle.fhir.compartment import patient_compartment
from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.query import parse_query
from socle.store.access import SYSTEM, AccessFilter
from socle.store.indexes import write_indexes
from socle.store.schema import resource
from socle.store.search import compile_search

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def loinc(code: str, display: str = "") -> dict[str, Any]:
    coding = {"system": LOINC, "code": code} | ({"display": display} if display else {})
    return {"coding": [coding]}


def qty(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": code}


def bp(id_: str, patient: str, systolic: float, diastolic: float, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": loinc("85354-9", "Blood pressure panel"),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "component": [
            {"code": loinc("8480-6"), "valueQuantity": qty(systolic, "mm[Hg]")},
            {"code": loinc("8462-4"), "valueQuantity": qty(diastolic, "mm[Hg]")},
        ],
    }


def obs(id_: str, patient: str | None, code_: str, value: dict[str, Any], **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "id": id_, "status": "final", "code": loinc(code_)}
    if patient:
        body["subject"] = {"reference": patient if "/" in patient else f"Patient/{patient}"}
    return body | value | more


RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "helene",
        "meta": {
            "tag": [{"system": "http://t", "code": "demo"}],
            "profile": ["http://socle.example/StructureDefinition/p"],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
            "source": "http://src.example/feed#1",
        },
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": "urn:hosp",
                "value": "446053",
            }
        ],
        "name": [{"family": "Dupont", "given": ["Hélène"]}, {"family": "Martin", "use": "maiden"}],
        "gender": "female",
        "birthDate": "1980-12-31",
        "generalPractitioner": [{"reference": "Practitioner/dr-peter"}],
        "managingOrganization": {"reference": "Organization/org1"},
    },
    {
        "resourceType": "Patient",
        "id": "daubigne",
        "identifier": [{"system": "urn:other", "value": "446053"}],
        "name": [{"family": "d'Aubigné", "given": ["Agrippa"]}],
        "gender": "male",
        "birthDate": "1980",
        "generalPractitioner": [{"reference": "Practitioner/dr-marie"}],
    },
    {
        "resourceType": "Patient",
        "id": "nogender",
        "name": [{"family": "Pan", "given": ["Peter"]}],
        "generalPractitioner": [{"reference": "Practitioner/dr-gone"}],
    },
    {"resourceType": "Practitioner", "id": "dr-peter", "name": [{"family": "Peter", "given": ["John"]}]},
    {"resourceType": "Practitioner", "id": "dr-marie", "name": [{"family": "Curie", "given": ["Marie"]}]},
    {"resourceType": "Organization", "id": "org1", "name": "Hôpital Nord"},
    bp("bp-high", "helene", 120, 80, "2020-01-01T23:30:00-05:00"),
    bp("bp-low", "daubigne", 95, 130, "2020-03-01T10:00:00Z"),
    obs(
        "glucose",
        "helene",
        "2345-7",
        {"valueQuantity": qty(97.3, "mg/dL")},
        effectiveDateTime="2020-01-01T12:00:00Z",
        code=loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
    ),
    obs("glucose-gl", "daubigne", "2339-0", {"valueQuantity": qty(1.2, "g/L")}),
    obs("weight", "daubigne", "29463-7", {"valueQuantity": qty(154.3, "[lb_av]")}),
    obs("temp", "daubigne", "8310-5", {"valueQuantity": qty(98.6, "[degF]")}),
    obs("hr", "helene", "8867-4", {"valueQuantity": qty(72, "/min")}),
    obs(
        "smoking",
        "helene",
        "72166-2",
        {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "449868002"}]}},
    ),
    obs("orphan", None, "8302-2", {"valueQuantity": qty(178, "cm")}, status="preliminary"),
    obs("group", "Group/g1", "8302-2", {"valueQuantity": {"value": 50, "unit": "kilo"}}),
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "subject": {"reference": "Patient/helene"},
    },
    {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "finished",
        "subject": {"reference": "Patient/daubigne"},
    },
    {
        "resourceType": "Encounter",
        "id": "e3",
        "status": "finished",
        "subject": {"reference": "Patient/nogender"},
    },
    {
        "resourceType": "AuditEvent",
        "id": "a1",
        "type": {"code": "rest"},
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/dr-peter"}, "requestor": True}],
        "source": {"observer": {"reference": "Device/d1"}},
        "entity": [{"what": {"reference": "Observation/glucose"}}],
    },
    {
        "resourceType": "AuditEvent",
        "id": "a2",
        "type": {"code": "rest"},
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/dr-marie"}, "requestor": True}],
        "source": {"observer": {"reference": "Device/d1"}},
        "entity": [{"what": {"reference": "Observation/hr"}}],
    },
    {"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "http://acme.org/fhir/ValueSet/123"},
    {"resourceType": "ValueSet", "id": "vs2", "status": "active", "url": "http://acme.org/fhir/ValueSet/456"},
    {
        "resourceType": "ValueSet",
        "id": "vs3",
        "status": "active",
        "url": "http://other.org/fhir/ValueSet/123",
    },
    {"resourceType": "ValueSet", "id": "vs4", "status": "draft"},
    *(
        {
            "resourceType": "RiskAssessment",
            "id": id_,
            "status": "final",
            "prediction": [{"probabilityDecimal": p}],
        }
        for id_, p in (("r08", 0.8), ("r100", 100), ("r1004", 100.4), ("r1005", 100.5))
    ),
]
# Deleted resources keep index rows here (they do not in real life) to prove the `deleted` filters.
DELETED: list[dict[str, Any]] = [
    {"resourceType": "Practitioner", "id": "dr-gone", "name": [{"family": "Peter"}]},
    obs("gone", "helene", "2345-7", {"valueQuantity": qty(100, "mg/dL")}),
]


@dataclass(frozen=True)
class CompartmentOnly:
    """A policy admitting one patient's compartment (so no Practitioner, Organization, ...)."""

    patient: str

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.compartment == self.patient


@dataclass(frozen=True)
class TypesOnly:
    types: tuple[str, ...]

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return table.c.resource_type.in_(self.types)


@pytest.fixture
def db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        items: list[tuple[int, str, str | None, dict[str, Any]]] = []
        for n, body in enumerate(RESOURCES + DELETED):
            compartment = patient_compartment(body)
            key: int = conn.execute(
                insert(resource).returning(resource.c.resource_key),
                {
                    "resource_type": body["resourceType"],
                    "id": body["id"],
                    "version": 1,
                    "updated_at": 1_700_000_000_000_000 + n,
                    "deleted": n >= len(RESOURCES),
                    "compartment": compartment,
                },
            ).scalar_one()
            items.append((key, body["resourceType"], compartment, body))
        write_indexes(conn, items)
    return engine


def ids(engine: Engine, resource_type: str, query: str, access: AccessFilter = SYSTEM) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(compile_search(parse_query(resource_type, query, strict=True), access)).all()
    return sorted(row.id for row in rows)


def check(engine: Engine, resource_type: str, table: list[tuple[str, list[str]]]) -> None:
    wrong = []
    for query, expected in table:
        got = ids(engine, resource_type, query)
        if got != sorted(expected):
            wrong.append(f"{resource_type}?{query}: expected {sorted(expected)}, got {got}")
    assert not wrong, "\n".join(wrong)


ALL_OBS = ["bp-high", "bp-low", "glucose", "glucose-gl", "weight", "temp", "hr", "smoking", "orphan", "group"]


def test_token_forms_and_modifiers(db: Engine) -> None:
    check(
        db,
        "Patient",
        [
            ("identifier=446053", ["helene", "daubigne"]),  # several values across resources
            ("identifier=urn:hosp|446053", ["helene"]),
            ("identifier=urn:hosp|", ["helene"]),  # system| (ix_idx_token_param_sys)
            ("identifier=urn:nothing|", []),
            ("identifier=|446053", []),
            ("identifier:of-type=" + V2_0203 + "|MR|446053", ["helene"]),
            ("identifier:of-type=" + V2_0203 + "|MR|999", []),
            ("identifier:of-type=" + V2_0203 + "|DL|446053", []),
            ("gender:not=male", ["helene", "nogender"]),  # :not keeps the resource with no gender
            ("gender:not=male,female", ["nogender"]),
            ("gender:missing=true", ["nogender"]),
            ("gender:missing=false", ["daubigne", "helene"]),
            ("identifier:missing=true", ["nogender"]),
            ("_tag=http://t|demo", ["helene"]),
            ("_tag:missing=true", ["daubigne", "nogender"]),
            ("_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", ["helene"]),
            ("_profile=http://socle.example/StructureDefinition/p", ["helene"]),
            ("_source=http://src.example/feed#1", ["helene"]),
            ("_id=helene,nogender", ["helene", "nogender"]),
            ("_id:not=helene", ["daubigne", "nogender"]),
            ("_id:missing=false", ["daubigne", "helene", "nogender"]),
            ("_lastUpdated:missing=true", []),
        ],
    )
    check(
        db,
        "Observation",
        [
            ("code:text=glucose", ["glucose"]),  # Coding.display, starts-with, case-folded
            ("code:text=blood pressure", ["bp-high", "bp-low"]),
            ("status:not=final", ["orphan"]),
            ("code=http://loinc.org|", ALL_OBS),
        ],
    )


def test_string_accents_exact_contains_missing(db: Engine) -> None:
    check(
        db,
        "Patient",
        [
            ("name=helene", ["helene"]),
            ("name=HÉLÈNE", ["helene"]),
            ("given=Hél", ["helene"]),
            ("family=martin", ["helene"]),  # the second HumanName
            ("family=d'aubigne", ["daubigne"]),
            ("family=D’Aubigné", ["daubigne"]),  # typographic apostrophe
            ("family=aubigne", []),  # starts-with, not contains
            ("family:contains=aubign", ["daubigne"]),
            ("family:contains=UBIGN", ["daubigne"]),
            ("family:exact=d'Aubigné", ["daubigne"]),
            ("family:exact=d'Aubigne", []),
            ("family:exact=Dupont,Pan", ["helene", "nogender"]),
            ("name=peter", ["nogender"]),
            ("name:missing=true", []),
            ("family=dupont&given=agrippa", []),
        ],
    )


def test_date_precision_boundaries_and_time_zones(db: Engine) -> None:
    check(
        db,
        "Patient",
        [
            ("birthdate=1980", ["daubigne", "helene"]),  # the year contains 1980-12-31
            ("birthdate=1980-12-31", ["helene"]),  # but the day does not contain the year
            ("birthdate=1980-12", ["helene"]),
            ("birthdate=1981", []),
            ("birthdate=gt1980-12-30", ["daubigne", "helene"]),
            ("birthdate=gt1980-12-31", []),
            ("birthdate=sa1980-12-30", ["helene"]),
            ("birthdate=eb1981-01-01", ["daubigne", "helene"]),
            ("birthdate=lt1980-12-31", ["daubigne"]),
            ("birthdate=le1980-12-31", ["daubigne", "helene"]),
            ("birthdate=ge1980-12-31", ["helene"]),  # the year does not reach past the day
            ("birthdate=ne1980", []),
            ("birthdate=ne1980-12-31", ["daubigne"]),
            ("birthdate=ap1981-01-01", ["daubigne", "helene"]),
            ("birthdate:missing=true", ["nogender"]),
        ],
    )
    check(
        db,
        "Observation",
        [
            # 2020-01-01T23:30:00-05:00 is 2020-01-02T04:30Z; dates without a zone are read as UTC
            ("date=2020-01-01", ["glucose"]),
            ("date=2020-01-02", ["bp-high"]),
            ("date=2020-01-01T23:30:00-05:00", ["bp-high"]),
            ("date=2020-01-02T04:30:00Z", ["bp-high"]),
            ("date=2020-01-02T05:30:00+01:00", ["bp-high"]),
            ("date=gt2020-01-01", ["bp-high", "bp-low"]),  # a dateTime on that day is not after it
            ("date=ge2020-01-01", ["bp-high", "bp-low", "glucose"]),
            ("date=lt2020-01-02", ["glucose"]),
            ("date=2020-01-01T12:00:00Z", ["glucose"]),
            ("date=2020-01-01T12:00Z", ["glucose"]),  # minute precision contains the second
            ("date=gt2020-01-01T12:00:00Z", ["bp-high", "bp-low"]),
            ("date=2020", ["bp-high", "bp-low", "glucose"]),
            ("date:missing=true", sorted(set(ALL_OBS) - {"bp-high", "bp-low", "glucose"})),
        ],
    )


def test_number_prefixes_and_implicit_precision(db: Engine) -> None:
    check(
        db,
        "RiskAssessment",
        [
            ("probability=100", ["r100", "r1004"]),  # [99.5, 100.5)
            ("probability=100.0", ["r100"]),  # [99.95, 100.05)
            ("probability=1e2", ["r100", "r1004", "r1005"]),  # [50, 150)
            ("probability=0.8", ["r08"]),
            ("probability=gt100", ["r1004", "r1005"]),
            ("probability=ge100", ["r100", "r1004", "r1005"]),
            ("probability=lt100", ["r08"]),
            ("probability=le100", ["r08", "r100"]),
            ("probability=ne100", ["r08", "r1005"]),
            ("probability=sa100", ["r1004", "r1005"]),
            ("probability=eb100", ["r08"]),
            ("probability=ap100", ["r100", "r1004", "r1005"]),  # within 10%
            ("probability=ap0.75", ["r08"]),
            ("probability=0.8,100.5", ["r08", "r1005"]),
            ("probability:missing=false", ["r08", "r100", "r1004", "r1005"]),
        ],
    )


def test_quantity_in_canonical_ucum_units(db: Engine) -> None:
    check(
        db,
        "Observation",
        [
            ("value-quantity=97.3", ["glucose"]),
            ("value-quantity=97.3||mg/dL", ["glucose"]),
            ("value-quantity=97.3|" + UCUM + "|mg/dL", ["glucose"]),
            ("value-quantity=0.973|" + UCUM + "|g/L", ["glucose"]),  # mg/dL ↔ g/L
            ("value-quantity=gt1|" + UCUM + "|g/L", ["glucose-gl"]),
            ("value-quantity=120|" + UCUM + "|mg/dL", ["glucose-gl"]),
            ("value-quantity=0.973", []),  # a bare number compares the value as written
            ("value-quantity=5.4|" + UCUM + "|mmol/L", []),  # mass ↔ amount: no molar mass in UCUM
            ("value-quantity=70|" + UCUM + "|kg", ["weight"]),  # 154.3 [lb_av] = 69.99 kg
            ("value-quantity=69989|" + UCUM + "|g", ["weight"]),
            ("value-quantity=37|" + UCUM + "|Cel", ["temp"]),  # 98.6 [degF], affine
            ("value-quantity=310.15|" + UCUM + "|K", ["temp"]),
            ("value-quantity=1.2|" + UCUM + "|/s", ["hr"]),  # 72 /min
            ("value-quantity=ge1.78|" + UCUM + "|m", ["orphan"]),
            ("value-quantity=50||kilo", ["group"]),  # unit only, no system: compared as written
            ("value-quantity=50|" + UCUM + "|kg", []),
            ("value-quantity=ap100", ["glucose", "temp"]),  # 98.6 is within 10%
            ("value-quantity=ne97.3|" + UCUM + "|mg/dL", ["glucose-gl"]),
            ("value-quantity:missing=true", ["bp-high", "bp-low", "smoking"]),
        ],
    )


def test_reference_forms(db: Engine) -> None:
    check(
        db,
        "Observation",
        [
            ("subject=Patient/helene", ["glucose", "hr", "smoking", "bp-high"]),
            ("subject:Patient=helene", ["glucose", "hr", "smoking", "bp-high"]),
            ("subject:Group=g1", ["group"]),
            ("subject:missing=true", ["orphan"]),
            ("patient:missing=true", ["group", "orphan"]),
        ],
    )


def test_uri_above_below_missing(db: Engine) -> None:
    check(
        db,
        "ValueSet",
        [
            ("url=http://acme.org/fhir/ValueSet/123", ["vs1"]),
            ("url=http://acme.org/fhir/ValueSet", []),
            ("url:above=http://acme.org/fhir/ValueSet/123/_history/5", ["vs1"]),
            ("url:above=http://acme.org/fhir/ValueSet/12", []),
            ("url:below=http://acme.org/fhir/", ["vs1", "vs2"]),
            ("url:below=http://acme.org/fhir/ValueSet/123", ["vs1"]),
            ("url:below=HTTP://ACME.ORG", []),  # URIs are case-sensitive
            ("url:missing=true", ["vs4"]),
        ],
    )


def test_chains(db: Engine) -> None:
    helene_obs = ["bp-high", "glucose", "hr", "smoking"]
    daubigne_obs = ["bp-low", "glucose-gl", "temp", "weight"]
    check(
        db,
        "Observation",
        [
            ("subject.name=helene", helene_obs),
            ("subject:Patient.name=helene", helene_obs),
            ("subject:Patient.birthdate=1980", helene_obs + daubigne_obs),
            ("subject:Patient.birthdate=1980-12-31", helene_obs),
            ("patient.gender=male", daubigne_obs),
            ("patient.gender:missing=true", []),
            ("subject:Patient.general-practitioner.name=curie", daubigne_obs),  # 2 levels
            ("patient.organization.name=hopital", helene_obs),  # 2 levels, accents
            ("subject.name=helene&code=2345-7", ["glucose"]),
            ("subject.name=helene,agrippa&code=2345-7,2339-0", ["glucose", "glucose-gl"]),
        ],
    )
    check(
        db,
        "Encounter",
        [
            ("subject.general-practitioner.name=peter", ["e1"]),  # not e3 through the deleted dr-gone
            ("subject:Patient.general-practitioner:Practitioner.family=curie", ["e2"]),
        ],
    )
    check(
        db,
        "AuditEvent",
        [("agent:Practitioner.name=peter", ["a1"]), ("entity:Observation.code=8867-4", ["a2"])],
    )


def test_reverse_chains(db: Engine) -> None:
    check(
        db,
        "Patient",
        [
            ("_has:Observation:patient:code=2345-7", ["helene"]),  # not via the deleted "gone"
            ("_has:Observation:subject:code=2339-0,8867-4", ["daubigne", "helene"]),
            ("_has:Observation:patient:value-quantity=gt1|" + UCUM + "|g/L", ["daubigne"]),
            ("_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/dr-peter", ["helene"]),
            ("_has:Observation:patient:_has:AuditEvent:entity:agent.name=curie", ["helene"]),
            ("_has:Encounter:subject:status=finished", ["daubigne", "helene", "nogender"]),
            ("_has:Encounter:subject:status=finished&gender=male", ["daubigne"]),
            ("_has:Observation:subject:subject.name=agrippa", ["daubigne"]),
        ],
    )
    check(db, "Practitioner", [("_has:Patient:general-practitioner:gender=female", ["dr-peter"])])


def test_composites_match_within_one_element(db: Engine) -> None:
    check(
        db,
        "Observation",
        [
            # bp-low has a component above 100, but it is the diastolic one
            ("component-code-value-quantity=http://loinc.org|8480-6$gt100", ["bp-high"]),
            ("component-code-value-quantity=8480-6$gt100", ["bp-high"]),
            ("component-code-value-quantity=8480-6$lt100", ["bp-low"]),
            ("component-code-value-quantity=8462-4$gt100", ["bp-low"]),
            ("component-code-value-quantity=8480-6$gt15|" + UCUM + "|kPa", ["bp-high"]),  # 120 mmHg = 16 kPa
            ("component-code-value-quantity=8480-6$120||mm[Hg]", ["bp-high"]),
            ("component-code-value-quantity=http://other|8480-6$gt100", []),
            ("code-value-quantity=http://loinc.org|2345-7$97.3|" + UCUM + "|mg/dL", ["glucose"]),
            ("code-value-quantity=2345-7$0.973|" + UCUM + "|g/L", ["glucose"]),
            ("code-value-quantity=2345-7$gt100", []),  # the deleted one is out
            ("code-value-quantity=8480-6$gt100", []),  # components are not the Observation's value
            ("combo-code-value-quantity=8480-6$gt100", ["bp-high"]),
            ("combo-code-value-quantity=2345-7$gt90,8462-4$gt100", ["bp-low", "glucose"]),
            ("code-value-concept=http://loinc.org|72166-2$http://snomed.info/sct|449868002", ["smoking"]),
            ("code-value-concept=72166-2$449868002", ["smoking"]),
            ("code-value-concept=72166-2$http://other|449868002", []),
            ("combo-code-value-concept=72166-2$449868002", ["smoking"]),
            ("code-value-quantity:missing=false", sorted(set(ALL_OBS) - {"bp-high", "bp-low", "smoking"})),
            ("combo-code-value-quantity:missing=true", ["smoking"]),
        ],
    )


def test_access_filter_applies_inside_chains_and_has(db: Engine) -> None:
    # The Encounter is admitted, the Practitioner it leads to is not: no match.
    assert ids(db, "Encounter", "subject.general-practitioner.name=peter", CompartmentOnly("helene")) == []
    assert ids(db, "Encounter", "subject.name=helene", CompartmentOnly("helene")) == ["e1"]
    assert ids(db, "Observation", "subject.name=agrippa", CompartmentOnly("helene")) == []
    # The Patient is admitted, the Observations that reference it are not.
    assert ids(db, "Patient", "_has:Observation:patient:code=2345-7", TypesOnly(("Patient",))) == []
    admitted = TypesOnly(("Patient", "Observation"))
    assert ids(db, "Patient", "_has:Observation:patient:code=2345-7", admitted) == ["helene"]


def test_errors_and_unsupported(db: Engine) -> None:
    for resource_type, query in [
        ("Observation", "code:in=http://loinc.org/vs"),
        ("Observation", "code:not-in=http://loinc.org/vs"),
        ("Observation", "code:below=http://snomed.info/sct|123"),
        ("Patient", "general-practitioner:below=Practitioner/1"),
        ("Observation", "code-value-quantity=http://loinc.org|$gt1"),
    ]:
        with pytest.raises(NotSupported):
            ids(db, resource_type, query)
    for resource_type, query in [
        ("Observation", "code.name=x"),  # chain through a token
        ("Observation", "subject:Practitioner.name=x"),  # not a target of subject
        ("Patient", "_has:Observation:code:status=final"),
        ("Patient", "_has:Observation:patient"),
        ("Patient", "_has:Nope:patient:code=1"),
        ("Patient", "_has:Observation:specimen:code=1"),  # specimen cannot reference a Patient
        ("Observation", "code-value-quantity=2345-7"),  # one part for two components
        ("Patient", "identifier:of-type=a|b"),
    ]:
        with pytest.raises(Invalid):
            ids(db, resource_type, query)


def test_chain_depth_is_limited_even_when_lenient() -> None:
    parse_query("Observation", "patient.link.link.link.name=x")
    with pytest.raises(Invalid):
        parse_query("Observation", "patient.link.link.link.link.link.name=x")


def test_unknown_parameters_in_chains_are_lenient_or_strict() -> None:
    query = parse_query("Observation", "subject.nope=1&subject:Patient.link.nope=1&status=final")
    assert query.unknown == ("subject.nope", "subject:Patient.link.nope")
    assert [c.text for c in query.clauses] == ["status"]
    query = parse_query("Patient", "_has:Observation:patient:nope=1")
    assert query.unknown == ("_has:Observation:patient:nope",) and query.clauses == ()
    with pytest.raises(Invalid) as error:
        parse_query("Observation", "subject.nope=1&status=final", strict=True)
    assert "subject.nope" in error.value.diagnostics
