"""Search (R4 §3.1.1, search.html): type, system and compartment level, answered as searchset Bundles.

The criteria go to `socle.fhir.query.parse_query` (one query per searched type) and compile in the
store; this module reads the result parameters (search.html#return) and shapes the Bundle:

- `_sort`, `_count` and keyset paging with opaque `_cursor` tokens in `next`/`previous` links
  (`socle.store.results`); `_count=0` and `_summary=count` return only the total.
- `_total`: when the client does not say (R4 lets the server choose), the first page carries the
  total when it costs little: exact when every match is on the page (no count statement) or when
  there are at most DEFAULT_COUNT_LIMIT matches (a count that stops there), else PostgreSQL's
  planner estimate, and no total on SQLite; later pages none. So a page of a national cohort does
  not cost a count growing with the data. `_total=accurate` counts on every page, `estimate` uses
  PostgreSQL's planner estimate (SQLite counts), `none` skips; `_summary=count` counts.
- `_include`/`_revinclude` (`:iterate`), `search.mode=include` (`socle.store.includes`).
- `_summary`/`_elements` projections (`socle.fhir.summary`), applied to every resource entry.
- Unknown or unsupported parameters (§3.1.1.3.2 "handling"): with `Prefer: handling=strict` a 400
  OperationOutcome names each of them; by default they are ignored, reported in an OperationOutcome
  entry (`search.mode=outcome`), and left out of the `self` link, which shows what was applied.

`POST [base]/[type]/_search` and `POST [base]/_search` take the same parameters in a form body
(merged after the URL's). System search takes `_type=A,B`: every criterion must then be known to
every listed type; without `_type` only the parameters defined on Resource (`_id`, `_lastUpdated`,
`_tag`, `_profile`, `_security`, `_source`) are accepted, searched over every resource type.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from socle.api.interactions import require_type
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.compartment import compartment_params
from socle.fhir.errors import Invalid, Issue, NotSupported, UnsupportedMediaType
from socle.fhir.query import SearchQuery, parse_query
from socle.fhir.resource_types import is_resource_type, resource_types
from socle.fhir.search_params import registry
from socle.fhir.summary import Projection, projection
from socle.store.includes import Included, IncludeSpec, parse_include
from socle.store.matches import MatchSet, TypeMatches
from socle.store.results import Cursor, ResultPage, SortKey, parse_sort
from socle.store.selectivity import prefer_selective
from socle.store.value_sets import ValueSetCache, resolve_value_sets
from socle.store.versioned import StoredVersion

__all__ = [
    "DEFAULT_COUNT_LIMIT",
    "Controls",
    "Problems",
    "searchset",
    "search_compartment",
    "search_system",
    "search_type",
]

# Result parameters (search.html#return) and formatting ones: never criteria.
_RESULT = {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor"}
_FORMAT = {"_format", "_pretty"}
_UNSUPPORTED = {"_contained", "_containedType", "_offset"}
_TOTALS = {"none", "estimate", "accurate"}
_INCLUDES = ("_include", "_revinclude")
_RESOURCE_PARAM = "http://hl7.org/fhir/SearchParameter/Resource-"
# Without `_total`, a first page counts at most this many matches (beyond: an estimate or no total).
DEFAULT_COUNT_LIMIT = 1000


def search_type(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    require_type(resource_type)
    return _search(req, ctx, resource_type, [resource_type])


def search_system(req: FhirRequest, ctx: Context) -> FhirResponse:
    """`GET [base]?_type=...` (R4 §3.1.0.9.3 search-system)."""
    params = request_params(req)
    named = [t.strip() for k, v in params if k == "_type" for t in v.split(",") if t.strip()]
    for name in named:
        if not is_resource_type(name):
            raise Invalid(f"_type: {name!r} is not a FHIR R4 resource type", expression="_type")
    types = sorted(set(named)) if named else sorted(resource_types())
    return _search(req, ctx, "", types, restrict_to_resource_params=not named)


def search_compartment(req: FhirRequest, ctx: Context, id: str, resource_type: str) -> FhirResponse:
    """`GET [base]/Patient/[id]/[type]` (R4 §3.1.0.9.4): `[type]` in that patient's compartment.

    `*` searches every type of the compartment. Membership follows the Patient CompartmentDefinition
    (`socle.store.results.compartment_members`).
    """
    in_compartment = sorted({"Patient", *compartment_params()})
    if resource_type == "*":
        types = in_compartment
    else:
        require_type(resource_type)
        if resource_type not in in_compartment:
            raise Invalid(
                f"{resource_type} is not in the Patient compartment (R4 compartmentdefinition-patient)"
            )
        types = [resource_type]
    return _search(req, ctx, f"Patient/{id}/{resource_type}", types, compartment=id)


def request_params(req: FhirRequest) -> list[tuple[str, str]]:
    """URL parameters, then those of a form body (`POST .../_search`, R4 §3.1.1 "search via POST")."""
    params = list(req.query)
    body = req.body
    if req.method == "POST" and body is not None:
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        if not isinstance(body, str):
            raise UnsupportedMediaType("POST _search takes an application/x-www-form-urlencoded body")
        params += parse_qsl(body, keep_blank_values=True)
    return params


@dataclass
class Problems:
    """Parameters the search cannot apply: a 400 when strict, else warnings and dropped from `self`."""

    strict: bool
    issues: list[Issue] = field(default_factory=list)
    dropped: set[tuple[str, str]] = field(default_factory=set)

    def ignore(self, name: str, value: str, diagnostics: str) -> None:
        self.issues.append(Issue("not-supported", diagnostics, name, "error" if self.strict else "warning"))
        self.dropped.add((name, value))

    def raise_if_strict(self) -> None:
        if self.strict and self.issues:
            raise Invalid(self.issues[0].diagnostics, issues=self.issues)


@dataclass
class Controls:
    """The result parameters of one request, read and checked."""

    count: int
    sort: list[SortKey]
    includes: list[IncludeSpec]
    total: str | None
    summary: str | None
    projection: Projection | None
    cursor_text: str | None
    # `_sort` rewritten to the keys that apply, for the links
    sort_text: str | None = None

    @property
    def count_only(self) -> bool:
        return self.count == 0 or self.summary == "count"


def read_controls(
    ctx: Context, params: Sequence[tuple[str, str]], types: Sequence[str], problems: Problems
) -> Controls:
    """`_count`, `_sort`, `_include`/`_revinclude`, `_total`, `_summary`, `_elements`, `_cursor`."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    count = ctx.settings.default_page_size
    if "_count" in values:
        text = values["_count"][0]
        if not text.isdigit():
            raise Invalid(f"_count must be a non-negative integer, got {text!r}", expression="_count")
        count = min(int(text), ctx.settings.max_page_size)
    sort: list[SortKey] = []
    sort_text = None
    if "_sort" in values:
        sort, rejected = parse_sort(",".join(values["_sort"]), types)
        for item in rejected:
            problems.issues.append(
                Issue(
                    "not-supported",
                    f"_sort: cannot sort {', '.join(types[:5])} by {item!r}",
                    "_sort",
                    "error" if problems.strict else "warning",
                )
            )
        sort_text = ",".join(("-" if k.descending else "") + k.name for k in sort)
    includes = []
    for name, value in params:
        if name.split(":")[0] in _INCLUDES:
            try:
                includes.append(parse_include(name, value))
            except NotSupported as error:
                problems.ignore(name, value, error.diagnostics)
    total = values.get("_total", [None])[0]
    if total is not None and total not in _TOTALS:
        raise Invalid(f"_total must be none, estimate or accurate; got {total!r}", expression="_total")
    summary = values.get("_summary", [None])[0]
    shape = projection(summary, ",".join(values.get("_elements", [])) or None)
    cursor = values.get("_cursor", [None])[0]
    return Controls(count, sort, includes, total, summary, shape, cursor, sort_text)


def _criteria(
    types: Sequence[str], criteria: list[tuple[str, str]], problems: Problems, resource_params_only: bool
) -> list[SearchQuery]:
    """One query per type; a parameter unknown to ANY searched type is dropped from all of them
    (keeping it for some types only would widen their results silently)."""
    unknown: list[str] = []
    if resource_params_only:
        for name, _ in criteria:
            base = name.split(":")[0].split(".")[0]
            param = registry().get(types[0], base)
            if (param is None or not param.url.startswith(_RESOURCE_PARAM)) and name not in unknown:
                unknown.append(name)
    kept = [(k, v) for k, v in criteria if k not in unknown]
    queries = [parse_query(t, kept) for t in types]
    for query in queries:
        unknown += [name for name in query.unknown if name not in unknown]
    for name, value in criteria:
        if name in unknown:
            where = "every searched type" if len(types) > 1 else types[0]
            problems.ignore(name, value, f"Unknown or unsupported search parameter {name!r} for {where}")
    if len(types) > 1 and any(q.unknown for q in queries):
        kept = [(k, v) for k, v in criteria if k not in unknown]
        queries = [parse_query(t, kept) for t in types]
    return queries


def _search(
    req: FhirRequest,
    ctx: Context,
    path: str,
    types: Sequence[str],
    *,
    compartment: str | None = None,
    restrict_to_resource_params: bool = False,
) -> FhirResponse:
    params = request_params(req)
    problems = Problems(req.prefer.get("handling") == "strict")
    criteria = []
    for name, value in params:
        base = name.split(":")[0]
        if base in _UNSUPPORTED or (base in _RESULT and name != base and base not in _INCLUDES):
            problems.ignore(name, value, f"{name} is not supported")
        elif base not in _RESULT and base not in _FORMAT and not (name == "_type" and path == ""):
            criteria.append((name, value))
    queries = _criteria(types, criteria, problems, restrict_to_resource_params)
    value_sets = ValueSetCache(ctx.conn, ctx.access)  # `:in` / `:not-in`: expanded once per request
    # the most selective of equally ranked criteria drives (store.selectivity)
    queries = [prefer_selective(ctx.conn, resolve_value_sets(query, value_sets)) for query in queries]
    controls = read_controls(ctx, params, types, problems)
    problems.raise_if_strict()
    matches = TypeMatches(tuple(queries), compartment)
    return searchset(req, ctx, path, params, matches, controls, problems)


def searchset(
    req: FhirRequest,
    ctx: Context,
    path: str,
    params: Sequence[tuple[str, str]],
    matches: MatchSet,
    controls: Controls,
    problems: Problems,
) -> FhirResponse:
    """Run the page, total and includes of a search and answer the searchset Bundle (R4 §3.1.1.5)."""
    cursor = Cursor.decode(controls.cursor_text, controls.sort) if controls.cursor_text else None
    page = ResultPage([], None, None, cursor.high if cursor else None)
    included = Included([], False)
    if not controls.count_only:
        page = ctx.store.search_results(
            ctx.conn, matches, ctx.access, sort=controls.sort, count=controls.count, cursor=cursor
        )
        if controls.includes and page.versions:
            included = ctx.store.search_included(
                ctx.conn, matches, ctx.access, page.versions, controls.includes
            )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    total = _total(ctx, matches, controls, cursor, page)
    if total is not None:
        bundle["total"] = total
    kept = _link_params(params, controls, problems)
    links = [{"relation": "self", "url": _url(ctx, path, kept, controls.cursor_text)}]
    if page.next is not None:
        links.append({"relation": "next", "url": _url(ctx, path, kept, page.next.encode(controls.sort))})
    if page.previous is not None:
        links.append(
            {"relation": "previous", "url": _url(ctx, path, kept, page.previous.encode(controls.sort))}
        )
    bundle["link"] = links
    entries = [_entry(ctx, v, "match", controls.projection) for v in page.versions]
    entries += [_entry(ctx, v, "include", controls.projection) for v in included.versions]
    issues = list(problems.issues)
    if included.truncated:
        issues.append(
            Issue("too-costly", "_include/_revinclude stopped at the server's limit", None, "warning")
        )
    if issues:
        outcome = {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}
        entries.append(
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": outcome, "search": {"mode": "outcome"}}
        )
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, bundle)


def _total(
    ctx: Context, matches: MatchSet, controls: Controls, cursor: Cursor | None, page: ResultPage
) -> int | None:
    """`Bundle.total` (search.html#total), None to leave it out.

    Asked for (`_total`, or `_summary=count`/`_count=0` whose answer it is): as asked. Otherwise on
    the first page only, and bounded so that a page never costs a count of a national cohort: exact
    up to DEFAULT_COUNT_LIMIT matches, beyond that PostgreSQL's estimate (never below what was
    counted) and none on SQLite, which has no estimate. A first page without a next page is every
    match: its length is the total, with no count statement.
    """
    mode = controls.total or ("accurate" if controls.count_only else None)
    if mode == "none" or (mode is None and cursor is not None):
        return None
    if cursor is None and not controls.count_only and page.next is None:
        return len(page.versions)
    total = functools.partial(ctx.store.search_total, ctx.conn, matches, ctx.access, high=page.high)
    if mode is not None:
        return total(estimate=mode == "estimate")
    counted = total(up_to=DEFAULT_COUNT_LIMIT)
    if counted <= DEFAULT_COUNT_LIMIT:
        return counted
    if ctx.conn.dialect.name == "postgresql":
        return max(total(estimate=True), counted)
    return None


def _entry(ctx: Context, version: StoredVersion, mode: str, shape: Projection | None) -> dict[str, Any]:
    ctx.show(version)  # for the audit
    body: Any = shape.apply(version.resource) if shape is not None else orjson.Fragment(version.raw or b"")
    return {"fullUrl": ctx.absolute(version.reference), "resource": body, "search": {"mode": mode}}


def _link_params(
    params: Sequence[tuple[str, str]], controls: Controls, problems: Problems
) -> list[tuple[str, str]]:
    """The parameters as applied: ignored ones dropped, `_sort` reduced to its usable keys."""
    kept = []
    sorted_once = False
    for name, value in params:
        if name in _FORMAT or name == "_cursor" or (name, value) in problems.dropped:
            continue
        if name == "_sort":
            if not sorted_once and controls.sort_text:
                kept.append(("_sort", controls.sort_text))
            sorted_once = True
            continue
        kept.append((name, value))
    return kept


def _url(ctx: Context, path: str, params: list[tuple[str, str]], cursor: str | None) -> str:
    query = urlencode([*params, ("_cursor", cursor)] if cursor else params)
    base = f"{ctx.base_url}/{path}" if path else ctx.base_url
    return f"{base}?{query}" if query else base
