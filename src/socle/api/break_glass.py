"""`POST Patient/{id}/$break-glass`: emergency access to one patient's record (trust policy).

Body: a Parameters resource with a mandatory `reason` (valueString). Answer: a Parameters resource
naming the grant (a Consent in the patient's record), its end, and the patient's notification.
Refused with 403 when the patient opposed emergency access or blocked this professional.
"""

from __future__ import annotations

from typing import Any

from socle.api.operation_table import operation
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.fhir.errors import Forbidden, Invalid
from socle.trust.notifications import StoreNotifier
from socle.trust.policy import writes
from socle.trust.policy.break_glass import break_glass

__all__ = ["break_glass_operation"]


def _reason(body: Any) -> str:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise Invalid("$break-glass takes a Parameters resource with a `reason` (valueString)")
    for param in body.get("parameter") or []:
        if isinstance(param, dict) and param.get("name") == "reason":
            value = param.get("valueString")
            if isinstance(value, str) and value.strip():
                return value.strip()
    raise Invalid("$break-glass needs a non-empty `reason` parameter (valueString)", expression="reason")


@operation(
    "$break-glass",
    levels=("instance",),
    resource_types=("Patient",),
    methods=("POST",),
    definition="https://socle.esante.example/fhir/OperationDefinition/Patient-break-glass",
)
def break_glass_operation(req: FhirRequest, ctx: Context, _type: str | None, id: str | None) -> FhirResponse:
    reason = _reason(req.body)
    decision = writes.current()
    if decision is None or id is None:
        raise Forbidden("$break-glass needs an authenticated professional or emergency responder")
    grant = break_glass(
        ctx.store, ctx.conn, decision, id, reason, ctx.settings.break_glass_minutes, StoreNotifier(ctx.store)
    )
    parameters: list[dict[str, Any]] = [
        {"name": "grant", "valueReference": {"reference": f"Consent/{grant.consent_id}"}},
        {"name": "patient", "valueReference": {"reference": f"Patient/{grant.patient}"}},
        {"name": "start", "valueInstant": grant.start.isoformat(timespec="seconds").replace("+00:00", "Z")},
        {"name": "end", "valueInstant": grant.end.isoformat(timespec="seconds").replace("+00:00", "Z")},
        {"name": "reason", "valueString": grant.reason},
    ]
    if grant.notification_id:
        parameters.append(
            {
                "name": "notification",
                "valueReference": {"reference": f"Communication/{grant.notification_id}"},
            }
        )
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": parameters})
