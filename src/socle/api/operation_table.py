"""FHIR operations (`$name`, R4 §3.1.0.13 operations.html), registered by the modules that own them.

A module declares its operations with `@operation(...)`; `socle.api.ops` imports every such module,
so the router and the CapabilityStatement see them without knowing each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from socle.api.request import Context, FhirRequest, FhirResponse

# handler(req, ctx, resource_type | None, id | None) -> FhirResponse
OperationHandler = Callable[[FhirRequest, Context, str | None, str | None], FhirResponse]


@dataclass(frozen=True)
class Operation:
    name: str  # with the dollar: "$match"
    levels: frozenset[str]  # "system", "type", "instance"
    resource_types: frozenset[str] | None  # None: any type
    methods: tuple[str, ...]
    handler: OperationHandler
    definition: str | None = None  # canonical URL of the OperationDefinition
    # Opens its own transactions (batched work such as $reindex): served on a read connection, since
    # the request's write transaction would hold SQLite's write lock against them.
    own_transactions: bool = False


OPERATIONS: list[Operation] = []


def operation(
    name: str,
    *,
    levels: tuple[str, ...],
    resource_types: tuple[str, ...] | None = None,
    methods: tuple[str, ...] = ("POST",),
    definition: str | None = None,
    own_transactions: bool = False,
) -> Callable[[OperationHandler], OperationHandler]:
    def register(handler: OperationHandler) -> OperationHandler:
        OPERATIONS.append(
            Operation(
                name,
                frozenset(levels),
                frozenset(resource_types) if resource_types is not None else None,
                methods,
                handler,
                definition,
                own_transactions,
            )
        )
        return handler

    return register


def find_operation(name: str, level: str, resource_type: str | None) -> list[Operation]:
    """Operations of that name at that level for that type (several may differ only by method)."""
    return [
        op
        for op in OPERATIONS
        if op.name == name
        and level in op.levels
        and (op.resource_types is None or resource_type in op.resource_types)
    ]


def runs_own_transactions(method: str, segments: list[str]) -> bool:
    """Whether `method /segments` calls an operation declared with `own_transactions`."""
    if not segments or len(segments) > 3 or not segments[-1].startswith("$"):
        return False
    level = ("system", "type", "instance")[len(segments) - 1]
    resource_type = segments[0] if len(segments) > 1 else None
    return any(
        op.own_transactions and method in op.methods
        for op in find_operation(segments[-1], level, resource_type)
    )
