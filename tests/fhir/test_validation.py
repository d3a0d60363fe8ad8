"""One failing case per rule of `validate_resource`, with the issue code and FHIRPath expected."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from socle.fhir.errors import Invalid
from socle.fhir.validation import validate_resource

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "980f6f54-6c63-464b-9699-d251ed5fedff",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}], "text": "Body Mass Index"},
    "subject": {"reference": "urn:uuid:eed9a33b-24f1-4570-9b72-b18622b85098"},
    "effectiveDateTime": "2020-01-02T19:08:55+00:00",
    "issued": "2020-01-02T19:08:55.883+00:00",
    "valueQuantity": {
        "value": 29.27,
        "unit": "kg/m2",
        "system": "http://unitsofmeasure.org",
        "code": "kg/m2",
    },
}

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Martin", "given": ["Jean", "Paul"]}],
    "gender": "male",
    "birthDate": "1970-01-01",
}


def issues(resource: object, **kwargs: Any) -> set[tuple[str, str | None]]:
    with pytest.raises(Invalid) as info:
        validate_resource(resource, **kwargs)
    return {(i.code, i.expression) for i in info.value.issues}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(base)
    resource.update(changes)
    return resource


def test_valid_resources_pass() -> None:
    validate_resource(OBSERVATION)
    validate_resource(PATIENT, resource_type="Patient")


def test_all_issues_are_listed_in_one_invalid() -> None:
    resource = changed(PATIENT, gender="x", birthDate="1970-13-01", foo=1)
    with pytest.raises(Invalid) as info:
        validate_resource(resource)
    assert len(info.value.issues) == 3
    assert info.value.status == 400


# resourceType


def test_resource_must_be_an_object() -> None:
    assert issues([PATIENT]) == {("structure", None)}


def test_missing_resource_type() -> None:
    assert issues({"id": "a"}) == {("required", None)}


def test_unknown_resource_type_is_not_supported() -> None:
    assert issues({"resourceType": "Patientt"}) == {("not-supported", None)}


@pytest.mark.parametrize("abstract", ["Resource", "DomainResource"])
def test_abstract_resource_type_is_not_supported(abstract: str) -> None:
    assert issues({"resourceType": abstract}) == {("not-supported", None)}


def test_expected_resource_type() -> None:
    with pytest.raises(Invalid) as info:
        validate_resource(PATIENT, resource_type="Observation")
    assert [(i.code, i.expression) for i in info.value.issues] == [("invalid", None)]
    assert "'Observation'" in info.value.issues[0].diagnostics


# unknown elements


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (changed(PATIENT, nmae=[]), "Patient.nmae"),
        (changed(PATIENT, name=[{"family": "M", "givn": ["J"]}]), "Patient.name[0].givn"),
        (changed(OBSERVATION, component=[{"code": {"text": "a"}, "foo": 1}]), "Observation.component[0].foo"),
        (
            changed(PATIENT, extension=[{"url": "http://x", "valueString": "a", "bar": 1}]),
            "Patient.extension[0].bar",
        ),
        (
            changed(PATIENT, _gender={"extension": [{"url": "http://x", "valueCode": "a"}], "x": 1}),
            "Patient.gender.x",
        ),
        (changed(PATIENT, _name={"id": "a"}), "Patient._name"),  # `_` only exists for primitives
        (
            changed(OBSERVATION, valueQuantity={"value": 1, "resourceType": "Quantity"}),
            "Observation.valueQuantity.resourceType",
        ),
    ],
)
def test_unknown_element(resource: dict[str, Any], expression: str) -> None:
    assert issues(resource) == {("structure", expression)}


def test_primitive_extensions_and_fhir_comments_are_allowed() -> None:
    extension = {
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
        ]
    }
    validate_resource(changed(PATIENT, _birthDate={"id": "b", **extension}, fhir_comments=["legacy"]))
    validate_resource(changed(PATIENT, name=[{"given": ["Jean", None], "_given": [None, extension]}]))
    # A required primitive may be present through its extensions only.
    without_status = changed(OBSERVATION, _status=extension)
    del without_status["status"]
    validate_resource(without_status)


# primitives


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (changed(PATIENT, birthDate="1970-1-1"), "Patient.birthDate"),
        (changed(PATIENT, birthDate="1970-02-30"), "Patient.birthDate"),
        (changed(PATIENT, birthDate=19700101), "Patient.birthDate"),
        (changed(PATIENT, birthDate=""), "Patient.birthDate"),
        (changed(PATIENT, active="true"), "Patient.active"),
        (changed(PATIENT, multipleBirthInteger=1.5), "Patient.multipleBirthInteger"),
        (changed(PATIENT, multipleBirthInteger=True), "Patient.multipleBirthInteger"),
        (changed(PATIENT, multipleBirthInteger=2**31), "Patient.multipleBirthInteger"),
        (changed(PATIENT, name=[{"given": ["Jean", "Pa\x01ul"]}]), "Patient.name[0].given[1]"),
        (changed(PATIENT, id="a_b"), "Patient.id"),
        (changed(PATIENT, id="x" * 65), "Patient.id"),
        (changed(PATIENT, implicitRules="http://a b"), "Patient.implicitRules"),
        (changed(PATIENT, language="en  GB"), "Patient.language"),
        (changed(PATIENT, photo=[{"data": "abc"}]), "Patient.photo[0].data"),
        (changed(PATIENT, photo=[{"size": -1}]), "Patient.photo[0].size"),
        (changed(OBSERVATION, effectiveDateTime="2020-01-02T19:08:55"), "Observation.effectiveDateTime"),
        (changed(OBSERVATION, issued="2020-01-02"), "Observation.issued"),
        (changed(OBSERVATION, valueTime="25:00:00", valueQuantity=None), "Observation.valueTime"),
        (changed(OBSERVATION, valueQuantity={"value": "29.27"}), "Observation.valueQuantity.value"),
        (
            changed(OBSERVATION, extension=[{"url": "http://x", "valueOid": "urn:oid:1.2.x"}]),
            "Observation.extension[0].valueOid",
        ),
        (
            changed(OBSERVATION, extension=[{"url": "http://x", "valueUuid": "urn:uuid:ABC"}]),
            "Observation.extension[0].valueUuid",
        ),
        (changed(OBSERVATION, meta={"versionId": "a b"}), "Observation.meta.versionId"),
    ],
)
def test_invalid_primitive_value(resource: dict[str, Any], expression: str) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    assert issues(resource) == {("value", expression)}


def test_valid_primitive_forms() -> None:
    validate_resource(changed(PATIENT, birthDate="1970", deceasedDateTime="2000-02-29T10:00:00.123+14:00"))
    validate_resource(changed(PATIENT, name=[{"text": "Jean\u00a0Martin"}]))  # NBSP is not \s in FHIR
    validate_resource(changed(OBSERVATION, valueQuantity={"value": 1e-3}))
    validate_resource(changed(PATIENT, photo=[{"data": "SGVs\nbG8=", "size": 0}]))


# cardinality


def test_missing_required_elements() -> None:
    resource = changed(OBSERVATION)
    del resource["status"], resource["code"]
    assert issues(resource) == {("required", "Observation.status"), ("required", "Observation.code")}


def test_missing_required_element_in_backbone_and_datatype() -> None:
    resource = changed(OBSERVATION, component=[{"valueString": "x"}], extension=[{"valueString": "x"}])
    assert issues(resource) == {
        ("required", "Observation.component[0].code"),
        ("required", "Observation.extension[0].url"),
    }


def test_missing_required_choice() -> None:
    resource = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
    }
    assert issues(resource) == {("required", "MedicationRequest.medication")}


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (changed(PATIENT, gender=["male"]), "Patient.gender"),
        (changed(PATIENT, name={"family": "M"}), "Patient.name"),
        (changed(PATIENT, name=[{"given": "Jean"}]), "Patient.name[0].given"),
        (changed(PATIENT, name=[]), "Patient.name"),
        (changed(PATIENT, name=[None]), "Patient.name[0]"),
        (changed(PATIENT, name=[{"given": ["Jean", None]}]), "Patient.name[0].given[1]"),
        (changed(PATIENT, gender=None), "Patient.gender"),
        (changed(PATIENT, maritalStatus={}), "Patient.maritalStatus"),
        (changed(PATIENT, maritalStatus={"id": "x"}), "Patient.maritalStatus"),
        (changed(PATIENT, maritalStatus="M"), "Patient.maritalStatus"),
        (changed(PATIENT, _birthDate={}), "Patient.birthDate"),
        (changed(PATIENT, name=[{"given": ["J"], "_given": [None, None]}]), "Patient.name[0].given"),
        (
            changed(OBSERVATION, referenceRange=[{"low": {"value": 1, "comparator": "<"}}]),
            "Observation.referenceRange[0].low.comparator",
        ),
    ],
)
def test_structure_issues(resource: dict[str, Any], expression: str) -> None:
    assert ("structure", expression) in issues(resource)


# choice types


def test_choice_with_unknown_type_suffix() -> None:
    assert issues(changed(OBSERVATION, valueAddress={"city": "Paris"})) == {
        ("structure", "Observation.valueAddress")
    }


def test_only_one_choice() -> None:
    resource = changed(OBSERVATION, valueString="x")
    assert issues(resource) == {("structure", "Observation.valueString")}
    resource = changed(OBSERVATION, _valueString={"extension": [{"url": "http://x", "valueString": "y"}]})
    assert issues(resource) == {("structure", "Observation._valueString")}


# bindings


def test_required_binding_on_code() -> None:
    assert issues(changed(OBSERVATION, status="done")) == {("code-invalid", "Observation.status")}
    assert issues(changed(PATIENT, gender="M")) == {("code-invalid", "Patient.gender")}
    quantity = {"value": 1, "comparator": "=="}
    assert issues(changed(OBSERVATION, valueQuantity=quantity)) == {
        ("code-invalid", "Observation.valueQuantity.comparator")
    }


def test_required_binding_on_codeable_concept_checks_its_system_only() -> None:
    other_system = {"coding": [{"system": "http://snomed.info/sct", "code": "123"}]}
    validate_resource(changed(PATIENT, communication=[{"language": other_system}]))
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "55561003"},
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "gone",
                },
            ]
        },
    }
    assert issues(allergy) == {("code-invalid", "AllergyIntolerance.clinicalStatus.coding[1].code")}
    allergy["clinicalStatus"]["coding"][1]["code"] = "resolved"
    validate_resource(allergy)


def test_unexpandable_binding_is_not_checked() -> None:
    # Attachment.contentType is bound (required) to MIME types, an external code system.
    validate_resource(changed(PATIENT, photo=[{"contentType": "anything/at-all"}]))


# contained, Bundle, Parameters


def test_contained_resource_is_validated_as_its_type() -> None:
    contained = changed(PATIENT, id="c1", birthDate="1970-1-1")
    resource = changed(OBSERVATION, contained=[contained], subject={"reference": "#c1"})
    assert issues(resource) == {("value", "Observation.contained[0].birthDate")}


def test_contained_rules_dom_2_dom_4_dom_5() -> None:
    inner = changed(
        PATIENT,
        contained=[{"resourceType": "Patient"}],
        meta={"versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z", "security": [{"code": "R"}]},
    )
    assert issues(changed(OBSERVATION, contained=[inner])) == {
        ("invalid", "Observation.contained[0].contained"),
        ("invalid", "Observation.contained[0].meta.versionId"),
        ("invalid", "Observation.contained[0].meta.lastUpdated"),
        ("invalid", "Observation.contained[0].meta.security"),
    }
    assert issues(changed(OBSERVATION, contained=[{"resourceType": "Nope"}])) == {
        ("not-supported", "Observation.contained[0]")
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def test_bundle_entries_are_validated_as_resources() -> None:
    validate_resource(bundle(PATIENT, OBSERVATION))
    bad = changed(OBSERVATION, status="nope")
    del bad["code"]
    assert issues(bundle(PATIENT, OBSERVATION, bad)) == {
        ("code-invalid", "Bundle.entry[2].resource.status"),
        ("required", "Bundle.entry[2].resource.code"),
    }
    assert issues(bundle({"id": "x"})) == {("required", "Bundle.entry[0].resource")}


def test_nested_bundle_and_parameters() -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "return", "resource": bundle(changed(PATIENT, gender="m"))},
            {"name": "p", "part": [{"name": "q", "valueBoolean": "yes"}]},
        ],
    }
    assert issues(parameters) == {
        ("code-invalid", "Parameters.parameter[0].resource.entry[0].resource.gender"),
        ("value", "Parameters.parameter[1].part[0].valueBoolean"),
    }


# references


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p1",
        "Patient/p1/_history/2",
        "https://example.org/fhir/Patient/p1",
        "urn:uuid:eed9a33b-24f1-4570-9b72-b18622b85098",
        "urn:oid:1.2.250.1.71",
        "Patient?identifier=http://x|123",
        "#c1",
    ],
)
def test_valid_references(reference: str) -> None:
    validate_resource(changed(OBSERVATION, subject={"reference": reference}))


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p_1",  # bad id
        "Patient/p1/_history/",  # bad version
        "Patientt/p1",  # unknown type
        "Patient",  # no id
        "Patient/p1/extra",
        "urn:isbn:123",
        "urn:uuid:not-a-uuid",
        "#bad id",
        "Medication/m1",  # not an allowed target of Observation.subject
        "Medication?code=1",
        "http://exa mple.org/Patient/1",
    ],
)
def test_invalid_references(reference: str) -> None:
    assert issues(changed(OBSERVATION, subject={"reference": reference})) in (
        {("invalid", "Observation.subject.reference")},
        {("invalid", "Observation.subject.reference"), ("value", "Observation.subject.reference")},
    )


def test_reference_targets_inside_data_types() -> None:
    identifier = {"value": "1", "assigner": {"reference": "Patient/p2"}}
    assert issues(changed(PATIENT, identifier=[identifier])) == {
        ("invalid", "Patient.identifier[0].assigner.reference")
    }
    identifier["assigner"] = {"reference": "Organization/o1"}
    validate_resource(changed(PATIENT, identifier=[identifier]))


# extensions


def test_extension_needs_value_or_extensions_not_both() -> None:
    both = {"url": "http://x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}
    neither = {"url": "http://x"}
    assert issues(changed(PATIENT, extension=[both, neither])) == {
        ("invalid", "Patient.extension[0]"),
        ("invalid", "Patient.extension[1]"),
    }


def test_extension_content_is_validated() -> None:
    nested = {"url": "http://x", "extension": [{"url": "a", "valueCoding": {"code": 1}}]}
    assert issues(changed(PATIENT, modifierExtension=[nested])) == {
        ("value", "Patient.modifierExtension[0].extension[0].valueCoding.code")
    }
    on_primitive = {"extension": [{"valueString": "x"}]}
    assert issues(changed(PATIENT, _birthDate=on_primitive)) == {
        ("required", "Patient.birthDate.extension[0].url")
    }


def test_pathological_nesting_is_an_issue_not_a_crash() -> None:
    text = '{"url": "x", "valueString": "a"}'
    for _ in range(500):
        text = '{"url": "x", "extension": [' + text + "]}"
    resource = orjson.loads('{"resourceType": "Patient", "extension": [' + text + "]}")
    assert issues(resource) == {("structure", None)}
