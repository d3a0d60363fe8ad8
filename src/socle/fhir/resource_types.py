"""The concrete resource types of FHIR R4, from the core package's StructureDefinitions."""

from __future__ import annotations

import functools

from socle.fhir.package import package_resources


@functools.cache
def resource_types() -> frozenset[str]:
    """Concrete (non-abstract) resource types: what may appear as `resourceType` and in URLs."""
    return frozenset(
        sd["type"]
        for sd in package_resources("StructureDefinition")
        if sd.get("kind") == "resource"
        and not sd.get("abstract")
        and sd.get("derivation") == "specialization"
    )


def is_resource_type(name: str) -> bool:
    return name in resource_types()
