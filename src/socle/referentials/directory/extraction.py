"""The Annuaire Santé "libre accès" person/activity extraction (`PS_LibreAcces_Personne_activite`).

Format (shared/specs/directory.md §5): `|`-separated, one header line, 52 columns, a trailing `|` on
every line (so splitting gives a 53rd, empty, field), one line per professional × practice situation
(and, in practice, per savoir-faire). `parse_activity` turns one line into an `Activity` or raises
`LineError` with the reason; the importer counts and reports those without stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

from socle.referentials.directory.identifiers import (
    InvalidIdentifier,
    check_adeli,
    check_finess,
    check_idnat_ps,
    check_rpps,
    check_siren,
    check_siret,
)

__all__ = ["ACTIVITY_COLUMNS", "Activity", "LineError", "is_activity_header", "parse_activity"]

ACTIVITY_COLUMNS: tuple[str, ...] = (
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Code civilité d'exercice",
    "Libellé civilité d'exercice",
    "Code civilité",
    "Libellé civilité",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
    "Libellé profession",
    "Code catégorie professionnelle",
    "Libellé catégorie professionnelle",
    "Code type savoir-faire",
    "Libellé type savoir-faire",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Code mode exercice",
    "Libellé mode exercice",
    "Numéro SIRET site",
    "Numéro SIREN site",
    "Numéro FINESS site",
    "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure",
    "Raison sociale site",
    "Enseigne commerciale site",
    "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)",
    "Code commune (coord. structure)",
    "Libellé commune (coord. structure)",
    "Code pays (coord. structure)",
    "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)",
    "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)",
    "Code Département (structure)",
    "Libellé Département (structure)",
    "Ancien identifiant de la structure",
    "Autorité d'enregistrement",
    "Code secteur d'activité",
    "Libellé secteur d'activité",
    "Code section tableau pharmaciens",
    "Libellé section tableau pharmaciens",
)
_N = len(ACTIVITY_COLUMNS)


class LineError(ValueError):
    """A line that cannot be imported, and why (reported with its line number, import goes on)."""


@dataclass(frozen=True, slots=True)
class Activity:
    """One line: a professional, one practice situation, one savoir-faire (all optional but the person)."""

    id_type: str  # 0 ADELI, 8 RPPS
    identifier: str
    idnat: str
    exercise_title_code: str  # DR, PR...
    exercise_title: str
    civility_code: str  # M, MME
    family: str
    given: str
    profession_code: str
    profession: str
    category_code: str
    skill_type_code: str
    skill_code: str
    skill: str
    mode_code: str
    mode: str
    siret: str
    siren: str
    finess_site: str
    finess_legal: str
    structure_id: str
    structure_name: str
    structure_brand: str
    address_lines: tuple[str, ...]
    postcode: str
    commune_code: str
    city: str
    country_code: str
    country: str
    phones: tuple[str, ...]
    fax: str
    email: str
    sector_code: str
    sector: str
    warnings: tuple[str, ...]

    @property
    def structure_key(self) -> str:
        """The id of the practice site: its FINESS, else its SIRET, else its technical id ('' if none)."""
        if self.finess_site:
            return f"finess-{self.finess_site}"
        if self.siret:
            return f"siret-{self.siret}"
        if self.structure_id:
            return f"tech-{_id_safe(self.structure_id)}"
        return ""


def _id_safe(text: str) -> str:
    """A FHIR id fragment ([A-Za-z0-9-.]) from a technical identifier."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "-" for c in text)[:50]


def is_activity_header(header: str) -> bool:
    fields = header.split("|")
    return (
        len(fields) >= 3
        and fields[0].strip() == ACTIVITY_COLUMNS[0]
        and "Identification nationale PP" in header
    )


def parse_activity(text: str) -> Activity:
    """One data line → `Activity`; `LineError` naming the first problem found."""
    f = text.split("|")
    if len(f) == _N + 1 and f[_N] == "":
        f.pop()
    if len(f) != _N:
        raise LineError(f"expected {_N} fields separated by '|', got {len(f)}")
    f = [v.strip() for v in f]
    id_type, identifier, idnat = f[0], f[1], f[2]
    warnings: list[str] = []
    try:
        if id_type == "8":
            warnings.extend(check_rpps(identifier).warnings)
        elif id_type == "0":
            check_adeli(identifier)
        elif not id_type:
            raise LineError("empty 'Type d'identifiant PP'")
        else:
            raise LineError(f"unknown 'Type d'identifiant PP' {id_type!r} (expected 0 ADELI or 8 RPPS)")
        check_idnat_ps(idnat, id_type=id_type, identifier=identifier)
        finess_site = check_finess(f[21]).value if f[21] else ""
        finess_legal = check_finess(f[22]).value if f[22] else ""
        siret = check_siret(f[19]).value if f[19] else ""
        siren = check_siren(f[20]).value if f[20] else ""
    except InvalidIdentifier as error:
        raise LineError(error.diagnostics) from None
    if not f[7]:
        raise LineError("empty 'Nom d'exercice'")
    if not f[9]:
        raise LineError("empty 'Code profession'")
    street = " ".join(part for part in (f[28], f[29], f[31], f[32]) if part)
    lines = tuple(part for part in (f[26], f[27], street, f[33]) if part)
    return Activity(
        id_type=id_type,
        identifier=identifier,
        idnat=idnat,
        exercise_title_code=f[3],
        exercise_title=f[4],
        civility_code=f[5],
        family=f[7],
        given=f[8],
        profession_code=f[9],
        profession=f[10],
        category_code=f[11],
        skill_type_code=f[13],
        skill_code=f[15],
        skill=f[16],
        mode_code=f[17],
        mode=f[18],
        siret=siret,
        siren=siren,
        finess_site=finess_site,
        finess_legal=finess_legal,
        structure_id=f[23],
        structure_name=f[24],
        structure_brand=f[25],
        address_lines=lines,
        postcode=f[35] or (f[34][:5] if f[34][:5].isdigit() else ""),
        commune_code=f[36],
        city=f[37] or f[34][6:].strip(),
        country_code=f[38],
        country=f[39],
        phones=tuple(p for p in (f[40], f[41]) if p),
        fax=f[42],
        email=f[43],
        sector_code=f[48],
        sector=f[49],
        warnings=tuple(warnings),
    )
