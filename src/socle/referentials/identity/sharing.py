"""Where the identity rules meet the exchange: what other actors see, what the shared record accepts.

RNIV and FR Core (shared/specs/ins.md §2, §4): the INS matricule may only be exchanged when the
identity is qualified (the INS slices exist only in `fr-core-patient-ins`), and only a qualified
identity may be used for the shared record (DMP feeding requires a qualified INS since Oct 2023).
Socle applies this at three points, each registered once with the API (`socle.api.identity`):
- `patient_for`: the Patient as served to a principal. The platform itself and its operators (the
  `system` principal: internal jobs, CLI, identity-vigilance tooling) hold the whole record; every
  other actor (professional, citizen, app, emergency) gets `shareable_patient`: without the INS
  identifiers and the INS profile claim unless the identity is qualified and not flagged DOUT/FICT.
  The stored resource is unchanged: the INS retrieved at RECUP is kept for qualification and
  identity vigilance, only its exposure is filtered. Every FHIR response goes through it (read,
  vread, search, history, includes, `$match`, `$everything`, Bundle responses).
- `check_patient_write`: a Patient that carries an INS or an identity status obeys the status rules
  and its NIR agrees with its traits (`status.check_patient_identity`), on every API write.
- `check_shared_record`: a document for the shared record (a DocumentReference whose subject is a
  Patient) is refused (422) unless that Patient's identity is qualified with an INS. It runs as a
  store index hook (registered when this module is imported), in the writing transaction of every
  create and update whatever the path (API, transaction Bundle, `socle load`): the subject created
  earlier in the same transaction is seen, and a refusal rolls the whole request back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, select

from socle.fhir.errors import Issue, Unprocessable
from socle.fhir.references import parse_reference
from socle.referentials.identity.profile import IDENTITY_RELIABILITY, INS_SYSTEMS, ins_of, read_reliability
from socle.referentials.identity.status import check_patient_identity, may_share_ins, shareable_patient
from socle.store import index_hooks
from socle.store.schema import resource
from socle.trust.principal import Principal

__all__ = [
    "INS_MARKER",
    "SHARED_RECORD_SUBJECTS",
    "check_patient_write",
    "check_shared_record",
    "patient_for",
    "withholds_from",
]

# Every INS identifier system starts with this OID arc: stored JSON without it carries no INS.
INS_MARKER = b"urn:oid:1.2.250.1.213.1.4."
# Resource types that feed the shared record (DMP) → the element naming their subject Patient.
SHARED_RECORD_SUBJECTS: dict[str, str] = {"DocumentReference": "subject"}

RULE_SHARED_RECORD = "RNIV/FR Core: only a qualified INS identity is used for the shared record"


def withholds_from(principal: Principal) -> bool:
    """Whether unqualified INS are withheld from this principal: from every actor but Socle itself."""
    return not principal.is_system


def patient_for(patient: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The Patient as `principal` may see it (the same object when nothing is withheld)."""
    if not withholds_from(principal) or not _has_ins(patient):
        return patient
    return shareable_patient(patient)


def _has_ins(patient: dict[str, Any]) -> bool:
    return any(
        isinstance(i, dict) and i.get("system") in INS_SYSTEMS for i in patient.get("identifier") or []
    )


def check_patient_write(patient: dict[str, Any]) -> None:
    """422 naming the field (every broken rule listed), for a Patient breaking an identity rule.

    Patients with neither an INS identifier nor an identity-reliability extension are outside the
    INS rules (e.g. a record imported from abroad) and pass untouched."""
    managed = _has_ins(patient) or any(
        isinstance(e, dict) and e.get("url") == IDENTITY_RELIABILITY for e in patient.get("extension") or []
    )
    if managed:
        check_patient_identity(patient)


def check_shared_record(
    resources: Iterable[dict[str, Any]], find_patient: Callable[[str], dict[str, Any] | None]
) -> None:
    """Refuse shared-record documents whose subject Patient's identity is not qualified.

    `find_patient(id)` returns the Patient as it will be once the request is applied (from the same
    transaction first, then the store), or None when it does not exist (the reference check says so).
    """
    written = list(resources)
    pending = {
        str(r.get("id")): r for r in written if r.get("resourceType") == "Patient" and r.get("id") is not None
    }
    for body in written:
        element = SHARED_RECORD_SUBJECTS.get(str(body.get("resourceType")))
        if element is None:
            continue
        subject = body.get(element)
        if not isinstance(subject, dict) or not isinstance(subject.get("reference"), str):
            continue
        parsed = parse_reference(subject["reference"])
        if parsed.kind != "relative" or parsed.resource_type != "Patient" or not parsed.id:
            continue
        patient = pending.get(parsed.id) or find_patient(parsed.id)
        if patient is None:
            continue
        reliability = read_reliability(patient)
        if may_share_ins(reliability) and ins_of(patient):
            continue
        status = reliability.status + (
            f" ({', '.join(reliability.comments)})" if reliability.comments else ""
        )
        why = "has no INS" if not ins_of(patient) else f"is {status}, not QUAL"
        raise Unprocessable(
            f"{RULE_SHARED_RECORD}: the identity of Patient/{parsed.id} {why}; qualify it "
            f"(INSi retrieval and identity document check) before sending this {body['resourceType']}",
            issues=[
                Issue(
                    "business-rule",
                    f"{RULE_SHARED_RECORD}: the identity of Patient/{parsed.id} {why}",
                    f"{body['resourceType']}.{element}",
                )
            ],
        )


def _stored_patient(conn: Connection, id: str) -> dict[str, Any] | None:
    content = conn.execute(
        select(resource.c.content).where(
            resource.c.resource_type == "Patient", resource.c.id == id, resource.c.deleted.is_(False)
        )
    ).scalar_one_or_none()
    if content is None:
        return None
    if isinstance(content, dict):
        return content
    loaded = orjson.loads(content.encode() if isinstance(content, str) else bytes(content))
    return loaded if isinstance(loaded, dict) else None


def _on_write(conn: Connection, items: Sequence[index_hooks.IndexItem]) -> None:
    check_shared_record((item[3] for item in items), lambda id: _stored_patient(conn, id))


def _on_delete(conn: Connection, keys: Sequence[int]) -> None:
    """Deleting a document needs no identity check."""


index_hooks.register(sorted(SHARED_RECORD_SUBJECTS), _on_write, _on_delete)
