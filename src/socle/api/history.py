"""The history interactions: instance, type and system level (R4 §3.1.0.11)."""

from __future__ import annotations

from typing import Any

from socle.api._paging import cursor_param, link, page_size, resource_entry
from socle.api.interactions import require_type
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import Invalid
from socle.store.clock import from_instant, instant_range, to_http_date

_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def history(req: FhirRequest, ctx: Context, resource_type: str | None, id: str | None) -> FhirResponse:
    if resource_type is not None:
        require_type(resource_type)
    since = _instant_param(req, "_since")
    at = None
    if (at_text := req.param("_at")) is not None:
        try:
            at = instant_range(at_text)
        except ValueError as exc:
            raise Invalid(f"_at must be a FHIR date or dateTime, got {at_text!r}", expression="_at") from exc
    count = page_size(req, ctx)
    cursor = cursor_param(req, 3)
    page = ctx.store.history(
        ctx.conn,
        ctx.access,
        resource_type=resource_type,
        id=id,
        since=since,
        at=at,
        count=count,
        cursor=(cursor[0], cursor[1], cursor[2]) if cursor else None,
    )
    if id is not None and not page.versions and cursor is None:
        # Distinguish "no such resource" from "no version in this window" for instance history.
        ctx.store.get_version(ctx.conn, resource_type or "", id, 1, ctx.access)
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    kept = [(k, v) for k, v in req.query if k not in ("_cursor", "_format", "_pretty")]
    links = [{"relation": "self", "url": link(ctx, path, req.query)}]
    if page.next_cursor is not None:
        token = ".".join(str(n) for n in page.next_cursor)
        links.append({"relation": "next", "url": link(ctx, path, [*kept, ("_cursor", token)])})
    entries: list[dict[str, Any]] = []
    for version in page.versions:
        entry = resource_entry(ctx, version)
        url = version.resource_type if version.method == "POST" else version.reference
        entry["request"] = {"method": version.method, "url": url}
        entry["response"] = {
            "status": _STATUS.get(version.method, "200 OK"),
            "etag": version.etag,
            "lastModified": version.last_updated,
        }
        entries.append(entry)
    bundle = {"resourceType": "Bundle", "type": "history", "link": links, "entry": entries}
    headers = {"Last-Modified": to_http_date(page.versions[0].updated_at)} if page.versions else {}
    return FhirResponse(200, bundle, headers)


def _instant_param(req: FhirRequest, name: str) -> int | None:
    text = req.param(name)
    if text is None:
        return None
    try:
        return from_instant(text)
    except ValueError as exc:
        raise Invalid(f"{name} must be a FHIR instant, got {text!r}", expression=name) from exc
