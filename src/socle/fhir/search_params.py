"""The search-parameter registry: every R4 SearchParameter, compiled once per resource type.

FHIR search (R4 §3.1.1, https://hl7.org/fhir/R4/search.html) is defined by SearchParameter
resources: a name (`code`), a type, the resource types it applies to (`base`) and a FHIRPath
`expression` saying which values of a resource it indexes. The registry reads those of the core
package, plus custom ones added at run time (`SearchParamRegistry.add`), and compiles each
expression per resource type with `socle.fhir.fhirpath` (so `Observation.code | Condition.code`
costs one path on an Observation). Parameters on `Resource` (`_id`, `_lastUpdated`, `_tag`,
`_profile`, `_security`, `_source`) apply to every type.

`extract_index_values` runs a resource through its type's parameters and normalises the results
per search type: the rows the store writes into its index tables.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from socle.fhir._index_composites import KEY_TYPES, ComponentReader, CompositeSpec, add_composites
from socle.fhir._index_values import (
    ADDERS,
    OPEN_HIGH,
    OPEN_LOW,
    CompositeRow,
    IndexValues,
    canonical_quantity,
    date_range,
    normalize_string,
)
from socle.fhir.errors import Invalid
from socle.fhir.fhirpath import (
    Extractor,
    FhirPathSyntaxError,
    FhirPathUnsupported,
    compile_expression,
    compile_with_roots,
)
from socle.fhir.package import package_resources

__all__ = [
    "OPEN_HIGH",
    "OPEN_LOW",
    "RESOURCE_COLUMNS",
    "Component",
    "CompositeRow",
    "IndexValues",
    "SearchParam",
    "SearchParamRegistry",
    "SearchType",
    "canonical_quantity",
    "date_range",
    "extract_index_values",
    "normalize_string",
    "registry",
]

SearchType = Literal[
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"
]
_SEARCH_TYPES = frozenset(get_args(SearchType))
_ALL_TYPES = ("Resource", "DomainResource")
# Answered from the `resource` table (id, updated_at), so not copied into index tables.
RESOURCE_COLUMNS = frozenset({"_id", "_lastUpdated"})


@dataclass(frozen=True)
class Component:
    """One part of a composite parameter: the parameter it reuses and the expression within the parent.

    `name` and `type` are those of the `definition` SearchParameter, filled when the registry compiles
    a resource type ("" and None if the definition is unknown: the composite is then not indexed).
    """

    definition: str
    expression: str
    name: str = ""
    type: SearchType | None = None


@dataclass(frozen=True, eq=False)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    name: str
    type: SearchType
    url: str
    resource_type: str
    expression: str | None
    targets: tuple[str, ...]
    components: tuple[Component, ...]
    # None when the parameter indexes nothing itself: no expression, composite or special.
    extract: Extractor | None
    # A composite whose expression is the union of other composites' with the same components
    # (R4 `combo-code-value-quantity` = `code-value-quantity` | `component-code-value-quantity`):
    # searched as the union of their rows, never indexed itself.
    union_of: tuple[str, ...] = ()

    @property
    def indexed(self) -> bool:
        """Whether the store keeps rows for it in an index table."""
        return self.extract is not None and self.name not in RESOURCE_COLUMNS


@dataclass(frozen=True)
class _Definition:
    name: str
    type: SearchType
    url: str
    expression: str | None
    base: tuple[str, ...]
    targets: tuple[str, ...]
    components: tuple[Component, ...]


def _definition(resource: Mapping[str, Any]) -> _Definition:
    """Read a SearchParameter resource (R4 searchparameter.html), raising Invalid on what we cannot use."""
    if resource.get("resourceType") != "SearchParameter":
        raise Invalid("not a SearchParameter resource")
    name, kind, base = resource.get("code"), resource.get("type"), resource.get("base")
    if not isinstance(name, str) or not name or kind not in _SEARCH_TYPES or not base:
        raise Invalid("SearchParameter needs code, a search type and base", expression="SearchParameter")
    components = tuple(
        Component(str(c.get("definition", "")), str(c.get("expression", "")))
        for c in resource.get("component", ())
    )
    return _Definition(
        name=name,
        type=cast(SearchType, kind),
        url=str(resource.get("url", "")),
        expression=resource.get("expression") or None,
        base=tuple(base),
        targets=tuple(resource.get("target", ())),
        components=components,
    )


# (name, normaliser, extractor, root keys): the extractor yields nothing on a resource that has
# none of the root keys (None: not known), so extraction skips it without calling it.
_Indexer = tuple[str, Callable[[IndexValues, str, Any], None], Extractor, frozenset[str] | None]


@dataclass(frozen=True)
class _Compiled:
    """One type's parameters, plus the indexers extraction loops over."""

    params: Mapping[str, SearchParam]
    indexers: tuple[_Indexer, ...]
    customised: bool  # a custom parameter applies: rows written before it lack its values


class SearchParamRegistry:
    """Search parameters by resource type and name; compiled lazily, once per type, thread-safely."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]] = ()) -> None:
        self._definitions: dict[tuple[str, str], _Definition] = {}
        self._by_url: dict[str, _Definition] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        for resource in definitions:
            self._register(_definition(resource))
        self._builtin = (dict(self._definitions), dict(self._by_url))  # what `replace_custom` returns to

    def _register(self, definition: _Definition) -> None:
        if definition.url:
            self._by_url[definition.url] = definition
        for base in definition.base:
            self._definitions[(base, definition.name)] = definition

    def add(self, resource: Mapping[str, Any]) -> None:
        """Add (or replace, by base and code) a custom SearchParameter; its expression must compile."""
        definition = _definition(resource)
        if definition.expression is not None:
            try:
                compile_expression(definition.expression)
            except (FhirPathSyntaxError, FhirPathUnsupported, ImportError) as error:
                raise Invalid(f"SearchParameter.expression cannot be compiled: {error}") from error
        with self._lock:
            self._register(definition)
            self._compiled.clear()  # recompiled lazily: additions are rare, reads are hot

    def replace_custom(self, resources: Iterable[Mapping[str, Any]]) -> None:
        """Make the custom parameters exactly these (the stored SearchParameter resources).

        Unlike `add`, a parameter left out is forgotten, and a core one it had replaced comes back.
        Expressions are not checked here: `socle.services.search_parameters` does, per base type.
        """
        definitions = [_definition(resource) for resource in resources]
        with self._lock:
            self._definitions, self._by_url = dict(self._builtin[0]), dict(self._builtin[1])
            for definition in definitions:
                self._register(definition)
            self._compiled.clear()

    def customised(self, resource_type: str) -> bool:
        """Whether a custom parameter applies to `resource_type` (its rows may predate the parameter)."""
        return self._for(resource_type).customised

    def params(self, resource_type: str) -> Mapping[str, SearchParam]:
        """The parameters of `resource_type`, by name (base `Resource` ones included)."""
        return self._for(resource_type).params

    def _for(self, resource_type: str) -> _Compiled:
        compiled = self._compiled.get(resource_type)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(resource_type)
                if compiled is None:
                    compiled = self._compile(resource_type)
                    self._compiled[resource_type] = compiled
        return compiled

    def get(self, resource_type: str, name: str) -> SearchParam | None:
        return self.params(resource_type).get(name)

    def by_url(self, url: str) -> SearchParam | None:
        """The parameter a composite component's `definition` names, on the first type it applies to."""
        definition = self._by_url.get(url)
        return None if definition is None else self.get(definition.base[0], definition.name)

    def _compile(self, resource_type: str) -> _Compiled:
        params: dict[str, SearchParam] = {}
        roots: dict[str, frozenset[str] | None] = {}
        for base in (*_ALL_TYPES, resource_type):  # the type's own definitions win over Resource's
            for (owner, name), d in self._definitions.items():
                if owner != base:
                    continue
                extract = None
                if d.expression is not None and d.type not in ("composite", "special"):
                    extract, roots[name] = compile_with_roots(d.expression, resource_type)
                components = tuple(self._component(c) for c in d.components)
                params[name] = SearchParam(
                    d.name, d.type, d.url, resource_type, d.expression, d.targets, components, extract
                )
        indexers: list[_Indexer] = [
            (p.name, ADDERS[p.type], p.extract, roots[p.name])
            for p in params.values()
            if p.indexed and p.extract is not None
        ]
        _find_unions(params)
        indexers.extend(_composite_indexers([p for p in params.values() if p.type == "composite"]))
        builtin = self._builtin[0]
        customised = any(
            builtin.get(key) is not definition
            for key, definition in self._definitions.items()
            if key[0] in (resource_type, *_ALL_TYPES)
        )
        return _Compiled(params, tuple(indexers), customised)

    def _component(self, component: Component) -> Component:
        definition = self._by_url.get(component.definition)
        if definition is None:
            return component
        return Component(component.definition, component.expression, definition.name, definition.type)


def _composite_indexers(composites: Iterable[SearchParam]) -> list[_Indexer]:
    """One (name, adder, extractor) per distinct composite expression; the extractor yields
    (element, resource) pairs and the adder writes every composite of that expression.

    Component expressions are relative to each element (`code`, `value.as(Quantity)`), except those
    rooted at `%resource` (MolecularSequence), which read the whole resource. A composite whose
    components are unknown or do not compile is left out (searching it raises NotSupported).
    Ordered components (the `value[x]` ones) are read first: most elements lack most of them.
    """
    groups: dict[str, list[CompositeSpec]] = {}
    compiled: dict[tuple[str, bool], Extractor] = {}
    resource_type = ""
    for param in composites:
        if param.expression is None or not param.components or param.union_of:
            continue
        resource_type = param.resource_type
        readers: list[ComponentReader] = []
        for component in param.components:
            if component.type not in ADDERS or not component.expression:
                break
            on_resource = component.expression.startswith("%resource")
            key = (component.expression, on_resource)
            if key not in compiled:
                try:
                    extract = compile_expression(component.expression, resource_type if on_resource else None)
                except (FhirPathSyntaxError, FhirPathUnsupported, ImportError):
                    break
                compiled[key] = extract if on_resource else _fast_path(component.expression, extract)
            readers.append((component.type, component.expression, compiled[key], on_resource))
        else:
            readers.sort(key=lambda r: r[0] in KEY_TYPES)  # stable: keeps definition order within each kind
            groups.setdefault(param.expression, []).append((param.name, tuple(readers)))
    indexers: list[_Indexer] = []
    for expression, specs in groups.items():
        elements, roots = compile_with_roots(expression, resource_type)

        def pairs(resource: Mapping[str, Any], elements: Extractor = elements) -> list[Any]:
            return [(element, resource) for element in elements(resource) if type(element) is dict]

        indexers.append((specs[0][0], functools.partial(add_composites, specs=tuple(specs)), pairs, roots))
    return indexers


_SIMPLE_PATH = re.compile(r"[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*")


def _fast_path(expression: str, general: Extractor) -> Extractor:
    """A plain path (`code`, `referenceSeq.chromosome`) read as JSON keys, the general extractor
    as fallback.

    Compiled without a type (the element's type is not known here), `code` must also try every
    `code[x]` choice key: ~7 µs a call, where reading the key is ~0.3. When every key is present
    it cannot be a choice element (`code` and `codeString` never coexist), so the direct read is
    exact; when one is absent the general extractor answers.
    """
    if _SIMPLE_PATH.fullmatch(expression) is None:
        return general
    keys = expression.split(".")

    def extract(element: Mapping[str, Any]) -> list[Any]:
        items: list[Any] = [element]
        for key in keys:
            found: list[Any] = []
            for item in items:
                value = item.get(key) if type(item) is dict else None
                if value is None:
                    return general(element)
                if type(value) is list:
                    found.extend(v for v in value if v is not None)
                else:
                    found.append(value)
            items = found
        return items

    return extract


def _find_unions(params: dict[str, SearchParam]) -> None:
    """Mark composites whose expression is `A | B` over other composites with the same components.

    Indexing them too would store every row twice (the combo parameters are ~40% of an
    Observation's composite rows); searching them as the union of their parts gives the same result.
    """
    shape = {
        (p.expression, tuple((c.expression, c.type) for c in p.components)): p.name
        for p in params.values()
        if p.type == "composite" and p.expression is not None
    }
    for name, p in list(params.items()):
        if p.type != "composite" or p.expression is None or "|" not in p.expression:
            continue
        components = tuple((c.expression, c.type) for c in p.components)
        parts = [shape.get((branch.strip(), components)) for branch in p.expression.split("|")]
        if all(parts) and name not in parts:
            params[name] = dataclasses.replace(p, union_of=tuple(str(n) for n in parts))


@functools.cache
def registry() -> SearchParamRegistry:
    """The registry of the R4 core package.

    Left out: the spec's `example*` parameters, and the extension parameters that have no `base`.
    """
    return SearchParamRegistry(
        sp
        for sp in package_resources("SearchParameter")
        if sp.get("base") and not str(sp.get("id", "")).startswith("example")
    )


def extract_index_values(
    resource: Mapping[str, Any], params: SearchParamRegistry | None = None
) -> IndexValues:
    """The normalised values of every indexed parameter of `resource` (see `IndexValues`)."""
    out = IndexValues()
    keys = resource.keys()
    for name, add, extract, roots in (params or registry())._for(resource["resourceType"]).indexers:
        if roots is not None and keys.isdisjoint(roots):
            continue
        for value in extract(resource):
            add(out, name, value)
    return out
