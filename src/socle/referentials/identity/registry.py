"""The INSi-like national reference: a registry of identities and the lookup the téléservice answers.

INSi (shared/specs/ins.md §5) takes the strict traits typed by an operator, or a Vitale card, and
answers 00 with exactly one identity (matricule, OID, the five traits), 01 when none is found, 02 when
several are (the caller must add given names, then the birthplace: INSi never returns a list).
Socle's registry follows those rules:
- traits: birth name (compared on its normalised form, as INSi folds case and accents), the given
  names typed (each must be one of the person's, the first one first), sex, birth date (a partial
  date `YYYY` or `YYYY-MM` matches on the parts given; a registry date with an unknown day or month
  matches on the parts it has), and the birthplace when given;
- Vitale: the NIR printed on the card (the insured's, also for their children) and the beneficiary's
  birth date, and the first name when several beneficiaries share the date (twins).
Every call is recorded in `ins_lookup_log` (who, when, criteria, outcome): that table is the audit
record until the trust layer's audit chain exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from socle.referentials.identity.names import compact, normalize_name
from socle.referentials.identity.population import Person, ins_style
from socle.referentials.identity.profile import INS_SYSTEMS, Reliability, patient_resource
from socle.referentials.identity.registry_schema import ins_lookup_log, ins_registry
from socle.referentials.identity.traits import PartialDate, Traits, parse_partial_date
from socle.store.clock import now_us

__all__ = [
    "LookupResult",
    "RegistryEntry",
    "entry_from_row",
    "ins_kind",
    "registry_row",
    "load_registry",
    "lookup_traits",
    "lookup_vitale",
    "record_lookup",
]

OUTCOMES = {
    "00": "One identity found",
    "01": "No identity found: check the traits, or try with the Vitale card",
    "02": "Several identities found: add the other given names, then the birthplace (INSEE code)",
}


@dataclass(frozen=True)
class RegistryEntry:
    matricule: str
    kind: str  # identifier type code: INS-NIR, INS-NIA, INS-NIR-DEMO, INS-NIR-TEST
    birth_name: str
    given_names: tuple[str, ...]
    sex: str  # "male" | "female"
    birth_date: PartialDate
    birthplace: str

    def traits(self) -> Traits:
        return Traits(
            self.birth_name, self.given_names, self.birth_date, self.sex, self.birthplace, ins=self.matricule
        )

    @property
    def system(self) -> str:
        return next(oid for oid, (code, _) in INS_SYSTEMS.items() if code == self.kind)

    def patient(self, *, collection_date: str | None = None) -> dict[str, Any]:
        """The identity as a Patient in FR Core shape, status RECUP (retrieved, not yet document-checked)."""
        return patient_resource(
            self.traits(),
            reliability=Reliability("RECUP", method="INSI", collection_date=collection_date),
            ins_system=self.system,
        )


@dataclass(frozen=True)
class LookupResult:
    outcome: str  # "00" | "01" | "02"
    entry: RegistryEntry | None
    matches: int

    @property
    def message(self) -> str:
        return OUTCOMES[self.outcome]


def ins_kind(person: Person, *, demo: bool = True) -> str:
    """The identifier type of a synthetic person's INS: fictitious NIRs are INS-NIR-DEMO by default
    (OID .4.11, ins.md §2); an NIA has no demo authority and keeps INS-NIA."""
    if person.kind == "NIA":
        return "INS-NIA"
    return "INS-NIR-DEMO" if demo else "INS-NIR"


def registry_row(person: Person, *, demo: bool = True) -> dict[str, Any]:
    t = person.traits
    assert t.ins and t.birth_name and t.birth_date and t.sex and t.birthplace
    return {
        "matricule": t.ins,
        "kind": ins_kind(person, demo=demo),
        "birth_name": ins_style(t.birth_name),
        "given_names": " ".join(ins_style(g) for g in t.given_names),
        "sex": "M" if t.sex == "male" else "F",
        "birth_date": t.birth_date.to_fhir(),
        "birthplace": t.birthplace,
        "vitale_nir": person.vitale_nir,
        "name_key": compact(t.birth_name)[:100],
        "birth_year": t.birth_date.year,
    }


def load_registry(conn: Connection, people: Iterable[Person], *, batch: int = 5000, demo: bool = True) -> int:
    """Insert the people into the registry (one executemany per batch); returns how many."""
    rows: list[dict[str, Any]] = []
    total = 0
    for person in people:
        rows.append(registry_row(person, demo=demo))
        if len(rows) >= batch:
            conn.execute(insert(ins_registry), rows)
            total += len(rows)
            rows = []
    if rows:
        conn.execute(insert(ins_registry), rows)
        total += len(rows)
    return total


def entry_from_row(row: Any) -> RegistryEntry:
    return RegistryEntry(
        row.matricule,
        row.kind,
        row.birth_name,
        tuple(row.given_names.split()),
        "male" if row.sex == "M" else "female",
        parse_partial_date(row.birth_date),
        row.birthplace,
    )


def _given_match(typed: tuple[str, ...], registered: tuple[str, ...]) -> bool:
    """Every typed given name is one of the person's, and the first typed is the first registered."""
    if not typed:
        return True
    wanted = [compact(g) for g in typed]
    have = [compact(g) for g in registered]
    # "Jean Pierre" typed for "JEAN-PIERRE": compare the joined forms too.
    if "".join(wanted) == "".join(have[: len(wanted)]) or "".join(wanted) == have[0]:
        return True
    return wanted[0] == have[0] and all(w in have for w in wanted)


def _result(entries: list[RegistryEntry]) -> LookupResult:
    if not entries:
        return LookupResult("01", None, 0)
    if len(entries) > 1:
        return LookupResult("02", None, len(entries))
    return LookupResult("00", entries[0], 1)


def lookup_traits(
    conn: Connection,
    *,
    birth_name: str,
    given_names: tuple[str, ...],
    sex: str,
    birth_date: PartialDate,
    birthplace: str | None = None,
) -> LookupResult:
    rows = conn.execute(
        select(ins_registry).where(
            ins_registry.c.name_key == compact(birth_name)[:100], ins_registry.c.birth_year == birth_date.year
        )
    ).all()
    wanted_sex = "M" if sex == "male" else "F"
    found = []
    for row in rows:
        entry = entry_from_row(row)
        if row.sex != wanted_sex or normalize_name(entry.birth_name) != normalize_name(birth_name):
            continue
        if not birth_date.compatible(entry.birth_date):
            continue
        if birthplace and entry.birthplace != birthplace:
            continue
        if not _given_match(given_names, entry.given_names):
            continue
        found.append(entry)
    return _result(found)


def lookup_vitale(
    conn: Connection, *, vitale_nir: str, birth_date: PartialDate, given_names: tuple[str, ...] = ()
) -> LookupResult:
    rows = conn.execute(select(ins_registry).where(ins_registry.c.vitale_nir == vitale_nir)).all()
    found = [
        e
        for e in (entry_from_row(r) for r in rows)
        if birth_date.compatible(e.birth_date) and _given_match(given_names, e.given_names)
    ]
    return _result(found)


def record_lookup(
    conn: Connection,
    *,
    principal: str,
    mode: str,
    criteria: dict[str, Any],
    outcome: str,
    matches: int,
    matricule: str | None = None,
    detail: str | None = None,
) -> int:
    """Write one audit row for an `$ins-lookup` call; returns its id (quoted by `insi-retrieved`)."""
    result = conn.execute(
        insert(ins_lookup_log)
        .values(
            at=now_us(),
            principal=principal,
            mode=mode,
            criteria=criteria,
            outcome=outcome,
            matches=matches,
            matricule=matricule,
            detail=detail,
        )
        .returning(ins_lookup_log.c.lookup_id)
    )
    return int(result.scalar_one())
