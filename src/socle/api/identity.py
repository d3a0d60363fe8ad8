"""Patient identity operations: `$match`, `$merge`, `$unmerge`, `$ins-lookup`, `$identity-status`.

Thin handlers: parse the Parameters (400 naming the faulty parameter), call
`socle.referentials.identity`, shape the answer.
- `Patient/$match` (R4 patient-operation-match.html): `resource`, `onlyCertainMatches`, `count`;
  a searchset Bundle, `search.score` the match probability and the `match-grade` extension.
- `Patient/$merge` (R5 patient-operation-merge.html): `source-patient`/`-identifier`,
  `target-patient`/`-identifier`, `result-patient`, `preview`; answers `input`, `outcome`, `result`.
- `Patient/$unmerge` (Socle): `source-patient` or `merge-id`; restores both records.
- `Patient/$ins-lookup` (Socle, after the INSi téléservice): strict traits (`family`, `given`…,
  `birthdate`, `gender`, optional `birthplace`) or Vitale data (`vitale-nir`, `birthdate`, optional
  `given`); answers `outcome` 00/01/02, the identity on 00, and `lookup-id` to quote as evidence.
  Every call, malformed ones included, is recorded (ins_lookup_log) and committed.
- `Patient/[id]/$identity-status` (Socle): an event (`event`, `document`, `lookup`, `method`,
  `date`, `reason`) moves the identity status; answers the before/after statuses and the Patient.
It also registers the identity rules of API reads and writes (`referentials.identity.sharing`) with
`api.resource_hooks`: Patient writes are checked, and other actors never receive the INS of an
identity that is not qualified (shared-record documents are checked by a store hook, on every path).
"""

from __future__ import annotations

import re
from typing import Any

from socle.api import resource_hooks
from socle.api.operation_table import operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import FhirError, Invalid, NotFound
from socle.fhir.validation import validate_resource
from socle.referentials.identity import merge as merging
from socle.referentials.identity import mpi, registry, sharing
from socle.referentials.identity.nir import parse_nir
from socle.referentials.identity.profile import INS_SYSTEMS, traits_from_patient
from socle.referentials.identity.status import IdentityEvent
from socle.referentials.identity.status_service import change_status
from socle.referentials.identity.traits import parse_partial_date

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
_SOCLE_OPS = "https://socle.example.org/fhir/OperationDefinition"
_PLACE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
# The principal until the trust layer exists: every call is recorded under it.
_PRINCIPAL = "system"


resource_hooks.register_resource_check("Patient", sharing.check_patient_write)
resource_hooks.register_response_filter(
    "Patient", sharing.INS_MARKER, sharing.patient_for, sharing.withholds_from
)


def _parameters(body: Any, operation_name: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise Invalid(
            f"{operation_name} takes a Parameters resource in the request body", expression="Parameters"
        )
    params = body.get("parameter") or []
    if not isinstance(params, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in params
    ):
        raise Invalid(
            "Parameters.parameter must be a list of named parameters", expression="Parameters.parameter"
        )
    return params


def _values(params: list[dict[str, Any]], name: str) -> list[Any]:
    found = []
    for p in params:
        if p["name"] != name:
            continue
        if "resource" in p:
            found.append(p["resource"])
            continue
        values = [v for k, v in p.items() if k.startswith("value")]
        found.extend(values[:1])
    return found


def _one(
    params: list[dict[str, Any]], name: str, kind: type | tuple[type, ...] = str, *, required: bool = False
) -> Any:
    values = _values(params, name)
    if len(values) > 1:
        raise Invalid(f"Parameter {name!r} is given {len(values)} times; expected once", expression=name)
    if not values:
        if required:
            raise Invalid(f"Parameter {name!r} is required", expression=name)
        return None
    if not isinstance(values[0], kind) or (kind is int and isinstance(values[0], bool)):
        raise Invalid(f"Parameter {name!r} has the wrong type", expression=name)
    return values[0]


def _gender(value: Any, name: str) -> str:
    if value not in ("male", "female"):
        raise Invalid(f"{name} must be male or female (INS sex), got {value!r}", expression=name)
    return str(value)


# -- $match -----------------------------------------------------------------------------------


@operation(
    "$match",
    levels=("type",),
    resource_types=("Patient",),
    methods=("POST",),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-match",
    own_transactions=True,  # reads only: served on a read connection, not under the write lock
)
def match_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, _id: str | None
) -> FhirResponse:
    params = _parameters(req.body, "$match")
    patient = _one(params, "resource", dict, required=True)
    if patient.get("resourceType") != "Patient":
        raise Invalid("Parameter 'resource' must be a Patient", expression="resource")
    validate_resource(patient, resource_type="Patient")
    only_certain = bool(_one(params, "onlyCertainMatches", bool) or False)
    count = _one(params, "count", int)
    if count is not None and not 1 <= count <= 100:
        raise Invalid("count must be between 1 and 100", expression="count")
    for index, ident in enumerate(patient.get("identifier") or []):
        if isinstance(ident, dict) and ident.get("system") in INS_SYSTEMS:
            parse_nir(str(ident.get("value", "")), expression=f"Patient.identifier[{index}].value")
    traits = traits_from_patient(patient, strict=True)
    has_name = bool(traits.birth_name or traits.used_name or traits.given_names)
    if not traits.ins and not (has_name and traits.birth_date):
        missing = "Patient.birthDate" if has_name else "Patient.name"
        raise Invalid(
            "$match needs a name and a birth date, or an INS identifier, to search for a person",
            expression=missing,
        )
    found = mpi.match(ctx.conn, ctx.access, traits, count=count or 10, only_certain=only_certain)
    versions = {v.resource_key: v for v in ctx.store.get_many(ctx.conn, [s.key for s in found], ctx.access)}
    entries = []
    for scored in found:
        version = versions.get(scored.key)
        if version is None:
            continue
        entries.append(
            {
                "fullUrl": ctx.absolute(version.reference),
                "resource": version.resource,
                "search": {
                    "extension": [{"url": MATCH_GRADE, "valueCode": scored.grade}],
                    "mode": "match",
                    "score": round(scored.probability, 6),
                },
            }
        )
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return FhirResponse(200, bundle)


# -- $merge / $unmerge ------------------------------------------------------------------------


def _patient_id(params: list[dict[str, Any]], ctx: Context, which: str) -> str:
    reference = _one(params, f"{which}-patient", dict)
    identifiers = _values(params, f"{which}-patient-identifier")
    if reference is not None:
        text = reference.get("reference")
        if not isinstance(text, str) or not text.startswith("Patient/") or text.count("/") != 1:
            raise Invalid(f"{which}-patient must be a reference Patient/[id]", expression=f"{which}-patient")
        return text.split("/", 1)[1]
    if identifiers:
        criteria = ",".join(
            f"{i.get('system', '')}|{i.get('value', '')}" for i in identifiers if isinstance(i, dict)
        )
        ids = ctx.store.find(ctx.conn, "Patient", f"identifier={criteria}", ctx.access, limit=2)
        if not ids:
            raise NotFound(
                f"No Patient has the {which}-patient-identifier", expression=f"{which}-patient-identifier"
            )
        if len(ids) > 1:
            raise Invalid(
                f"{which}-patient-identifier matches several Patients",
                expression=f"{which}-patient-identifier",
            )
        return ids[0]
    raise Invalid(
        f"Name the {which} Patient ({which}-patient or {which}-patient-identifier)",
        expression=f"{which}-patient",
    )


@operation(
    "$merge",
    levels=("type",),
    resource_types=("Patient",),
    methods=("POST",),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-merge",
)
def merge_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, _id: str | None
) -> FhirResponse:
    params = _parameters(req.body, "$merge")
    source_id = _patient_id(params, ctx, "source")
    target_id = _patient_id(params, ctx, "target")
    result_patient = _one(params, "result-patient", dict)
    if result_patient is not None:
        validate_resource(result_patient, resource_type="Patient")
    preview = bool(_one(params, "preview", bool) or False)
    result = merging.merge(
        ctx.store,
        ctx.conn,
        ctx.access,
        source_id,
        target_id,
        result_patient=result_patient,
        preview=preview,
        principal=_PRINCIPAL,
    )
    moved = sum(len(paths) for _, _, paths in result.repointed)
    verb, moved_verb = ("Preview: would merge", "would be re-pointed") if preview else ("Merged", "moved")
    message = (
        f"{verb} Patient/{source_id} into Patient/{target_id}; "
        f"{moved} reference(s) in {len(result.repointed)} resource(s) {moved_verb}"
    )
    out: list[dict[str, Any]] = [
        {"name": "input", "resource": req.body},
        {"name": "outcome", "resource": _information(message)},
        {"name": "result", "resource": result.target},
    ]
    if result.merge_id is not None:
        out.append({"name": "merge-id", "valueString": str(result.merge_id)})
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": out})


@operation(
    "$unmerge",
    levels=("type",),
    resource_types=("Patient",),
    methods=("POST",),
    definition=f"{_SOCLE_OPS}/Patient-unmerge",
)
def unmerge_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, _id: str | None
) -> FhirResponse:
    params = _parameters(req.body, "$unmerge")
    merge_id = _one(params, "merge-id", str)
    source_id = _patient_id(params, ctx, "source") if merge_id is None else None
    if merge_id is not None and not merge_id.isdigit():
        raise Invalid("merge-id must be the id returned by $merge", expression="merge-id")
    result = merging.unmerge(
        ctx.store,
        ctx.conn,
        ctx.access,
        merge_id=int(merge_id) if merge_id else None,
        source_id=source_id,
        principal=_PRINCIPAL,
    )
    out = [
        {"name": "outcome", "resource": _information(f"Merge {result.merge_id} undone")},
        {"name": "source", "resource": result.source},
        {"name": "target", "resource": result.target},
    ]
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": out})


def _information(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": text}],
    }


# -- $ins-lookup --------------------------------------------------------------------------------


@operation(
    "$ins-lookup",
    levels=("type",),
    resource_types=("Patient",),
    methods=("POST",),
    definition=f"{_SOCLE_OPS}/Patient-ins-lookup",
)
def ins_lookup_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, _id: str | None
) -> FhirResponse:
    criteria: dict[str, Any] = {}
    mode = "traits"
    try:
        params = _parameters(req.body, "$ins-lookup")
        criteria = {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None) for p in params}
        criteria["given"] = _values(params, "given")
        mode = "vitale" if _values(params, "vitale-nir") else "traits"
        result = _lookup(ctx, params, mode)
    except FhirError as error:
        registry.record_lookup(
            ctx.conn,
            principal=_PRINCIPAL,
            mode=mode,
            criteria=_jsonable(criteria),
            outcome="invalid",
            matches=0,
            detail=error.diagnostics,
        )
        return FhirResponse(error.status, error.outcome(), dict(error.headers))
    lookup_id = registry.record_lookup(
        ctx.conn,
        principal=_PRINCIPAL,
        mode=mode,
        criteria=_jsonable(criteria),
        outcome=result.outcome,
        matches=result.matches,
        matricule=result.entry.matricule if result.entry else None,
    )
    out: list[dict[str, Any]] = [
        {
            "name": "outcome",
            "valueCoding": {
                "system": f"{_SOCLE_OPS}/Patient-ins-lookup#outcome",
                "code": result.outcome,
                "display": result.message,
            },
        },
        {"name": "matches", "valueInteger": result.matches},
        {"name": "lookup-id", "valueString": str(lookup_id)},
    ]
    if result.entry is not None:
        patient = result.entry.patient()
        out.append({"name": "ins", "valueIdentifier": patient["identifier"][0]})
        out.append({"name": "patient", "resource": patient})
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": out})


def _jsonable(criteria: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in criteria.items()
        if isinstance(v, str | int | bool | list | dict | float) or v is None
    }


def _lookup(ctx: Context, params: list[dict[str, Any]], mode: str) -> registry.LookupResult:
    given = _values(params, "given")
    if not all(isinstance(g, str) and g.strip() for g in given):
        raise Invalid("given must be non-empty strings", expression="given")
    given_names = tuple(n for g in given for n in g.split())
    birthdate = parse_partial_date(_one(params, "birthdate", str, required=True), expression="birthdate")
    if mode == "vitale":
        vitale = parse_nir(_one(params, "vitale-nir", str, required=True), expression="vitale-nir")
        return registry.lookup_vitale(
            ctx.conn, vitale_nir=vitale.value, birth_date=birthdate, given_names=given_names
        )
    family = _one(params, "family", str, required=True)
    if not family.strip():
        raise Invalid("family (the birth name) is empty", expression="family")
    if not given_names:
        raise Invalid("given (at least the first birth given name) is required", expression="given")
    gender = _gender(_one(params, "gender", str, required=True), "gender")
    birthplace = _one(params, "birthplace", str)
    if birthplace is not None and not _PLACE.match(birthplace.upper()):
        raise Invalid(
            f"birthplace must be an INSEE COG code (5 characters, 99xxx abroad), got {birthplace!r}",
            expression="birthplace",
        )
    return registry.lookup_traits(
        ctx.conn,
        birth_name=family,
        given_names=given_names,
        sex=gender,
        birth_date=birthdate,
        birthplace=birthplace.upper() if birthplace else None,
    )


# -- $identity-status -----------------------------------------------------------------------------


@operation(
    "$identity-status",
    levels=("instance",),
    resource_types=("Patient",),
    methods=("POST",),
    definition=f"{_SOCLE_OPS}/Patient-identity-status",
)
def identity_status_operation(
    req: FhirRequest, ctx: Context, resource_type: str | None, id: str | None
) -> FhirResponse:
    assert id is not None
    params = _parameters(req.body, "$identity-status")
    event = IdentityEvent(
        kind=_one(params, "event", str, required=True),
        document=_one(params, "document", str),
        lookup=_one(params, "lookup", str),
        method=_one(params, "method", str),
        date=_one(params, "date", str),
        reason=_one(params, "reason", str),
    )
    if event.date is not None:
        parse_partial_date(event.date, expression="date")
    change = change_status(ctx.store, ctx.conn, ctx.access, id, event, principal=_PRINCIPAL)
    out = [
        {"name": "before", "valueCode": change.before.status},
        {"name": "after", "valueCode": change.after.status},
        {"name": "patient", "resource": change.version.resource},
    ]
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": out})
