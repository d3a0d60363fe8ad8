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

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from socle.fhir._index_values import (
    ADDERS,
    OPEN_HIGH,
    OPEN_LOW,
    IndexValues,
    canonical_quantity,
    date_range,
    normalize_string,
)
from socle.fhir.errors import Invalid
from socle.fhir.fhirpath import Extractor, FhirPathSyntaxError, FhirPathUnsupported, compile_expression
from socle.fhir.package import package_resources

__all__ = [
    "OPEN_HIGH",
    "OPEN_LOW",
    "RESOURCE_COLUMNS",
    "Component",
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
    """One part of a composite parameter: the parameter it reuses and the expression within the parent."""

    definition: str
    expression: str


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


@dataclass(frozen=True)
class _Compiled:
    """One type's parameters, plus the (name, normaliser, extractor) triples extraction loops over."""

    params: Mapping[str, SearchParam]
    indexers: tuple[tuple[str, Callable[[IndexValues, str, Any], None], Extractor], ...]


class SearchParamRegistry:
    """Search parameters by resource type and name; compiled lazily, once per type, thread-safely."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]] = ()) -> None:
        self._definitions: dict[tuple[str, str], _Definition] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        for resource in definitions:
            self._register(_definition(resource))

    def _register(self, definition: _Definition) -> None:
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

    def _compile(self, resource_type: str) -> _Compiled:
        params: dict[str, SearchParam] = {}
        for base in (*_ALL_TYPES, resource_type):  # the type's own definitions win over Resource's
            for (owner, name), d in self._definitions.items():
                if owner != base:
                    continue
                extract = None
                if d.expression is not None and d.type not in ("composite", "special"):
                    extract = compile_expression(d.expression, resource_type)
                params[name] = SearchParam(
                    d.name, d.type, d.url, resource_type, d.expression, d.targets, d.components, extract
                )
        indexers = tuple(
            (p.name, ADDERS[p.type], p.extract)
            for p in params.values()
            if p.indexed and p.extract is not None
        )
        return _Compiled(params, indexers)


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
    for name, add, extract in (params or registry())._for(resource["resourceType"]).indexers:
        for value in extract(resource):
            add(out, name, value)
    return out
