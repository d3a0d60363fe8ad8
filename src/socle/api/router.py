"""Which handler serves which FHIR request: one table, also the source of the CapabilityStatement.

Each route is a method plus a path shape below the base; `{type}`, `{id}` and `{vid}` stand for
path segments. The `interaction` codes (R4 CapabilityStatement.rest.resource.interaction and
rest.interaction) are what `GET /metadata` advertises, so it says what the code actually routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from socle.api import (
    audit,
    bundles,
    capability,
    history,
    interactions,
    ops,  # noqa: F401  (registers the operations)
    search,
)
from socle.api.operation_table import find_operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import Invalid, MethodNotAllowed, NotFound, NotSupported

Handler = Callable[..., FhirResponse]


@dataclass(frozen=True)
class Route:
    method: str
    shape: tuple[str, ...]
    handler: Handler
    # CapabilityStatement interaction code, and whether it is a type-level or system-level one.
    interaction: str | None = None
    level: str = "type"
    # Conditional variants (`PUT Type?criteria`) need a query string to be routed here.
    needs_query: bool = False
    # CapabilityStatement.rest.compartment: the CompartmentDefinition a compartment search follows.
    compartment: str | None = None


def _system_history(req: FhirRequest, ctx: Context) -> FhirResponse:
    return history.history(req, ctx, None, None)


def _type_history(req: FhirRequest, ctx: Context, type_: str) -> FhirResponse:
    return history.history(req, ctx, type_, None)


def _instance_history(req: FhirRequest, ctx: Context, type_: str, id: str) -> FhirResponse:
    return history.history(req, ctx, type_, id)


def _batch(req: FhirRequest, ctx: Context) -> FhirResponse:
    return bundles.process_bundle(req, ctx, dispatch)


def _conditional_patch(req: FhirRequest, ctx: Context, type_: str) -> FhirResponse:
    return interactions.patch(req, ctx, type_, None)


def _conditional_delete(req: FhirRequest, ctx: Context, type_: str) -> FhirResponse:
    return interactions.delete(req, ctx, type_, None)


def _operation(req: FhirRequest, ctx: Context, *args: str) -> FhirResponse:
    """`[base]/$op`, `[base]/Type/$op`, `[base]/Type/id/$op`: look the operation up by name and level."""
    *target, name = args
    resource_type = target[0] if target else None
    id = target[1] if len(target) > 1 else None
    level = ("system", "type", "instance")[len(target)]
    if resource_type is not None:
        interactions.require_type(resource_type)
    candidates = find_operation(name, level, resource_type)
    if not candidates:
        where = "/".join(target) or "the system level"
        raise NotSupported(f"The operation {name} is not supported on {where}")
    method = "GET" if req.method == "HEAD" else req.method
    for op in candidates:
        if method in op.methods:
            return op.handler(req, ctx, resource_type, id)
    allowed = sorted({m for op in candidates for m in op.methods})
    raise MethodNotAllowed(f"{name} takes {' or '.join(allowed)}", headers={"Allow": ", ".join(allowed)})


def _metadata(req: FhirRequest, ctx: Context) -> FhirResponse:
    return FhirResponse(200, audit.advertise(capability.capability_statement(ctx, ROUTES)))


_PATIENT_COMPARTMENT = "http://hl7.org/fhir/CompartmentDefinition/patient"

ROUTES: tuple[Route, ...] = (
    Route("GET", ("metadata",), _metadata, None, "system"),
    Route("POST", (), _batch, "transaction", "system"),
    Route("POST", (), _batch, "batch", "system"),
    Route("GET", ("_history",), _system_history, "history-system", "system"),
    Route("GET", (), search.search_system, "search-system", "system"),
    Route("POST", ("_search",), search.search_system, "search-system", "system"),
    # AuditEvents: served from the audit chain, never written through the API (api/audit.py).
    *(Route(m, ("AuditEvent",), audit.refuse) for m in ("POST", "PUT", "PATCH", "DELETE")),
    *(Route(m, ("AuditEvent", "{id}"), audit.refuse) for m in ("PUT", "PATCH", "DELETE")),
    Route("GET", ("AuditEvent",), audit.search),
    Route("POST", ("AuditEvent", "_search"), audit.search),
    Route("GET", ("AuditEvent", "{id}"), audit.read),
    Route("GET", ("AuditEvent", "{id}", "_history"), audit.history_instance),
    Route("GET", ("AuditEvent", "{id}", "_history", "{vid}"), audit.vread),
    Route("GET", ("Patient", "{id}", "AuditEvent"), audit.search_compartment),
    Route("GET", ("Patient", "{id}", "{type}"), search.search_compartment, compartment=_PATIENT_COMPARTMENT),
    Route("GET", ("{type}",), search.search_type, "search-type"),
    Route("POST", ("{type}", "_search"), search.search_type, "search-type"),
    Route("POST", ("{type}",), interactions.create, "create"),
    Route("PUT", ("{type}",), interactions.conditional_update, "conditional-update", needs_query=True),
    Route("PATCH", ("{type}",), _conditional_patch, "conditional-patch", needs_query=True),
    Route("DELETE", ("{type}",), _conditional_delete, "conditional-delete", needs_query=True),
    Route("GET", ("{type}", "_history"), _type_history, "history-type"),
    Route("GET", ("{type}", "{id}"), interactions.read, "read"),
    Route("PUT", ("{type}", "{id}"), interactions.update, "update"),
    Route("PATCH", ("{type}", "{id}"), interactions.patch, "patch"),
    Route("DELETE", ("{type}", "{id}"), interactions.delete, "delete"),
    Route("GET", ("{type}", "{id}", "_history"), _instance_history, "history-instance"),
    Route("GET", ("{type}", "{id}", "_history", "{vid}"), interactions.vread, "vread"),
    # Operations, looked up in the operation table (after any explicit route above).
    *(
        Route(method, shape, _operation, None, "operation")
        for method in ("GET", "POST")
        for shape in (("{op}",), ("{type}", "{op}"), ("{type}", "{id}", "{op}"))
    ),
)


def _match(shape: tuple[str, ...], segments: list[str]) -> list[str] | None:
    if len(shape) != len(segments):
        return None
    args = []
    for token, segment in zip(shape, segments, strict=True):
        if token == "{op}":
            if not segment.startswith("$"):
                return None
            args.append(segment)
        elif token.startswith("{"):
            if segment.startswith(("_", "$")) and token != "{vid}":
                return None
            args.append(segment)
        elif token != segment:
            return None
    return args


def _reject_nul(req: FhirRequest) -> None:
    """NUL cannot be stored or compared by PostgreSQL text: refuse it at the edge, for every entry."""
    texts = [req.path, *(part for pair in req.query for part in pair), *req.headers.values()]
    if any("\x00" in text for text in texts):
        raise Invalid("The request URL, parameters or headers contain a NUL character")


def dispatch(req: FhirRequest, ctx: Context) -> FhirResponse:
    _reject_nul(req)
    method = "GET" if req.method == "HEAD" else req.method
    segments = req.segments
    allowed = []
    for route in ROUTES:
        args = _match(route.shape, segments)
        if args is None or (route.needs_query and not req.query):
            continue
        allowed.append(route.method)
        if route.method == method:
            return route.handler(req, ctx, *args)
    if allowed:
        raise MethodNotAllowed(
            f"{req.method} is not allowed on /{req.path}", headers={"Allow": ", ".join(sorted(set(allowed)))}
        )
    if len(segments) == 3:
        raise NotSupported(f"Compartment search /{req.path}: only the Patient compartment is supported")
    raise NotFound(f"No FHIR interaction at /{req.path}")
