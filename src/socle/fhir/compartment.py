"""The patient compartment key: which Patient's compartment a resource belongs to.

The official Patient CompartmentDefinition (R4 §3.1.2 compartmentdefinition-patient.html) lists,
for each resource type, the search parameters whose Patient references put a resource in that
patient's compartment (Observation: subject, performer; Claim: patient, payee; ...). The store keeps
one key per row (the access-control anchor and the shard key, see ARCHITECTURE.md), so when several
patients qualify the first parameter in definition order wins, then its first value.

References are read as relative `Patient/123` or absolute `http(s)://.../Patient/123` (the trailing
type and id). `urn:uuid:` references are ignored: the store rewrites them before computing the key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from socle.fhir.fhirpath import Extractor
from socle.fhir.package import package_file
from socle.fhir.references import parse_reference
from socle.fhir.search_params import registry

__all__ = ["compartment_params", "patient_compartment"]


@functools.cache
def compartment_params() -> Mapping[str, tuple[str, ...]]:
    """Resource type → the parameter names, in definition order, that place it in a Patient compartment."""
    definition = package_file("CompartmentDefinition-patient.json")
    return {r["code"]: tuple(r["param"]) for r in definition["resource"] if r.get("param")}


@functools.cache
def _extractors(resource_type: str) -> tuple[Extractor, ...]:
    params = registry().params(resource_type)
    extractors = []
    for name in compartment_params().get(resource_type, ()):
        param = params.get(name)
        if param is not None and param.extract is not None:
            extractors.append(param.extract)
    return tuple(extractors)


def _patient_id(value: Any) -> str | None:
    text = value.get("reference") if type(value) is dict else None
    if type(text) is not str:
        return None
    target = parse_reference(text)
    if target.kind in ("relative", "absolute") and target.resource_type == "Patient":
        return target.id
    return None


def patient_compartment(resource: Mapping[str, Any]) -> str | None:
    """The id of the Patient whose compartment `resource` is in (its own id for a Patient), or None."""
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        own = resource.get("id")
        return own if isinstance(own, str) else None
    if not isinstance(resource_type, str):
        return None
    for extract in _extractors(resource_type):
        for value in extract(resource):
            patient = _patient_id(value)
            if patient is not None:
                return patient
    return None
