"""The CapabilityStatement (R4 §3.1.0.14 `GET /metadata`), generated from the route table.

Nothing here is hand-written about interactions: each route that exists adds its code, so the
statement cannot advertise what the server does not route (nor hide what it does). Search
parameters come from the live registry: a custom SearchParameter stored on the server is listed
under its base types (`rest.resource.searchParam`, and its `_include`/`_revinclude` when it is a
reference) once loaded, and no longer once deleted. The statement is cached per set of loaded
custom parameters (`socle.services.search_parameters.loaded`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from socle import __version__
from socle.api.request import Context
from socle.api.search import DEFAULT_COUNT_LIMIT
from socle.fhir.resource_types import resource_types
from socle.services import search_parameters
from socle.store.clock import now_us, to_instant

if TYPE_CHECKING:
    from socle.api.router import Route

_CONDITIONAL = {"conditional-update", "conditional-patch", "conditional-delete"}


def capability_statement(ctx: Context, routes: Sequence[Route]) -> dict[str, Any]:
    statement = dict(_static_part(tuple(routes), search_parameters.loaded()))
    statement["implementation"] = {"description": "Socle FHIR R4 server", "url": ctx.base_url}
    return statement


@functools.lru_cache(maxsize=8)
def _static_part(routes: tuple[Route, ...], custom: frozenset[tuple[str, int]]) -> dict[str, Any]:
    """Everything but the request's base URL; `custom` (the loaded custom parameters) keys the cache."""
    type_codes = {r.interaction for r in routes if r.level == "type" and r.interaction}
    system_codes = [r.interaction for r in routes if r.level == "system" and r.interaction]
    interactions = [{"code": code} for code in sorted(type_codes - _CONDITIONAL)]
    searchable = "search-type" in type_codes
    resources = []
    for resource_type in sorted(resource_types()):
        resources.append(
            {
                "type": resource_type,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": "vread" in type_codes,
                "updateCreate": "update" in type_codes,
                "conditionalCreate": "create" in type_codes,
                "conditionalRead": "full-support",
                "conditionalUpdate": "conditional-update" in type_codes,
                "conditionalDelete": "single" if "conditional-delete" in type_codes else "not-supported",
                "referencePolicy": ["literal", "local", "enforced"],
                "searchInclude": _includes(resource_type) if searchable else [],
                "searchRevInclude": _rev_includes(custom).get(resource_type, []) if searchable else [],
                "searchParam": _search_params(resource_type) if searchable else [],
                "operation": _operations(resource_type),
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": to_instant(now_us())[:10],
        "publisher": "Socle",
        "kind": "instance",
        "software": {"name": "Socle", "version": __version__},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": _SEARCH_DOCUMENTATION,
                "resource": resources,
                "interaction": [{"code": code} for code in system_codes],
                "searchParam": _system_search_params() if "search-system" in system_codes else [],
                "operation": _operations(None),
                "compartment": sorted({r.compartment for r in routes if r.compartment}),
            }
        ],
    }


# How searches answer `Bundle.total` when `_total` is not given (R4 search.html#total: the server's choice).
_SEARCH_DOCUMENTATION = (
    "Search: without `_total`, the first page carries `Bundle.total` when it is cheap: exact when the"
    f" page holds every match or there are at most {DEFAULT_COUNT_LIMIT} matches; beyond that an"
    " estimate on PostgreSQL and no total on SQLite; later pages carry none. `_total=accurate` always"
    " counts, `_total=estimate` gives the planner's estimate, `_total=none` skips the count."
)


def _operations(resource_type: str | None) -> list[dict[str, str]]:
    """Operations registered in the operation table, at system level (None) or for a type."""
    from socle.api.operation_table import OPERATIONS

    seen: dict[str, dict[str, str]] = {}
    for op in OPERATIONS:
        if resource_type is None and "system" not in op.levels:
            continue
        if resource_type is not None and (
            not op.levels & {"type", "instance"}
            or (op.resource_types is not None and resource_type not in op.resource_types)
        ):
            continue
        definition = op.definition or f"http://hl7.org/fhir/OperationDefinition/{op.name[1:]}"
        seen.setdefault(op.name, {"name": op.name[1:], "definition": definition})
    return list(seen.values())


def _reference_params(resource_type: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, target types) of the reference parameters `_include`/`_revinclude` can follow."""
    from socle.fhir.search_params import registry

    return sorted(
        (p.name, p.targets)
        for p in registry().params(resource_type).values()
        if p.type == "reference" and p.expression is not None
    )


def _includes(resource_type: str) -> list[str]:
    return ["*", f"{resource_type}:*", *(f"{resource_type}:{n}" for n, _ in _reference_params(resource_type))]


@functools.lru_cache(maxsize=8)
def _rev_includes(_custom: frozenset[tuple[str, int]]) -> dict[str, list[str]]:
    """Target type → the `Source:param` that may point to it (a parameter without targets: any type)."""
    everything = sorted(resource_types())
    found: dict[str, list[str]] = {}
    for source in everything:
        for name, targets in _reference_params(source):
            for target in targets or everything:
                found.setdefault(target, []).append(f"{source}:{name}")
    return found


def _system_search_params() -> list[dict[str, Any]]:
    """What `GET [base]?...` accepts without `_type`: the parameters defined on Resource."""
    return [p for p in _search_params("Resource") if p.get("definition", "").startswith(_RESOURCE_PARAM)]


_RESOURCE_PARAM = "http://hl7.org/fhir/SearchParameter/Resource-"


def _search_params(resource_type: str) -> list[dict[str, Any]]:
    from socle.store.search import supported_search_params

    return [
        {"name": name, **({"definition": url} if url else {}), "type": type_}
        for name, url, type_ in supported_search_params(resource_type)
    ]
