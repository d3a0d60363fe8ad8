"""`$reindex`: rebuild the search index rows of existing resources (system and type level).

`POST [base]/$reindex` and `POST [base]/[type]/$reindex`, optional integer parameter `batchSize`
(query string or a Parameters body). Run after adding or changing a custom SearchParameter, so that
resources stored before it become searchable by it (searchparameter.html: a server needs to index
existing data before a new parameter is reliable). Not an HL7 operation: modelled on HAPI FHIR's.

The work is `socle.store.reindex`: batches, each its own transaction, so the operation is declared
`own_transactions` (served on a read connection) and refuses to run inside a Bundle, whose single
transaction would hold the lock its batches wait for. Answers a Parameters resource with counts.
"""

from __future__ import annotations

from typing import Any

from socle.api.operation_table import operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import Invalid, NotSupported
from socle.services import search_parameters
from socle.store.reindex import DEFAULT_BATCH_SIZE, reindex

_MAX_BATCH_SIZE = 10_000
_NAME = "batchSize"


@operation("$reindex", levels=("system", "type"), own_transactions=True)
def reindex_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, _id: str | None
) -> FhirResponse:
    if ctx.conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
        raise NotSupported("$reindex cannot run inside a batch or transaction Bundle: call it on its own")
    batch_size = _batch_size(req)
    search_parameters.refresh(ctx.conn)  # index with every stored SearchParameter, even brand new ones
    result = reindex(ctx.store.engine, resource_type=resource_type, batch_size=batch_size)
    parameters: list[dict[str, Any]] = [
        {"name": "resources", "valueInteger": result.resources},
        {"name": "batches", "valueInteger": result.batches},
        {"name": "seconds", "valueDecimal": round(result.seconds, 3)},
    ]
    parameters += [
        {"name": "type", "part": [{"name": "type", "valueCode": rt}, {"name": "count", "valueInteger": n}]}
        for rt, n in sorted(result.by_type.items())
    ]
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": parameters})


def _batch_size(req: FhirRequest) -> int:
    raw: Any = req.param(_NAME)
    body = req.body
    if raw is None and isinstance(body, dict) and body.get("resourceType") == "Parameters":
        given = [
            p for p in body.get("parameter") or () if isinstance(p, dict) and p.get("name") == "batchSize"
        ]
        raw = given[0].get("valueInteger") if given else None
    if raw is None:
        return DEFAULT_BATCH_SIZE
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise Invalid(f"batchSize must be an integer, not {raw!r}") from None
    if not 1 <= size <= _MAX_BATCH_SIZE:
        raise Invalid(f"batchSize must be between 1 and {_MAX_BATCH_SIZE}")
    return size
