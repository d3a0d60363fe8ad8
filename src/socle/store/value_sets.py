"""Token `:in` and `:not-in` (R4 search.html#token): codes tested against a value set's expansion.

`code:in=http://hl7.org/fhir/ValueSet/administrative-gender` (or `code:in=ValueSet/123`, a value set
stored on this server) matches resources with a coding in the value set; `:not-in` those without
one (like `:not`, resources with no coding at all are included). A value indexed without a
system (a `code` element such as Patient.gender, its system implied by the binding) is matched
by its code alone. Before compiling, the search
replaces each such clause by the plain token clause (`:in`) or the `:not` clause (`:not-in`) of the
value set's `system|code` pairs, so the SQL is the ordinary hash lookup of `socle.store.search`.

Where the codes come from, first match wins:
- a ValueSet stored on the server (read under the request's access filter), by `url` (and
  `version` after a `|`) or by `ValueSet/id`: its `expansion.contains` if it carries one, else its
  `compose` — `include.system` with a `concept` list, or a whole code system (complete CodeSystems
  of the R4 package or stored on the server), `include.valueSet` (recursively), `exclude`;
- a ValueSet of the R4 core package (`socle.fhir.valuesets.expand`).
Filters (`include.filter`: is-a, regex…) and external code systems need a terminology server: such
a value set is refused (400 not-supported), as is one over `MAX_CODES` codes. An unknown value set
is a 400. Expansions are computed once per request (`ValueSetCache`). The search API and
`socle explain` resolve them; a conditional operation with `:in` answers not-supported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, false, select

from socle.fhir import valuesets
from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.query import Chain, Clause, Criterion, Has, SearchQuery, TokenValue, UriValue, parse_query
from socle.store.access import AccessFilter
from socle.store.schema import resource
from socle.store.search import compile_search

__all__ = ["MAX_CODES", "ValueSetCache", "resolve_value_sets"]

MAX_CODES = 10_000
Codes = frozenset[tuple[str, str]]  # (system, code)
# A token no resource can have: the value of an `:in` over an empty value set.
_NOTHING = TokenValue("urn:socle:empty-value-set", "")


class ValueSetCache:
    """Expansions by the value as written, for one request (stored value sets may change between)."""

    def __init__(self, conn: Connection, access: AccessFilter) -> None:
        self.conn = conn
        self.access = access
        self._expansions: dict[str, Codes] = {}

    def codes(self, value: str) -> Codes:
        found = self._expansions.get(value)
        if found is None:
            found = self._expansions[value] = _Expander(self.conn, self.access).value_set(value, ())
            if len(found) > MAX_CODES:
                raise NotSupported(
                    f"Value set {value!r} has more than {MAX_CODES} codes: too many to search by"
                )
        return found


def resolve_value_sets(query: SearchQuery, cache: ValueSetCache) -> SearchQuery:
    """`query` with every `:in`/`:not-in` clause (at any depth of chains and `_has`) replaced."""
    clauses = tuple(_resolve(criterion, cache) for criterion in query.clauses)
    return query if clauses == query.clauses else dataclasses.replace(query, clauses=clauses)


def _resolve(criterion: Criterion, cache: ValueSetCache) -> Criterion:
    if isinstance(criterion, Chain):
        criteria = tuple(_resolve(c, cache) for c in criterion.criteria)
        return (
            criterion if criteria == criterion.criteria else dataclasses.replace(criterion, criteria=criteria)
        )
    if isinstance(criterion, Has):
        inner = _resolve(criterion.criterion, cache)
        return criterion if inner is criterion.criterion else dataclasses.replace(criterion, criterion=inner)
    if criterion.modifier not in ("in", "not-in"):
        return criterion
    codes: set[tuple[str, str]] = set()
    for value in criterion.values:
        if not isinstance(value, UriValue):
            raise Invalid(f"{criterion.text} takes the URL of a value set")
        codes |= cache.codes(value.uri)
    # A value indexed without a system is a `code` element (Patient.gender), whose system its
    # binding implies: it matches by code (`|code`, "no system").
    bare = {("", code) for _, code in codes}
    tokens = tuple(TokenValue(system, code) for system, code in sorted(codes | bare)) or (_NOTHING,)
    return Clause(criterion.param, None if criterion.modifier == "in" else "not", tokens)


@dataclasses.dataclass
class _Expander:
    conn: Connection
    access: AccessFilter

    def value_set(self, value: str, stack: tuple[str, ...]) -> Codes:
        if value in stack:
            raise NotSupported(f"Value set {value!r} includes itself")
        stored = self._stored("ValueSet", value)
        if stored is not None:
            return self._expand(stored, value, (*stack, value))
        packaged = valuesets.expand(value)
        if packaged is None:
            raise NotSupported(
                f"Value set {value!r} is not stored here, or needs a terminology server to expand"
                " (filters, external code systems)"
            )
        return frozenset((system, code) for system, codes in packaged.items() for code in codes)

    def _expand(self, body: Mapping[str, Any], value: str, stack: tuple[str, ...]) -> Codes:
        expansion = body.get("expansion")
        if isinstance(expansion, Mapping) and expansion.get("contains"):
            return frozenset(_contains(expansion["contains"]))
        compose = body.get("compose")
        if not isinstance(compose, Mapping):
            raise NotSupported(f"Value set {value!r} has neither an expansion nor a compose")
        codes: set[tuple[str, str]] = set()
        for include in compose.get("include", []):
            codes |= self._include(include, value, stack)
        for exclude in compose.get("exclude", []):
            codes -= self._include(exclude, value, stack)
        return frozenset(codes)

    def _include(
        self, include: Mapping[str, Any], value: str, stack: tuple[str, ...]
    ) -> set[tuple[str, str]]:
        if include.get("filter"):
            raise NotSupported(f"Value set {value!r} uses filters: they need a terminology server")
        part: set[tuple[str, str]] | None = None
        system = include.get("system")
        if isinstance(system, str):
            if include.get("concept"):
                part = {(system, str(c.get("code"))) for c in include["concept"] if c.get("code")}
            else:
                part = {(system, code) for code in self._system(system, value)}
        for imported in include.get("valueSet", []):
            other = self.value_set(str(imported), stack)
            part = set(other) if part is None else part & other
        return part or set()

    def _system(self, system: str, value: str) -> frozenset[str]:
        stored = self._stored("CodeSystem", system)
        if stored is not None and stored.get("content") == "complete":
            return frozenset(_concepts(stored.get("concept", [])))
        codes = valuesets.system_codes(system)
        if codes is None:
            raise NotSupported(
                f"Value set {value!r} includes all of {system}, which Socle does not hold: "
                "that needs a terminology server"
            )
        return codes

    def _stored(self, resource_type: str, value: str) -> Mapping[str, Any] | None:
        """A live stored resource named by `Type/id` or by canonical `url[|version]`."""
        conditions = [resource.c.resource_type == resource_type, resource.c.deleted == false()]
        if value.startswith(resource_type + "/"):
            conditions.append(resource.c.id == value.split("/", 1)[1].split("/_history")[0])
        elif "://" in value or value.startswith("urn:"):
            url, _, version = value.partition("|")
            criteria = [("url", url)] + ([("version", version)] if version else [])
            matches = compile_search(parse_query(resource_type, criteria, strict=True), self.access)
            conditions.append(resource.c.resource_key.in_(matches.with_only_columns(resource.c.resource_key)))
        else:
            return None
        row = self.conn.execute(
            select(resource.c.content)
            .where(*conditions, self.access.condition(resource))
            .order_by(resource.c.resource_key.desc())
            .limit(1)
        ).first()
        if row is None or row[0] is None:
            return None
        content = row[0]
        body: Any = content if isinstance(content, dict) else orjson.loads(content)
        return body if isinstance(body, Mapping) else None


def _contains(entries: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    """`ValueSet.expansion.contains`, nested entries included, abstract ones left out."""
    for entry in entries:
        if entry.get("system") and entry.get("code") and not entry.get("abstract"):
            yield str(entry["system"]), str(entry["code"])
        yield from _contains(entry.get("contains", []))


def _concepts(concepts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        if concept.get("code"):
            yield str(concept["code"])
        yield from _concepts(concept.get("concept", []))
