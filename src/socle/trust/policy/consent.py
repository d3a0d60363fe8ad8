"""Patient choices as FHIR R4 Consent resources, read back as policy rules.

Every choice is a Consent with `status` active, `scope` patient-privacy and `patient` the patient;
its single top-level `provision` says what it does (see data/trust/README.md for examples):

- grant a professional access: type permit, actor Practitioner/…;
- block a named professional: type deny, actor Practitioner/…, no data;
- mask items from professionals: type deny, data DocumentReference/… (no actor: all of them);
- oppose emergency access: type deny, purpose ETREAT or BTG (v3-ActReason), no actor, no data;
- break-glass grant (written by $break-glass): type permit, actor, purpose BTG, period.

A Consent whose `provision.period.end` (or `period.end`) has passed, or whose status is not active,
has no effect. Actors are matched as `Practitioner/id` or `PractitionerRole/id` references.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from socle.fhir.references import parse_reference

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BREAK_GLASS = "BTG"
EMERGENCY = frozenset({"ETREAT", "BTG"})


@dataclass(frozen=True)
class ConsentRule:
    kind: str  # grant | block | mask | oppose-emergency | break-glass | other
    patient: str | None
    actors: frozenset[str]  # "Practitioner/1", "PractitionerRole/2"
    data: frozenset[tuple[str, str]]  # (type, id) of masked items
    end: datetime | None
    reason: str | None = None  # a break-glass grant's declared reason (purpose display)


def _ref(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    target = parse_reference(value["reference"])
    if target.kind in ("relative", "absolute") and target.resource_type and target.id:
        return f"{target.resource_type}/{target.id}"
    return None


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _period(body: Mapping[str, Any]) -> dict[str, Any]:
    provision = body.get("provision")
    period = provision.get("period") if isinstance(provision, dict) else None
    return period if isinstance(period, dict) else {}


def next_change(body: Mapping[str, Any], now: datetime) -> datetime | None:
    """When this Consent's effect changes by itself after `now` (its period starts or ends)."""
    period = _period(body)
    moments = [t for t in (_instant(period.get("start")), _instant(period.get("end"))) if t and t > now]
    return min(moments, default=None)


def parse_consent(body: Mapping[str, Any], now: datetime) -> ConsentRule | None:
    """The rule a Consent states, or None if it has no effect now."""
    if body.get("status") != "active":
        return None
    provision = body.get("provision")
    if not isinstance(provision, dict):
        return None
    period = _period(body)
    end = _instant(period.get("end"))
    start = _instant(period.get("start"))
    if (end is not None and end <= now) or (start is not None and start > now):
        return None
    patient_ref = _ref(body.get("patient"))
    patient = patient_ref.split("/", 1)[1] if patient_ref and patient_ref.startswith("Patient/") else None
    actors = frozenset(
        r
        for a in provision.get("actor") or []
        if isinstance(a, dict)
        for r in [_ref(a.get("reference"))]
        if r
    )
    data = frozenset(
        (r.split("/", 1)[0], r.split("/", 1)[1])
        for d in provision.get("data") or []
        if isinstance(d, dict)
        for r in [_ref(d.get("reference"))]
        if r
    )
    purpose = [
        p for p in provision.get("purpose") or [] if isinstance(p, dict) and isinstance(p.get("code"), str)
    ]
    purposes = {p["code"] for p in purpose}
    kind = provision.get("type")
    if kind == "deny":
        if data:
            rule = "mask"
        elif purposes & EMERGENCY and not actors:
            rule = "oppose-emergency"
        elif actors:
            rule = "block"
        else:
            rule = "other"
    elif kind == "permit" and actors:
        rule = "break-glass" if BREAK_GLASS in purposes else "grant"
    else:
        rule = "other"
    reason = next((p.get("display") for p in purpose if p["code"] == BREAK_GLASS), None)
    return ConsentRule(rule, patient, actors, data, end, reason if isinstance(reason, str) else None)
