from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from socle.fhir.fhirpath import (
    FhirPathSyntaxError,
    FhirPathUnsupported,
    ResolvedReference,
    compile_expression,
    compile_native,
)
from socle.fhir.package import package_resources

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}], "text": "Body Height"},
    "subject": {"reference": "Patient/p1"},
    "performer": [
        {"reference": "Practitioner/d1"},
        {"reference": "https://x.org/fhir/Patient/p2/_history/3"},
    ],
    "effectivePeriod": {"start": "2020-01-01", "end": "2020-01-02"},
    "valueQuantity": {"value": 178.9, "unit": "cm"},
    "component": [
        {"code": {"text": "systolic"}, "valueQuantity": {"value": 120}},
        {"code": {"text": "note"}, "valueString": "high"},
    ],
    "contained": [{"resourceType": "Group", "id": "g"}],
    "focus": [{"reference": "#g"}],
}


def test_every_core_search_parameter_expression_compiles_natively() -> None:
    """All 1,384 expressions of the 1,400 R4 SearchParameters (16 have none), per base and untyped."""
    compiled = 0
    missing = 0
    for sp in package_resources("SearchParameter"):
        expression = sp.get("expression")
        if not expression:
            missing += 1
            continue
        compile_native(expression)
        for base in sp.get("base") or ():
            compile_native(expression, base)
        for component in sp.get("component", ()):
            compile_native(component["expression"])
        compiled += 1
    assert (compiled, missing) == (1384, 16)


@pytest.mark.parametrize("resource_type", ["Observation", None])
def test_choice_type_cast_reads_the_typed_key(resource_type: str | None) -> None:
    assert compile_native("Observation.value as Quantity", resource_type)(OBSERVATION) == [
        {"value": 178.9, "unit": "cm"}
    ]
    assert compile_native("(Observation.value as CodeableConcept)", resource_type)(OBSERVATION) == []
    assert compile_native("Observation.value.as(Quantity)", resource_type)(OBSERVATION) == [
        {"value": 178.9, "unit": "cm"}
    ]
    assert compile_native("Observation.component.value.ofType(string)", resource_type)(OBSERVATION) == [
        "high"
    ]


def test_choice_element_without_cast_yields_whichever_type_exists() -> None:
    effective = compile_native("Observation.effective", "Observation")
    assert effective(OBSERVATION) == [{"start": "2020-01-01", "end": "2020-01-02"}]
    assert effective({"resourceType": "Observation", "effectiveDateTime": "2021"}) == ["2021"]
    values = compile_native("Observation.component.value", "Observation")(OBSERVATION)
    assert values == [{"value": 120}, "high"]


def test_where_resolve_is_filters_references_by_target_type() -> None:
    patients = compile_native("Observation.performer.where(resolve() is Patient)", "Observation")
    assert patients(OBSERVATION) == [{"reference": "https://x.org/fhir/Patient/p2/_history/3"}]
    contained = compile_native("Observation.focus.where(resolve() is Group)", "Observation")
    assert contained(OBSERVATION) == [{"reference": "#g"}]
    typed = compile_native("Observation.subject.where(resolve() is Patient)")
    assert typed(
        {"resourceType": "Observation", "subject": {"type": "Patient", "identifier": {"value": "1"}}}
    )
    assert compile_native("Observation.subject.resolve()")(OBSERVATION) == [
        ResolvedReference("Patient", "p1")
    ]


def test_where_with_equality_and_extension() -> None:
    patient = {
        "resourceType": "Patient",
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
        "extension": [{"url": "http://x/ext", "valueString": "v"}, {"url": "http://y", "valueCode": "c"}],
    }
    assert compile_native("Patient.telecom.where(system='email')", "Patient")(patient) == [
        {"system": "email", "value": "a@b"}
    ]
    assert compile_native("Patient.extension('http://x/ext').value", "Patient")(patient) == ["v"]
    assert compile_native("Patient.extension('http://x/ext')", "Patient")(patient) == [
        patient["extension"][0]
    ]
    has = compile_native("Patient.telecom.where(extension.exists().not())")
    assert has(patient) == patient["telecom"]


def test_union_prunes_branches_rooted_at_other_types() -> None:
    expression = "Condition.code | Observation.code | Resource.id"
    assert compile_native(expression, "Observation")(OBSERVATION) == [OBSERVATION["code"], "o1"]
    condition = {"resourceType": "Condition", "id": "c1", "code": {"text": "x"}}
    assert compile_native(expression, "Condition")(condition) == [{"text": "x"}, "c1"]
    assert compile_native("Condition.code", "Observation")(OBSERVATION) == []  # pruned: never evaluated
    assert compile_native(expression)(OBSERVATION) == [OBSERVATION["code"], "o1"]


def test_boolean_logic_of_patient_deceased() -> None:
    deceased = compile_native("Patient.deceased.exists() and Patient.deceased != false", "Patient")
    assert deceased({"resourceType": "Patient"}) == [False]
    assert deceased({"resourceType": "Patient", "deceasedBoolean": False}) == [False]
    assert deceased({"resourceType": "Patient", "deceasedBoolean": True}) == [True]
    assert deceased({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}) == [True]


def test_indexer_variables_and_collection_functions() -> None:
    bundle = {
        "resourceType": "Bundle",
        "id": "b",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}, {}],
    }
    assert compile_native("Bundle.entry[0].resource", "Bundle")(bundle) == [
        {"resourceType": "Composition", "id": "c"}
    ]
    assert compile_native("Bundle.entry[0].resource.id")(bundle) == ["c"]
    assert compile_native("%resource.id | $this.id")(bundle) == ["b", "b"]
    assert compile_native("Bundle.entry.count()")(bundle) == [2]
    assert compile_native("Bundle.entry.first().resource.id")(bundle) == ["c"]
    assert compile_native("Bundle.entry.empty()")(bundle) == [False]


def test_arrays_are_flattened_and_nulls_skipped() -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["A", None, "B"]}, {"given": ["C"]}]}
    assert compile_native("Patient.name.given", "Patient")(patient) == ["A", "B", "C"]


def test_missing_elements_give_empty_lists() -> None:
    assert compile_native("Observation.subject.where(resolve() is Group)", "Observation")(OBSERVATION) == []
    assert compile_native("Observation.issued", "Observation")(OBSERVATION) == []


def test_unsupported_and_invalid_expressions() -> None:
    with pytest.raises(FhirPathUnsupported):
        compile_native("Patient.name.given.substring(1)")
    with pytest.raises(FhirPathUnsupported):
        compile_native("Patient.multipleBirth + 1")
    with pytest.raises(FhirPathSyntaxError):
        compile_native("Patient.name.where(")
    with pytest.raises(FhirPathSyntaxError):
        compile_native("Patient.name ! given")
    with pytest.raises(FhirPathSyntaxError, match="no element 'nmae'"):
        compile_native("Patient.nmae", "Patient")


def test_compile_expression_without_fallback_engine_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert compile_expression("Patient.gender", "Patient")({"resourceType": "Patient", "gender": "male"}) == [
        "male"
    ]
    with pytest.raises(FhirPathUnsupported):
        compile_expression("Patient.name.given.substring(1)")
