"""Demo people for `make demo`: directory records, qualified identities, their accounts, a SMART app.

Everything is fictitious (RPPS numbers from the 10000… test range, NIR on the demo INS system
`urn:oid:1.2.250.1.213.1.4.11`). The accounts go through the same enrolment as real ones
(`services.enrolment`): professionals from their idNat_PS in the directory, citizens from a QUAL
identity; the citizen's account is activated here with a known password (demo only) so that the
printed credentials work at once, and her child is reached by a guardian delegation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import Connection

from socle.config import Settings
from socle.referentials.directory.codes import IDNAT_PS_SYSTEM, coding
from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.profile import OID_NIR_DEMO, Reliability, patient_resource
from socle.referentials.identity.traits import Traits, parse_partial_date
from socle.services.enrolment import add_citizen, add_professional
from socle.store.repository import Store
from socle.trust.auth import accounts
from socle.trust.auth.clients import add_client, get_client

DEMO_APP = "demo-smart-app"
DEMO_APP_REDIRECT = "http://127.0.0.1:8000/callback"


@dataclass(frozen=True)
class DemoProfessional:
    idnat: str
    given: str
    family: str
    profession: tuple[str, str]  # TRE_G15 code, label
    specialty: tuple[str, str, str] | None  # system, code, label
    organization: str
    totp: bool


PROFESSIONALS = (
    DemoProfessional(
        "810100000001",
        "Anne",
        "MARTIN",
        ("10", "Médecin"),
        ("TRE_R38", "SM54", "Médecine générale"),
        "demo-cabinet-martin",
        True,
    ),
    DemoProfessional(
        "810100000002", "Paul", "BERNARD", ("21", "Pharmacien"), None, "demo-pharmacie-gare", True
    ),
    DemoProfessional(
        "810100000003", "Sophie", "PETIT", ("60", "Infirmier"), None, "demo-cabinet-martin", True
    ),
)
ORGANIZATIONS = {
    "demo-cabinet-martin": "Cabinet médical du Parc",
    "demo-pharmacie-gare": "Pharmacie de la Gare",
}


def practitioner_resources(p: DemoProfessional) -> list[dict[str, Any]]:
    qualifications = [{"code": {"coding": [coding("TRE_G15", *p.profession)]}}]
    if p.specialty:
        qualifications.append({"code": {"coding": [coding(*p.specialty)]}})
    practitioner = {
        "resourceType": "Practitioner",
        "id": f"ps-{p.idnat}",
        "identifier": [{"system": IDNAT_PS_SYSTEM, "value": p.idnat}],
        "active": True,
        "name": [{"use": "usual", "family": p.family, "given": [p.given]}],
        "qualification": qualifications,
    }
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": f"pr-{p.idnat}",
        "active": True,
        "practitioner": {"reference": f"Practitioner/ps-{p.idnat}"},
        "organization": {
            "reference": f"Organization/{p.organization}",
            "display": ORGANIZATIONS[p.organization],
        },
        "code": [{"coding": [coding("TRE_G15", *p.profession)]}],
    }
    if p.specialty:
        role["specialty"] = [{"coding": [coding(*p.specialty)]}]
    return [practitioner, role]


def organization_resources() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Organization", "id": k, "active": True, "name": v} for k, v in ORGANIZATIONS.items()
    ]


def qualified_patient(
    id: str, family: str, given: str, sex: str, birth: str, place: str = "75112", order: int = 1
) -> dict[str, Any]:
    """A Patient whose identity is QUALIFIED: INS (demo NIR consistent with sex, birth, birthplace)
    retrieved from INSi and checked on an identity card."""
    year, month = int(birth[:4]), int(birth[5:7])
    nir = make_nir(1 if sex == "male" else 2, year, month, place, order)
    traits = Traits(
        birth_name=family,
        given_names=(given,),
        birth_date=parse_partial_date(birth),
        sex=sex,
        birthplace=place,
        ins=nir,
    )
    reliability = Reliability(status="QUAL", method="INSI", validation_mode="CN")
    patient = patient_resource(traits, reliability=reliability, id=id, ins_system=OID_NIR_DEMO)
    patient["gender"] = sex
    patient["birthDate"] = birth
    return patient


def citizens() -> list[dict[str, Any]]:
    return [
        qualified_patient("demo-claire", "DURAND", "Claire", "female", "1988-04-12"),
        qualified_patient("demo-leo", "DURAND", "Léo", "male", "2016-09-03", order=2),
    ]


@dataclass(frozen=True)
class Credential:
    role: str
    login: str
    password: str
    totp_secret: str | None
    fhir_user: str


def load_demo_people(store: Store, conn: Connection, settings: Settings) -> list[Credential]:
    """Write the demo records and accounts (idempotent on the records; accounts only once)."""
    for body in [
        *organization_resources(),
        *[r for p in PROFESSIONALS for r in practitioner_resources(p)],
        *citizens(),
    ]:
        store.update(conn, body)
    credentials: list[Credential] = []
    roles = {
        "810100000001": "médecin généraliste",
        "810100000002": "pharmacien",
        "810100000003": "infirmière",
    }
    for p in PROFESSIONALS:
        if accounts.find_account(conn, p.idnat) is not None:
            continue
        secret = pyotp.random_base32() if p.totp else None
        password = f"demo-{p.family.lower()}-2026"
        account = add_professional(store, conn, settings, p.idnat, password=password, totp_secret=secret)
        credentials.append(
            Credential(roles[p.idnat], p.idnat, password, secret, str(account.claims["fhirUser"]))
        )
    email = "claire.durand@demo.socle.localhost"
    if accounts.find_account(conn, email) is None:
        account, code = add_citizen(
            store, conn, settings, patient_id="demo-claire", email=email, send_code=False
        )
        password = "demo-claire-2026"
        accounts.activate(conn, settings, email, code, password, "demo")
        accounts.add_delegation(
            conn,
            account.account_id,
            "demo-leo",
            "guardian",
            "openid fhirUser launch/patient patient/*.cruds offline_access",
        )
        credentials.append(
            Credential("citoyenne (mère de Léo, délégation)", email, password, None, "Patient/demo-claire")
        )
    if get_client(conn, DEMO_APP) is None:
        add_client(
            conn,
            settings,
            DEMO_APP,
            kind="public",
            name="Application SMART de démonstration",
            redirect_uris=[DEMO_APP_REDIRECT],
            post_logout_redirect_uris=["http://127.0.0.1:8000/"],
        )
    return credentials
