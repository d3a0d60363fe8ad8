"""Broad acceptance tests: real resources that must validate (Synthea, the R4 package itself)."""

from __future__ import annotations

import functools
import tarfile
from typing import Any

import orjson
import pytest

from socle.fhir.errors import Invalid
from socle.fhir.package import data_dir, package_resources
from socle.fhir.validation import validate_resource

SYNTHEA = data_dir() / "synthea" / "synthea-r4-25-patients.tgz"

# Defects of the official package itself, checked against the R4 definitions:
# - these SearchParameters (from the CodeSystem/ValueSet extension packs) have no `base`, whose
#   cardinality is 1..* (https://hl7.org/fhir/R4/searchparameter.html);
# - one has an id of 67 characters, over the 64 allowed (https://hl7.org/fhir/R4/datatypes.html#id).
_MISSING_BASE = ("required", "SearchParameter.base")
PACKAGE_DEFECTS = {
    **{
        f"codesystem-extensions-CodeSystem-{code}": _MISSING_BASE
        for code in ("author", "effective", "end", "keyword", "workflow")
    },
    **{
        f"valueset-extensions-ValueSet-{code}": _MISSING_BASE
        for code in ("author", "effective", "end", "keyword", "workflow")
    },
    "questionnaireresponse-extensions-QuestionnaireResponse-item-subject": ("value", "SearchParameter.id"),
}


@functools.cache
def synthea_bundles() -> dict[str, dict[str, Any]]:
    bundles = {}
    with tarfile.open(SYNTHEA, "r:gz") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and member.name.endswith(".json"):
                bundles[member.name.rsplit("/", 1)[-1]] = orjson.loads(handle.read())
    return bundles


def problems(resource: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    try:
        validate_resource(resource)
    except Invalid as error:
        return [(i.code, i.expression, i.diagnostics) for i in error.issues]
    return []


def test_synthea_archive_has_23_bundles() -> None:
    assert len(synthea_bundles()) == 23


@pytest.mark.parametrize("name", sorted(synthea_bundles()))
def test_every_synthea_entry_is_valid(name: str) -> None:
    bundle = synthea_bundles()[name]
    assert bundle["entry"]
    found = {
        f"entry[{i}] {entry['resource'].get('resourceType')}": issues
        for i, entry in enumerate(bundle["entry"])
        if (issues := problems(entry["resource"]))
    }
    assert found == {}
    assert problems(bundle) == []


@pytest.mark.parametrize(
    ("resource_type", "count"),
    [("SearchParameter", 1400), ("CodeSystem", 1062), ("ValueSet", 1316), ("StructureDefinition", 655)],
)
def test_package_conformance_resources_are_valid(resource_type: str, count: int) -> None:
    resources = list(package_resources(resource_type))
    assert len(resources) == count
    found = {r["id"]: issues for r in resources if (issues := problems(r))}
    expected = PACKAGE_DEFECTS if resource_type == "SearchParameter" else {}
    assert {i: [(code, expression) for code, expression, _ in issues] for i, issues in found.items()} == {
        i: [d] for i, d in expected.items()
    }


@pytest.mark.parametrize(
    "resource_type", ["CapabilityStatement", "CompartmentDefinition", "ConceptMap", "OperationDefinition"]
)
def test_other_package_resources_are_valid(resource_type: str) -> None:
    resources = list(package_resources(resource_type))
    assert resources
    assert {r["id"]: problems(r) for r in resources if problems(r)} == {}
