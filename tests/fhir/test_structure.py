"""The compiled element model: what `validation.py` relies on being there."""

from __future__ import annotations

from socle.fhir.structure import (
    CODEABLE_CONCEPT,
    COMPLEX,
    CONTAINED,
    EXTENSION,
    PRIMITIVE,
    PROHIBITED,
    REFERENCE,
    RESOURCE,
    compiled_schema,
)


def test_resource_types_are_the_concrete_ones() -> None:
    schema = compiled_schema()
    assert len(schema.resources) == 146
    assert {"Patient", "Observation", "Bundle", "Parameters", "Binary"} <= set(schema.resources)
    assert schema.abstract == {"Resource", "DomainResource"}
    assert compiled_schema() is schema  # compiled once per process


def test_choice_elements_are_expanded_to_json_names() -> None:
    observation = compiled_schema().resources["Observation"].elements
    assert observation["valueQuantity"].choice == "value"
    assert observation["valueDateTime"].primitive is not None
    assert observation["valueDateTime"].primitive.name == "dateTime"
    assert "value[x]" not in observation and "valueAddress" not in observation
    required = dict(compiled_schema().resources["MedicationRequest"].required)
    assert required["medication[x]"] == ("medicationCodeableConcept", "medicationReference")


def test_cardinality_bindings_and_targets() -> None:
    observation = compiled_schema().resources["Observation"]
    status = observation.elements["status"]
    assert (status.min, status.max, status.array, status.kind) == (1, 1, False, PRIMITIVE)
    assert status.codes is not None and "final" in status.codes
    assert observation.elements["category"].array
    assert observation.elements["subject"].targets == frozenset({"Patient", "Group", "Device", "Location"})
    assert observation.elements["focus"].targets is None  # Reference(Any)
    assert ("status", ("status", "_status")) in observation.required


def test_resource_id_uses_the_id_regex_and_element_id_is_a_string() -> None:
    patient = compiled_schema().resources["Patient"]
    assert patient.elements["id"].type_name == "id"
    name = patient.elements["name"].model
    assert name is not None and name.elements["id"].type_name == "string"


def test_recursive_types_share_one_model() -> None:
    schema = compiled_schema()
    extension = schema.types["Extension"]
    assert extension.role == EXTENSION
    assert extension.elements["extension"].model is extension
    identifier = schema.types["Identifier"]
    assert identifier.elements["assigner"].model is schema.types["Reference"]
    assert schema.types["Reference"].role == REFERENCE
    assert schema.types["Reference"].elements["identifier"].model is identifier
    item = schema.resources["Questionnaire"].elements["item"].model
    assert item is not None and item.elements["item"].model is item  # contentReference


def test_backbone_elements_and_resources() -> None:
    schema = compiled_schema()
    bundle = schema.resources["Bundle"]
    entry = bundle.elements["entry"]
    assert entry.kind == COMPLEX and entry.model is not None
    assert entry.model.elements["resource"].kind == RESOURCE
    assert schema.resources["Patient"].elements["contained"].kind == CONTAINED
    assert schema.types["CodeableConcept"].role == CODEABLE_CONCEPT


def test_simple_quantity_prohibits_comparator() -> None:
    observation = compiled_schema().resources["Observation"]
    low = observation.elements["referenceRange"].model.elements["low"]  # type: ignore[union-attr]
    assert low.model is not None and low.model.name == "SimpleQuantity"
    assert low.model.elements["comparator"].kind == PROHIBITED
    assert observation.elements["valueQuantity"].model.elements["comparator"].kind == PRIMITIVE  # type: ignore[union-attr]
