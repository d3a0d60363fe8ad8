"""Identity statuses of the RNIV (PROV, RECUP, VALI, QUAL), their transitions and what each allows.

The four statuses are the combinations of two independent facts (shared/specs/ins.md §4):
- the INS was retrieved from INSi (Vitale card or traits search) and matches the person → RECUP;
- a high-trust identity document was checked by an operator → VALI;
- both → QUAL; neither → PROV.
So the machine keeps the two facts and derives the status; an event sets or clears one fact, which
is how a status goes down as well as up (a document found false takes QUAL back to RECUP).

Attributes DOUT (doubtful) and FICT (fictitious) lock the identity in PROV and forbid any INSi
call; they are mutually exclusive (RNIV EXI SI 09). An identity read from the appli carte Vitale
(method AV) is qualified at once (RNIV 1 v2.0 §4.3.4). Only a qualified INS may be shared with other
actors or used for the shared record: `may_share_ins` and `shareable_patient` say so in one place.

High-trust documents: CN (CNI), PA (passport), CS (residence permit), eCN (electronic CNI), IN
(Identité Numérique La Poste), AV (appli carte Vitale). The other validation-mode codes of FR Core are
recorded but do not validate (UNVERIFIED: the RNIV list for minors was not retrieved, ins.md §6).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from socle.fhir.errors import Invalid, Issue, Unprocessable
from socle.referentials.identity.nir import Nir, parse_nir
from socle.referentials.identity.profile import (
    INS_SYSTEMS,
    PROFILE_INS,
    Reliability,
    ins_of,
    read_reliability,
    traits_from_patient,
)
from socle.referentials.identity.traits import Traits

__all__ = [
    "EVENTS",
    "HIGH_TRUST_DOCUMENTS",
    "STATUSES",
    "IdentityEvent",
    "apply_event",
    "check_patient_identity",
    "identity_display",
    "may_share_ins",
    "nir_trait_issues",
    "shareable_patient",
]

STATUSES = {
    "PROV": "Identité provisoire",
    "RECUP": "Identité récupérée",
    "VALI": "Identité validée",
    "QUAL": "Identité qualifiée",
}
HIGH_TRUST_DOCUMENTS = frozenset({"CN", "PA", "CS", "eCN", "IN", "AV"})
DOCUMENT_CODES = frozenset({"CN", "PA", "CS", "eCN", "IN", "AV", "LECV", "AN", "LEP", "CC", "ANCV"})
LOCKING_ATTRIBUTES = ("DOUT", "FICT")
# Collection methods that mean "INS obtained from the national service" (SM is manual entry).
_INSI_METHODS = frozenset({"INSI", "CV", "CB", "RFID", "AV"})
EVENTS = {
    "insi-retrieved": "the INS was retrieved from INSi and matches the person",
    "insi-invalidated": "the INS no longer matches (INSi verification failed, traits corrected)",
    "document-checked": "an identity document was checked (document type required)",
    "document-false": "the document that validated the identity is false or not the person's",
    "vitale-app": "identity read from the appli carte Vitale: qualified at once",
    "doubt": "the identity is doubtful (DOUT): locked in PROV",
    "fictitious": "the identity is fictitious (FICT): locked in PROV",
    "clear-doubt": "the doubt is lifted",
}


@dataclass(frozen=True)
class IdentityEvent:
    kind: str
    document: str | None = None  # validation mode code for document-checked
    lookup: str | None = None  # id of the $ins-lookup call that returned the INS (insi-retrieved)
    method: str | None = None  # collection method: INSI (traits) or CV (Vitale card), CB, ...
    date: str | None = None  # YYYY-MM-DD of the event
    reason: str | None = None


def _axes(reliability: Reliability) -> tuple[bool, bool]:
    """(INS retrieved, document checked), from the status or, for a locked PROV, from the evidence kept."""
    status = reliability.status
    insi = status in ("RECUP", "QUAL") or reliability.method in _INSI_METHODS
    document = status in ("VALI", "QUAL") or reliability.validation_mode in HIGH_TRUST_DOCUMENTS
    return insi, document


def _status(insi: bool, document: bool) -> str:
    return {(False, False): "PROV", (True, False): "RECUP", (False, True): "VALI", (True, True): "QUAL"}[
        (insi, document)
    ]


def apply_event(current: Reliability, event: IdentityEvent) -> Reliability:
    """The reliability after `event`; `Unprocessable` (422) explains a transition the rules refuse."""
    if event.kind not in EVENTS:
        raise Invalid(
            f"Unknown identity event {event.kind!r}; expected one of {', '.join(EVENTS)}", expression="event"
        )
    insi, document = _axes(current)
    comments = list(current.comments)
    locked = [c for c in comments if c in LOCKING_ATTRIBUTES]
    result = current
    if event.kind in ("insi-retrieved", "vitale-app") and locked:
        raise Unprocessable(
            f"The identity is flagged {locked[0]}: it stays provisional and must not be sent to INSi "
            "(RNIV EXI SI 09); lift the flag first (event clear-doubt)",
            expression="event",
        )
    if event.kind == "insi-retrieved":
        if not event.lookup:
            raise Invalid(
                "insi-retrieved needs the INS lookup that returned the identity", expression="lookup"
            )
        insi = True
        result = replace(result, method=event.method or "INSI", collection_date=event.date)
    elif event.kind == "insi-invalidated":
        insi = False
        result = replace(result, method=None, collection_date=None)
    elif event.kind == "document-checked":
        if not event.document:
            raise Invalid("document-checked needs the type of document checked", expression="document")
        if event.document not in DOCUMENT_CODES:
            raise Invalid(
                f"Unknown document type {event.document!r}; "
                f"expected one of {', '.join(sorted(DOCUMENT_CODES))}",
                expression="document",
            )
        if event.document not in HIGH_TRUST_DOCUMENTS:
            raise Unprocessable(
                f"A {event.document} document does not validate an identity; high-trust documents are "
                f"{', '.join(sorted(HIGH_TRUST_DOCUMENTS))}",
                expression="document",
            )
        if locked:
            raise Unprocessable(
                f"The identity is flagged {locked[0]}: it stays provisional until the flag is lifted",
                expression="event",
            )
        document = True
        result = replace(result, validation_mode=event.document, validation_date=event.date)
    elif event.kind == "document-false":
        document = False
        result = replace(result, validation_mode=None, validation_date=None)
    elif event.kind == "vitale-app":
        insi, document = True, True
        result = replace(
            result, method="AV", collection_date=event.date, validation_mode="AV", validation_date=event.date
        )
    elif event.kind in ("doubt", "fictitious"):
        flag = "DOUT" if event.kind == "doubt" else "FICT"
        other = "FICT" if flag == "DOUT" else "DOUT"
        if other in comments:
            raise Unprocessable(
                f"DOUT and FICT are mutually exclusive (RNIV EXI SI 09): the identity is already {other}",
                expression="event",
            )
        if flag not in comments:
            comments.append(flag)
    elif event.kind == "clear-doubt":
        comments = [c for c in comments if c not in LOCKING_ATTRIBUTES]
    locked_now = any(c in LOCKING_ATTRIBUTES for c in comments)
    # A locked identity keeps its evidence but is PROV; lifting the flag restores the derived status.
    status = "PROV" if locked_now else _status(insi, document)
    return replace(result, status=status, comments=tuple(comments))


def may_share_ins(reliability: Reliability) -> bool:
    """Only a qualified, unflagged INS is sent to other actors or used for the shared record."""
    return reliability.status == "QUAL" and not any(c in LOCKING_ATTRIBUTES for c in reliability.comments)


def shareable_patient(patient: dict[str, Any]) -> dict[str, Any]:
    """The Patient as it may leave Socle: without INS identifiers unless the identity is qualified,
    and without the `fr-core-patient-ins` profile claim in that case."""
    if may_share_ins(read_reliability(patient)):
        return patient
    result = copy.deepcopy(patient)
    result["identifier"] = [
        i
        for i in result.get("identifier") or []
        if not (isinstance(i, dict) and i.get("system") in INS_SYSTEMS)
    ]
    if not result["identifier"]:
        del result["identifier"]
    meta = result.get("meta") or {}
    if meta.get("profile"):
        meta["profile"] = [p for p in meta["profile"] if p != PROFILE_INS]
    return result


def identity_display(patient: dict[str, Any]) -> dict[str, Any]:
    """What an identity screen or a printed label shows: the INS traits apart from the used names, the
    status in words, and the matricule only when INSi returned it (RECUP, QUAL) with whether it may be
    shared. Exact RNIV layout rules are UNVERIFIED (ins.md §6); this is the content, not the layout."""
    reliability = read_reliability(patient)
    traits = traits_from_patient(patient)
    ins = ins_of(patient)
    shown: dict[str, Any] = {
        "status": reliability.status,
        "statusLabel": STATUSES.get(reliability.status, reliability.status),
        "attributes": list(reliability.comments),
        "birthName": traits.birth_name,
        "birthGivenNames": list(traits.given_names),
        "firstGivenName": traits.first_given,
        "usedName": traits.used_name,
        "usedGivenName": traits.used_given,
        "birthDate": traits.birth_date.to_fhir() if traits.birth_date else None,
        "sex": traits.sex,
        "birthplace": traits.birthplace,
    }
    if ins and reliability.status in ("RECUP", "QUAL"):
        shown["ins"] = {"value": ins[0][1], "system": ins[0][0], "shareable": may_share_ins(reliability)}
    return shown


def check_patient_identity(patient: dict[str, Any]) -> None:
    """The identity rules a stored Patient must obey; `Unprocessable` listing every broken rule.

    - the status is one of the four; DOUT and FICT are exclusive and keep the identity PROV;
    - every INS identifier is a well-formed NIR/NIA (key included) and agrees with the strict traits
      it encodes: sex, year and month of birth, birthplace (`nir_trait_issues`);
    - RECUP and QUAL carry a current INS, all strict traits and the INSi retrieval (collection
      method); VALI and QUAL record the document checked.
    """
    issues: list[Issue] = []
    reliability = read_reliability(patient)
    base = "Patient.extension('" + "fr-core-identity-reliability')"
    if reliability.status not in STATUSES:
        issues.append(Issue("code-invalid", f"Unknown identity status {reliability.status!r}", base))
    locked = [c for c in reliability.comments if c in LOCKING_ATTRIBUTES]
    if len(locked) > 1:
        issues.append(Issue("business-rule", "DOUT and FICT are mutually exclusive (RNIV EXI SI 09)", base))
    if locked and reliability.status != "PROV":
        issues.append(
            Issue("business-rule", f"A {locked[0]} identity must stay PROV, not {reliability.status}", base)
        )
    traits = traits_from_patient(patient)
    for index, ident in enumerate(patient.get("identifier") or []):
        if isinstance(ident, dict) and ident.get("system") in INS_SYSTEMS:
            where = f"Patient.identifier[{index}].value"
            try:
                nir = parse_nir(str(ident.get("value", "")), expression=where)
            except Invalid as exc:
                issues.extend(exc.issues)
            else:
                if ident.get("use") != "old":  # a deactivated INS belongs to another identity
                    issues.extend(nir_trait_issues(nir, traits))
    if reliability.status in ("RECUP", "QUAL"):
        if not ins_of(patient):
            issues.append(
                Issue(
                    "business-rule", f"A {reliability.status} identity carries its INS", "Patient.identifier"
                )
            )
        missing = [
            (path, label)
            for path, label, value in (
                ("Patient.name.where(use='official').family", "birth name", traits.birth_name),
                ("Patient.name.where(use='official').given", "first given name", traits.first_given),
                ("Patient.birthDate", "birth date", traits.birth_date),
                ("Patient.gender", "sex", traits.sex),
                ("Patient.extension('patient-birthPlace')", "birthplace INSEE code", traits.birthplace),
            )
            if not value
        ]
        issues.extend(
            Issue("required", f"A {reliability.status} identity needs its {label} (strict INS trait)", path)
            for path, label in missing
        )
    if reliability.status in ("RECUP", "QUAL") and reliability.method not in _INSI_METHODS:
        issues.append(
            Issue(
                "business-rule",
                f"A {reliability.status} identity records how the INS was retrieved from INSi "
                f"(methodCollection {', '.join(sorted(_INSI_METHODS))}), got {reliability.method!r}",
                base,
            )
        )
    if reliability.status in ("VALI", "QUAL") and not reliability.validation_mode:
        issues.append(
            Issue(
                "business-rule",
                f"A {reliability.status} identity records the document checked (validationMode)",
                base,
            )
        )
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)


# NIR departments 91–96 were also used for births in Algeria, Morocco and Tunisia before
# independence; the birthplace trait of those people is a 99xxx country code (ins.md §7).
_FORMER_NORTH_AFRICA = frozenset({"91", "92", "93", "94", "95", "96"})


def nir_trait_issues(nir: Nir, traits: Traits) -> list[Issue]:
    """Disagreements between an INS matricule and the strict traits it encodes (present ones only).

    A NIR is built from the sex, the year and month of birth and the birthplace code at birth; a
    matricule that contradicts the traits belongs to someone else (or was mistyped). Fictitious
    months (incomplete civil status) are not compared; a NIR department `20` (Corsica before 1976)
    agrees with a 2A/2B birthplace.
    """
    issues: list[Issue] = []
    sex = {1: "male", 2: "female"}[nir.sex]
    if traits.sex in ("male", "female") and traits.sex != sex:
        issues.append(
            Issue(
                "business-rule",
                f"The INS {nir.value} is a {sex} matricule (first digit {nir.sex}) but gender is "
                f"{traits.sex}",
                "Patient.gender",
            )
        )
    date = traits.birth_date
    if date is not None:
        if f"{date.year % 100:02d}" != nir.year:
            issues.append(
                Issue(
                    "business-rule",
                    f"The INS {nir.value} encodes the birth year ..{nir.year} but birthDate is "
                    f"{date.to_fhir()}",
                    "Patient.birthDate",
                )
            )
        elif date.month is not None and not nir.special_month and int(nir.month) != date.month:
            issues.append(
                Issue(
                    "business-rule",
                    f"The INS {nir.value} encodes the birth month {nir.month} but birthDate is "
                    f"{date.to_fhir()}",
                    "Patient.birthDate",
                )
            )
    place = (traits.birthplace or "").upper()
    if place and place != nir.place:
        corsica = nir.department == "20" and place[:2] in ("2A", "2B") and place[2:] == nir.place[2:]
        north_africa = nir.department in _FORMER_NORTH_AFRICA and place.startswith("99")
        if not (corsica or north_africa):
            issues.append(
                Issue(
                    "business-rule",
                    f"The INS {nir.value} encodes the birthplace {nir.place} but the birthplace INSEE "
                    f"code is {place}",
                    "Patient.extension('patient-birthPlace')",
                )
            )
    return issues
