"""Identifier systems and code systems of the French directory, and the code lists shipped in data/.

System URLs follow FR Core and the Annuaire Santé IG (shared/specs/directory.md §1-3): NOS
terminologies live at `https://mos.esante.gouv.fr/NOS/<TRE_xxx>/FHIR/<TRE-xxx>`. The code lists
(`data/directory/codes.csv`: professions TRE_G15, ordinal specialties TRE_R38, FINESS categories
TRE_R66 with a médico-social flag, modes of practice TRE_R23, ...) give displays and let the import
tell a known code from a typo; an unknown code is still imported (the national lists move faster
than a release), with the display the file gave.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from socle.fhir.package import data_dir

__all__ = [
    "ADELI_SYSTEM",
    "FINESS_SYSTEM",
    "FINESS_SYSTEM_HTTP",
    "IDNAT_PS_SYSTEM",
    "IDNAT_ST_SYSTEM",
    "IDENTIFIER_TYPE_SYSTEM",
    "MAILBOX_TYPE_EXTENSION",
    "RPPS_SYSTEM",
    "SIRENE_SYSTEM",
    "STRUCTURE_TECH_SYSTEM",
    "Code",
    "code_list",
    "coding",
    "display",
    "is_medico_social",
    "nos_system",
]

RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
ADELI_SYSTEM = "https://adeli.esante.gouv.fr"
IDNAT_PS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
IDNAT_ST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
# Older profiles published FINESS in http: searches should accept both (spec sheet §2).
FINESS_SYSTEM_HTTP = "http://finess.esante.gouv.fr"
SIRENE_SYSTEM = "https://sirene.fr"
# The extraction's "Identifiant technique de la structure" (C…, R…, F…): no national system is
# published for it, so it gets Socle's own (a structure with neither FINESS nor SIRET has only this).
STRUCTURE_TECH_SYSTEM = "https://socle.esante.example/fhir/sid/structure-technique"
IDENTIFIER_TYPE_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
MAILBOX_TYPE_EXTENSION = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"

_NOS_NAMES = {
    "TRE_G15": "ProfessionSante",
    "TRE_R38": "SpecialiteOrdinale",
    "TRE_R66": "CategorieEtablissement",
    "TRE_R23": "ModeExercice",
    "TRE_R09": "CategorieProfessionnelle",
    "TRE_R02": "SecteurActivite",
    "TRE_R22": "GenreActivite",
    "TRE_R21": "Fonction",
    "TRE_R256": "TypeMessagerie",
    "TRE_R13": "Commune",
    "TRE_R39": "CompetenceOrdinale",
    "TRE_R40": "CompetenceExclusive",
    "TRE_R42": "DESCnonQualifiant",
    "TRE_R43": "CapaciteSavoirFaire",
    "TRE_R44": "QualificationPAC",
    "TRE_R45": "FonctionQualifiee",
    "TRE_R97": "DroitExerciceCompl",
    "TRE_G13": "OrientationParticuliere",
}


@dataclass(frozen=True)
class Code:
    system: str  # short NOS name, e.g. TRE_G15
    code: str
    display: str
    note: str


def nos_system(name: str) -> str:
    """Canonical URL of a NOS terminology from its short name (`TRE_G15` → …/TRE-G15-ProfessionSante)."""
    label = _NOS_NAMES.get(name)
    if label is None:
        raise KeyError(f"unknown NOS terminology {name}")
    dashed = name.replace("_", "-")
    return f"https://mos.esante.gouv.fr/NOS/{name}-{label}/FHIR/{dashed}-{label}"


@functools.cache
def _codes() -> dict[str, dict[str, Code]]:
    table: dict[str, dict[str, Code]] = {}
    with open(data_dir() / "directory" / "codes.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code = Code(row["code_system"], row["code"], row["display"], row["note"])
            table.setdefault(code.system, {})[code.code] = code
    return table


def code_list(system: str) -> dict[str, Code]:
    """The shipped codes of one NOS terminology, by code (empty if none are shipped)."""
    return _codes().get(system, {})


def display(system: str, code: str, fallback: str | None = None) -> str | None:
    known = _codes().get(system, {}).get(code)
    return known.display if known is not None else (fallback or None)


@functools.lru_cache(maxsize=4096)
def coding(system: str, code: str, fallback_display: str | None = None) -> dict[str, str]:
    """A FHIR Coding in a NOS terminology, with the shipped display (else the file's label).

    Cached (the same few hundred codes recur on every line): callers must not mutate the result.
    """
    result = {"system": nos_system(system), "code": code}
    label = display(system, code, fallback_display)
    if label:
        result["display"] = label
    return result


def is_medico_social(category: str) -> bool:
    """Whether a FINESS category (TRE_R66) is a social or médico-social establishment (ESMS)."""
    known = _codes().get("TRE_R66", {}).get(category)
    return known is not None and known.note.startswith("esms")
