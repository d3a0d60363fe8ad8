"""Directory operations: professionals near a commune, identifier checks.

- `GET|POST [base]/PractitionerRole/$near?commune=75056&distance=10&role=…&specialty=…&_count=20`
  (or `latitude=&longitude=` instead of `commune`; `commune` takes an INSEE code, a postcode or a
  name): a searchset Bundle of the active PractitionerRoles whose Location lies within `distance` km
  (default 10, at most 200), nearest first, each entry's `search` carrying the R4 `location-distance`
  extension; their Practitioner and Location follow as `include` entries. Other parameters are
  PractitionerRole search criteria (`role`, `specialty`, `organization`, …). Not an HL7 operation:
  R4's own `Location?near=` (`socle.store.positions`) finds Locations; this answers the
  professionals' question in one call. Commune centres are approximate (see `communes.py`).
- `GET [base]/$check-identifier?kind=rpps&value=…`: a Parameters resource saying whether an RPPS,
  ADELI, idNat_PS, FINESS, SIREN or SIRET is valid, with the warnings (an invalid one is a 400).
"""

from __future__ import annotations

from typing import Any

from socle.api._paging import resource_entry
from socle.api.operation_table import operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import Invalid, NotFound
from socle.referentials.directory.communes import find_communes
from socle.referentials.directory.identifiers import check_identifier
from socle.referentials.directory.near import MAX_DISTANCE_KM, roles_near

_DISTANCE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/location-distance"
_OWN = {"commune", "latitude", "longitude", "distance", "_count", "_format", "_pretty"}
_MAX_COUNT = 200


def _float(req: FhirRequest, name: str, default: float | None = None) -> float | None:
    raw = req.param(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise Invalid(f"{name} must be a number, not {raw!r}") from None


def _point(req: FhirRequest) -> tuple[float, float, dict[str, Any] | None]:
    text = req.param("commune")
    if text:
        places = [c for c in find_communes(text) if c.latitude is not None and c.longitude is not None]
        if not places:
            raise NotFound(f"No commune {text!r} with a known position (INSEE code, postcode or name)")
        place = places[0]
        assert place.latitude is not None and place.longitude is not None
        return (
            place.latitude,
            place.longitude,
            {"code": place.code, "name": place.name, "precision": place.precision},
        )
    lat, lon = _float(req, "latitude"), _float(req, "longitude")
    if lat is None or lon is None:
        raise Invalid("$near needs commune, or latitude and longitude")
    return lat, lon, None


@operation("$near", levels=("type",), resource_types=("PractitionerRole",), methods=("GET", "POST"))
def near_operation(req: FhirRequest, ctx: Context, _type: str | None, _id: str | None) -> FhirResponse:
    lat, lon, place = _point(req)
    km = _float(req, "distance", 10.0)
    assert km is not None
    if not 0 < km <= MAX_DISTANCE_KM:
        raise Invalid(f"distance must be in (0, {MAX_DISTANCE_KM:g}] km")
    count = int(_float(req, "_count", 50) or 50)
    if not 1 <= count <= _MAX_COUNT:
        raise Invalid(f"_count must be between 1 and {_MAX_COUNT}")
    criteria = [(k, v) for k, v in req.query if k not in _OWN]
    found = roles_near(ctx.store, ctx.conn, ctx.access, lat, lon, km, criteria=criteria, count=count)
    entries: list[dict[str, Any]] = []
    for near in found:
        entry = resource_entry(ctx, near.role)
        entry["search"] = {
            "mode": "match",
            "extension": [
                {
                    "url": _DISTANCE_EXTENSION,
                    "valueDistance": {
                        "value": round(near.distance_km, 3),
                        "unit": "km",
                        "system": "http://unitsofmeasure.org",
                        "code": "km",
                    },
                }
            ],
        }
        entries.append(entry)
    entries.extend(_included(ctx, [n.role.resource for n in found]))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": entries,
    }
    if place is not None:  # say which commune and how precise its centre is (search.html#errors)
        note = (
            f"Distances from the centre of {place['name']} ({place['code']}), precision: {place['precision']}"
        )
        entries.append(
            {
                "search": {"mode": "outcome"},
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational", "diagnostics": note}],
                },
            }
        )
    return FhirResponse(200, bundle)


def _included(ctx: Context, roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Practitioners and Locations the roles point to, once each, as `include` entries."""
    wanted: dict[str, list[str]] = {"Practitioner": [], "Location": []}
    for role in roles:
        refs = [role.get("practitioner", {}).get("reference", "")] + [
            loc.get("reference", "") for loc in role.get("location", ())
        ]
        for ref in refs:
            kind, _, id_ = ref.partition("/")
            if kind in wanted and id_ and id_ not in wanted[kind]:
                wanted[kind].append(id_)
    entries = []
    for kind, ids in wanted.items():
        if not ids:
            continue
        by_id = {v.id: v for v in ctx.store.get_by_ids(ctx.conn, kind, ids, ctx.access)}
        for id_ in ids:  # nearest first, as the roles
            if id_ in by_id:
                entry = resource_entry(ctx, by_id[id_])
                entry["search"] = {"mode": "include"}
                entries.append(entry)
    return entries


@operation("$check-identifier", levels=("system",), methods=("GET", "POST"))
def check_identifier_operation(
    req: FhirRequest, _ctx: Context, _type: str | None, _id: str | None
) -> FhirResponse:
    kind, value = req.param("kind"), req.param("value")
    if not kind or value is None:
        raise Invalid("$check-identifier needs kind (rpps, adeli, idnat_ps, finess, siren, siret) and value")
    result = check_identifier(kind, value)
    parameters: list[dict[str, Any]] = [
        {"name": "valid", "valueBoolean": True},
        {"name": "kind", "valueCode": result.kind},
        {"name": "value", "valueString": result.value},
    ]
    parameters += [{"name": "warning", "valueString": w} for w in result.warnings]
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": parameters})
