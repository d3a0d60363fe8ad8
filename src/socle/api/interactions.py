"""The FHIR RESTful interactions on one resource type or instance (R4 §3.1.0 http.html).

Handlers are transport-neutral: they take a `FhirRequest` and a `Context` (one connection, one
access filter) and return a `FhirResponse`, so the HTTP endpoint and Bundle entries share them.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import jsonpatch

from socle.api import resource_hooks
from socle.api.request import Context, FhirRequest, FhirResponse, parse_version_etag
from socle.fhir.errors import Invalid, NotFound, PreconditionFailed, UnsupportedMediaType
from socle.fhir.references import iter_references, parse_reference
from socle.fhir.resource_types import is_resource_type
from socle.fhir.summary import projection
from socle.fhir.validation import validate_resource
from socle.store.clock import from_http_date, to_http_date
from socle.store.versioned import StoredVersion


def require_type(resource_type: str) -> None:
    if not is_resource_type(resource_type):
        raise NotFound(f"Unknown resource type {resource_type!r}: not a FHIR R4 resource type")


def check_body(
    body: Any, resource_type: str, *, id: str | None = None, id_required: bool = False
) -> dict[str, Any]:
    """The request body must be a valid resource of the URL's type, with the URL's id (R4 §3.1.0.4)."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a FHIR resource (a JSON object)")
    if body.get("resourceType") != resource_type:
        raise Invalid(
            f"The body's resourceType is {describe(body.get('resourceType'))}, "
            f"the URL says {resource_type!r}",
            expression="resourceType",
        )
    if id is not None:
        if "id" not in body and id_required:
            raise Invalid(
                f"The body of an update must carry the id {id!r} (R4 §3.1.0.4)",
                expression=f"{resource_type}.id",
            )
        if "id" in body and body["id"] != id:
            raise Invalid(
                f"The body's id {body['id']!r} does not match the id in the URL {id!r}",
                expression=f"{resource_type}.id",
            )
    validate_resource(body, resource_type=resource_type)
    resource_hooks.check_resource(body)  # rules registered by the referentials (e.g. INS on Patient)
    return body


def describe(value: Any) -> str:
    """A short, safe rendering of a client value for a diagnostic (never a deep repr)."""
    if isinstance(value, str):
        return repr(value[:100])
    return "missing" if value is None else f"a JSON {type(value).__name__}"


def check_references(ctx: Context, resources: list[dict[str, Any]], pending: set[str] | None = None) -> None:
    """Referential integrity for local literal references (`Type/id`): the target must exist.

    `pending` holds the `Type/id` of resources being created in the same transaction. Contained
    (`#id`), absolute external URLs and logical references are not checked.
    """
    check_reference_texts(
        ctx,
        [(body["resourceType"], ref["reference"]) for body in resources for ref in iter_references(body)],
        pending,
    )


def check_reference_texts(
    ctx: Context, references: list[tuple[str, str]], pending: set[str] | None = None
) -> None:
    """`check_references` on (resource type of the referrer, reference text) pairs already collected.

    A transaction Bundle collects them while it rewrites its references, so that each resource is
    walked once (`socle.api.bundles`).
    """
    wanted: dict[str, set[str]] = {}
    for referrer, text in references:
        parsed = parse_reference(text)
        if parsed.kind == "urn":
            raise Invalid(
                f"Reference {text!r} does not resolve: urn: references are only allowed "
                "to entries of the same transaction Bundle",
                expression=referrer,
            )
        if parsed.kind == "relative" and parsed.resource_type and parsed.id:
            if not is_resource_type(parsed.resource_type):
                raise Invalid(f"Reference {text!r} names an unknown resource type")
            if pending is None or f"{parsed.resource_type}/{parsed.id}" not in pending:
                wanted.setdefault(parsed.resource_type, set()).add(parsed.id)
    for resource_type, ids in wanted.items():
        found = ctx.store.existing_ids(ctx.conn, resource_type, sorted(ids), ctx.access)
        missing = sorted(f"{resource_type}/{id}" for id in ids - found)
        if missing:
            raise Invalid(f"Invalid reference: {', '.join(missing)} does not exist on this server")


def version_headers(version: StoredVersion) -> dict[str, str]:
    return {"ETag": version.etag, "Last-Modified": _http_date(version.updated_at)}


@functools.lru_cache(maxsize=256)
def _http_date(us: int) -> str:
    """`to_http_date`, cached: the entries of one Bundle share their timestamp."""
    return to_http_date(us)


def written(req: FhirRequest, ctx: Context, version: StoredVersion, status: int) -> FhirResponse:
    """The answer to a create/update/patch, shaped by `Prefer: return=` (R4 §3.1.0.8.1)."""
    ctx.show(version)  # the audit takes its compartment from here instead of looking it up
    headers = version_headers(version)
    if status == 201 or req.method in ("PUT", "PATCH"):
        headers["Location"] = ctx.absolute(version.location)
    body: Any
    preference = req.prefer.get("return", "representation")
    if preference == "minimal":
        body = None
    elif preference == "OperationOutcome":
        body = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{'Created' if status == 201 else 'Updated'} {version.location}",
                }
            ],
        }
    else:
        body = version.raw
    return FhirResponse(status, body, headers, version)


def read(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    require_type(resource_type)
    version = ctx.store.get(ctx.conn, resource_type, id, ctx.access)
    headers = version_headers(version)
    if_none_match = req.headers.get("if-none-match")
    if if_none_match is not None and parse_version_etag(if_none_match, "If-None-Match") == version.version:
        return FhirResponse(304, None, headers, version)
    since = req.headers.get("if-modified-since")
    if since is not None and if_none_match is None:
        try:
            threshold = from_http_date(since)
        except (TypeError, ValueError) as exc:
            raise Invalid(f"If-Modified-Since is not an HTTP date: {since!r}") from exc
        if version.updated_at // 1_000_000 * 1_000_000 <= threshold:
            return FhirResponse(304, None, headers, version)
    shape = projection(req.param("_summary"), req.param("_elements"))  # R4 §3.1.1.5.8 on read too
    body = version.raw if shape is None else shape.apply(version.resource)
    return FhirResponse(200, body, headers, version)


def vread(req: FhirRequest, ctx: Context, resource_type: str, id: str, vid: str) -> FhirResponse:
    require_type(resource_type)
    if not vid.isdigit() or len(vid) > 9:  # versions are 32-bit integers in the store
        raise NotFound(f"{resource_type}/{id} has no version {vid!r}")
    version = ctx.store.get_version(ctx.conn, resource_type, id, int(vid), ctx.access)
    return FhirResponse(200, version.raw, version_headers(version), version)


def create(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    require_type(resource_type)
    body = check_body(req.body, resource_type)
    criteria = req.headers.get("if-none-exist")
    if criteria:
        existing = match_one(ctx, resource_type, criteria, "If-None-Exist")
        if existing is not None:
            version = ctx.store.get(ctx.conn, resource_type, existing, ctx.access)
            return FhirResponse(200, version.raw, version_headers(version), version)
    body.pop("id", None)  # create ignores a client id (R4 §3.1.0.6)
    check_references(ctx, [body])
    return written(req, ctx, ctx.store.create(ctx.conn, body), 201)


def update(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    require_type(resource_type)
    body = check_body(req.body, resource_type, id=id, id_required=True)
    check_references(ctx, [body])
    if_match = parse_version_etag(req.headers.get("if-match"), "If-Match")
    version, created = ctx.store.update(ctx.conn, body, if_match=if_match)
    return written(req, ctx, version, 201 if created else 200)


def conditional_update(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    """PUT Type?criteria (R4 §3.1.0.4.3): 0 matches creates, 1 updates it, more is a 412."""
    require_type(resource_type)
    body = check_body(req.body, resource_type)
    existing = match_one(ctx, resource_type, req.query_string, "conditional update")
    if existing is not None:
        if "id" in body and body["id"] != existing:
            raise Invalid(f"The body's id {body['id']!r} is not the id of the matching resource {existing!r}")
        body["id"] = existing
    else:
        body.setdefault("id", str(uuid.uuid4()))  # no match: create (with the client's id if it gave one)
    check_references(ctx, [body])
    if_match = parse_version_etag(req.headers.get("if-match"), "If-Match")
    version, created = ctx.store.update(ctx.conn, body, if_match=if_match)
    return written(req, ctx, version, 201 if created else 200)


def patch(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    """JSON Patch (RFC 6902) on the current version (R4 §3.1.0.5); FHIRPath Patch is not supported."""
    require_type(resource_type)
    if id is None:
        id = match_one(ctx, resource_type, req.query_string, "conditional patch")
        if id is None:
            raise NotFound(f"No {resource_type} matches {req.query_string!r}")
    content_type = req.headers.get("content-type", "application/json-patch+json")
    if "json-patch+json" not in content_type:
        raise UnsupportedMediaType(
            f"PATCH takes a JSON Patch document (application/json-patch+json), not {content_type!r}"
        )
    if not isinstance(req.body, list):
        raise Invalid("A JSON Patch document is a JSON array of operations (RFC 6902)")
    current = ctx.store.get(ctx.conn, resource_type, id, ctx.access)
    if_match = parse_version_etag(req.headers.get("if-match"), "If-Match")
    if if_match is not None and if_match != current.version:
        raise PreconditionFailed(
            f"{resource_type}/{id} is at version {current.version}, not {if_match} (If-Match)"
        )
    try:
        patched = jsonpatch.apply_patch(current.resource, req.body)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
        raise Invalid(f"The JSON Patch cannot be applied: {exc}") from exc
    patched.get("meta", {}).pop("versionId", None)
    body = check_body(patched, resource_type, id=id, id_required=True)
    check_references(ctx, [body])
    version, _ = ctx.store.update(ctx.conn, body, if_match=current.version, method="PATCH")
    return written(req, ctx, version, 200)


def delete(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    require_type(resource_type)
    if id is None:  # conditional delete, single-match mode (R4 §3.1.0.7.1)
        id = match_one(ctx, resource_type, req.query_string, "conditional delete")
        if id is None:
            return FhirResponse(204)
    if_match = parse_version_etag(req.headers.get("if-match"), "If-Match")
    version = ctx.store.delete(ctx.conn, resource_type, id, if_match=if_match)
    if version is None:
        return FhirResponse(204)
    return FhirResponse(204, None, {"ETag": version.etag}, version)


def match_one(ctx: Context, resource_type: str, criteria: str, what: str) -> str | None:
    """The single resource matching the criteria of a conditional interaction, if any."""
    criteria = criteria.lstrip("?")
    if "?" in criteria:  # `If-None-Exist: Patient?identifier=...` is tolerated
        criteria = criteria.split("?", 1)[1]
    if not criteria.strip():
        raise Invalid(f"The {what} needs search criteria")
    ids = ctx.store.find(ctx.conn, resource_type, criteria, ctx.access, limit=2)
    if len(ids) > 1:
        raise PreconditionFailed(f"The {what} criteria {criteria!r} match more than one {resource_type}")
    return ids[0] if ids else None
