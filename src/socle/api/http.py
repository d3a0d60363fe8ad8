"""HTTP ⇄ FHIR: content negotiation, body limits and parsing, one error handler, rendering.

This is the only module that knows about Starlette requests; everything below it sees
`FhirRequest`/`FhirResponse`. Every error of every route ends in `render_error`, so every failure
is an OperationOutcome with a 4xx status (a 500 only for a genuine bug, which tests hunt for).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from socle.api import audit, resource_hooks
from socle.api.operation_table import runs_own_transactions
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.api.router import dispatch
from socle.config import Settings
from socle.fhir.errors import (
    FhirError,
    Invalid,
    Issue,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    operation_outcome,
)
from socle.services import search_parameters
from socle.store.repository import Store
from socle.trust import policy
from socle.trust.audit.group import GroupAppender
from socle.trust.principal import SYSTEM_PRINCIPAL, Principal

log = logging.getLogger("socle.api")

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json", "text/json")
_XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "xml")
_FORMAT_ALIASES = {
    "json": FHIR_JSON,
    "application/json": "application/json",
    "application/fhir+json": FHIR_JSON,
}


class FhirEndpoint:
    """The ASGI endpoint serving everything under the FHIR base URL."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.read_events = GroupAppender(store, settings)  # reads' AuditEvents, committed together

    async def handle(self, request: Request) -> Response:
        media_type = negotiate(request)
        pretty = request.query_params.get("_pretty") == "true"
        body = await self._body(request)
        freq = FhirRequest(
            method=request.method,
            path=request.path_params.get("path", "").strip("/"),
            query=parse_qsl(request.url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        base = self.settings.base_url or f"{request.url.scheme}://{request.url.netloc}/fhir"
        principal = getattr(request.state, "principal", SYSTEM_PRINCIPAL)
        response = await run_in_threadpool(self._execute, freq, base.rstrip("/"), principal)
        return render(response, media_type, pretty, head=request.method == "HEAD")

    def _execute(self, req: FhirRequest, base_url: str, principal: Principal) -> FhirResponse:
        writes = req.method not in ("GET", "HEAD") and not runs_own_transactions(req.method, req.segments)
        try:
            with (self.store.write if writes else self.store.read)() as conn:
                # custom SearchParameters changed by another process (reads: at most READ_STALENESS old)
                staleness = 0.0 if writes else search_parameters.READ_STALENESS
                search_parameters.refresh(conn, max_staleness=staleness)
                decision = policy.decide_or_deny_all(conn, principal, req.segments)  # 403 if none
                ctx = Context(self.store, conn, decision.access, self.settings, base_url, principal)
                with policy.writes.enforce(decision):  # the one write check (store index hook)
                    response = dispatch(req, ctx)
                response = resource_hooks.filter_response(response, principal)  # what others may see
                if writes:  # learn (or refuse, 422) the SearchParameters written here, before commit
                    search_parameters.refresh(conn, strict=True)
                # AuditEvents of this access (api/audit.py), saying which patients it reached by break-glass
                recorded = audit.events(req, ctx, response, decision.break_glass)
                if writes:
                    audit.append(conn, self.settings, recorded)  # in the write's transaction: both or neither
            if not writes:  # a read's: committed (with those of concurrent reads) before it answers
                self.read_events.append(recorded)
            return response
        except RecursionError as exc:  # raised before anything committed: the transaction rolled back
            raise Invalid("The JSON is nested too deeply to be a FHIR resource") from exc

    async def _body(self, request: Request) -> Any:
        if request.method not in ("POST", "PUT", "PATCH"):
            return None
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return raw.decode("utf-8", errors="replace")  # POST [type]/_search
        if content_type and content_type not in _JSON_TYPES:
            if any(x in content_type for x in _XML_TYPES):
                raise UnsupportedMediaType("Socle speaks FHIR JSON only: send application/fhir+json, not XML")
            raise UnsupportedMediaType(
                f"Unsupported Content-Type {content_type!r}: send application/fhir+json"
            )
        if not raw.strip():
            return None  # the handler says whether it needed one
        return parse_json(raw)


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc


def negotiate(request: Request) -> str:
    """The response media type from `_format` or Accept (R4 §3.1.0.1.6); XML is refused with a 406."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        chosen = _FORMAT_ALIASES.get(fmt.split(";")[0].strip().lower())
        if chosen is None:
            raise NotAcceptable(
                f"_format={fmt!r} is not supported: Socle answers in FHIR JSON (_format=json)"
            )
        return chosen
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return FHIR_JSON
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for kind in kinds:
        if kind in ("application/fhir+json", "*/*", "application/*"):
            return FHIR_JSON
        if kind in ("application/json", "text/json"):
            return "application/json"
    if any(k in ("text/html", "text/*", "text/plain") for k in kinds):
        return FHIR_JSON  # a browser or curl looking at the API: JSON is the only representation
    if any(x in k for k in kinds for x in _XML_TYPES):
        raise NotAcceptable(
            "Socle answers in FHIR JSON only; XML is not supported (Accept: application/fhir+json)"
        )
    raise NotAcceptable(f"Cannot produce {accept!r}: Socle answers in application/fhir+json")


def render(response: FhirResponse, media_type: str, pretty: bool, *, head: bool = False) -> Response:
    headers = dict(response.headers)
    body = response.body
    if body is None or response.status == 304:
        content = b""
    elif isinstance(body, bytes) and not pretty:
        content = body
    else:
        if isinstance(body, bytes) or pretty:
            # Fragments (stored JSON embedded as-is) are not re-indented by orjson: round-trip them.
            body = orjson.loads(body if isinstance(body, bytes) else orjson.dumps(body))
        content = orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)
    if head:
        content = b""
    if response.status == 304 or (body is None and response.status == 204):
        return Response(status_code=response.status, headers=headers)
    return Response(
        content, status_code=response.status, headers=headers, media_type=f"{media_type}; charset=utf-8"
    )


def render_error(error: FhirError) -> Response:
    return Response(
        orjson.dumps(error.outcome()),
        status_code=error.status,
        headers=error.headers,
        media_type=f"{FHIR_JSON}; charset=utf-8",
    )


async def handle_fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return render_error(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render_error(NotFound(f"No route {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return render_error(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
    return Response(
        orjson.dumps(operation_outcome([Issue("processing", str(exc.detail))])),
        status_code=exc.status_code,
        media_type=f"{FHIR_JSON}; charset=utf-8",
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        orjson.dumps(
            operation_outcome([Issue("exception", "Internal server error; the request was not applied")])
        ),
        status_code=500,
        media_type=f"{FHIR_JSON}; charset=utf-8",
    )
