"""Structural validation of FHIR R4 resources in JSON form, against the core StructureDefinitions.

`validate_resource` walks the dict that `orjson.loads` produced, with the model `structure.py` compiled
once, and raises one `Invalid` listing every problem found (an OperationOutcome names all issues, not
just the first). It checks what the base specification says about the JSON form
(https://hl7.org/fhir/R4/json.html) and the elements (https://hl7.org/fhir/R4/datatypes.html):
resource type, unknown elements, JSON types and regexes of primitives, cardinality, choice types,
required bindings expandable from the package, contained and nested resources, reference syntax and
target types, ext-1, ele-1 (no empty objects), dom-2, dom-4 and dom-5.

Not checked: other FHIRPath invariants (e.g. obs-6, dom-3 "contained resources are referenced"),
profiles named in `meta.profile`, extension definitions (an extension's content is only checked as
`Extension`), bindings that cannot be expanded from the package (UCUM, BCP-47, MIME types, SNOMED CT,
LOINC, filtered value sets), non-required bindings, XHTML content beyond its outer `<div>`, and whether
references resolve.

Issue codes (OperationOutcome issue-type, https://hl7.org/fhir/R4/valueset-issue-type.html):
`structure` for the JSON shape (unknown element, array where one value is expected or the reverse,
null, empty array or object, two choices at once), `value` for a primitive that breaks its type,
`required` for a missing element, `code-invalid` for a code outside its required value set,
`invalid` for broken rules (reference syntax or target, ext-1, dom-*, a resource of the wrong type),
`not-supported` for an unknown or abstract resource type.

Expressions are FHIRPath paths with an index on every repeating element: `Patient.name[0].given[1]`.
A choice element is named by its JSON property (`Observation.valueQuantity.value`), a primitive's
extension by the primitive (`Patient.birthDate.extension[0]` for `_birthDate.extension[0]`). Nested
resources use the plain path of the element holding them, for contained resources and Bundle entries
alike: `Patient.contained[0].birthDate`, `Bundle.entry[3].resource.status` (not `ofType(...)`).
"""

from __future__ import annotations

from typing import Any

from socle.fhir._reference_syntax import reference_problem
from socle.fhir.errors import Issue, IssueCollector
from socle.fhir.structure import (
    CODEABLE_CONCEPT,
    COMPLEX,
    CONTAINED,
    EXTENSION,
    PRIMITIVE,
    PROHIBITED,
    REFERENCE,
    Element,
    Model,
    Schema,
    compiled_schema,
)

__all__ = ["validate_resource"]


def validate_resource(resource: object, *, resource_type: str | None = None) -> None:
    """Raise `Invalid` listing every structural problem of `resource`; return None if there is none.

    `resource_type`, when given, is the type the caller expects (e.g. from the URL of a PUT).
    """
    schema = compiled_schema()
    issues: list[Issue] = []
    if resource_type is not None:
        actual = resource.get("resourceType") if type(resource) is dict else None
        if actual != resource_type:
            issues.append(
                Issue("invalid", f"expected resourceType {resource_type!r}, found {actual!r}", None)
            )
    try:
        _Walker(schema, issues).resource(resource, None, contained=False)
    except RecursionError:
        # orjson parses up to 1024 levels; the walk needs ~1.5 Python frames per level, so
        # pathological nesting (extensions in extensions...) must not become a 500.
        issues.append(Issue("structure", "the resource is nested too deeply to be validated", None))
    if issues:
        collector = IssueCollector(issues)
        collector.raise_if_any()


class _Walker:
    """One validation run: the compiled schema and the issues found so far."""

    __slots__ = ("schema", "issues", "resource_types")

    def __init__(self, schema: Schema, issues: list[Issue]) -> None:
        self.schema = schema
        self.issues = issues
        self.resource_types = schema.resources

    def resource(self, value: object, path: str | None, *, contained: bool) -> None:
        """Validate a whole resource; `path` is None at the root, else the element holding it."""
        issues = self.issues
        if type(value) is not dict:
            issues.append(Issue("structure", "a resource must be a JSON object", path))
            return
        resource_type = value.get("resourceType")
        if resource_type is None:
            issues.append(Issue("required", "resourceType is missing", path))
            return
        model = self.resource_types.get(resource_type) if type(resource_type) is str else None
        if model is None:
            if resource_type in self.schema.abstract:
                reason = f"{resource_type} is an abstract resource type and cannot be instantiated"
            else:
                reason = f"unknown resource type {resource_type!r}"
            issues.append(Issue("not-supported", reason, path))
            return
        base = resource_type if path is None else path
        if contained:
            self._contained_rules(value, base)
        self.walk_object(model, value, base)

    def _contained_rules(self, value: dict[str, Any], base: str) -> None:
        """dom-2, dom-4, dom-5 (https://hl7.org/fhir/R4/domainresource.html#invs)."""
        issues = self.issues
        if "contained" in value:
            issues.append(
                Issue(
                    "invalid", "dom-2: a contained resource must not contain resources", f"{base}.contained"
                )
            )
        meta = value.get("meta")
        if type(meta) is dict:
            for key in ("versionId", "lastUpdated"):
                if key in meta:
                    issues.append(
                        Issue(
                            "invalid",
                            f"dom-4: a contained resource must not have meta.{key}",
                            f"{base}.meta.{key}",
                        )
                    )
            if "security" in meta:
                issues.append(
                    Issue(
                        "invalid",
                        "dom-5: a contained resource must not have a security label",
                        f"{base}.meta.security",
                    )
                )

    def walk_object(self, model: Model, obj: dict[str, Any], path: str) -> None:
        """Validate the properties of one JSON object against `model`, then its required elements."""
        issues = self.issues
        elements = model.elements
        choices: set[str] | None = None
        for key, value in obj.items():
            el = elements.get(key)
            if el is None:
                self._other_key(model, obj, key, value, path)
                continue
            if el.choice is not None:
                if choices is None:
                    choices = {el.choice}
                elif el.choice in choices:
                    issues.append(
                        Issue(
                            "structure",
                            f"only one {el.path} is allowed, found another one: {key}",
                            f"{path}.{key}",
                        )
                    )
                else:
                    choices.add(el.choice)
            if value is None:
                issues.append(Issue("structure", f"{el.path} must not be null", f"{path}.{key}"))
            elif el.array:
                if type(value) is not list:
                    issues.append(
                        Issue(
                            "structure",
                            f"{el.path} repeats (max {_max(el)}): it must be a JSON array",
                            f"{path}.{key}",
                        )
                    )
                elif not value:
                    issues.append(
                        Issue("structure", f"{el.path}: an array must not be empty", f"{path}.{key}")
                    )
                else:
                    self.array(el, obj, key, value, path)
            elif type(value) is list:
                issues.append(
                    Issue(
                        "structure",
                        f"{el.path} does not repeat (max 1): it must not be an array",
                        f"{path}.{key}",
                    )
                )
            elif el.kind == PRIMITIVE:
                problem = el.primitive.check(value)  # type: ignore[union-attr]
                if problem is not None:
                    issues.append(Issue("value", f"{el.path}: {problem}", f"{path}.{key}"))
                elif el.codes is not None and value not in el.codes:
                    self._code_invalid(el, value, f"{path}.{key}")
            else:
                self.value(el, value, f"{path}.{key}")
        for name, names in model.required:
            for candidate in names:
                if candidate in obj:
                    break
            else:
                element = name.removesuffix("[x]")
                issues.append(
                    Issue(
                        "required",
                        f"{model.name}.{name} is required (min 1) but missing",
                        f"{path}.{element}",
                    )
                )

    def array(self, el: Element, obj: dict[str, Any], key: str, items: list[Any], path: str) -> None:
        issues = self.issues
        if el.max is not None and len(items) > el.max:
            issues.append(
                Issue("structure", f"{el.path} allows at most {el.max}, found {len(items)}", f"{path}.{key}")
            )
        if len(items) < el.min:
            issues.append(
                Issue("required", f"{el.path} needs at least {el.min}, found {len(items)}", f"{path}.{key}")
            )
        if el.kind == PROHIBITED:
            return  # already reported by the max check above
        if el.kind != PRIMITIVE:
            for i, item in enumerate(items):
                if item is None:
                    issues.append(
                        Issue("structure", f"{el.path}: an array must not contain null", f"{path}.{key}[{i}]")
                    )
                else:
                    self.value(el, item, f"{path}.{key}[{i}]")
            return
        check = el.primitive.check  # type: ignore[union-attr]
        codes = el.codes
        for i, item in enumerate(items):
            if item is None:
                # A null is only a placeholder for a value that has extensions in `_key` instead.
                extensions = obj.get("_" + key)
                if type(extensions) is not list or i >= len(extensions) or extensions[i] is None:
                    issues.append(
                        Issue(
                            "structure",
                            f"{el.path}: null without a matching _{key} entry",
                            f"{path}.{key}[{i}]",
                        )
                    )
                continue
            problem = check(item)
            if problem is not None:
                issues.append(Issue("value", f"{el.path}: {problem}", f"{path}.{key}[{i}]"))
            elif codes is not None and item not in codes:
                self._code_invalid(el, item, f"{path}.{key}[{i}]")

    def value(self, el: Element, value: Any, path: str) -> None:
        """Validate one non-null value of `el` (an item, for a repeating element)."""
        kind = el.kind
        if kind == COMPLEX:
            if type(value) is not dict:
                self.issues.append(
                    Issue("structure", f"{el.path} must be a JSON object ({el.type_name})", path)
                )
                return
            if not value or (len(value) == 1 and "id" in value):
                self.issues.append(
                    Issue("structure", f"ele-1: {el.path} must have a value or children", path)
                )
                return
            model: Model = el.model  # type: ignore[assignment]
            self.walk_object(model, value, path)
            role = model.role
            if role:
                if role == EXTENSION:
                    _ext_1(value, path, self.issues)
                elif role == REFERENCE:
                    reference = value.get("reference")
                    if type(reference) is str and reference:
                        problem = reference_problem(reference, self.resource_types, el.targets)
                        if problem is not None:
                            self.issues.append(Issue("invalid", problem, path + ".reference"))
                elif el.systems is not None:
                    self._codings(el, value, path, role == CODEABLE_CONCEPT)
        elif kind == PRIMITIVE:
            problem = el.primitive.check(value)  # type: ignore[union-attr]
            if problem is not None:
                self.issues.append(Issue("value", f"{el.path}: {problem}", path))
            elif el.codes is not None and value not in el.codes:
                self._code_invalid(el, value, path)
        elif kind == PROHIBITED:
            self.issues.append(Issue("structure", f"{el.path} is not allowed here (max 0)", path))
        else:
            self.resource(value, path, contained=kind == CONTAINED)

    def _other_key(self, model: Model, obj: dict[str, Any], key: str, value: Any, path: str) -> None:
        """A property that is not an element: `_x` of a primitive, resourceType, or unknown."""
        if key.startswith("_"):
            el = model.elements.get(key[1:])
            if el is not None and el.kind == PRIMITIVE:
                self._primitive_extensions(el, obj, key[1:], value, f"{path}.{key[1:]}")
                if el.choice is not None and key[1:] not in obj:
                    self._lone_choice_extension(model, obj, el, key, path)
                return
        elif (key == "resourceType" and model.is_resource) or key == "fhir_comments":
            return  # fhir_comments: tolerated, as earlier FHIR JSON allowed it
        self.issues.append(Issue("structure", f"unknown element {key!r} in {model.name}", f"{path}.{key}"))

    def _lone_choice_extension(
        self, model: Model, obj: dict[str, Any], el: Element, key: str, path: str
    ) -> None:
        """`_valueString` without `valueString` stands for a value[x] choice too: it may be the only one."""
        for other in obj:
            other_el = model.elements.get(other.removeprefix("_"))
            if other_el is not None and other_el.choice == el.choice and other_el is not el:
                self.issues.append(
                    Issue(
                        "structure",
                        f"only one {el.path} is allowed, found {key} and {other}",
                        f"{path}.{key}",
                    )
                )
                return

    def _primitive_extensions(
        self, el: Element, obj: dict[str, Any], key: str, value: Any, path: str
    ) -> None:
        """`_key`: the id and extensions of primitive `key` (https://hl7.org/fhir/R4/json.html#primitive)."""
        issues = self.issues
        element_model = self.schema.element
        if not el.array:
            if type(value) is not dict or not value:
                issues.append(
                    Issue("structure", f"_{key} must be a non-empty JSON object (id, extension)", path)
                )
            else:
                self.walk_object(element_model, value, path)
            return
        if type(value) is not list or not value:
            issues.append(
                Issue("structure", f"_{key} must be a non-empty JSON array, aligned with {key}", path)
            )
            return
        values = obj.get(key)
        if type(values) is list and len(values) != len(value):
            issues.append(
                Issue("structure", f"_{key} has {len(value)} entries but {key} has {len(values)}", path)
            )
        for i, item in enumerate(value):
            if item is None:
                if type(values) is not list or i >= len(values) or values[i] is None:
                    issues.append(
                        Issue("structure", f"_{key}[{i}] is null and so is {key}[{i}]", f"{path}[{i}]")
                    )
            elif type(item) is not dict or not item:
                issues.append(
                    Issue("structure", f"_{key}[{i}] must be a non-empty JSON object or null", f"{path}[{i}]")
                )
            else:
                self.walk_object(element_model, item, f"{path}[{i}]")

    def _codings(self, el: Element, value: dict[str, Any], path: str, concept: bool) -> None:
        """Required binding on Coding/CodeableConcept: codings of the value set's systems must be in it."""
        systems = el.systems
        assert systems is not None
        codings = [(value, path)] if not concept else _coding_items(value.get("coding"), path)
        for coding, coding_path in codings:
            system = coding.get("system")
            codes = systems.get(system) if type(system) is str else None
            code = coding.get("code")
            if codes is not None and type(code) is str and code not in codes:
                self._code_invalid(el, code, coding_path + ".code")

    def _code_invalid(self, el: Element, code: object, path: str) -> None:
        value_set = el.value_set.split("|", 1)[0]
        self.issues.append(
            Issue("code-invalid", f"{el.path}: {code!r} is not in the required value set {value_set}", path)
        )


def _coding_items(codings: object, path: str) -> list[tuple[dict[str, Any], str]]:
    if type(codings) is not list:
        return []
    return [(c, f"{path}.coding[{i}]") for i, c in enumerate(codings) if type(c) is dict]


def _ext_1(value: dict[str, Any], path: str, issues: list[Issue]) -> None:
    """ext-1: an extension has either a value[x] or nested extensions, not both, not neither."""
    has_value = any(k.startswith(("value", "_value")) for k in value)
    if has_value == ("extension" in value):
        reason = "both value[x] and extensions" if has_value else "neither value[x] nor extensions"
        issues.append(
            Issue(
                "invalid", f"ext-1: an extension must have either value[x] or extensions, not {reason}", path
            )
        )


def _max(el: Element) -> str:
    return "*" if el.max is None else str(el.max)
