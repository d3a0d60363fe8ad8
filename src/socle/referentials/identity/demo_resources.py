"""FHIR resources of the synthetic population: hospital Patient records, médecins traitants and
clinical content re-used from the Synthea bundles under the new identities.

A person becomes a Patient as a hospital would hold it: identity status drawn from a realistic mix
(QUAL 55 %, RECUP 15 %, VALI 10 %, PROV 20 %, a few PROV flagged DOUT), the INS only when INSi was
called (RECUP, QUAL), the used name beside the birth name, a home address, an IPP and the médecin
traitant (a GP of the directory's synthetic pool, `socle.referentials.directory.synthetic`, in the
patient's département when there is one, so both demos name the same RPPS). About 2 % of people get
a second, provisional record typed with errors at another visit: the duplicates `socle mpi
duplicates` must find (their pairs are written as ground truth).

Clinical content: each patient takes one of the 21 Synthea patients' bundles as template. Resources
are copied with new ids (uuid5 of seed, person, original id), references re-pointed (the Synthea
Organization and Practitioner of a template are shared by everyone using it) and every date shifted
by the difference of birth dates, so that events happen at the same ages; a resource that would fall
after 2026-01-01 is dropped, with whatever references it.
"""

from __future__ import annotations

import functools
import random
import re
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from socle.fhir.package import data_dir
from socle.referentials.directory.synthetic import SyntheticGP, general_practitioner, gp_count
from socle.referentials.identity.corruption import corrupt
from socle.referentials.identity.population import REFERENCE_DAY, Person
from socle.referentials.identity.profile import INS_SYSTEMS, Reliability, patient_resource
from socle.referentials.identity.registry import ins_kind

__all__ = [
    "ClinicalCloner",
    "duplicate_record",
    "gp_practitioner",
    "hospital_record",
    "patient_id",
    "template_bundles",
]

IPP_SYSTEM = "urn:socle:demo:ipp"
IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
_NAMESPACE = uuid.UUID("9b4c4f2e-6a0e-4d7b-9a53-5f3b1c2d7e10")
_STATUSES = (("QUAL", 55), ("RECUP", 15), ("VALI", 10), ("PROV", 20))
_DOCUMENTS = (("CN", 70), ("PA", 20), ("CS", 10))
ID = "id"
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(.*)$")


def patient_id(seed: int, index: int, *, duplicate: bool = False) -> str:
    return f"demo-{seed}-{index:07d}" + ("-d" if duplicate else "")


@functools.cache
def _gp_pool(professionals: int) -> tuple[dict[str, list[SyntheticGP]], list[SyntheticGP]]:
    pool = [general_practitioner(i) for i in range(gp_count(professionals))]
    by_department: dict[str, list[SyntheticGP]] = {}
    for gp in pool:
        by_department.setdefault(gp.commune.departement, []).append(gp)
    return by_department, pool


def gp_for(person: Person, professionals: int) -> SyntheticGP:
    by_department, pool = _gp_pool(professionals)
    department = (
        person.address.commune[:3] if person.address.commune.startswith("97") else person.address.commune[:2]
    )
    local = by_department.get(department) or pool
    return local[person.index % len(local)]


def gp_practitioner(gp: SyntheticGP) -> dict[str, Any]:
    """A minimal Practitioner for a médecin traitant; `socle directory import` completes it (same id)."""
    return {
        "resourceType": "Practitioner",
        "id": gp.practitioner_id,
        "identifier": [{"system": IDNAT_PS, "value": gp.idnat}],
        "active": True,
        "name": [{"use": "official", "family": gp.family, "given": [gp.given], "prefix": ["Dr"]}],
    }


def _reliability(rng: random.Random, status: str, when: str) -> Reliability:
    document = rng.choices([d for d, _ in _DOCUMENTS], [w for _, w in _DOCUMENTS])[0]
    if status == "QUAL":
        return Reliability(
            "QUAL",
            method=rng.choice(("INSI", "CV")),
            collection_date=when,
            validation_mode=document,
            validation_date=when,
        )
    if status == "RECUP":
        return Reliability("RECUP", method=rng.choice(("INSI", "CV")), collection_date=when)
    if status == "VALI":
        return Reliability("VALI", validation_mode=document, validation_date=when)
    return Reliability("PROV", comments=("DOUT",) if rng.random() < 0.025 else ())


def _visit_day(rng: random.Random) -> str:
    return (REFERENCE_DAY - timedelta(days=rng.randrange(1, 3000))).isoformat()


def _decorate(patient: dict[str, Any], person: Person, ipp: str, gp: SyntheticGP) -> dict[str, Any]:
    patient.setdefault("identifier", []).append(
        {
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]},
            "system": IPP_SYSTEM,
            "value": ipp,
        }
    )
    a = person.address
    patient["address"] = [
        {
            "use": "home",
            "type": "both",
            "line": [a.line],
            "postalCode": a.postal_code,
            "city": a.city,
            "country": "FR",
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                    "valueCoding": {"code": a.commune},
                }
            ],
        }
    ]
    patient["generalPractitioner"] = [
        {"reference": f"Practitioner/{gp.practitioner_id}", "display": f"Dr {gp.given} {gp.family}"}
    ]
    patient["active"] = True
    return patient


def hospital_record(
    person: Person, seed: int, rng: random.Random, *, professionals: int, demo_oid: bool = True
) -> dict[str, Any]:
    """The Patient a hospital holds for `person` (see the module docstring)."""
    status = rng.choices([s for s, _ in _STATUSES], [w for _, w in _STATUSES])[0]
    reliability = _reliability(rng, status, _visit_day(rng))
    ins_system = None
    if status in ("RECUP", "QUAL"):
        code = ins_kind(person, demo=demo_oid)
        ins_system = next(oid for oid, (c, _) in INS_SYSTEMS.items() if c == code)
    patient = patient_resource(
        person.traits,
        reliability=reliability,
        id=patient_id(seed, person.index),
        ins_system=ins_system,
        birthplace_name=person.birthplace_name,
    )
    return _decorate(patient, person, f"{seed:03d}{person.index:09d}", gp_for(person, professionals))


def duplicate_record(
    person: Person, seed: int, rng: random.Random, *, professionals: int
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A second, provisional record of the same person typed with one or two errors, and the errors."""
    traits, errors = corrupt(person.traits, rng, errors=1 if rng.random() < 0.7 else 2)
    patient = patient_resource(
        traits,
        reliability=Reliability("PROV"),
        id=patient_id(seed, person.index, duplicate=True),
    )
    patient = _decorate(
        patient,
        replace(person, traits=traits),
        f"{seed:03d}{person.index:09d}D",
        gp_for(person, professionals),
    )
    return patient, errors


@functools.cache
def template_bundles() -> tuple[tuple[dict[str, Any], ...], ...]:
    """The 21 Synthea patient bundles' entries (the hospital and practitioner bundles are skipped)."""
    templates = []
    with tarfile.open(data_dir() / "synthea" / "synthea-r4-25-patients.tgz", "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None or not member.name.endswith(".json"):
                continue
            bundle = orjson.loads(handle.read())
            entries = tuple(e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict))
            if any(e["resource"].get("resourceType") == "Patient" for e in entries):
                templates.append(entries)
    return tuple(templates)


def _shift(value: str, days: int) -> str | None:
    """The date/dateTime string moved by `days`; None if it is not a date."""
    match = _DATE.match(value)
    if not match:
        return None
    try:
        moved = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
    except ValueError:
        return None
    return f"{moved.isoformat()}{match[4]}"


class ClinicalCloner:
    """Copies a template's clinical resources for one patient (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.shared_done: set[str] = set()

    def clone(self, person: Person, patient_ref: str) -> list[dict[str, Any]]:
        templates = template_bundles()
        entries = templates[person.index % len(templates)]
        template_patient = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient")
        birth = person.traits.birth_date
        assert birth is not None
        new_birth = date(birth.year, birth.month or 7, birth.day or 1)
        days = (new_birth - date.fromisoformat(template_patient["birthDate"])).days
        mapping: dict[str, str] = {}
        for entry in entries:
            res = entry["resource"]
            full_url = str(entry.get("fullUrl", ""))
            rt = res["resourceType"]
            if rt == "Patient":
                mapping[full_url] = patient_ref
            elif rt in ("Organization", "Practitioner"):
                mapping[full_url] = f"{rt}/{uuid.uuid5(_NAMESPACE, f'{self.seed}:{res.get(ID)}')}"
            else:
                mapping[full_url] = (
                    f"{rt}/{uuid.uuid5(_NAMESPACE, f'{self.seed}:{person.index}:{res.get(ID)}')}"
                )
        limit = datetime(REFERENCE_DAY.year, REFERENCE_DAY.month, REFERENCE_DAY.day).isoformat()
        cloned: list[dict[str, Any]] = []
        dropped: set[str] = set()
        for entry in entries:
            res = entry["resource"]
            rt = res["resourceType"]
            if rt == "Patient":
                continue
            target = mapping[str(entry.get("fullUrl", ""))]
            if rt in ("Organization", "Practitioner"):
                if target in self.shared_done:
                    continue
                self.shared_done.add(target)
            text = orjson.dumps(res).decode()
            body = orjson.loads(text)
            future = False

            def rewrite(node: Any) -> Any:
                nonlocal future
                if isinstance(node, dict):
                    out = {}
                    for key, value in node.items():
                        if key == "reference" and isinstance(value, str) and value in mapping:
                            out[key] = mapping[value]
                        elif isinstance(value, str) and key not in (
                            "id",
                            "code",
                            "system",
                            "value",
                            "display",
                        ):
                            shifted = _shift(value, days)
                            if shifted is not None and shifted[:19] > limit:
                                future = True
                            out[key] = shifted if shifted is not None else value
                        else:
                            out[key] = rewrite(value)
                    return out
                if isinstance(node, list):
                    return [rewrite(item) for item in node]
                return node

            body = rewrite(body)
            body["id"] = target.split("/", 1)[1]
            body.pop("meta", None)
            if future:
                dropped.add(target)
                continue
            cloned.append(body)
        if dropped:
            cloned = _without_references_to(cloned, dropped)
        return cloned


def _without_references_to(resources: list[dict[str, Any]], dropped: set[str]) -> list[dict[str, Any]]:
    """Drop resources referencing dropped ones, until no reference dangles."""
    while True:
        kept = []
        for body in resources:
            refs = set(_references(body))
            if refs & dropped:
                dropped.add(f"{body['resourceType']}/{body['id']}")
            else:
                kept.append(body)
        if len(kept) == len(resources):
            return kept
        resources = kept


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)
