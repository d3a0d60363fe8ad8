"""Who is making a request: the value every access decision starts from.

Built by the authorization server from a validated access token (or `SYSTEM` for operators and
internal jobs). The access policy (trust issue) narrows what the store returns from it; SMART scopes
only ever narrow the policy further, never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from socle.trust.auth.scopes import ScopeSet

PrincipalKind = Literal["citizen", "professional", "app", "emergency", "system"]


@dataclass(frozen=True)
class Practice:
    """A professional's practice situation, as Pro Santé Connect carries it (auth.md §4)."""

    national_id: str  # idNat_PS
    profession: str | None = None  # TRE_G15 code (e.g. 10 médecin, 21 pharmacien, 60 infirmier)
    specialty: str | None = None  # savoir-faire code (e.g. SM54 médecine générale)
    structure: str | None = None  # Organization id in the directory
    structure_name: str | None = None


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    subject: str  # token `sub`: an account id, a client id (backend), or "system"
    scopes: ScopeSet = field(default_factory=lambda: ScopeSet.parse(""))
    client_id: str | None = None
    # FHIR identity of the person: "Practitioner/…", "Patient/…", "RelatedPerson/…"
    fhir_user: str | None = None
    # Patient in context (SMART launch/patient), or the patient a delegate acts for.
    patient: str | None = None
    # Delegation: the actor acts for `patient` as "guardian" (minor) or "helper" (aidant).
    acting_for: str | None = None
    relationship: str | None = None
    practice: Practice | None = None
    acr: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def is_system(self) -> bool:
        return self.kind == "system"


SYSTEM_PRINCIPAL = Principal(kind="system", subject="system", scopes=ScopeSet.parse("system/*.cruds"))
