"""Extraction records → FHIR R4 resources shaped as FR Core / the Annuaire Santé IG shape them.

- Practitioner: the person. Identifiers idNat_PS (`urn:oid:1.2.250.1.71.4.2.1`, type IDNPS) and RPPS
  or ADELI; name with civility as prefix and title of practice (DR…) as suffix, as FR Core examples
  do; `qualification` carries the professions (TRE_G15) and savoir-faire (TRE_R38…) as the Annuaire
  IG does; MSSanté mailboxes as `telecom` email with the FR Core email-type extension = MSSANTE.
- PractitionerRole: one per practice situation (person × profession × site × mode): `code` holds the
  profession (TRE_G15) and the mode of practice (TRE_R23), `specialty` the savoir-faire, so that
  `PractitionerRole?role=` and `?specialty=` answer "which GPs", with `practitioner`, `organization`
  (the site) and `location` (its address and position).
- Organization: a site (FINESS établissement / SIRET / technical id), `partOf` its legal entity
  (FINESS EJ) when known; `type` holds the FINESS category (TRE_R66) and sector (TRE_R02).
- Location: the site's address, with `position` (FINESS geolocation, else the commune's centre).
- HealthcareService: what a FINESS establishment provides, typed by its category (TRE_R66, plus an
  ESMS coding for social and médico-social establishments), provided by its Organization.

Ids are derived from national identifiers so that re-importing the same line targets the same
resource (idempotence without a lookup table). `meta.source` says which import owns a resource.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from socle.referentials.directory.codes import (
    ADELI_SYSTEM,
    FINESS_SYSTEM,
    IDENTIFIER_TYPE_SYSTEM,
    IDNAT_PS_SYSTEM,
    MAILBOX_TYPE_EXTENSION,
    RPPS_SYSTEM,
    SIRENE_SYSTEM,
    STRUCTURE_TECH_SYSTEM,
    coding,
    is_medico_social,
    nos_system,
)
from socle.referentials.directory.communes import commune
from socle.referentials.directory.extraction import Activity
from socle.referentials.directory.finess_file import Establishment

__all__ = [
    "ESMS_TAG",
    "INSEE_EXTENSION",
    "SOURCE_FINESS",
    "SOURCE_RPPS",
    "establishment_resources",
    "is_mssante",
    "legal_entity",
    "mssante_addresses",
    "practitioner",
    "practitioner_id",
    "practitioner_role",
    "role_id",
    "site_resources",
]

SOURCE_RPPS = "urn:x-socle:directory:rpps"
SOURCE_FINESS = "urn:x-socle:directory:finess"
INSEE_EXTENSION = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
# Organization.type coding marking a social / médico-social establishment (ESMS), searchable by `type`.
ESMS_TAG = {"system": "https://socle.esante.example/fhir/CodeSystem/secteur", "code": "ESMS"}

Resource = dict[str, Any]


def _identifier(system: str, value: str, type_code: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": type_code}]},
        "system": system,
        "value": value,
    }


def is_mssante(address: str) -> bool:
    """MSSanté mailboxes live under the `mssante.fr` domain (e.g. `…@medecin.mssante.fr`)."""
    domain = address.rpartition("@")[2].lower()
    return bool(domain) and (domain == "mssante.fr" or domain.endswith(".mssante.fr"))


def _mailbox(address: str) -> dict[str, Any]:
    return {
        "extension": [{"url": MAILBOX_TYPE_EXTENSION, "valueCoding": coding("TRE_R256", "MSSANTE")}],
        "system": "email",
        "value": address,
        "use": "work",
    }


def mssante_addresses(resource: Resource) -> list[str]:
    """The MSSanté addresses of a Practitioner, PractitionerRole or Organization (for messaging)."""
    found = []
    for telecom in resource.get("telecom", ()):
        if telecom.get("system") != "email":
            continue
        kinds = [e.get("valueCoding", {}).get("code") for e in telecom.get("extension", ())]
        if "MSSANTE" in kinds or is_mssante(str(telecom.get("value", ""))):
            found.append(str(telecom["value"]))
    return found


def practitioner_id(idnat: str) -> str:
    return f"ps-{idnat}"


def role_id(a: Activity) -> str:
    key = "|".join((a.idnat, a.profession_code, a.structure_key, a.mode_code, a.sector_code))
    return "pr-" + hashlib.sha1(key.encode()).hexdigest()[:24]


def practitioner(lines: Sequence[Activity]) -> Resource:
    """The person, from all the lines of one idNat_PS (professions and savoir-faire are unioned)."""
    first = lines[0]
    identifiers = [_identifier(IDNAT_PS_SYSTEM, first.idnat, "IDNPS")]
    if first.id_type == "8":
        identifiers.append(_identifier(RPPS_SYSTEM, first.identifier, "RPPS"))
    else:
        identifiers.append(_identifier(ADELI_SYSTEM, first.identifier, "ADELI"))
    name: dict[str, Any] = {"use": "usual", "family": first.family}
    if first.given:
        name["given"] = [first.given]
    if first.civility_code:
        name["prefix"] = [first.civility_code]
    if first.exercise_title_code:
        name["suffix"] = [first.exercise_title_code]
    qualifications: list[Resource] = []
    seen: set[tuple[str, str]] = set()
    mailboxes: list[str] = []
    for a in lines:
        for system, code, label in (
            ("TRE_G15", a.profession_code, a.profession),
            (_skill_system(a), a.skill_code, a.skill),
        ):
            if code and (system, code) not in seen:
                seen.add((system, code))
                qualifications.append({"code": {"coding": [coding(system, code, label)]}})
        if a.email and is_mssante(a.email) and a.email not in mailboxes:
            mailboxes.append(a.email)
    body: Resource = {
        "resourceType": "Practitioner",
        "id": practitioner_id(first.idnat),
        "meta": {"source": SOURCE_RPPS},
        "identifier": identifiers,
        "active": True,
        "name": [name],
    }
    if mailboxes:
        body["telecom"] = [_mailbox(m) for m in mailboxes]
    if qualifications:
        body["qualification"] = qualifications
    return body


def _skill_system(a: Activity) -> str:
    """Savoir-faire type → NOS table (S spécialité ordinale → TRE_R38; others by type code)."""
    return {
        "S": "TRE_R38",
        "CEX": "TRE_R40",
        "C": "TRE_R39",
        "PAC": "TRE_R44",
        "DSM": "TRE_R42",
        "CAPA": "TRE_R43",
        "FQ": "TRE_R45",
    }.get(a.skill_type_code, "TRE_R38")


def practitioner_role(lines: Sequence[Activity]) -> Resource:
    """One practice situation, from the lines sharing `role_id` (their savoir-faire are unioned)."""
    a = lines[0]
    codes = [{"coding": [coding("TRE_G15", a.profession_code, a.profession)]}]
    if a.mode_code:
        codes.append({"coding": [coding("TRE_R23", a.mode_code, a.mode)]})
    specialties, seen = [], set()
    for line in lines:
        if line.skill_code and line.skill_code not in seen:
            seen.add(line.skill_code)
            specialties.append({"coding": [coding(_skill_system(line), line.skill_code, line.skill)]})
    display = " ".join(
        p for p in (a.exercise_title_code.title() if a.exercise_title_code else "", a.given, a.family) if p
    )
    body: Resource = {
        "resourceType": "PractitionerRole",
        "id": role_id(a),
        "meta": {"source": SOURCE_RPPS},
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner_id(a.idnat)}", "display": display},
        "code": codes,
    }
    if specialties:
        body["specialty"] = specialties
    site = a.structure_key
    if site:
        body["organization"] = {"reference": f"Organization/{site}"}
        if a.structure_name:
            body["organization"]["display"] = a.structure_name
        body["location"] = [{"reference": f"Location/{site}"}]
    telecom = [{"system": "phone", "value": p, "use": "work"} for p in a.phones]
    if a.email and not is_mssante(a.email):
        telecom.append({"system": "email", "value": a.email, "use": "work"})
    if telecom:
        body["telecom"] = telecom
    return body


def _address(
    lines: Sequence[str], postcode: str, city: str, commune_code: str, country: str = ""
) -> Resource:
    address: Resource = {"use": "work", "type": "both"}
    if commune_code:
        address["extension"] = [
            {"url": INSEE_EXTENSION, "valueCoding": {"system": nos_system("TRE_R13"), "code": commune_code}}
        ]
    if lines:
        address["line"] = list(lines)
    if city:
        address["city"] = city
    if postcode:
        address["postalCode"] = postcode
    address["country"] = country or "FRA"
    return address


def _commune_position(code: str) -> dict[str, float] | None:
    place = commune(code) if code else None
    if place is None or place.latitude is None or place.longitude is None:
        return None
    return {"latitude": round(place.latitude, 5), "longitude": round(place.longitude, 5)}


def legal_entity(finess: str, name: str | None = None, source: str = SOURCE_RPPS) -> Resource:
    """A legal entity (FINESS EJ) known by its number; the FINESS import completes it."""
    body: Resource = {
        "resourceType": "Organization",
        "id": f"finess-{finess}",
        "meta": {"source": source},
        "active": True,
        "identifier": [_identifier(FINESS_SYSTEM, finess, "FINEJ")],
    }
    if name:
        body["name"] = name
    return body


def site_resources(a: Activity) -> tuple[Resource, Resource] | None:
    """(Organization, Location) of an activity's site, None when the line names no structure."""
    site = a.structure_key
    if not site:
        return None
    identifiers = []
    if a.finess_site:
        identifiers.append(_identifier(FINESS_SYSTEM, a.finess_site, "FINEG"))
    if a.siret:
        identifiers.append(_identifier(SIRENE_SYSTEM, a.siret, "SIRET"))
    if a.siren:
        identifiers.append(_identifier(SIRENE_SYSTEM, a.siren, "SIREN"))
    if a.structure_id:
        identifiers.append(_identifier(STRUCTURE_TECH_SYSTEM, a.structure_id, "INTRN"))
    name = a.structure_name or a.structure_brand or site
    org: Resource = {
        "resourceType": "Organization",
        "id": site,
        "meta": {"source": SOURCE_RPPS},
        "active": True,
        "identifier": identifiers,
        "name": name,
    }
    if a.sector_code:
        org["type"] = [{"coding": [coding("TRE_R02", a.sector_code, a.sector)]}]
    if a.structure_brand and a.structure_brand != name:
        org["alias"] = [a.structure_brand]
    telecom = [{"system": "phone", "value": p} for p in a.phones]
    if a.fax:
        telecom.append({"system": "fax", "value": a.fax})
    if telecom:
        org["telecom"] = telecom
    country = "FRA" if not a.country_code or a.country_code == "99100" else a.country or a.country_code
    address = _address(a.address_lines, a.postcode, a.city, a.commune_code, country)
    org["address"] = [address]
    if a.finess_legal:
        org["partOf"] = {"reference": f"Organization/finess-{a.finess_legal}"}
    location: Resource = {
        "resourceType": "Location",
        "id": site,
        "meta": {"source": SOURCE_RPPS},
        "status": "active",
        "mode": "instance",
        "name": name,
        "address": address,
        "managingOrganization": {"reference": f"Organization/{site}"},
    }
    position = _commune_position(a.commune_code)
    if position is not None:
        location["position"] = position
    return org, location


def establishment_resources(e: Establishment, position: tuple[float, float] | None) -> list[Resource]:
    """Legal entity stub, establishment Organization, Location and HealthcareService of one establishment."""
    site = f"finess-{e.finess}"
    types = []
    if e.category:
        types.append({"coding": [coding("TRE_R66", e.category, e.category_label)]})
        if is_medico_social(e.category):
            types.append({"coding": [ESMS_TAG]})
    identifiers = [_identifier(FINESS_SYSTEM, e.finess, "FINEG")]
    if e.siret:
        identifiers.append(_identifier(SIRENE_SYSTEM, e.siret, "SIRET"))
    address = _address(e.address_lines, e.postcode, e.city, e.commune_code)
    org: Resource = {
        "resourceType": "Organization",
        "id": site,
        "meta": {"source": SOURCE_FINESS},
        "active": True,
        "identifier": identifiers,
        "name": e.name or e.short_name or e.finess,
        "address": [address],
    }
    if types:
        org["type"] = types
    if e.short_name and e.short_name != org["name"]:
        org["alias"] = [e.short_name]
    telecom = [{"system": "phone", "value": e.phone}] if e.phone else []
    if e.fax:
        telecom.append({"system": "fax", "value": e.fax})
    if telecom:
        org["telecom"] = telecom
    resources: list[Resource] = []
    if e.legal_finess:
        org["partOf"] = {"reference": f"Organization/finess-{e.legal_finess}"}
        resources.append(legal_entity(e.legal_finess, source=SOURCE_FINESS))
    location: Resource = {
        "resourceType": "Location",
        "id": site,
        "meta": {"source": SOURCE_FINESS},
        "status": "active",
        "mode": "instance",
        "name": org["name"],
        "address": address,
        "managingOrganization": {"reference": f"Organization/{site}"},
    }
    if position is not None:
        location["position"] = {"latitude": round(position[0], 5), "longitude": round(position[1], 5)}
    else:
        approx = _commune_position(e.commune_code)
        if approx is not None:
            location["position"] = approx
    resources.extend((org, location))
    if e.category:
        # What the establishment provides, by its FINESS category: lets `HealthcareService?
        # service-category=…` (with `location.address-…` chains) find an EHPAD, an IME or a SSIAD.
        resources.append(
            {
                "resourceType": "HealthcareService",
                "id": site,
                "meta": {"source": SOURCE_FINESS},
                "active": True,
                "providedBy": {"reference": f"Organization/{site}", "display": org["name"]},
                "category": types,
                "name": org["name"],
                "location": [{"reference": f"Location/{site}"}],
            }
        )
    return resources
