"""Rules that the referentials add to the API's write and read paths, registered once at import.

The API layer may import the referentials but not the other way round, so a referential's API module
(e.g. `socle.api.identity`) registers its rules here, and the shared handlers call two functions
(rules that need the database in the writing transaction are store index hooks instead,
`socle.store.index_hooks`):
- `check_resource(body)`: a rule on one resource's content, for every create, update and patch, and
  every transaction or batch entry (called by `interactions.check_body`); raises a 4xx `FhirError`;
- `filter_response(response, principal)`: what leaves Socle, applied once per HTTP request on the
  final response (read, vread, search, history, operations, Bundle responses): each registered
  filter may replace a resource of its type, e.g. a Patient without the INS it may not share.
  A filter declares a `marker` (bytes): stored JSON without it is passed through unparsed, so
  the cost is a substring test per resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from socle.trust.principal import Principal

if TYPE_CHECKING:
    from socle.api.request import FhirResponse

__all__ = [
    "check_resource",
    "filter_response",
    "register_response_filter",
    "register_resource_check",
]

ResourceCheck = Callable[[dict[str, Any]], None]
# (resource, principal) → the resource to send (the same object when nothing changes)
ResponseFilter = Callable[[dict[str, Any], Principal], dict[str, Any]]


@dataclass(frozen=True)
class _Filter:
    resource_type: str
    marker: bytes
    transform: ResponseFilter
    applies_to: Callable[[Principal], bool]


_RESOURCE_CHECKS: dict[str, list[ResourceCheck]] = {}
_FILTERS: dict[str, list[_Filter]] = {}


def register_resource_check(resource_type: str, check: ResourceCheck) -> None:
    checks = _RESOURCE_CHECKS.setdefault(resource_type, [])
    if check not in checks:
        checks.append(check)


def register_response_filter(
    resource_type: str,
    marker: bytes,
    transform: ResponseFilter,
    applies_to: Callable[[Principal], bool] = lambda principal: True,
) -> None:
    """`applies_to(principal)` false: that principal's responses skip the filter at no cost."""
    filters = _FILTERS.setdefault(resource_type, [])
    if not any(f.transform is transform for f in filters):
        filters.append(_Filter(resource_type, marker, transform, applies_to))


def check_resource(body: dict[str, Any]) -> None:
    for check in _RESOURCE_CHECKS.get(str(body.get("resourceType")), ()):
        check(body)


def filter_response(response: FhirResponse, principal: Principal) -> FhirResponse:
    """The response with every registered filter applied to the resources it carries."""
    body = response.body
    if not isinstance(body, (bytes, dict)):
        return response
    active: dict[str, list[_Filter]] = {}
    for resource_type, filters in _FILTERS.items():
        chosen = [f for f in filters if f.applies_to(principal)]
        if chosen:
            active[resource_type] = chosen
    if not active:
        return response
    filtered = _filter_value(orjson.Fragment(body) if isinstance(body, bytes) else body, principal, active)
    return response if filtered is None else replace(response, body=filtered)


def _filter_value(value: Any, principal: Principal, active: dict[str, list[_Filter]]) -> Any | None:
    """`value` with filtered resources (a new object), or None when nothing changed.

    Walks what responses are made of: a resource, a Bundle's entries, a Parameters' resources and
    parts, contained resources; stored JSON embedded as an `orjson.Fragment` is tested for the
    filter's marker before it is parsed."""
    if isinstance(value, orjson.Fragment):
        raw = orjson.dumps(value)
        if not any(f.marker in raw for filters in active.values() for f in filters):
            return None
        return _filter_value(orjson.loads(raw), principal, active)
    if isinstance(value, list):
        items = [_filter_value(item, principal, active) for item in value]
        if all(item is None for item in items):
            return None
        return [v if new is None else new for v, new in zip(value, items, strict=True)]
    if not isinstance(value, dict):
        return None
    result: dict[str, Any] | None = None
    for name in ("entry", "parameter", "part", "resource", "contained", "outcome", "response"):
        if name in value:
            new = _filter_value(value[name], principal, active)
            if new is not None:
                result = dict(value) if result is None else result
                result[name] = new
    current = value if result is None else result
    resource_type = current.get("resourceType")
    if isinstance(resource_type, str):
        for f in active.get(resource_type, ()):
            transformed = f.transform(current, principal)
            if transformed is not current:
                current = result = transformed
    return result
