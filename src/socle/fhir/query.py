"""Parse a FHIR search query string into a typed query (R4 §3.1.1, https://hl7.org/fhir/R4/search.html).

`identifier=http://a|b&birthdate=ge2000-01&name:exact=Dupont&_id=1,2` becomes a `SearchQuery`:
criteria AND-ed together (one per parameter occurrence, §3.1.1.5.1), each holding values OR-ed
together (the comma, §3.1.1.5.2). A criterion is one of:

- `Clause`: a parameter of the searched type, its modifier (`:exact`, search.html#modifiers) and its
  typed values (`socle.fhir._query_values`: prefix and normalised value);
- `Chain`: `subject:Patient.name=peter` (search.html#chaining), a reference parameter and the
  criterion its targets must meet, one per target type the chain can reach (OR-ed), nested for
  `subject.general-practitioner.name`;
- `Has`: `_has:Observation:patient:code=1234-5` (search.html#has), resources that a resource of
  another type references through a parameter, that resource meeting a criterion (nestable).

Every criterion knows its `resource_type` and renders back as `text`, so a plan can be explained.
Parsing is pure: the store turns the query into SQL (`socle.store.search`).

Result parameters (`_count`, `_sort`, `_include`, ...) are kept raw in `controls` for the paging and
include layers. Parameters the registry does not know (at any level of a chain or `_has`),
expression-less ones (`_filter`, `_query`) and special ones other than `near` are collected in
`unknown` (lenient, as servers do by default, §3.1.1.3.2); `strict=True` raises `Invalid` naming
them. A value that cannot be read (a malformed date, a prefix on a token), an unknown modifier or
a chain through a parameter that is not a reference is always an error.

Percent-decoding leaves `+` alone: clients send `%2B` for a plus, and a raw `+` in a dateTime
offset (`ge2020-01-01T10:00+01:00`) is far more common than a form-encoded space in a search value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from socle.fhir._query_values import (
    PREFIXES,
    CompositeValue,
    DateValue,
    IdentifierTypeValue,
    MissingValue,
    NumberValue,
    Prefix,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
    read_value,
    split_values,
)
from socle.fhir.errors import Invalid, Issue
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import SearchParam, SearchParamRegistry, registry

__all__ = [
    "PREFIXES",
    "Chain",
    "Clause",
    "CompositeValue",
    "Criterion",
    "DateValue",
    "Has",
    "IdentifierTypeValue",
    "MissingValue",
    "NumberValue",
    "Prefix",
    "QuantityValue",
    "ReferenceValue",
    "SearchQuery",
    "SearchValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "parse_query",
]

CONTROLS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained"}
    | {"_containedType", "_format", "_pretty", "_offset"}
)
# The modifiers R4 defines per search type (search.html#modifiers); a reference also takes `:[type]`.
_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing", "of-type", "in", "not-in", "above", "below"}),
    "reference": frozenset({"missing", "identifier", "above", "below"}),
    "uri": frozenset({"missing", "above", "below"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "composite": frozenset({"missing"}),
    "special": frozenset({"missing"}),
}
_FULL_TEXT = frozenset({"_text", "_content"})  # no expression: answered by socle.store.fulltext
_SPECIAL = frozenset({"near"})  # special parameters the store answers (Location.position)
MAX_DEPTH = 4  # links of chains and `_has` in one criterion: deeper is refused, not slow


@dataclass(frozen=True)
class Clause:
    """One parameter occurrence on the searched type: its values are OR-ed."""

    param: SearchParam
    modifier: str | None
    values: tuple[SearchValue, ...]

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def resource_type(self) -> str:
        return self.param.resource_type

    @property
    def text(self) -> str:
        return f"{self.name}:{self.modifier}" if self.modifier else self.name


@dataclass(frozen=True)
class Chain:
    """`param[:Type].<criterion>`: `param` (a reference) points to a resource meeting a criterion.

    `criteria` holds one criterion per target type (each on that type), OR-ed: `subject.name`
    reaches a Patient or a Location named so; `subject:Patient.name` only a Patient.
    """

    param: SearchParam
    type_modifier: str | None
    criteria: tuple[Criterion, ...]

    @property
    def resource_type(self) -> str:
        return self.param.resource_type

    @property
    def name(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        head = f"{self.param.name}:{self.type_modifier}" if self.type_modifier else self.param.name
        return f"{head}.{self.criteria[0].text}"


@dataclass(frozen=True)
class Has:
    """`_has:<source type>:<param>:<criterion>`: resources of `resource_type` that a resource of the
    source type (`param.resource_type`) references through `param`, that resource meeting `criterion`."""

    resource_type: str
    param: SearchParam
    criterion: Criterion

    @property
    def name(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        return f"_has:{self.param.resource_type}:{self.param.name}:{self.criterion.text}"


Criterion = Clause | Chain | Has


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    clauses: tuple[Criterion, ...]
    unknown: tuple[str, ...] = ()
    controls: tuple[tuple[str, str], ...] = ()
    # Set by `socle.store.selectivity.prefer_selective` when the best criterion matches a large share
    # of the type: every criterion then probes the type's resources one by one (no driving set), for
    # a page in key order.
    probe_in_key_order: bool = False


class _Unknown(Exception):
    """A parameter name that the registry does not know, at some level of a criterion."""


def _pairs(query: str | Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    if not isinstance(query, str):
        return query
    pairs = []
    for part in query.lstrip("?").split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def parse_query(
    resource_type: str,
    query: str | Iterable[tuple[str, str]],
    *,
    strict: bool = False,
    params: SearchParamRegistry | None = None,
) -> SearchQuery:
    """The typed query of `query` (a raw query string, or already-decoded name/value pairs)."""
    if resource_type not in resource_types():
        raise Invalid(f"{resource_type!r} is not a resource type")
    reader = _Reader(params or registry())
    clauses: list[Criterion] = []
    unknown: list[str] = []
    controls: list[tuple[str, str]] = []
    for raw_name, raw_value in _pairs(query):
        if "\x00" in raw_name or "\x00" in raw_value:
            raise Invalid(f"Search parameter {raw_name[:50]!r} contains a NUL character")
        if raw_name in CONTROLS:
            controls.append((raw_name, raw_value))
            continue
        try:
            criterion = reader.criterion(resource_type, raw_name, raw_value, 0)
        except _Unknown:
            unknown.append(raw_name)
            continue
        if criterion is not None:
            clauses.append(criterion)
    if strict and unknown:
        issues = [
            Issue("not-supported", f"Unknown search parameter {n!r} for {resource_type}") for n in unknown
        ]
        raise Invalid(f"Unknown search parameter(s) for {resource_type}: {', '.join(unknown)}", issues=issues)
    return SearchQuery(resource_type, tuple(clauses), tuple(unknown), tuple(controls))


@dataclass(frozen=True)
class _Reader:
    params: SearchParamRegistry

    def known(self, resource_type: str) -> Mapping[str, SearchParam]:
        return self.params.params(resource_type)

    def criterion(self, rt: str, raw_name: str, raw_value: str, depth: int) -> Criterion | None:
        """The criterion of `raw_name=raw_value` on type `rt`; None when the value is empty."""
        if depth > MAX_DEPTH:
            raise Invalid(f"{raw_name!r}: chains and _has are limited to {MAX_DEPTH} levels")
        if raw_name.startswith("_has:"):
            return self.has(rt, raw_name, raw_value, depth)
        head, dot, rest = raw_name.partition(".")
        if dot:
            return self.chain(rt, head, rest, raw_value, depth)
        return self.clause(rt, raw_name, raw_value)

    def clause(self, rt: str, raw_name: str, raw_value: str) -> Clause | None:
        name, _, modifier = raw_name.partition(":")
        param = self.known(rt).get(name)
        special = param is not None and param.type == "special" and name not in _SPECIAL
        if param is None or special or not (param.expression or name in _FULL_TEXT):
            raise _Unknown(raw_name)
        if modifier and modifier not in _MODIFIERS[param.type]:
            if not (param.type == "reference" and modifier in resource_types()):
                raise Invalid(f"Unknown modifier :{modifier} on {param.type} parameter {name}")
        if not raw_value:
            return None  # an empty value is ignored (search.html#errors)
        values = tuple(read_value(param, modifier or None, v, self.params) for v in split_values(raw_value))
        return Clause(param, modifier or None, values) if values else None

    def reference_param(self, rt: str, name: str, what: str) -> SearchParam:
        param = self.known(rt).get(name)
        if param is None:
            raise _Unknown(name)
        if param.type != "reference":
            raise Invalid(f"{what}: {rt}.{name} is a {param.type} parameter, not a reference")
        return param

    def chain(self, rt: str, head: str, rest: str, raw_value: str, depth: int) -> Chain | None:
        name, _, type_modifier = head.partition(":")
        param = self.reference_param(rt, name, f"Chained parameter {head}.{rest}")
        if type_modifier:
            if type_modifier not in resource_types():
                raise Invalid(f"Chained parameter {head}.{rest}: {type_modifier!r} is not a resource type")
            if param.targets and type_modifier not in param.targets:
                raise Invalid(f"{rt}.{name} cannot reference a {type_modifier}")
            targets: tuple[str, ...] = (type_modifier,)
        else:
            targets = param.targets or tuple(sorted(resource_types()))
        criteria: list[Criterion] = []
        for target in targets:
            try:
                criterion = self.criterion(target, rest, raw_value, depth + 1)
            except _Unknown:
                continue  # the chained parameter is not defined on that target type
            if criterion is None:
                return None
            criteria.append(criterion)
        if not criteria:
            raise _Unknown(rest)
        return Chain(param, type_modifier or None, tuple(criteria))

    def has(self, rt: str, raw_name: str, raw_value: str, depth: int) -> Has | None:
        parts = raw_name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise Invalid(f"{raw_name!r}: use _has:Type:reference-parameter:criterion")
        _, source, name, rest = parts
        if source not in resource_types():
            raise Invalid(f"{raw_name!r}: {source!r} is not a resource type")
        param = self.reference_param(source, name, raw_name)
        if param.targets and rt not in param.targets:
            raise Invalid(f"{raw_name!r}: {source}.{name} cannot reference a {rt}")
        criterion = self.criterion(source, rest, raw_value, depth + 1)
        return None if criterion is None else Has(rt, param, criterion)
