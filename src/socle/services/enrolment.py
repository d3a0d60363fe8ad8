"""Enrolment of people into the authorization server, from the referentials.

- A professional's account refers to an idNat_PS that exists in the directory (a Practitioner with
  identifier `urn:oid:1.2.250.1.71.4.2.1|<idNat_PS>`); its claims (Pro Santé Connect shape, auth.md
  §4) are copied from the Practitioner and its first active PractitionerRole: profession (TRE_G15),
  specialty (savoir-faire), structure. Unknown idNat_PS are refused.
- A citizen's account is bound to a Patient whose identity is QUALIFIED (INS status `QUAL`, read
  with the identity referential's own reader): anything weaker is refused. The account starts
  inactive with a one-time activation code sent through the delivery interface (outbox or SMTP);
  `/activation` checks it, sets the password and enrols a second factor.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, update

from socle.config import Settings
from socle.referentials.directory.codes import IDNAT_PS_SYSTEM
from socle.referentials.identity.profile import INS_SYSTEMS, read_reliability
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.trust.auth import accounts
from socle.trust.auth.passwords import token_hash
from socle.trust.auth.schema import auth_account

ACTIVATION_TTL = 7 * 24 * 3600
PROFESSION_OID = "1.2.250.1.213.1.1.5.5"  # the OID part of PSC's SubjectRole "code^OID" (auth.md §4)


class EnrolmentRefused(Exception):
    pass


def _code_of(concepts: list[dict[str, Any]], marker: str) -> str | None:
    for concept in concepts:
        for coding in (concept or {}).get("coding", []):
            if marker in str(coding.get("system", "")) and coding.get("code"):
                return str(coding["code"])
    return None


def professional_claims(store: Store, conn: Connection, idnat: str) -> dict[str, Any]:
    ids = store.find(conn, "Practitioner", f"identifier={IDNAT_PS_SYSTEM}|{idnat}", SYSTEM, limit=2)
    if len(ids) != 1:
        raise EnrolmentRefused(f"idNat_PS {idnat!r} is not in the directory (no Practitioner with it)")
    practitioner = store.get(conn, "Practitioner", ids[0], SYSTEM).resource
    if practitioner.get("active") is False:
        raise EnrolmentRefused(f"Practitioner {ids[0]} is inactive in the directory")
    role_ids = store.find(conn, "PractitionerRole", f"practitioner=Practitioner/{ids[0]}", SYSTEM, limit=50)
    roles = [store.get(conn, "PractitionerRole", r, SYSTEM).resource for r in sorted(role_ids)]
    role = next((r for r in roles if r.get("active", True)), {})
    qualifications = [q.get("code", {}) for q in practitioner.get("qualification", [])]
    profession = _code_of(role.get("code", []), "G15") or _code_of(qualifications, "G15")
    specialty = _code_of(role.get("specialty", []), "") or _code_of(
        [q for q in qualifications if "G15" not in str(q)], ""
    )
    organization = role.get("organization") or {}
    structure = str(organization.get("reference", "")).removeprefix("Organization/") or None
    name = (practitioner.get("name") or [{}])[0]
    identity: dict[str, Any] = {
        "SubjectNameID": idnat,
        "preferred_username": idnat,
        "given_name": " ".join(name.get("given", [])),
        "family_name": name.get("family", ""),
    }
    if profession:
        identity["SubjectRole"] = [f"{profession}^{PROFESSION_OID}"]
    if structure:
        identity["SubjectOrganizationID"] = structure
        identity["SubjectOrganization"] = organization.get("display", structure)
    return {
        "fhirUser": f"Practitioner/{ids[0]}",
        "practice": {
            "national_id": idnat,
            "profession": profession,
            "specialty": specialty,
            "structure": structure,
            "structure_name": organization.get("display"),
        },
        "identity": identity,
    }


def add_professional(
    store: Store,
    conn: Connection,
    settings: Settings,
    idnat: str,
    *,
    password: str,
    totp_secret: str | None = None,
) -> accounts.Account:
    if accounts.find_account(conn, idnat) is not None:
        raise EnrolmentRefused(f"an account {idnat!r} already exists")
    claims = professional_claims(store, conn, idnat)
    return accounts.create_account(
        conn,
        settings,
        kind="professional",
        login=idnat,
        password=password,
        totp_secret=totp_secret,
        claims=claims,
    )


@dataclass(frozen=True)
class QualifiedIdentity:
    patient: str
    ins: str
    given: str
    family: str


def qualified_identity(store: Store, conn: Connection, patient_id: str) -> QualifiedIdentity:
    ids = store.find(conn, "Patient", f"_id={patient_id}", SYSTEM, limit=2)
    if len(ids) != 1:
        raise EnrolmentRefused(f"no Patient {patient_id!r}")
    patient = store.get(conn, "Patient", ids[0], SYSTEM).resource
    reliability = read_reliability(patient)
    if reliability.status != "QUAL":
        raise EnrolmentRefused(
            f"Patient {patient_id} has identity status {reliability.status}: an account needs a QUAL identity"
        )
    ins = next(
        (str(i["value"]) for i in patient.get("identifier", []) if i.get("system") in INS_SYSTEMS), None
    )
    if ins is None:
        raise EnrolmentRefused(f"Patient {patient_id} has no INS")
    name = (
        next((n for n in patient.get("name", []) if n.get("use") == "official"), None)
        or (patient.get("name") or [{}])[0]
    )
    return QualifiedIdentity(ids[0], ins, " ".join(name.get("given", [])), str(name.get("family", "")))


def add_citizen(
    store: Store,
    conn: Connection,
    settings: Settings,
    *,
    patient_id: str,
    email: str,
    send_code: bool = True,
) -> tuple[accounts.Account, str]:
    """An inactive account bound to the Patient's qualified identity, and its activation code (also
    sent to `email` through the delivery interface when `send_code`)."""
    if "@" not in email or len(email) > 200:
        raise EnrolmentRefused(f"{email!r} is not an e-mail address")
    if accounts.find_account(conn, email) is not None:
        raise EnrolmentRefused(f"an account {email!r} already exists")
    identity = qualified_identity(store, conn, patient_id)
    account = accounts.create_account(
        conn,
        settings,
        kind="citizen",
        login=email,
        password=None,
        active=False,
        claims={
            "fhirUser": f"Patient/{identity.patient}",
            "patient": identity.patient,
            "ins": identity.ins,
            "email": email,
            "identity": {"given_name": identity.given, "family_name": identity.family, "email": email},
        },
    )
    code = new_activation_code(conn, account.account_id)
    if send_code:
        accounts.send_message(
            conn,
            settings,
            email,
            "Activez votre compte Socle",
            f"Votre code d'activation : {code}\nIl est valable 7 jours, sur la page /activation.",
        )
    return account, code


def new_activation_code(conn: Connection, account_id: str) -> str:
    code = "-".join(f"{secrets.randbelow(10**4):04d}" for _ in range(3))  # 12 digits, easy to type
    conn.execute(
        update(auth_account)
        .where(auth_account.c.account_id == account_id)
        .values(activation_hash=token_hash(code), activation_expires=int(time.time()) + ACTIVATION_TTL)
    )
    return code
