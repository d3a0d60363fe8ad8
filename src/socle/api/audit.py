"""The audit trail at the API edge: what each FHIR request did → AuditEvents; AuditEvent read/search.

Recording (called from `FhirEndpoint._execute`, and for 401/403 from `audit_denials` around the
whole FHIR endpoint, so bearer-token refusals are recorded too):
- `events(req, ctx, response)` describes the access from the request and its response: the
  resource read or written (`response.version`), every entry of a searchset/history/batch/transaction
  Bundle; their patient compartments are those of the stored versions the handlers put in the
  response (`Context.shown`), else from one indexed lookup per type on `resource`.
- writes (create/update/patch/delete, batch/transaction, POST operations) are always recorded and
  appended in the write's own transaction (`append`): a rolled-back write leaves no AuditEvent and
  an AuditEvent never exists without its write. Reads are recorded when they touch a patient's data
  (or target a patient), committed before the response is returned, in a write transaction of their
  own shared with the reads of the same process waiting at that moment (`trust.audit.group`).
  Not recorded: `metadata`, reads and searches that return no patient data (directory lookups),
  and reads of AuditEvents themselves (listing one's audit trail would otherwise grow it).
- denied attempts (401/403 from the bearer check or the access policy) are recorded with outcome 4,
  including batch entries refused with 403.

Serving: `AuditEvent` is served from the audit table, not the resource store. It can be read and
searched (`_id`, `patient`, `date` with prefixes, `agent` (alias `who`), `entity`, `action`, `outcome`,
`subtype`, `_count`, newest first, `_sort=date` for oldest first), always under the access filter.
Creating, updating, patching or deleting one is refused with 405 Method Not Allowed and
`Allow: GET, HEAD`: R4 defines AuditEvent as "a record of an event made for purposes of maintaining
a security log", based on IHE ATNA, whose audit repositories never alter a recorded event; and R4
http.html (delete) says a server that "refuses to delete resources of that type on principle"
should return 405, which we apply to every write. Client-posted events are refused too: they would
let anyone write into a patient's access history (the server is the only author).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode

import orjson
from sqlalchemy import Connection, select, union_all
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from socle.api.request import Context, FhirRequest, FhirResponse
from socle.config import Settings
from socle.fhir.errors import FhirError, Invalid, Issue, MethodNotAllowed, NotFound
from socle.store.clock import now_us, to_http_date
from socle.store.repository import Store
from socle.store.schema import resource
from socle.trust.audit import chain, queries
from socle.trust.audit.events import Access, Touched, build_events, outcome_of
from socle.trust.principal import Principal

AUDIT = "AuditEvent"
_METHOD_ACTION = {"POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D", "GET": "R", "HEAD": "R"}
_READS = {"read", "vread", "history-instance", "history-type", "history-system"}
_SEARCHES = {"search-type", "search-system", "search"}
_ANONYMOUS = Principal(kind="app", subject="anonymous")


class _Ref(NamedTuple):
    """A resource named in a response whose patient compartment is still to be looked up."""

    type: str
    id: str
    version: int | None
    action: str
    outcome: str = "0"


# -- what a request is ---------------------------------------------------------------------------


def interaction(method: str, segments: list[str], body: Any = None) -> str | None:
    """The restful-interaction code of a request (None: not an access to data, e.g. metadata)."""
    n = len(segments)
    if n == 0:
        if method == "POST":
            kind = body.get("type") if isinstance(body, dict) else None
            return kind if kind in ("batch", "transaction") else "batch"
        return "search-system"
    if segments[0] in ("metadata", ".well-known"):
        return None
    if segments[-1].startswith("$"):
        return "operation"
    if segments[-1] == "_search":
        return "search-system" if n == 1 else "search-type"
    if "_history" in segments:
        return {1: "history-system", 2: "history-type", 3: "history-instance"}.get(n, "vread")
    if n == 1:
        return {
            "GET": "search-type",
            "HEAD": "search-type",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method)
    if n == 2:
        return {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            method
        )
    return "search"  # Patient/{id}/{type}: compartment search


def _action(code: str, method: str) -> str:
    if code in _SEARCHES or code == "operation":
        return "E"
    if code in _READS:
        return "R"
    return _METHOD_ACTION.get(method, "E")


def _target_patient(segments: list[str]) -> str | None:
    return (
        segments[1]
        if len(segments) >= 2 and segments[0] == "Patient" and not segments[1].startswith(("_", "$"))
        else None
    )


def _is_audit(segments: list[str]) -> bool:
    return bool(segments) and (segments[0] == AUDIT or (len(segments) == 3 and segments[2] == AUDIT))


# -- recording -----------------------------------------------------------------------------------


def events(
    req: FhirRequest, ctx: Context, response: FhirResponse, break_glass: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The AuditEvents of a successful request (empty when auditing is off or nothing is recorded).
    `break_glass`: the patients the principal reaches under a running break-glass grant → reason."""
    segments = req.segments
    code = interaction(req.method, segments, req.body)
    if code == "transaction":
        _refuse_audit_entries(response)
    if not ctx.settings.audit:
        return []
    if code is None or _is_audit(segments):
        return []
    writes = req.method not in ("GET", "HEAD") and code not in _SEARCHES
    access = Access(code, _action(code, req.method), patient=_target_patient(segments))
    access.break_glass_for = dict(break_glass or {})
    if code in _SEARCHES or code == "operation" or code.startswith("history"):
        access.query = _request_line(req)
    unknown: list[_Ref] = []
    version = response.version
    if version is not None:
        access.touched.append(Touched(version.reference, version.compartment, access.action, version.version))
    body = response.body
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        if code in ("batch", "transaction"):
            _bundle_entries(req, body, access, unknown)
        else:
            for entry in body.get("entry") or ():
                ref = _relative(entry.get("fullUrl"), ctx.base_url)
                if ref is not None:
                    unknown.append(_Ref(ref[0], ref[1], None, access.action))
    elif isinstance(body, dict) and body.get("resourceType") == "Parameters":
        _parameters(body, segments, access, unknown)
    _resolve(ctx.conn, unknown, access, ctx.shown)
    if not writes and access.patient is None and not any(t.compartment for t in access.touched):
        return []  # a read that returned no patient data
    return build_events(access, ctx.principal, site=ctx.base_url, now=now_us())


def _parameters(body: dict[str, Any], segments: list[str], access: Access, unknown: list[_Ref]) -> None:
    """An operation's Parameters answer: the resources it names are touched; `$break-glass` gives
    the declared reason, recorded as the event's purpose (ETREAT + BTG, reason as text)."""
    for param in body.get("parameter") or ():
        if not isinstance(param, dict):
            continue
        reference = (param.get("valueReference") or {}).get("reference")
        if isinstance(reference, str) and reference.count("/") == 1:
            type_, id = reference.split("/")
            unknown.append(_Ref(type_, id, None, access.action))
        if segments[-1] == "$break-glass" and param.get("name") == "reason":
            reason = param.get("valueString")
            access.break_glass = reason if isinstance(reason, str) else ""


def _refuse_audit_entries(response: FhirResponse) -> None:
    """A transaction's creates skip the router (one multi-row insert): refuse AuditEvents here,
    before the commit, so that the whole transaction rolls back as `POST AuditEvent` would."""
    body = response.body
    for entry in body.get("entry") or () if isinstance(body, dict) else ():
        location = (entry.get("response") or {}).get("location")
        if isinstance(location, str) and location.startswith(f"{AUDIT}/"):
            refuse(FhirRequest("POST", AUDIT), None)


def _bundle_entries(req: FhirRequest, body: dict[str, Any], access: Access, unknown: list[_Ref]) -> None:
    listed = req.body.get("entry") if isinstance(req.body, dict) else None
    requested: list[Any] = listed if isinstance(listed, list) else []
    for index, entry in enumerate(body.get("entry") or ()):
        asked: dict[str, Any] = (
            requested[index] if index < len(requested) and isinstance(requested[index], dict) else {}
        )
        request: dict[str, Any] = asked["request"] if isinstance(asked.get("request"), dict) else {}
        method = str(request.get("method", "GET")).upper()
        result = entry.get("response") or {}
        status_text = str(result.get("status", "200")).split(" ")[0]
        status = int(status_text) if status_text.isdigit() else 200
        if status >= 400 and status not in (401, 403):
            continue  # an entry that failed changed and showed nothing
        action = (
            "E" if method == "GET" and "?" in str(request.get("url", "")) else _METHOD_ACTION.get(method, "E")
        )
        outcome = outcome_of(status)
        location = result.get("location")
        ref = None
        version = None
        if isinstance(location, str) and "/" in location:
            parts = location.split("/")
            ref = (parts[0], parts[1])
            version = int(parts[3]) if len(parts) >= 4 and parts[3].isdigit() else None
        elif isinstance(entry.get("fullUrl"), str):
            ref = _relative(entry["fullUrl"], None)
        elif isinstance(request.get("url"), str):
            segs = request["url"].split("?")[0].strip("/").split("/")
            ref = (segs[0], segs[1]) if len(segs) >= 2 else None
        if ref is not None:
            unknown.append(_Ref(ref[0], ref[1], version, action, outcome))


def _relative(full_url: Any, base: str | None) -> tuple[str, str] | None:
    if not isinstance(full_url, str) or full_url.startswith("urn:"):
        return None
    parts = full_url.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def _resolve(
    conn: Connection,
    unknown: Sequence[_Ref],
    access: Access,
    shown: Mapping[tuple[str, str], str | None] | None = None,
) -> None:
    """The patient compartments of `Type/id`s: those the handlers put in the response as stored
    (`Context.shown`, e.g. search and history entries) are known; the others are looked up on
    `resource` in one round trip (a UNION ALL of one indexed `resource_type = … AND id IN (…)` per
    type) for up to 1000 resources."""
    found: dict[tuple[str, str], str | None] = dict(shown or {})
    by_type: dict[str, set[str]] = {}
    for item in unknown:
        if (item.type, item.id) not in found:
            by_type.setdefault(item.type, set()).add(item.id)
    parts = []
    for type_, ids in by_type.items():
        listed = sorted(ids)
        for start in range(0, len(listed), 1000):
            parts.append(
                select(resource.c.resource_type, resource.c.id, resource.c.compartment).where(
                    resource.c.resource_type == type_, resource.c.id.in_(listed[start : start + 1000])
                )
            )
    for start in range(0, len(parts), 20):  # SQLite allows at most 500 terms in a compound SELECT
        chunk = parts[start : start + 20]
        statement = chunk[0] if len(chunk) == 1 else union_all(*chunk)
        found.update({(r[0], r[1]): r[2] for r in conn.execute(statement)})
    for item in unknown:
        compartment = found.get((item.type, item.id))
        access.touched.append(
            Touched(f"{item.type}/{item.id}", compartment, item.action, item.version, item.outcome)
        )


def _request_line(req: FhirRequest) -> str:
    query = urlencode([(k, v) for k, v in req.query if k not in ("_format", "_pretty")])
    return f"{req.method} {req.path}" + (f"?{query}" if query else "")


def append(conn: Connection, settings: Settings, recorded: list[dict[str, Any]]) -> None:
    """Chain the events on the request's connection (a write: same transaction)."""
    if recorded:
        chain.append(conn, settings, recorded)


def record_denial(
    store: Store,
    settings: Settings,
    req: FhirRequest,
    principal: Principal | None,
    error: FhirError,
    base_url: str,
    address: str | None,
) -> None:
    """A 401/403: one AuditEvent with outcome 4 naming what was attempted, in its own transaction."""
    segments = req.segments
    code = interaction(req.method, segments, req.body) or "operation"
    access = Access(
        code,
        _action(code, req.method),
        outcome="4",
        outcome_desc=error.diagnostics,
        query=_request_line(req),
        patient=_target_patient(segments),
        address=address,
    )
    with store.write() as conn:
        if len(segments) >= 2 and not segments[1].startswith(("_", "$")) and segments[0] != AUDIT:
            _resolve(conn, [_Ref(segments[0], segments[1], None, access.action, "4")], access)
        chain.append(
            conn, settings, build_events(access, principal or _ANONYMOUS, site=base_url, now=now_us())
        )


Handler = Callable[[Request], Any]


def audit_denials(handler: Handler, store: Store, settings: Settings) -> Handler:
    """Wrap the FHIR endpoint: every 401/403 it answers (bearer check or policy) is recorded."""

    async def audited(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except FhirError as error:
            if settings.audit and error.status in (401, 403):
                req = FhirRequest(
                    request.method,
                    request.path_params.get("path", "").strip("/"),
                    list(request.query_params.multi_items()),
                )
                base = settings.base_url or f"{request.url.scheme}://{request.url.netloc}/fhir"
                principal = getattr(request.state, "principal", None)
                host = request.client.host if request.client else None
                await run_in_threadpool(record_denial, store, settings, req, principal, error, base, host)
            raise

    return audited


# -- serving -------------------------------------------------------------------------------------


def read(req: FhirRequest, ctx: Context, id: str) -> FhirResponse:
    event = queries.get(ctx.conn, id, ctx.access)
    if event is None:
        raise NotFound(f"AuditEvent/{id} is not known")
    return FhirResponse(200, event.content, {"ETag": 'W/"1"', "Last-Modified": to_http_date(event.recorded)})


def vread(req: FhirRequest, ctx: Context, id: str, vid: str) -> FhirResponse:
    if vid != "1":
        raise NotFound(f"AuditEvent/{id} has no version {vid!r}: AuditEvents are never updated")
    return read(req, ctx, id)


def history_instance(req: FhirRequest, ctx: Context, id: str) -> FhirResponse:
    event = queries.get(ctx.conn, id, ctx.access)
    if event is None:
        raise NotFound(f"AuditEvent/{id} is not known")
    entry = {
        "fullUrl": ctx.absolute(f"{AUDIT}/{id}"),
        "resource": orjson.Fragment(event.content),
        "request": {"method": "POST", "url": AUDIT},
        "response": {"status": "201 Created", "etag": 'W/"1"'},
    }
    return FhirResponse(200, {"resourceType": "Bundle", "type": "history", "total": 1, "entry": [entry]})


_CONTROLS = ("_count", "_cursor", "_sort", "_format", "_pretty", "_total")


def search(req: FhirRequest, ctx: Context) -> FhirResponse:
    return _search(req, ctx, AUDIT, _params(req))


def search_compartment(req: FhirRequest, ctx: Context, id: str) -> FhirResponse:
    return _search(req, ctx, f"Patient/{id}/{AUDIT}", [("patient", id), *_params(req)])


def _params(req: FhirRequest) -> list[tuple[str, str]]:
    params = list(req.query)
    if req.method == "POST" and isinstance(req.body, str):
        from urllib.parse import parse_qsl

        params += parse_qsl(req.body, keep_blank_values=True)
    return params


def _search(req: FhirRequest, ctx: Context, path: str, params: list[tuple[str, str]]) -> FhirResponse:
    criteria = [(k, v) for k, v in params if k not in _CONTROLS]
    wanted = queries.parse(criteria)
    strict = req.prefer.get("handling") == "strict"
    if wanted.ignored and strict:
        raise Invalid("; ".join(why for _, why in wanted.ignored))
    count = _count(params, ctx)
    sort = dict(params).get("_sort", "-date")
    if sort not in ("date", "-date"):
        raise Invalid(f"AuditEvent results sort by date only (_sort=-date or _sort=date), not {sort!r}")
    ascending = sort == "date"
    cursor_text = dict(params).get("_cursor")
    before = None
    if cursor_text is not None:
        if not cursor_text.isdigit():
            raise Invalid(f"Invalid _cursor {cursor_text!r}", expression="_cursor")
        before = int(cursor_text)
    found, next_seq = queries.page(
        ctx.conn, wanted, ctx.access, count=count, before=before, ascending=ascending
    )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if before is None:
        bundle["total"] = queries.total(ctx.conn, wanted, ctx.access)
    kept = [
        (k, v)
        for k, v in params
        if k not in ("_cursor", "_format", "_pretty") and k not in dict(wanted.ignored)
    ]
    if path.startswith("Patient/"):
        kept = [(k, v) for k, v in kept if k != "patient" or v != path.split("/")[1]]
    links = [
        {
            "relation": "self",
            "url": _link(ctx, path, kept + ([("_cursor", cursor_text)] if cursor_text else [])),
        }
    ]
    if next_seq is not None:
        links.append({"relation": "next", "url": _link(ctx, path, [*kept, ("_cursor", str(next_seq))])})
    bundle["link"] = links
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": ctx.absolute(f"{AUDIT}/{e.id}"),
            "resource": orjson.Fragment(e.content),
            "search": {"mode": "match"},
        }
        for e in found
    ]
    if wanted.ignored:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [Issue("not-supported", why, None, "warning").to_fhir() for _, why in wanted.ignored],
        }
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, bundle)


def _count(params: Iterable[tuple[str, str]], ctx: Context) -> int:
    text = dict(params).get("_count")
    if text is None:
        return ctx.settings.default_page_size
    if not text.isdigit():
        raise Invalid(f"_count must be a non-negative integer, got {text!r}", expression="_count")
    return max(1, min(int(text), ctx.settings.max_page_size))


def _link(ctx: Context, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{ctx.base_url}/{path}" + (f"?{query}" if query else "")


def refuse(req: FhirRequest, ctx: Context | None, *args: str) -> FhirResponse:
    raise MethodNotAllowed(
        f"AuditEvents cannot be {_VERBS.get(req.method, 'changed')} through the API: the audit trail is "
        "written by the server only and is immutable",
        headers={"Allow": "GET, HEAD"},
    )


_VERBS = {"POST": "created", "PUT": "updated", "PATCH": "patched", "DELETE": "deleted"}


def advertise(statement: dict[str, Any]) -> dict[str, Any]:
    """The CapabilityStatement with AuditEvent's real support (read, vread, search; no writes)."""
    rest = [dict(r) for r in statement.get("rest", [])]
    for part in rest:
        part["resource"] = [
            _audit_resource(r) if r.get("type") == AUDIT else r for r in part.get("resource", [])
        ]
    return {**statement, "rest": rest}


def _audit_resource(entry: dict[str, Any]) -> dict[str, Any]:
    described = {p["name"]: p for p in entry.get("searchParam", [])}
    params = [
        described.get(name, {"name": name, "type": "token"})
        for name in queries.SEARCH_PARAMS
        if name in described or name == "_id"
    ]
    return {
        **entry,
        "interaction": [{"code": c} for c in ("read", "vread", "history-instance", "search-type")],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": [],
        "searchRevInclude": [],
        "searchParam": params,
        "operation": [],
        "documentation": "Written by the server only (immutable, hash-chained); "
        "served under the access policy, newest first.",
    }
