"""Type-level search (R4 §3.1.0.9), as a searchset Bundle paged by keyset on the resource key.

This is the first cut that conditional interactions and clients need: the criteria the search
compiler understands, `_count`, and stable next links. Sorting, `_include`, `_total` and the
other result parameters belong to the search issue.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from socle.api._paging import cursor_param, link, page_size, resource_entry
from socle.api.interactions import require_type
from socle.api.request import Context, FhirRequest, FhirResponse

# Result and formatting parameters: not criteria (R4 §3.1.1.5).
_RESULT_PARAMS = {"_count", "_cursor", "_format", "_pretty", "_summary", "_elements", "_total"}


def search_type(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    require_type(resource_type)
    params = list(req.query)
    if req.method == "POST" and isinstance(req.body, str | bytes):
        body = req.body.decode() if isinstance(req.body, bytes) else req.body
        params += parse_qsl(body, keep_blank_values=True)
    criteria = [(k, v) for k, v in params if k not in _RESULT_PARAMS]
    count = page_size(FhirRequest("GET", "", params), ctx)
    cursor = cursor_param(FhirRequest("GET", "", params), 1)
    strict = req.prefer.get("handling") == "strict"
    versions, next_key, unknown = ctx.store.search_page(
        ctx.conn,
        resource_type,
        criteria,
        ctx.access,
        count=count,
        after=cursor[0] if cursor else None,
        strict=strict,
    )
    kept = [(k, v) for k, v in params if k not in ("_cursor", "_format", "_pretty")]
    links = [{"relation": "self", "url": link(ctx, resource_type, kept)}]
    if next_key is not None:
        links.append(
            {"relation": "next", "url": link(ctx, resource_type, [*kept, ("_cursor", str(next_key))])}
        )
    entries: list[dict[str, Any]] = []
    for version in versions:
        entry = resource_entry(ctx, version)
        entry["search"] = {"mode": "match"}
        entries.append(entry)
    if unknown:
        entries.append(
            {
                "search": {"mode": "outcome"},
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": f"Unknown search parameter {name!r} ignored",
                        }
                        for name in unknown
                    ],
                },
            }
        )
    return FhirResponse(200, {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries})
