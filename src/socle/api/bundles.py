"""Batch and transaction Bundles (R4 §3.1.0.11 http.html#transaction).

A transaction is all-or-nothing inside the caller's database transaction and runs in the order
the spec gives: resolve identities (`fullUrl`s, `ifNoneExist`, conditional updates and references),
then DELETE, POST, PUT/PATCH, GET/HEAD. Batch entries are independent: each runs in a savepoint
and gets its own status and OperationOutcome.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import orjson

from socle.api import interactions
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import FhirError, Invalid, Issue, PreconditionFailed
from socle.fhir.references import iter_references, parse_reference
from socle.store.versioned import StoredVersion

Dispatch = Callable[[FhirRequest, Context], FhirResponse]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Processing order of a transaction (R4 §3.1.0.11.2).
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def process_bundle(req: FhirRequest, ctx: Context, dispatch: Dispatch) -> FhirResponse:
    bundle = req.body
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Invalid(
            "POST to the base URL takes a Bundle of type batch or transaction", expression="resourceType"
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise Invalid(
            f"Bundle.type must be batch or transaction, not {interactions.describe(kind)}",
            expression="Bundle.type",
        )
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise Invalid("Bundle.entry must be an array", expression="Bundle.entry")
    if len(entries) > ctx.settings.max_bundle_entries:
        raise Invalid(
            f"The Bundle has {len(entries)} entries; the limit is {ctx.settings.max_bundle_entries}"
        )
    requests = [_entry_request(i, entry, req) for i, entry in enumerate(entries)]
    if kind == "batch":
        responses = [_run_batch_entry(r, ctx, dispatch) for r in requests]
    else:
        responses = _run_transaction(requests, entries, ctx, dispatch)
    return FhirResponse(
        200,
        {
            "resourceType": "Bundle",
            "type": f"{kind}-response",
            "entry": [_response_entry(r, ctx) for r in responses],
        },
    )


def _entry_request(index: int, entry: Any, outer: FhirRequest) -> FhirRequest | FhirError:
    """The entry as a request; a malformed entry becomes its error (fatal in a transaction)."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        return Invalid(f"{where} must be an object", expression=where)
    request = entry.get("request")
    if not isinstance(request, dict):
        return Invalid(
            f"{where}.request is required in a batch or transaction", expression=f"{where}.request"
        )
    method, url = request.get("method"), request.get("url")
    if method not in _METHODS:
        return Invalid(
            f"{where}.request.method must be one of {', '.join(_METHODS)}",
            expression=f"{where}.request.method",
        )
    if not isinstance(url, str) or not url.strip():
        return Invalid(f"{where}.request.url is required", expression=f"{where}.request.url")
    headers = {"prefer": outer.headers.get("prefer", "")}
    for field, header in (
        ("ifNoneMatch", "if-none-match"),
        ("ifModifiedSince", "if-modified-since"),
        ("ifMatch", "if-match"),
        ("ifNoneExist", "if-none-exist"),
    ):
        if isinstance(request.get(field), str):
            headers[header] = request[field]
    body = entry.get("resource")
    if method == "PATCH":
        body, headers["content-type"] = _patch_body(where, body)
    elif method in ("POST", "PUT") and not isinstance(body, dict):
        return Invalid(f"{where}.resource is required for {method}", expression=f"{where}.resource")
    sub = FhirRequest.from_url(method, url, headers, body)
    if not sub.segments:
        return Invalid(
            f"{where}: a Bundle entry cannot itself be a batch or transaction",
            expression=f"{where}.request.url",
        )
    return sub


def _patch_body(where: str, body: Any) -> tuple[Any, str]:
    """In a Bundle a JSON Patch travels as a Binary resource (R4 §3.1.0.5)."""
    if (
        isinstance(body, dict)
        and body.get("resourceType") == "Binary"
        and "json-patch" in str(body.get("contentType"))
    ):
        try:
            return orjson.loads(
                base64.b64decode(body.get("data", ""), validate=True)
            ), "application/json-patch+json"
        except (ValueError, orjson.JSONDecodeError):
            pass
    return Invalid(
        f"{where}.resource of a PATCH must be a Binary holding a JSON Patch"
    ), "application/json-patch+json"


def _run_batch_entry(
    request: FhirRequest | FhirError, ctx: Context, dispatch: Dispatch
) -> FhirResponse | FhirError:
    if isinstance(request, FhirError):
        return request
    if isinstance(request.body, FhirError):
        return request.body
    try:
        with ctx.conn.begin_nested():
            return dispatch(request, ctx)
    except FhirError as error:
        return error


def _run_transaction(
    requests: list[FhirRequest | FhirError], entries: list[Any], ctx: Context, dispatch: Dispatch
) -> list[FhirResponse | FhirError]:
    for index, request in enumerate(requests):
        if isinstance(request, FhirError):
            raise request
        if isinstance(request.body, FhirError):
            raise _at_entry(index, request.body)
    plain = [r for r in requests if isinstance(r, FhirRequest)]
    responses: list[FhirResponse | FhirError | None] = [None] * len(plain)
    identities, existing = _resolve_identities(plain, entries, ctx)
    references = _rewrite_references(plain, identities, ctx)
    creates = [
        i for i, r in enumerate(plain) if r.method == "POST" and len(r.segments) == 1 and i not in existing
    ]
    for index in creates:
        try:
            interactions.require_type(plain[index].segments[0])
            interactions.check_body(plain[index].body, plain[index].segments[0])
        except FhirError as error:
            raise _at_entry(index, error) from error
    interactions.check_reference_texts(ctx, references, set(identities.values()))
    create_set = set(creates)
    versions: Iterator[StoredVersion] | None = None
    for index in sorted(range(len(plain)), key=lambda i: (_ORDER[plain[i].method], i)):
        request = plain[index]
        try:
            if index in existing:
                read = FhirRequest("GET", request.segments[0])
                responses[index] = interactions.read(read, ctx, request.segments[0], existing[index])
            elif index in create_set:
                if versions is None:
                    # All creates go in one multi-row insert (the bulk-loading fast path), after the DELETEs.
                    versions = iter(ctx.store.create_many(ctx.conn, [plain[i].body for i in creates]))
                responses[index] = interactions.written(request, ctx, next(versions), 201)
            else:
                responses[index] = dispatch(request, ctx)
        except FhirError as error:
            if request.method in ("GET", "HEAD"):
                responses[index] = error  # a failed read changes nothing: report it in its entry
                continue
            raise _at_entry(index, error) from error
    return [r for r in responses if r is not None]


def _resolve_identities(
    requests: list[FhirRequest], entries: list[Any], ctx: Context
) -> tuple[dict[str, str], dict[int, str]]:
    """Map each entry's fullUrl to the `Type/id` it will have; find ifNoneExist matches.

    Returns (fullUrl → Type/id, entry index → existing id for POSTs whose ifNoneExist matched).
    """
    identities: dict[str, str] = {}
    existing: dict[int, str] = {}
    targets: set[str] = set()
    for index, request in enumerate(requests):
        try:
            full_url = entries[index].get("fullUrl")
            segments = request.segments
            resource_type = segments[0]
            target: str | None = None
            if request.method == "POST" and len(segments) == 1:
                criteria = request.headers.get("if-none-exist")
                match = (
                    interactions.match_one(ctx, resource_type, criteria, "ifNoneExist") if criteria else None
                )
                if match is not None:
                    existing[index] = match
                    target = f"{resource_type}/{match}"
                else:
                    request.body["id"] = str(uuid.uuid4())
                    target = f"{resource_type}/{request.body['id']}"
            elif request.method == "PUT" and len(segments) == 1:
                match = interactions.match_one(ctx, resource_type, request.query_string, "conditional update")
                request.body["id"] = match or request.body.get("id") or str(uuid.uuid4())
                request.path, request.query = f"{resource_type}/{request.body['id']}", []
                target = f"{resource_type}/{request.body['id']}"
            elif request.method in ("PUT", "PATCH", "DELETE") and len(segments) == 2:
                target = f"{resource_type}/{segments[1]}"
            if target is not None and request.method != "POST":
                if target in targets:
                    raise Invalid(f"Two entries of the transaction modify {target}")
                targets.add(target)
            if target is not None and isinstance(full_url, str):
                identities[full_url] = target
        except FhirError as error:
            raise _at_entry(index, error) from error
    return identities, existing


def _rewrite_references(
    requests: list[FhirRequest], identities: dict[str, str], ctx: Context
) -> list[tuple[str, str]]:
    """Point references at the ids the entries will have (R4 §3.1.0.11.2, conditional references too).

    Returns the (resource type, reference) pairs of the written bodies (POST, PUT) as rewritten, for
    the referential-integrity check: each resource is walked once.
    """
    written: list[tuple[str, str]] = []
    for index, request in enumerate(requests):
        if not isinstance(request.body, dict):
            continue
        keep = request.method in ("POST", "PUT")
        referrer = request.body.get("resourceType")
        for ref in iter_references(request.body):
            text = ref["reference"]
            if text in identities:
                ref["reference"] = text = identities[text]
            else:
                parsed = parse_reference(text)
                error: FhirError
                if parsed.kind == "urn":
                    error = Invalid(f"Reference {text!r} matches no fullUrl in the transaction")
                    raise _at_entry(index, error)
                if parsed.kind == "conditional" and parsed.resource_type and parsed.query is not None:
                    ids = ctx.store.find(ctx.conn, parsed.resource_type, parsed.query, ctx.access, limit=2)
                    if len(ids) != 1:
                        error = PreconditionFailed(
                            f"Conditional reference {text!r} matches "
                            f"{'no' if not ids else 'more than one'} resource"
                        )
                        raise _at_entry(index, error)
                    ref["reference"] = text = f"{parsed.resource_type}/{ids[0]}"
            if keep:
                written.append((str(referrer), text))
    return written


def _at_entry(index: int, error: FhirError) -> FhirError:
    """Say which entry failed: prefix diagnostics and expressions with `Bundle.entry[i]`."""
    where = f"Bundle.entry[{index}]"
    issues = [
        Issue(
            i.code,
            i.diagnostics if i.diagnostics.startswith(where) else f"{where}: {i.diagnostics}",
            f"{where}.resource.{i.expression.split('.', 1)[1]}"
            if i.expression and "." in i.expression
            else where,
            i.severity,
        )
        for i in error.issues
    ]
    return type(error)(issues[0].diagnostics, issues=issues, headers=error.headers)


def _response_entry(result: FhirResponse | FhirError, ctx: Context) -> dict[str, Any]:
    if isinstance(result, FhirError):
        return {"response": {"status": _status_line(result.status), "outcome": result.outcome()}}
    response: dict[str, Any] = {"status": _status_line(result.status)}
    version = result.version
    if version is not None:
        if "Location" in result.headers:
            response["location"] = version.location
        response["etag"] = version.etag
        response["lastModified"] = version.last_updated
    entry: dict[str, Any] = {"response": response}
    if version is not None and not version.deleted:
        entry["fullUrl"] = ctx.absolute(version.reference)
    if isinstance(result.body, bytes):
        entry["resource"] = orjson.Fragment(result.body)
    elif isinstance(result.body, dict):
        if result.body.get("resourceType") == "OperationOutcome":
            response["outcome"] = result.body
        else:
            entry["resource"] = result.body
    return entry


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"
