"""Composite index rows: one per element occurrence and combination of component values."""

from __future__ import annotations

from typing import Any

from socle.fhir._index_composites import MAX_ROWS
from socle.fhir.search_params import extract_index_values, registry

LOINC = "http://loinc.org"


def composites(resource: dict[str, Any]) -> set[tuple[Any, ...]]:
    return extract_index_values(resource).composites


def test_components_of_one_element_stay_together() -> None:
    observation = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "code": "mm[Hg]"},
            },
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 80}},
        ],
    }
    assert composites(observation) == {
        ("component-code-value-quantity", ("T", "8480-6"), ("S", LOINC, "8480-6"), None)
        + (120.0, None, None, None, None, "mm[Hg]", None),
        ("component-code-value-quantity", ("T", "8462-4"), ("S", LOINC, "8462-4"), None)
        + (80.0, None, None, None, None, None, None),
    }


def test_combo_parameters_are_unions_not_indexed_twice() -> None:
    params = registry().params("Observation")
    assert params["combo-code-value-quantity"].union_of == (
        "code-value-quantity",
        "component-code-value-quantity",
    )
    assert params["combo-code-value-concept"].union_of == (
        "code-value-concept",
        "component-code-value-concept",
    )
    assert params["code-value-quantity"].union_of == ()
    observation = {
        "resourceType": "Observation",
        "code": {"coding": [{"code": "a"}, {"system": "s", "code": "b"}], "text": "x"},
        "valueCodeableConcept": {"coding": [{"system": "v", "code": "c"}]},
    }
    rows = composites(observation)
    assert {row[0] for row in rows} == {"code-value-concept"}
    assert {(row[1], row[2], row[3]) for row in rows} == {
        (("T", "a", "T", "c"), ("S", "", "a"), ("S", "v", "c")),
        (("T", "b", "T", "c"), ("S", "s", "b"), ("S", "v", "c")),
    }


def test_dates_strings_numbers_and_resource_rooted_components() -> None:
    dated = {
        "resourceType": "Observation",
        "code": {"coding": [{"code": "a"}]},
        "valuePeriod": {"start": "2020"},
    }
    (row,) = composites(dated)
    assert row[0] == "code-value-date" and row[6] is not None and row[7] is not None
    text = {"resourceType": "Observation", "code": {"coding": [{"code": "a"}]}, "valueString": "Élevé"}
    assert {r[8] for r in composites(text)} == {"eleve"}
    sequence = {
        "resourceType": "MolecularSequence",
        "referenceSeq": {"chromosome": {"coding": [{"code": "1"}]}, "windowStart": 10, "windowEnd": 20},
        "variant": [{"start": 12, "end": 13}, {"start": 15, "end": 16}],
    }
    rows = {(r[0], r[4], r[5]) for r in composites(sequence)}
    assert rows == {
        ("chromosome-window-coordinate", 10.0, 20.0),
        ("chromosome-variant-coordinate", 12.0, 13.0),  # chromosome read from %resource
        ("chromosome-variant-coordinate", 15.0, 16.0),
    }


def test_choice_component_without_exact_key_uses_the_general_reader() -> None:
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "characteristic": [
            {
                "code": {"coding": [{"code": "c"}]},
                "valueCodeableConcept": {"coding": [{"code": "v"}]},
                "exclude": False,
            }
        ],
    }
    assert {(r[0], r[1]) for r in composites(group)} == {("characteristic-value", ("T", "c", "T", "v"))}


def test_missing_component_and_row_cap() -> None:
    no_value = {"resourceType": "Observation", "code": {"coding": [{"code": "a"}]}}
    assert composites(no_value) == set()
    many = {
        "resourceType": "Observation",
        "code": {"coding": [{"code": str(n)} for n in range(20)]},
        "valueCodeableConcept": {"coding": [{"code": str(n)} for n in range(20)]},
    }
    assert len(composites(many)) == MAX_ROWS
