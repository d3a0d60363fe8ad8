"""Security labels the policy reads: DMP visibility codes (TRE_A07) and HL7 confidentiality.

Labels are taken from `meta.security` (the store's `security` column) and, for a DocumentReference,
from `securityLabel` (its `security-label` token index rows), since the PDSm profile carries the XDS
confidentialityCode there. A TRE_A07 label is recognised by its code whatever the spelling of the
system (NOS `TRE_A07-StatutVisibiliteDocument`, the PDSm example's `TRE_A07-StatusVisibiliteDocument`,
or the OID `urn:oid:1.2.250.1.213.1.1.4.13`): the codes are unique to that code system. The HL7v2
spelling `INVISIBLE_REP_LEGAUX` is read as `INVISIBLE_REPRESENTANTS_LEGAUX`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Text, and_, cast, exists, false, func, or_, select

from socle.fhir.hashing import value_hash
from socle.store.indexes import idx_token
from socle.store.schema import resource

MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
# HL7 v3 Confidentiality "restricted" and "very restricted": sensitive items a helper (aidant) never sees.
RESTRICTED = "R"
VERY_RESTRICTED = "V"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

TRE_A07_SYSTEMS = frozenset(
    {
        "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
        "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument",
        "urn:oid:1.2.250.1.213.1.1.4.13",
    }
)
_ALIASES = {"INVISIBLE_REP_LEGAUX": INVISIBLE_REPRESENTANTS_LEGAUX}
_CONFIDENTIALITY = frozenset({RESTRICTED, VERY_RESTRICTED})


def normalise(system: str | None, code: str | None) -> str | None:
    """The policy's name for a label: a TRE_A07 code, "R"/"V" for HL7 confidentiality, else None."""
    if not code:
        return None
    code = _ALIASES.get(code, code)
    if code in (MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX):
        return code
    if code in _CONFIDENTIALITY and (system or "").endswith("v3-Confidentiality"):
        return code
    return None


def labels_of(body: Mapping[str, Any]) -> frozenset[str]:
    """The normalised labels of a resource (Python side: write checks and the tests' reference)."""
    codings: list[Any] = list((body.get("meta") or {}).get("security") or [])
    if body.get("resourceType") == "DocumentReference":
        for concept in body.get("securityLabel") or []:
            if isinstance(concept, dict):
                codings.extend(concept.get("coding") or [])
    found = set()
    for coding in codings:
        if isinstance(coding, dict):
            label = normalise(coding.get("system"), coding.get("code"))
            if label is not None:
                found.add(label)
    return frozenset(found)


def _spellings(label: str) -> list[str]:
    return [label, *(alias for alias, target in _ALIASES.items() if target == label)]


# Aliases of their own (never correlated with the query's tables), built once: see filters.POLICY_KINDS.
LABELS_OF = resource.alias("labels_of")
POLICY_LABELS = idx_token.alias("policy_labels")


def labelled(table: FromClause, labels: Iterable[str]) -> ColumnElement[bool]:
    """SQL: the row carries one of `labels` (current labels of the resource, for history rows)."""
    wanted = sorted(set(labels))
    if not wanted:
        return false()
    if "security" in table.c:
        security: ColumnElement[Any] = table.c.security
    else:  # resource_history has no labels of its own: the resource's current labels govern
        current = LABELS_OF
        security = (
            select(current.c.security).where(current.c.resource_key == table.c.resource_key).scalar_subquery()
        )
    text = func.coalesce(cast(security, Text), "")  # NULL labels: none (not unknown)
    patterns = []
    for label in wanted:
        for spelling in _spellings(label):
            if label in _CONFIDENTIALITY:
                patterns.append(text.like(f'%v3-Confidentiality|{spelling}"%'))
            else:
                patterns.append(text.like(f'%|{spelling}"%'))
    if "resource_key" not in table.c:  # a table with no index rows (the audit trail): labels only
        return or_(*patterns)
    hashes = [
        value_hash("DocumentReference", "security-label", s) for label in wanted for s in _spellings(label)
    ]
    tokens = POLICY_LABELS
    document_label = and_(
        table.c.resource_type == "DocumentReference",
        exists(
            select(tokens.c.resource_key).where(
                tokens.c.resource_key == table.c.resource_key, tokens.c.value_hash.in_(hashes)
            )
        ),
    )
    return or_(*patterns, document_label)
