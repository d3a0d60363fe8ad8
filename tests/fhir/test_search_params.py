from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from socle.fhir.errors import Invalid
from socle.fhir.search_params import (
    OPEN_HIGH,
    OPEN_LOW,
    SearchParamRegistry,
    date_range,
    extract_index_values,
    normalize_string,
    registry,
)


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def test_registry_has_type_and_base_parameters() -> None:
    params = registry().params("Patient")
    for name in (
        "_id",
        "_lastUpdated",
        "_tag",
        "_profile",
        "_security",
        "_source",
        "identifier",
        "birthdate",
    ):
        assert name in params
    assert (params["_id"].type, params["_lastUpdated"].type, params["_profile"].type) == (
        "token",
        "date",
        "uri",
    )
    assert set(params["general-practitioner"].targets) == {"Organization", "Practitioner", "PractitionerRole"}
    assert params["name"].type == "string" and params["name"].extract is not None
    assert registry().get("Observation", "code-value-quantity") is not None
    assert registry().get("Observation", "code-value-quantity").extract is None  # type: ignore[union-attr]
    assert registry().get("Condition", "subject").url.endswith("/Condition-subject")  # type: ignore[union-attr]


def test_registry_is_compiled_once_per_type() -> None:
    assert registry() is registry()
    assert registry().params("Observation") is registry().params("Observation")


def test_custom_search_parameter_is_added_and_indexed() -> None:
    params = SearchParamRegistry()
    params.add(
        {
            "resourceType": "SearchParameter",
            "url": "http://socle.example/SearchParameter/patient-ins",
            "code": "ins",
            "type": "token",
            "base": ["Patient"],
            "expression": "Patient.extension('http://socle.example/ins')",
        }
    )
    patient = {
        "resourceType": "Patient",
        "extension": [{"url": "http://socle.example/ins", "valueCode": "1"}],
    }
    assert extract_index_values(patient, params).tokens == {("ins", "", "1")}
    with pytest.raises(Invalid):
        params.add(
            {
                "resourceType": "SearchParameter",
                "code": "x",
                "type": "token",
                "base": ["Patient"],
                "expression": "(",
            }
        )
    with pytest.raises(Invalid):
        params.add({"resourceType": "SearchParameter", "code": "x", "type": "nonsense", "base": ["Patient"]})


def test_normalize_string_folds_case_accents_and_apostrophes() -> None:
    assert normalize_string("Hélène") == "helene"
    assert normalize_string("O’Brien") == normalize_string("O'Brien") == "o'brien"
    assert normalize_string("ŒUVRE Straße") == "œuvre strasse"
    assert normalize_string("DUPONT") == "dupont"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2020", "2020-01-01T00:00:00+00:00", "2021-01-01T00:00:00+00:00"),
        ("2020-12", "2020-12-01T00:00:00+00:00", "2021-01-01T00:00:00+00:00"),
        ("2020-02", "2020-02-01T00:00:00+00:00", "2020-03-01T00:00:00+00:00"),
        ("2020-02-29", "2020-02-29T00:00:00+00:00", "2020-03-01T00:00:00+00:00"),
        ("2020-03-01T10:00+02:00", "2020-03-01T08:00:00+00:00", "2020-03-01T08:01:00+00:00"),
        ("2020-03-01T10:00:05Z", "2020-03-01T10:00:05+00:00", "2020-03-01T10:00:06+00:00"),
        ("2020-03-01T10:00:05-05:00", "2020-03-01T15:00:05+00:00", "2020-03-01T15:00:06+00:00"),
        ("2020-03-01T10:00:05", "2020-03-01T10:00:05+00:00", "2020-03-01T10:00:06+00:00"),  # no tz: UTC
    ],
)
def test_date_range_at_each_precision(text: str, low: str, high: str) -> None:
    assert date_range(text) == (us(low), us(high))


def test_date_range_fractional_seconds_and_errors() -> None:
    low, high = date_range("2020-03-01T10:00:05.123Z")
    assert (low - us("2020-03-01T10:00:05+00:00"), high - low) == (123_000, 1_000)
    assert date_range("1969-12-31")[0] == -86_400_000_000
    for bad in ("2020-13", "2020-02-30", "20", "2020-01-01T25:00Z", "yesterday"):
        with pytest.raises(ValueError):
            date_range(bad)


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {
        "tag": [{"system": "http://t", "code": "demo"}],
        "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"],
        "lastUpdated": "2024-01-01T00:00:00Z",
    },
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1234"}],
    "active": True,
    "name": [{"family": "Dupont", "given": ["Hélène", "Marie"], "prefix": ["Mme"]}],
    "telecom": [{"system": "email", "value": "h@x.fr"}],
    "gender": "female",
    "birthDate": "1980-05",
    "address": [{"line": ["1 rue de la Paix"], "city": "Paris", "postalCode": "75002"}],
    "generalPractitioner": [
        {"reference": "Practitioner/d1"},
        {"identifier": {"system": "rpps", "value": "10"}},
    ],
    "managingOrganization": {"reference": "https://annuaire.example/fhir/Organization/o1/_history/2"},
}


def test_patient_index_values() -> None:
    values = extract_index_values(PATIENT)
    assert {
        ("_tag", "http://t", "demo"),
        ("identifier", "urn:oid:1.2.250.1.213.1.4.8", "1234"),
        ("active", "", "true"),
        ("gender", "", "female"),
        ("email", "email", "h@x.fr"),
        ("general-practitioner:identifier", "rpps", "10"),
        ("deceased", "", "false"),
    } <= values.tokens
    assert not any(t[0] in ("_id", "_lastUpdated") for t in values.tokens)  # on the resource table
    assert {
        ("family", "dupont", "Dupont"),
        ("given", "helene", "Hélène"),
        ("name", "mme", "Mme"),
    } <= values.strings
    assert {
        ("address-city", "paris", "Paris"),
        ("address", "1 rue de la paix", "1 rue de la Paix"),
    } <= values.strings
    assert values.dates == {("birthdate", us("1980-05-01T00:00:00+00:00"), us("1980-06-01T00:00:00+00:00"))}
    assert values.references == {
        ("general-practitioner", "Practitioner", "d1", None),
        ("organization", "Organization", "o1", "https://annuaire.example/fhir/Organization/o1"),
    }
    assert values.uris == {("_profile", "http://hl7.org/fhir/StructureDefinition/Patient")}


def test_observation_index_values() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}],
            "text": "Taille",
        },
        "subject": {"reference": "urn:uuid:0b3c1f1e-0000-4000-8000-000000000000"},
        "effectivePeriod": {"start": "2020-01-01"},
        "valueQuantity": {"value": 178, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"},
        "component": [{"code": {"text": "x"}, "valueRange": {"low": {"value": 1, "code": "mm"}}}],
    }
    values = extract_index_values(observation)
    assert {("code", "http://loinc.org", "8302-2"), ("status", "", "final")} <= values.tokens
    assert {("code:text", "taille", "Taille"), ("code:text", "body height", "Body height")} <= values.strings
    assert ("date", us("2020-01-01T00:00:00+00:00"), OPEN_HIGH) in values.dates
    assert ("subject", None, None, "urn:uuid:0b3c1f1e-0000-4000-8000-000000000000") in values.references
    assert ("value-quantity", 178.0, "http://unitsofmeasure.org", "cm") in values.quantities
    assert ("combo-value-quantity", 178.0, "http://unitsofmeasure.org", "cm") in values.quantities
    assert values.count() == sum(
        len(s) for s in (values.tokens, values.strings, values.dates, values.references, values.quantities)
    ) + len(values.composites)


def test_period_timing_and_number_values() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": {"event": ["2021-06-01", "2021-06-02T08:00:00Z"]}}],
        "authoredOn": "2021-06-01T09:30:00+02:00",
    }
    values = extract_index_values(request)
    assert ("authoredon", us("2021-06-01T07:30:00+00:00"), us("2021-06-01T07:30:01+00:00")) in values.dates
    encounter = {"resourceType": "Encounter", "period": {"end": "2021"}, "length": {"value": 3, "unit": "d"}}
    assert ("date", OPEN_LOW, us("2022-01-01T00:00:00+00:00")) in extract_index_values(encounter).dates
    risk = {"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25}]}
    assert extract_index_values(risk).numbers == {("probability", 0.25)}


def test_canonical_and_uri_values() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://x.org/Questionnaire/q1|2.0",
    }
    assert ("questionnaire", "Questionnaire", "q1", "http://x.org/Questionnaire/q1") in extract_index_values(
        response
    ).references
    value_set = {"resourceType": "ValueSet", "url": "http://x.org/vs", "status": "active"}
    assert ("url", "http://x.org/vs") in extract_index_values(value_set).uris
