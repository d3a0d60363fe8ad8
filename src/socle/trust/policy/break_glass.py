"""Break-glass ("bris de glace"): time-limited emergency access to one patient's record.

An emergency responder, or a professional declaring an emergency, gives a mandatory reason; unless
the patient opposed emergency access (a deny Consent with purpose ETREAT/BTG) or blocked this
professional, a Consent grant (permit, purpose BTG, period now → now + SOCLE_BREAK_GLASS_MINUTES,
the reason in `provision.purpose.display` and the Consent text) is written in the patient's
compartment: the next requests of this professional see the whole record except masked items,
until the period ends. The patient is notified (a Communication in their space) and the grant is
kept as the durable record of who, when and why (visible to the patient as a Consent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from socle.fhir.errors import Forbidden
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.trust.notifications import Notifier
from socle.trust.policy.consent import ACT_REASON, BREAK_GLASS
from socle.trust.policy.decide import Decision
from socle.trust.policy.relations import opposes_emergency, relations_of
from socle.trust.policy.writes import as_system


@dataclass(frozen=True)
class Grant:
    consent_id: str
    patient: str
    practitioner: str
    start: datetime
    end: datetime
    reason: str
    notification_id: str | None


def _instant(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def break_glass(
    store: Store,
    conn: Connection,
    decision: Decision,
    patient: str,
    reason: str,
    minutes: int,
    notifier: Notifier,
    now: datetime | None = None,
) -> Grant:
    now = now or datetime.now(UTC)
    if decision.base not in ("emergency", "professional"):
        raise Forbidden("Only an emergency responder or a professional may break the glass")
    practitioner = decision.practitioner
    if practitioner is None:
        raise Forbidden("Break-glass needs a Practitioner identity")
    if not reason.strip():
        raise Forbidden("Break-glass needs a reason")
    store.get(conn, "Patient", patient, SYSTEM)  # 404 / 410 if there is no such patient
    if opposes_emergency(conn, patient, now):
        raise Forbidden("The patient opposed emergency (break-glass) access to their record")
    if patient in relations_of(conn, practitioner, now).blocked:
        raise Forbidden("The patient blocked this professional's access to their record")
    end = now + timedelta(minutes=minutes)
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": _instant(now),
        "performer": [{"reference": practitioner}],
        "policyRule": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMRGONLY"}]
        },
        "provision": {
            "type": "permit",
            "period": {"start": _instant(now), "end": _instant(end)},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": practitioner},
                }
            ],
            "purpose": [{"system": ACT_REASON, "code": BREAK_GLASS, "display": reason[:500]}],
        },
    }
    with as_system():
        created = store.create(conn, consent)
        text = (
            f"Accès en urgence (bris de glace) à votre dossier par {practitioner} le {_instant(now)}, "
            f"jusqu'au {_instant(end)}. Motif : {reason[:500]}"
        )
        notification = notifier.notify_patient(conn, patient, "break-glass", text)
    return Grant(created.id, patient, practitioner, now, end, reason, notification)
