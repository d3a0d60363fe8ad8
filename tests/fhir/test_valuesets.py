"""Expansion of the package's value sets for required bindings."""

from __future__ import annotations

from typing import Any

import pytest

from socle.fhir import valuesets
from socle.fhir.valuesets import expand, system_codes

GENDER = "http://hl7.org/fhir/administrative-gender"


def test_whole_code_system() -> None:
    assert expand("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1") == {
        GENDER: frozenset({"male", "female", "other", "unknown"})
    }


def test_nested_concepts_are_included() -> None:
    codes = system_codes("http://terminology.hl7.org/CodeSystem/v3-ActCode")
    assert codes is not None and "_ActAccountCode" in codes and "CASH" in codes  # CASH is nested


def test_enumerated_concepts_with_several_systems() -> None:
    assert expand("http://hl7.org/fhir/ValueSet/encounter-special-courtesy") == {
        "http://terminology.hl7.org/CodeSystem/v3-EncounterSpecialCourtesy": {
            "EXT",
            "NRM",
            "PRF",
            "STF",
            "VIP",
        },
        "http://terminology.hl7.org/CodeSystem/v3-NullFlavor": frozenset({"UNK"}),
    }


def test_imported_value_sets() -> None:
    expansion = expand("http://hl7.org/fhir/ValueSet/event-or-request-resource-types")
    assert expansion is not None
    types = (
        expansion["http://hl7.org/fhir/event-resource-types"]
        | expansion["http://hl7.org/fhir/request-resource-types"]
    )
    assert {"Observation", "ServiceRequest"} <= types and "Patient" not in types


def test_unexpandable_value_sets() -> None:
    assert expand("http://hl7.org/fhir/ValueSet/mimetypes") is None  # external system (BCP-13)
    assert expand("http://hl7.org/fhir/ValueSet/ucum-units") is None
    assert expand("http://hl7.org/fhir/ValueSet/v3-ActEncounterCode") is None  # filter
    assert expand("http://example.org/no-such-value-set") is None
    assert system_codes("http://loinc.org") is None


def test_exclude_union_and_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    def vs(
        url: str, include: list[dict[str, Any]], exclude: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        compose: dict[str, Any] = {"include": include}
        if exclude:
            compose["exclude"] = exclude
        return {"url": url, "compose": compose}

    base = "http://test.invalid/vs/"
    fake = {
        base + "no-male": vs(
            base + "no-male", [{"system": GENDER}], [{"system": GENDER, "concept": [{"code": "male"}]}]
        ),
        base + "a": vs(base + "a", [{"system": GENDER, "concept": [{"code": "male"}]}]),
        base + "b": vs(base + "b", [{"system": GENDER, "concept": [{"code": "female"}]}]),
        base + "a-or-b": vs(base + "a-or-b", [{"valueSet": [base + "a", base + "b"]}]),
        base + "loop": vs(base + "loop", [{"valueSet": [base + "loop"]}]),
    }
    monkeypatch.setattr(valuesets, "_value_sets", lambda: fake)
    assert expand(base + "no-male") == {GENDER: frozenset({"female", "other", "unknown"})}
    assert expand(base + "a-or-b") == {GENDER: frozenset({"male", "female"})}
    assert expand(base + "loop") is None
