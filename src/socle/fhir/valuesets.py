"""Expand the value sets of the FHIR R4 core package that required bindings point to.

A required binding (https://hl7.org/fhir/R4/terminologies.html#required) means the code SHALL come
from the value set, so the validator needs the value set's codes. Only what can be computed from the
package alone is expanded (https://hl7.org/fhir/R4/valueset.html#compositions):
- `include.system` alone: every concept of that CodeSystem, when the package holds it with
  `content = complete` (nested concepts included);
- `include.system` + `include.concept`: the enumerated codes (the CodeSystem need not be present);
- `include.valueSet`: the union of the imported value sets, intersected with the system part if any.
  R4 contradicts itself here: `compose.include` says "the codes must be in all the value sets",
  `include.valueSet` says "the union of the contents"; the union is taken because it is the lenient
  reading (a valid code is never rejected) and the one the package's own value sets need (e.g.
  action-participant-role imports two disjoint value sets in one include);
- `exclude` entries are subtracted when they can be expanded, ignored otherwise (the result is then a
  superset: a code might be accepted wrongly, a valid code is never rejected).
Anything else (filters, external systems such as UCUM, BCP-47 or MIME types, incomplete code systems)
makes the value set "not expandable": `expand` returns None and the binding is not checked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from socle.fhir.package import package_resources

# system → codes; the system is kept so that a Coding is only judged against its own system.
Expansion = Mapping[str, frozenset[str]]


@functools.cache
def _code_systems() -> dict[str, dict[str, Any]]:
    return {cs["url"]: cs for cs in package_resources("CodeSystem") if "url" in cs}


@functools.cache
def _value_sets() -> dict[str, dict[str, Any]]:
    return {vs["url"]: vs for vs in package_resources("ValueSet") if "url" in vs}


def expand(canonical: str) -> Expansion | None:
    """The codes of the value set `canonical` (a `|version` suffix is ignored), or None if unknown."""
    return _expand(canonical.split("|", 1)[0])


@functools.cache
def _expand(url: str) -> Expansion | None:
    return _compute(url, (url,))


def _compute(url: str, stack: tuple[str, ...]) -> Expansion | None:
    value_set = _value_sets().get(url)
    if value_set is None or "compose" not in value_set:
        return None
    compose = value_set["compose"]
    result: dict[str, set[str]] = {}
    for include in compose.get("include", []):
        part = _expand_include(include, stack)
        if part is None:
            return None
        for system, codes in part.items():
            result.setdefault(system, set()).update(codes)
    for exclude in compose.get("exclude", []):
        removed = _expand_include(exclude, stack)
        for system, codes in (removed or {}).items():
            if system in result:
                result[system].difference_update(codes)
    return {system: frozenset(codes) for system, codes in result.items()}


def _expand_include(include: Mapping[str, Any], stack: tuple[str, ...]) -> Expansion | None:
    if "filter" in include:
        return None
    part: Expansion | None = None
    system = include.get("system")
    if system is not None:
        if "concept" in include:
            part = {system: frozenset(c["code"] for c in include["concept"])}
        else:
            codes = system_codes(system)
            if codes is None:
                return None
            part = {system: codes}
    imports: dict[str, set[str]] | None = None
    for imported in include.get("valueSet", []):
        url = imported.split("|", 1)[0]
        if url in stack:
            return None
        other = _compute(url, (*stack, url))
        if other is None:
            return None
        imports = imports if imports is not None else {}
        for system, codes in other.items():
            imports.setdefault(system, set()).update(codes)
    if imports is None:
        return part
    if part is None:
        return {system: frozenset(codes) for system, codes in imports.items()}
    return {system: codes & imports[system] for system, codes in part.items() if system in imports}


@functools.cache
def system_codes(system: str) -> frozenset[str] | None:
    """Every code of a complete CodeSystem of the package, or None if it is absent or partial."""
    code_system = _code_systems().get(system)
    if code_system is None or code_system.get("content") != "complete":
        return None
    return frozenset(_walk_concepts(code_system.get("concept", [])))


def _walk_concepts(concepts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        yield concept["code"]
        yield from _walk_concepts(concept.get("concept", []))
