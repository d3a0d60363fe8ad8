"""`Patient/$everything` (R4 operation Patient-everything, patient-operation-everything.html).

Instance level (`GET Patient/123/$everything`): the patient, every resource in its Patient
compartment, and (as `search.mode=include`) the resources those reference that are not themselves
in the compartment: Practitioner, Organization, Location, Medication… Type level
(`GET Patient/$everything`): the same for every patient. The answer is a searchset Bundle paged like
any search (`_count`, keyset `_cursor` links), the referenced resources coming with the page that
references them. Parameters: `_since` (instant: resources updated since), `_type` (types to
return), `_count`; `start`/`end` (care dates) are not supported and are reported like any
unsupported search parameter (lenient) or refused (`Prefer: handling=strict`).
"""

from __future__ import annotations

from socle.api.operation_table import operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.api.search import Problems, read_controls, searchset
from socle.fhir.errors import Invalid
from socle.fhir.resource_types import is_resource_type
from socle.store.clock import from_instant
from socle.store.includes import IncludeSpec
from socle.store.matches import EverythingMatches

__all__ = ["patient_everything"]

_CONTROLS = {"_count", "_cursor", "_summary", "_elements", "_total", "_format", "_pretty"}
# Every reference of a page resource, one level: what the operation calls "referenced resources".
_REFERENCED = IncludeSpec(None, "*", None, reverse=False, iterate=False)


@operation(
    "$everything",
    levels=("type", "instance"),
    resource_types=("Patient",),
    methods=("GET",),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-everything",
)
def patient_everything(req: FhirRequest, ctx: Context, _type: str | None, id: str | None) -> FhirResponse:
    if id is not None:
        ctx.store.get(ctx.conn, "Patient", id, ctx.access)  # 404 / 410 before anything else
    path = f"Patient/{id}/$everything" if id is not None else "Patient/$everything"
    params = list(req.query)
    problems = Problems(req.prefer.get("handling") == "strict")
    since = None
    types: list[str] = []
    for name, value in params:
        if name == "_since":
            try:
                since = from_instant(value)
            except ValueError as exc:
                raise Invalid(f"_since must be a FHIR instant, got {value!r}", expression="_since") from exc
        elif name == "_type":
            for type_name in (t.strip() for t in value.split(",") if t.strip()):
                if not is_resource_type(type_name):
                    raise Invalid(f"_type: {type_name!r} is not a resource type", expression="_type")
                types.append(type_name)
        elif name not in _CONTROLS:
            problems.ignore(name, value, f"Patient/$everything does not support the parameter {name!r}")
    controls = read_controls(ctx, [(k, v) for k, v in params if k in _CONTROLS], [], problems)
    controls.includes = [_REFERENCED]
    problems.raise_if_strict()
    matches = EverythingMatches(id, tuple(sorted(set(types))) if types else None, since)
    return searchset(req, ctx, path, params, matches, controls, problems)
