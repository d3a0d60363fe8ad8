"""Compile the FHIR R4 StructureDefinitions of the core package into a compact element model.

The validator must not interpret StructureDefinitions per call: `compiled_schema()` reads the snapshots
once per process (`functools.cache`) and turns each type into a `Model`, a dict from the JSON property
name to an `Element` holding everything a check needs (kind, cardinality, primitive checker, required
binding codes, reference targets, child model). Choice elements are expanded to their JSON names
(`value[x]` → `valueQuantity`, `valueString`…, https://hl7.org/fhir/R4/formats.html#choice), so the walker
finds any property with one dict lookup.

Types that reference themselves (Extension.extension, Identifier.assigner → Reference.identifier) are
handled by creating every type's `Model` empty first and filling it afterwards: an `Element` points to
the `Model` object itself, so recursion costs nothing and needs no lazy lookup. Backbone elements get a
`Model` of their own; `contentReference` (`#Questionnaire.item`) points to the same object.

What is compiled: every resource and complex type that is a specialization (plus the abstract
`Element`, `BackboneElement`, `Resource`, `DomainResource`), every primitive type, and the complex-type
profiles that base elements name in `type.profile` (SimpleQuantity, whose `comparator` is prohibited).
Compiling (value set expansions included) takes about 0.05 s on top of the 0.4 s package read, so no
on-disk cache of the model is kept: it would save less than it costs to keep it in step with the package.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from socle.fhir._primitives import Primitive, compile_primitive
from socle.fhir.package import package_resources
from socle.fhir.valuesets import Expansion, expand

SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
_SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."

# Element kinds.
PRIMITIVE = 0
COMPLEX = 1
RESOURCE = 2  # Bundle.entry.resource, Parameters.parameter.resource: any resource, validated as itself
CONTAINED = 3  # DomainResource.contained: a resource with the extra dom-2/dom-4/dom-5 rules
PROHIBITED = 4  # max = 0 in a profile (SimpleQuantity.comparator)

# Model roles that need a rule beyond their elements.
PLAIN = 0
EXTENSION = 1  # ext-1
REFERENCE = 2  # reference syntax and target types
CODING = 3  # required bindings on Coding
CODEABLE_CONCEPT = 4  # required bindings on CodeableConcept.coding

_ROLES = {
    "Extension": EXTENSION,
    "Reference": REFERENCE,
    "Coding": CODING,
    "CodeableConcept": CODEABLE_CONCEPT,
}


class Element:
    """One JSON property of a type: what its value must look like."""

    __slots__ = (
        "name",
        "path",
        "min",
        "max",
        "array",
        "kind",
        "type_name",
        "primitive",
        "model",
        "codes",
        "systems",
        "value_set",
        "targets",
        "choice",
    )

    def __init__(self, name: str, path: str, kind: int, type_name: str) -> None:
        self.name = name
        self.path = path  # the spec path, e.g. `Observation.value[x]`, for messages
        self.min = 0
        self.max: int | None = None  # None: unbounded (`*`); 0: prohibited by a profile
        self.array = False  # JSON array: the base definition's max is not 1
        self.kind = kind
        self.type_name = type_name
        self.primitive: Primitive | None = None
        self.model: Model | None = None
        self.codes: frozenset[str] | None = None  # required binding on a code-like primitive
        self.systems: Expansion | None = None  # required binding on Coding / CodeableConcept
        self.value_set = ""  # canonical of the required binding, for messages
        self.targets: frozenset[str] | None = None  # allowed resource types of a Reference
        self.choice: str | None = None  # `value` for `valueQuantity`: at most one per object

    def __repr__(self) -> str:
        return f"Element({self.path!r} as {self.name!r}: {self.type_name})"


class Model:
    """The elements of one type, profile or backbone element, keyed by JSON property name."""

    __slots__ = ("name", "elements", "required", "role", "is_resource")

    def __init__(self, name: str, role: int = PLAIN, is_resource: bool = False) -> None:
        self.name = name
        self.elements: dict[str, Element] = {}
        # (element name for messages, JSON names any of which satisfies min >= 1)
        self.required: tuple[tuple[str, tuple[str, ...]], ...] = ()
        self.role = role
        self.is_resource = is_resource

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {len(self.elements)} elements)"


class Schema:
    """The compiled package: resource models by type, and the shared model of primitive extensions."""

    __slots__ = ("resources", "abstract", "types", "element")

    def __init__(
        self, resources: dict[str, Model], abstract: frozenset[str], types: dict[str, Model]
    ) -> None:
        self.resources = resources  # concrete resource types only
        self.abstract = abstract  # Resource, DomainResource: known but not instantiable
        self.types = types  # complex data types (and abstract Element/BackboneElement)
        # `_birthDate: {"id": ..., "extension": [...]}` has the elements of Element
        # (https://hl7.org/fhir/R4/json.html#primitive).
        self.element = types["Element"]


@functools.cache
def compiled_schema() -> Schema:
    """The element model of every R4 resource and data type, compiled once per process."""
    return _Compiler(list(package_resources("StructureDefinition"))).run()


class _Compiler:
    def __init__(self, definitions: list[dict[str, Any]]) -> None:
        self.by_url = {sd["url"]: sd for sd in definitions if "snapshot" in sd}
        base = [
            sd
            for sd in self.by_url.values()
            if sd["kind"] in ("primitive-type", "complex-type", "resource")
            and sd.get("derivation") != "constraint"
        ]
        self.primitives: dict[str, Primitive] = {}
        self.types: dict[str, Model] = {}
        self.resources: dict[str, Model] = {}
        self.abstract: set[str] = set()
        self.structures: list[tuple[dict[str, Any], Model]] = []
        for sd in base:
            name = sd["type"]
            if sd["kind"] == "primitive-type":
                self.primitives[name] = compile_primitive(name, _primitive_regex(sd))
            elif sd["kind"] == "complex-type":
                self.types[name] = Model(name, _ROLES.get(name, PLAIN))
                self.structures.append((sd, self.types[name]))
            else:
                model = Model(name, is_resource=True)
                self.structures.append((sd, model))
                if sd.get("abstract"):
                    self.abstract.add(name)
                else:
                    self.resources[name] = model
        self.profiles: dict[str, Model] = {}
        for url in sorted(self._profiles_used()):
            profile = self.by_url.get(url)
            if profile is not None and profile["kind"] == "complex-type":
                self.profiles[url] = Model(profile["name"], _ROLES.get(profile["type"], PLAIN))
                self.structures.append((profile, self.profiles[url]))

    def run(self) -> Schema:
        for sd, model in self.structures:
            self._fill(sd, model)
        return Schema(self.resources, frozenset(self.abstract), self.types)

    def _profiles_used(self) -> set[str]:
        return {
            profile
            for sd, _ in self.structures
            for e in sd["snapshot"]["element"]
            for t in e.get("type", [])
            for profile in t.get("profile", [])
        }

    def _fill(self, sd: Mapping[str, Any], root: Model) -> None:
        """Build the models of one StructureDefinition: its root and each backbone element."""
        definitions = sd["snapshot"]["element"]
        root_path = definitions[0]["path"]
        parents = {e["path"].rsplit(".", 1)[0] for e in definitions[1:]}
        models = {root_path: root}
        for e in definitions[1:]:
            if e["path"] in parents:
                models[e["path"]] = Model(e["path"])
        required: dict[str, list[tuple[str, tuple[str, ...]]]] = {path: [] for path in models}
        for e in definitions[1:]:
            parent, last = e["path"].rsplit(".", 1)
            if ":" in e["id"] or parent not in models:
                continue  # slices and their children constrain, they add no JSON property
            elements = self._elements(e, last, parent == root_path and root.is_resource, models)
            for element in elements:
                models[parent].elements[element.name] = element
            if e["min"] >= 1:
                names = [n for el in elements for n in _json_names(el)]
                required[parent].append((last, tuple(names)))
        for path, model in models.items():
            model.required = tuple(required[path])

    def _elements(
        self, e: Mapping[str, Any], last: str, on_resource: bool, models: Mapping[str, Model]
    ) -> list[Element]:
        path = e["path"]
        if "contentReference" in e:
            element = Element(last, path, COMPLEX, "BackboneElement")
            element.model = models[e["contentReference"].lstrip("#")]
            types = []
            elements = [element]
        else:
            types = e["type"]
            choice = last[:-3] if last.endswith("[x]") else None
            elements = []
            for t in types:
                code = self._type_code(t, on_resource and last == "id")
                name = choice + code[0].upper() + code[1:] if choice is not None else last
                element = self._typed(name, path, code, t, models)
                element.choice = choice
                elements.append(element)
        max_ = e["max"]
        array = e.get("base", {}).get("max", max_) != "1"
        binding = e.get("binding", {})
        expansion = expand(binding["valueSet"]) if binding.get("strength") == "required" else None
        for element, t in zip(elements, types or [None], strict=True):
            element.min = e["min"]
            element.max = None if max_ == "*" else int(max_)
            element.array = array
            if element.max == 0:
                element.kind = PROHIBITED
            if expansion is not None:
                element.value_set = binding["valueSet"]
                _bind(element, expansion)
            if t is not None and element.model is not None and element.model.role == REFERENCE:
                element.targets = _targets(t.get("targetProfile", []))
        return elements

    def _type_code(self, t: Mapping[str, Any], resource_id: bool) -> str:
        code: str = t["code"]
        if code.startswith(_SYSTEM_PREFIX):
            if resource_id:
                return "id"
            # Element.id, Extension.url and primitive values carry their FHIR type in an extension.
            return next(
                (x["valueUrl"] for x in t.get("extension", []) if x["url"] == _FHIR_TYPE_EXT),
                "string",
            )
        return code

    def _typed(
        self, name: str, path: str, code: str, t: Mapping[str, Any], models: Mapping[str, Model]
    ) -> Element:
        if code in self.primitives:
            element = Element(name, path, PRIMITIVE, code)
            element.primitive = self.primitives[code]
            return element
        if code == "Resource":
            kind = CONTAINED if path.endswith(".contained") else RESOURCE
            return Element(name, path, kind, code)
        element = Element(name, path, COMPLEX, code)
        if code in ("BackboneElement", "Element") and path in models:
            element.model = models[path]
        else:
            profiles = [self.profiles[p] for p in t.get("profile", []) if p in self.profiles]
            element.model = profiles[0] if profiles else self.types[code]
        return element


def _bind(element: Element, expansion: Expansion) -> None:
    """Attach a required binding where the element's type lets the validator check it."""
    if element.kind == PRIMITIVE:
        element.codes = frozenset(code for codes in expansion.values() for code in codes)
    elif element.model is not None and element.model.role in (CODING, CODEABLE_CONCEPT):
        element.systems = expansion


def _targets(profiles: Iterable[str]) -> frozenset[str] | None:
    """Target resource types of a Reference; None when any resource is allowed."""
    names = frozenset(p.removeprefix(SD_PREFIX) for p in profiles)
    if not names or "Resource" in names:
        return None
    return names


def _json_names(element: Element) -> tuple[str, ...]:
    """The properties that make an element present: a primitive may appear only as `_name`."""
    if element.kind == PRIMITIVE:
        return (element.name, "_" + element.name)
    return (element.name,)


def _primitive_regex(sd: Mapping[str, Any]) -> str | None:
    for e in sd["snapshot"]["element"]:
        if e["path"].endswith(".value"):
            for t in e.get("type", []):
                for x in t.get("extension", []):
                    if x["url"] == _REGEX_EXT:
                        return str(x["valueString"])
    return None
