"""`_summary` and `_elements`: return part of a resource (R4 §3.1.1.5.8 and §3.1.1.5.9, search.html#summary).

Both are projections of a resource dict, pure and independent of the database:

- `_summary=true` keeps the elements the base StructureDefinition marks `isSummary`, walking into
  backbone elements (Observation.component keeps its summary children, not Observation.referenceRange).
  Data-type values (a HumanName, a CodeableConcept) are kept whole: the type's own summary flags are
  not applied inside them, as HAPI FHIR does. Elements marked `isModifier` are kept too, since
  dropping a modifier would change the meaning of what remains (R4 §2.1.0.6 "modifier elements").
- `_summary=text` keeps `text`, `id`, `meta` and the top-level mandatory elements; `_summary=data`
  drops `text`; `_summary=false` is the whole resource; `_summary=count` returns no resource at all
  (the search layer answers it with the total only).
- `_elements=a,b` keeps those top-level elements plus `id`, `meta` and the mandatory ones (R4: servers
  "SHOULD" return mandatory elements so that the result stays valid). A choice element may be named by
  its base (`value`) or JSON name (`valueQuantity`); `Observation.code` applies only to Observations.

Every projected resource is marked with the `SUBSETTED` tag (R4 §3.1.1.5.8, v3-ObservationValue) so
that no client mistakes it for the full resource, e.g. and updates with it.

The isSummary/isModifier flags are not in `socle.fhir.structure.compiled_schema()` (a validation
model), so they are read here from the same StructureDefinition snapshots; the compiled model gives
the JSON property names (choice types expanded) and the mandatory elements.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from socle.fhir.errors import Invalid
from socle.fhir.package import package_resources
from socle.fhir.structure import Model, compiled_schema

__all__ = ["SUBSETTED", "SUMMARY_MODES", "Projection", "projection"]

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
SUMMARY_MODES = frozenset({"true", "text", "data", "count", "false"})
_ALWAYS = ("resourceType", "id", "meta")


@functools.cache
def _summary_paths() -> frozenset[str]:
    """Spec paths (`Observation.component.code`) marked isSummary or isModifier in the base resources."""
    return frozenset(
        e["path"]
        for sd in package_resources("StructureDefinition")
        if sd.get("kind") == "resource" and sd.get("derivation") != "constraint" and "snapshot" in sd
        for e in sd["snapshot"]["element"]
        if e.get("isSummary") or e.get("isModifier")
    )


@dataclass(frozen=True)
class Projection:
    """What to keep of each resource: a `_summary` mode (true/text/data) or an `_elements` list."""

    summary: str | None = None
    elements: frozenset[str] = frozenset()

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A new dict with only the kept elements, tagged SUBSETTED; `resource` is not modified."""
        model = compiled_schema().resources.get(str(resource.get("resourceType")))
        if model is None:
            return resource
        if self.summary == "true":
            kept = _keep_summary(resource, model, _summary_paths())
        elif self.summary == "data":
            kept = {k: v for k, v in resource.items() if k not in ("text", "_text")}
        else:
            wanted = set(_mandatory(model))
            if self.summary == "text":
                wanted.update(("text", "_text"))
            else:
                wanted.update(_wanted_names(model, self.elements))
            kept = {k: v for k, v in resource.items() if k in wanted or k in _ALWAYS}
        ordered: dict[str, Any] = {"resourceType": resource["resourceType"]}
        for key, value in resource.items():
            if key in kept or key in _ALWAYS:
                ordered[key] = kept.get(key, value)
        return _tag_subsetted(ordered)


def projection(summary: str | None, elements: str | None) -> Projection | None:
    """The projection asked by `_summary` / `_elements`, or None for whole resources (and `count`).

    `_summary` wins when both are given with a subsetting mode: R4 defines no combination of the two.
    """
    if summary is not None and summary not in SUMMARY_MODES:
        raise Invalid(
            f"_summary must be one of true, text, data, count, false; got {summary!r}", expression="_summary"
        )
    if summary in ("true", "text", "data"):
        return Projection(summary=summary)
    names = frozenset(n.strip() for n in (elements or "").split(",") if n.strip())
    if names:
        return Projection(elements=names)
    return None


def _keep_summary(node: dict[str, Any], model: Model, paths: frozenset[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in node.items():
        element = model.elements.get(key[1:] if key.startswith("_") else key)
        if element is None or element.path not in paths:
            continue
        child = element.model
        # A backbone model is named by its spec path (`Observation.component`), a data type by its name.
        if child is not None and "." in child.name:
            if isinstance(value, list):
                value = [_keep_summary(v, child, paths) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                value = _keep_summary(value, child, paths)
        kept[key] = value
    return kept


def _mandatory(model: Model) -> Iterable[str]:
    for _name, json_names in model.required:
        yield from json_names


def _wanted_names(model: Model, names: frozenset[str]) -> set[str]:
    """JSON properties named by `_elements`: `value` selects every `value[x]` choice."""
    wanted: set[str] = set()
    for name in names:
        prefix, dot, rest = name.partition(".")
        if dot:
            if prefix != model.name:
                continue
            name = rest
        for json_name, element in model.elements.items():
            if json_name == name or element.choice == name:
                wanted.update((json_name, "_" + json_name))
    return wanted


def _tag_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if isinstance(t, dict)]
    if not any(t.get("system") == SUBSETTED["system"] and t.get("code") == "SUBSETTED" for t in tags):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    resource["meta"] = meta
    return resource
