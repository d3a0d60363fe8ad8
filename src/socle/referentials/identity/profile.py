"""An INS identity on a FHIR Patient, shaped as the FR Core profiles do, and read back as `Traits`.

Sources (shared/specs/ins.md §2, §4): `fr-core-patient-ins` (Interop-Sante/hl7.fhir.fr.core,
`input/fsh/profiles/FRCorePatientINSProfile.fsh`) and its extensions:
- identifier slices INS-NIR (`urn:oid:1.2.250.1.213.1.4.8`, use official, or old once deactivated),
  INS-NIA (`.4.9`, use temp), INS-NIR-TEST (`.4.10`), INS-NIR-DEMO (`.4.11`), typed with
  `fr-core-cs-v2-0203`;
- `name[officialName]` (use official): the birth name, exactly one `given` = the first birth given
  name, and the extension `fr-core-patient-birth-list-given-name` with the whole list; the used name
  goes in a second name with use `usual`;
- `extension[birthPlace]` (the international `patient-birthPlace`) whose address carries the
  `fr-core-address-insee-code` extension (commune code, or 99 + country code abroad);
- `extension[identityReliability]` (`fr-core-identity-reliability`) with `identityStatus`
  (PROV | RECUP | VALI | QUAL), `comment` (attributes such as DOUT, FICT, HOMD), `methodCollection`,
  `dateCollection`, `validationMode` (document checked) and `validationDate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socle.referentials.identity.traits import PartialDate, Traits, parse_partial_date

__all__ = [
    "BIRTH_LIST_GIVEN_NAME",
    "BIRTH_PLACE",
    "CS_COMMENT",
    "CS_IDENTIFIER_TYPE",
    "CS_METHOD",
    "CS_STATUS",
    "CS_VALIDATION_MODE",
    "IDENTITY_RELIABILITY",
    "INSEE_CODE",
    "INS_SYSTEMS",
    "OID_NIA",
    "OID_NIR",
    "OID_NIR_DEMO",
    "OID_NIR_TEST",
    "PROFILE_INS",
    "Reliability",
    "ins_identifier",
    "ins_of",
    "patient_resource",
    "read_reliability",
    "traits_from_patient",
    "write_reliability",
]

FR_CORE = "https://hl7.fr/ig/fhir/core"
PROFILE_INS = f"{FR_CORE}/StructureDefinition/fr-core-patient-ins"
PROFILE_PATIENT = f"{FR_CORE}/StructureDefinition/fr-core-patient"
IDENTITY_RELIABILITY = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
BIRTH_LIST_GIVEN_NAME = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
INSEE_CODE = f"{FR_CORE}/StructureDefinition/fr-core-address-insee-code"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
CS_IDENTIFIER_TYPE = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
CS_STATUS = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
CS_COMMENT = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status-comment"
CS_METHOD = f"{FR_CORE}/CodeSystem/fr-core-cs-method-collection"
CS_VALIDATION_MODE = f"{FR_CORE}/CodeSystem/fr-core-cs-mode-validation-identity"
# Commune codes (TRE_R13). A birth abroad carries 99 + the INSEE country code in the same extension;
# the code system for those is not pinned down in FR Core (UNVERIFIED), so such codings carry no system.
CS_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"

OID_NIR = "urn:oid:1.2.250.1.213.1.4.8"
OID_NIA = "urn:oid:1.2.250.1.213.1.4.9"
OID_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"
OID_NIR_DEMO = "urn:oid:1.2.250.1.213.1.4.11"
# system → (identifier type code, fixed use)
INS_SYSTEMS: dict[str, tuple[str, str]] = {
    OID_NIR: ("INS-NIR", "official"),
    OID_NIA: ("INS-NIA", "temp"),
    OID_NIR_TEST: ("INS-NIR-TEST", "official"),
    OID_NIR_DEMO: ("INS-NIR-DEMO", "official"),
}


@dataclass(frozen=True)
class Reliability:
    """The content of `extension[identityReliability]`."""

    status: str = "PROV"
    comments: tuple[str, ...] = ()  # attribute codes: DOUT, FICT, HOMD, HOMA, DOUA, DESA, ...
    method: str | None = None  # SM, CV, INSI, CB, RFID, AV
    collection_date: str | None = None  # date of the INSi call
    validation_mode: str | None = None  # document checked: CN, PA, CS, ...
    validation_date: str | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())  # sub-extensions kept as received


def ins_identifier(value: str, system: str = OID_NIR, *, use: str | None = None) -> dict[str, Any]:
    """An INS identifier with the slice's fixed type and use (`old` for a deactivated INS)."""
    code, fixed_use = INS_SYSTEMS[system]
    return {
        "use": use or fixed_use,
        "type": {"coding": [{"system": CS_IDENTIFIER_TYPE, "code": code}]},
        "system": system,
        "value": value,
    }


def ins_of(patient: dict[str, Any], *, include_old: bool = False) -> list[tuple[str, str, str]]:
    """(system, value, use) of the INS identifiers of a Patient, current ones first."""
    found = []
    for ident in patient.get("identifier") or []:
        if not isinstance(ident, dict) or ident.get("system") not in INS_SYSTEMS:
            continue
        use = ident.get("use") or INS_SYSTEMS[ident["system"]][1]
        if use == "old" and not include_old:
            continue
        if isinstance(ident.get("value"), str):
            found.append((ident["system"], ident["value"], use))
    return sorted(found, key=lambda item: item[2] == "old")


def read_reliability(patient: dict[str, Any]) -> Reliability:
    """The identity status and its evidence; PROV when absent (RNIV: every identity has a status)."""
    for ext in patient.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == IDENTITY_RELIABILITY:
            return _parse_reliability(ext)
    return Reliability()


def _parse_reliability(ext: dict[str, Any]) -> Reliability:
    status, method, coll_date, mode, val_date = "PROV", None, None, None, None
    comments: list[str] = []
    extra: list[tuple[str, Any]] = []
    for sub in ext.get("extension") or []:
        if not isinstance(sub, dict):
            continue
        url = sub.get("url")
        coding = sub.get("valueCoding") or (sub.get("valueCodeableConcept") or {}).get("coding", [{}])[0]
        code = coding.get("code") if isinstance(coding, dict) else None
        if url == "identityStatus" and code:
            status = code
        elif url == "comment" and code:
            comments.append(code)
        elif url == "methodCollection":
            method = code
        elif url == "validationMode":
            mode = code
        elif url == "dateCollection":
            coll_date = sub.get("valueDate")
        elif url == "validationDate":
            val_date = sub.get("valueDate")
        else:
            extra.append((str(url), sub))
    return Reliability(status, tuple(comments), method, coll_date, mode, val_date, tuple(extra))


def write_reliability(patient: dict[str, Any], reliability: Reliability) -> dict[str, Any]:
    """The Patient with its identityReliability extension replaced (other extensions kept in place)."""
    subs: list[dict[str, Any]] = []
    if reliability.method:
        subs.append(
            {"url": "methodCollection", "valueCoding": {"system": CS_METHOD, "code": reliability.method}}
        )
    if reliability.collection_date:
        subs.append({"url": "dateCollection", "valueDate": reliability.collection_date})
    subs.append({"url": "identityStatus", "valueCoding": {"system": CS_STATUS, "code": reliability.status}})
    subs.extend(
        {"url": "comment", "valueCoding": {"system": CS_COMMENT, "code": code}}
        for code in reliability.comments
    )
    if reliability.validation_date:
        subs.append({"url": "validationDate", "valueDate": reliability.validation_date})
    if reliability.validation_mode:
        subs.append(
            {
                "url": "validationMode",
                "valueCoding": {"system": CS_VALIDATION_MODE, "code": reliability.validation_mode},
            }
        )
    subs.extend(sub for _, sub in reliability.extra)
    new_ext = {"url": IDENTITY_RELIABILITY, "extension": subs}
    others = [
        e
        for e in patient.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") == IDENTITY_RELIABILITY)
    ]
    result = dict(patient)
    result["extension"] = [new_ext, *others]
    return result


def birthplace_extension(code: str, city: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": code} if code.startswith("99") else {"system": CS_COMMUNE, "code": code}
    if city:
        coding["display"] = city
    address: dict[str, Any] = {"extension": [{"url": INSEE_CODE, "valueCoding": coding}]}
    if city:
        address["city" if not code.startswith("99") else "country"] = city
    return {"url": BIRTH_PLACE, "valueAddress": address}


def patient_resource(
    traits: Traits,
    *,
    reliability: Reliability,
    id: str | None = None,
    ins_system: str | None = None,
    birthplace_name: str | None = None,
) -> dict[str, Any]:
    """A Patient carrying an identity with FR Core shapes.

    The INS identifier is written only when `ins_system` is given: the matricule is known once INSi
    was called (RECUP, QUAL); a PROV or VALI identity carries no INS (ins.md §4). The `fr-core-patient-ins`
    profile is claimed only for a qualified identity, the only one that may be exchanged.
    """
    patient: dict[str, Any] = {"resourceType": "Patient"}
    if id:
        patient["id"] = id
    profiles = [PROFILE_PATIENT] + ([PROFILE_INS] if reliability.status == "QUAL" else [])
    patient["meta"] = {"profile": profiles}
    extensions: list[dict[str, Any]] = []
    if traits.birthplace:
        extensions.append(birthplace_extension(traits.birthplace, birthplace_name))
    patient["extension"] = extensions
    patient = write_reliability(patient, reliability)
    if traits.ins and ins_system:
        patient["identifier"] = [ins_identifier(traits.ins, ins_system)]
    names: list[dict[str, Any]] = []
    if traits.birth_name or traits.given_names:
        official: dict[str, Any] = {"use": "official"}
        if traits.birth_name:
            official["family"] = traits.birth_name
        if traits.given_names:
            official["given"] = [traits.given_names[0]]
            official["extension"] = [
                {"url": BIRTH_LIST_GIVEN_NAME, "valueString": " ".join(traits.given_names)}
            ]
        names.append(official)
    if traits.used_name or traits.used_given:
        usual: dict[str, Any] = {"use": "usual"}
        if traits.used_name:
            usual["family"] = traits.used_name
        usual["given"] = [traits.used_given or (traits.given_names[0] if traits.given_names else "")]
        if not usual["given"][0]:
            del usual["given"]
        names.append(usual)
    if names:
        patient["name"] = names
    if traits.sex:
        patient["gender"] = traits.sex
    if traits.birth_date:
        patient["birthDate"] = traits.birth_date.to_fhir()
    return patient


def traits_from_patient(patient: dict[str, Any], *, strict: bool = False) -> Traits:
    """The traits of a Patient, whatever its profile (FR Core, or a plain R4 Patient).

    Birth name: the `official` name, unless a `maiden` name exists (some systems put the married name
    as official and the birth name as maiden); the used name is the `usual` one (or the official one
    when a maiden name took the birth-name role). Given names: the birth list extension (space
    separated, as INSi returns it) when present, else `given`. With `strict`, a malformed birthDate
    raises `Invalid` naming `Patient.birthDate`; otherwise it is treated as missing.
    """
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    by_use: dict[str, dict[str, Any]] = {}
    for name in names:
        by_use.setdefault(str(name.get("use") or ""), name)
    maiden = by_use.get("maiden")
    official = by_use.get("official") or by_use.get("") or (names[0] if names else None)
    usual = by_use.get("usual")
    birth = maiden or official
    used = usual or (official if maiden else None)
    birth_name = _family(birth)
    given = _given_list(birth) or _given_list(official) or _given_list(usual)
    used_name = _family(used)
    if used_name and birth_name and used_name == birth_name:
        used_name = None
    used_given_list = _given_list(usual) if usual else []
    used_given = used_given_list[0] if used_given_list and used_given_list[0] not in given[:1] else None
    birth_date: PartialDate | None = None
    raw_date = patient.get("birthDate")
    if raw_date is not None:
        try:
            birth_date = parse_partial_date(raw_date, expression="Patient.birthDate")
        except Exception:
            if strict:
                raise
    sex = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    ins = ins_of(patient)
    others = tuple(
        f"{i.get('system', '')}|{i['value']}"
        for i in patient.get("identifier") or []
        if isinstance(i, dict) and isinstance(i.get("value"), str) and i.get("system") not in INS_SYSTEMS
    )
    return Traits(
        birth_name=birth_name,
        given_names=tuple(given),
        birth_date=birth_date,
        sex=sex,
        birthplace=_birthplace(patient),
        used_name=used_name,
        used_given=used_given,
        ins=ins[0][1] if ins else None,
        other_identifiers=others,
    )


def _family(name: dict[str, Any] | None) -> str | None:
    if not name:
        return None
    family = name.get("family")
    return family.strip() or None if isinstance(family, str) else None


def _given_list(name: dict[str, Any] | None) -> list[str]:
    if not name:
        return []
    for ext in name.get("extension") or []:
        if (
            isinstance(ext, dict)
            and ext.get("url") == BIRTH_LIST_GIVEN_NAME
            and isinstance(ext.get("valueString"), str)
        ):
            listed: list[str] = ext["valueString"].split()
            if listed:
                return listed
    return [g.strip() for g in name.get("given") or [] if isinstance(g, str) and g.strip()]


def _birthplace(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension") or []:
        if not isinstance(ext, dict) or ext.get("url") != BIRTH_PLACE:
            continue
        address = ext.get("valueAddress") or {}
        for sub in address.get("extension") or []:
            if isinstance(sub, dict) and sub.get("url") == INSEE_CODE:
                code = (sub.get("valueCoding") or {}).get("code")
                if isinstance(code, str) and len(code) == 5:
                    return code.upper()
    return None
