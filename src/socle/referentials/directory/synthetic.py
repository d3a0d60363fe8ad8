"""Synthetic public extractions (person/activity file and FINESS file) for tests, benchmarks and the demo.

The files have exactly the public formats the importer reads (52 `|` columns with a trailing `|`;
raw etalab FINESS lines with Lambert 93 geolocation), with the realism that matters to an import:
several lines per professional (activities, savoir-faire), liberal practices without FINESS,
hospitals and médico-social establishments (EHPAD, SSIAD, IME, MAS…) with a legal entity, accented
names, MSSanté addresses for part of the professionals, and Luhn-valid RPPS, FINESS and SIRET.

Médecins traitants: the general practitioners are a fixed pool, `general_practitioner(i)`, a pure
function of `i` (its own seeded RNG), and a directory of N professionals always contains GPs
`0 … gp_count(N) - 1` as its first professionals. The patient generator (`socle demo generate`)
picks a patient's médecin traitant with `general_practitioners_in(departement, professionals=N)`
(or `general_practitioner(i)` for `i < gp_count(N)`), so both demos agree on RPPS, names and
communes as long as they use the same N. The numbers are fictitious.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from socle.referentials.directory.codes import display
from socle.referentials.directory.communes import Commune, communes
from socle.referentials.directory.extraction import ACTIVITY_COLUMNS
from socle.referentials.directory.finess_file import wgs84_to_lambert93
from socle.referentials.directory.mssante_file import MSSANTE_COLUMNS

__all__ = [
    "MSSANTE_FILE",
    "SyntheticGP",
    "gp_count",
    "general_practitioner",
    "general_practitioners_in",
    "write_extraction",
]

MSSANTE_FILE = "Extraction_Correspondance_MSSante_synthetic.txt"

_SURNAMES = (
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefèvre Leroy Roux "
    "David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Müller Lefebvre "
    "Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin "
    "Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie "
    "Lemaire Noël "
    "Meyer Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martínez "
    "Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas "
    "Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey Leclerc Payet Rolland Le-Gall Lecomte "
    "N'Diaye Hoarau"
).split()
_GIVEN = {
    "M": "Jean Pierre Michel Philippe Alain Nicolas Christophe Stéphane Sébastien Julien Thomas Jérôme Loïc "
    "François Frédéric Éric Olivier Mathieu Hugo Léo Théo Raphaël Benoît Gaël Noël Joël Rémi Cédric".split(),
    "MME": "Marie Nathalie Isabelle Sylvie Catherine Françoise Hélène Céline Sophie Aurélie Émilie Julie Léa "
    "Chloé Manon Zoé Gaëlle Anaïs Inès Maëlle Océane Clémence Agnès Bérénice Noémie Éloïse Camille".split(),
}
# (TRE_G15 code, weight, mode weights L/S, savoir-faire choices (code, weight), MSSanté share)
_PROFESSIONS: tuple[tuple[str, int, tuple[int, int], tuple[tuple[str, int], ...], float], ...] = (
    (
        "10",
        24,
        (55, 45),
        (
            ("SM54", 45),
            ("SM26", 5),
            ("SM04", 4),
            ("SM40", 4),
            ("SM42", 5),
            ("SM02", 4),
            ("SM20", 3),
            ("SM38", 3),
            ("SM15", 2),
            ("SM18", 3),
            ("SM59", 3),
            ("SM44", 3),
        ),
        0.7,
    ),
    ("60", 38, (30, 70), (("", 90), ("SI06", 3), ("SI07", 3), ("SI08", 4)), 0.3),
    ("70", 12, (80, 20), (("", 1),), 0.3),
    ("21", 9, (45, 55), (("", 1),), 0.5),
    ("40", 6, (90, 10), (("", 85), ("SCD01", 10), ("SCD02", 5)), 0.4),
    ("50", 3, (30, 70), (("", 1),), 0.5),
    ("91", 3, (85, 15), (("", 1),), 0.2),
    ("80", 2, (95, 5), (("", 1),), 0.2),
    ("92", 1, (70, 30), (("", 1),), 0.2),
    ("28", 2, (60, 40), (("", 1),), 0.0),
)
_MSS_DOMAIN = {
    "10": "medecin",
    "21": "pharmacien",
    "40": "chirurgien-dentiste",
    "50": "sage-femme",
    "60": "infirmier",
}
_PROFESSION_LABEL = {code: display("TRE_G15", code) or code for code, *_ in _PROFESSIONS}
# FINESS categories used for salaried practice: (category, label, weight, legal entity name pattern)
_ESTABLISHMENTS = (
    ("355", "Centre Hospitalier (C.H.)", 30, "CENTRE HOSPITALIER DE {city}"),
    ("106", "Centre hospitalier, ex Hôpital local", 6, "CH DE {city}"),
    ("124", "Centre de Santé", 8, "CENTRE DE SANTE {city}"),
    ("620", "Pharmacie d'Officine", 14, "PHARMACIE DU CENTRE {city}"),
    ("500", "Etablissement d'hébergement pour personnes âgées dépendantes", 18, "EHPAD LES TILLEULS {city}"),
    ("354", "Service de Soins Infirmiers A Domicile (S.S.I.A.D)", 8, "SSIAD DE {city}"),
    ("183", "Institut Médico-Educatif (I.M.E.)", 5, "IME LES LILAS {city}"),
    ("255", "Maison d'Accueil Spécialisée (M.A.S.)", 3, "MAS DU PARC {city}"),
    ("611", "Laboratoire de biologie médicale", 5, "LABORATOIRE DE BIOLOGIE {city}"),
    ("128", "Etablissement de Soins Chirurgicaux", 3, "CLINIQUE SAINT-JOSEPH {city}"),
)
_STREETS = (
    "R|Rue|DE LA REPUBLIQUE",
    "AV|Avenue|JEAN JAURES",
    "BD|Boulevard|PASTEUR",
    "PL|Place|DE LA MAIRIE",
    "R|Rue|VICTOR HUGO",
    "CHE|Chemin|DES ÉCOLIERS",
    "R|Rue|DU GÉNÉRAL DE GAULLE",
    "ALL|Allée|DES PÊCHERS",
)


@dataclass(frozen=True)
class SyntheticGP:
    index: int
    rpps: str
    idnat: str
    civility: str  # M, MME
    family: str
    given: str
    commune: Commune

    @property
    def practitioner_id(self) -> str:
        return f"ps-{self.idnat}"


def _with_luhn(stem: str) -> str:
    """Append the Luhn digit that makes `stem + digit` pass."""
    for d in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(stem + d)):
            v = int(ch) * (2 if i % 2 else 1)
            total += v - 9 if v > 9 else v
        if total % 10 == 0:
            return stem + d
    raise AssertionError("unreachable")


@functools.cache
def _towns() -> tuple[Commune, ...]:
    """Communes with a GeoNames position (towns of more than 1,000 inhabitants), in code order."""
    return tuple(c for _, c in sorted(communes().items()) if c.precision == "geonames" and len(c.code) == 5)


def gp_count(professionals: int) -> int:
    """How many of the first professionals of a directory of `professionals` are the GP pool."""
    return max(1, professionals // 8)


def general_practitioner(index: int) -> SyntheticGP:
    rng = random.Random(f"socle-gp-{index}")
    civility = rng.choice(("M", "MME"))
    rpps = _with_luhn(f"1{index:09d}")  # 1 + 9 digits + key: 11 digits, fictitious range
    return SyntheticGP(
        index,
        rpps,
        "8" + rpps,
        civility,
        rng.choice(_SURNAMES).upper(),
        rng.choice(_GIVEN[civility]),
        rng.choice(_towns()),
    )


def general_practitioners_in(departement: str, *, professionals: int) -> list[SyntheticGP]:
    """The pool's GPs practising in a département (all of the pool if none does)."""
    pool = [general_practitioner(i) for i in range(gp_count(professionals))]
    local = [gp for gp in pool if gp.commune.departement == departement]
    return local or pool


class _Writer:
    def __init__(self, seed: int, professionals: int) -> None:
        self.rng = random.Random(seed)
        self.professionals = professionals
        self.establishments: list[tuple[str, str, str, str, Commune]] = []  # (EG, EJ, cat, name, commune)
        self._finess_serial = 0
        self.cabinets: dict[str, list[dict[str, str]]] = {}  # liberal sites by commune, for sharing
        self.mailboxes: list[str] = []  # MSSanté extraction lines not yet written

    def _finess(self, commune: Commune) -> str:
        self._finess_serial += 1
        dept = (
            commune.departement
            if len(commune.departement) == 2
            else "9" + "ABCDF"["12346".index(commune.departement[2])]
        )
        return (
            _with_luhn(f"{dept}{self._finess_serial:06d}")
            if dept.isdigit()
            else f"{dept}{self._finess_serial:07d}"
        )

    def establishment(self, commune: Commune) -> tuple[str, str, str, str, Commune]:
        """A FINESS establishment in or near a commune: reused once a commune has a few."""
        local = [e for e in self.establishments[-400:] if e[4].departement == commune.departement]
        if local and self.rng.random() < 0.85:
            return self.rng.choice(local)
        cat, _, _, pattern = self.rng.choices(_ESTABLISHMENTS, weights=[e[2] for e in _ESTABLISHMENTS])[0]
        eg, ej = self._finess(commune), self._finess(commune)
        entry = (eg, ej, cat, pattern.format(city=commune.name.upper()), commune)
        self.establishments.append(entry)
        return entry

    def lines(self) -> Iterator[str]:
        for i in range(self.professionals):
            yield from self.person(i)

    def person(self, i: int) -> Iterator[str]:
        rng = self.rng
        gps = gp_count(self.professionals)
        if i < gps:
            gp = general_practitioner(i)
            profession, skills, mss = "10", ["SM54"], 0.8
            civility, family, given, town = gp.civility, gp.family, gp.given, gp.commune
            id_type, ident, mode_weights = "8", gp.rpps, (100, 0)
        else:
            spec = rng.choices(_PROFESSIONS, weights=[p[1] for p in _PROFESSIONS])[0]
            profession, mode_weights, skill_choices, mss = spec[0], spec[2], spec[3], spec[4]
            skills = [rng.choices([s[0] for s in skill_choices], weights=[s[1] for s in skill_choices])[0]]
            if profession == "10" and rng.random() < 0.1:
                skills.append("SM57" if skills[0] != "SM57" else "SM58")
            civility = rng.choice(("M", "MME"))
            family, given = rng.choice(_SURNAMES).upper(), rng.choice(_GIVEN[civility])
            town = rng.choice(_towns())
            if profession in ("91", "80", "92", "28") and rng.random() < 0.3:
                id_type, ident = "0", f"{town.departement[:2]}{rng.randrange(10**7):07d}"
            else:
                id_type, ident = "8", _with_luhn(f"2{i:09d}")
        title = (
            ("DR", "Docteur")
            if profession in ("10", "40") or (profession == "21" and rng.random() < 0.5)
            else ("", "")
        )
        email = ""
        if rng.random() < mss and profession in _MSS_DOMAIN:
            email = f"{_ascii(given)}.{_ascii(family)}{i}@{_MSS_DOMAIN[profession]}.mssante.fr"
        # Every MSSanté address is in the MSSanté extraction; a third also in the person file's e-mail
        # column (as some real lines have), decided without the RNG so the files stay comparable.
        listed = email if i % 3 == 0 else ""
        activities = 1 if rng.random() < 0.8 else 2
        for n in range(activities):
            mode = rng.choices(("L", "S"), weights=mode_weights)[0]
            site = self.site(mode, town, profession)
            if email and n == 0:
                self.mailboxes.append(
                    _mailbox_line(
                        "PER", email, id_type, ident, site, title[0], family, given, profession, skills[0]
                    )
                )
            for skill in skills:
                yield self.line(
                    id_type, ident, title, civility, family, given, profession, skill, mode, site, listed
                )
            town = town if rng.random() < 0.7 else rng.choice(_towns())

    def site(self, mode: str, town: Commune, profession: str) -> dict[str, str]:
        rng = self.rng
        street = rng.choice(_STREETS).split("|")
        base = {
            "num": str(rng.randrange(1, 120)),
            "street_code": street[0],
            "street_type": street[1],
            "street": street[2],
            "postcode": town.postcodes[0] if town.postcodes else "",
            "commune": town.code,
            "city": town.name,
            "dept": town.departement,
            "phone": f"0{rng.randrange(1, 6)}{rng.randrange(10**8):08d}",
        }
        if mode == "S" or profession == "21" and rng.random() < 0.6:
            eg, ej, cat, name, where = self.establishment(town)
            return {
                **base,
                "finess": eg,
                "finess_ej": ej,
                "name": name,
                "tech": f"F{eg}",
                "sector": "SA01",
                "commune": where.code,
                "city": where.name,
                "dept": where.departement,
                "postcode": where.postcodes[0] if where.postcodes else "",
            }
        pool = self.cabinets.setdefault(town.code, [])
        if pool and rng.random() < 0.5:  # group practices (SA08), maisons de santé: shared sites
            return {**base, **rng.choice(pool)}
        siret = ""
        if rng.random() < 0.4:  # SIREN and SIRET each carry a Luhn key
            siren = _with_luhn(f"{rng.randrange(10**7, 10**8)}")
            siret = _with_luhn(f"{siren}{rng.randrange(10**4):04d}")
        cabinet = {
            **base,
            "finess": "",
            "finess_ej": "",
            "tech": f"C{rng.randrange(10**10):010d}",
            "siret": siret,
            "name": "",
            "sector": rng.choice(("SA07", "SA07", "SA08", "SA09")),
        }
        pool.append(cabinet)
        if len(pool) > 20:
            pool.pop(0)
        return cabinet

    def line(
        self,
        id_type: str,
        ident: str,
        title: tuple[str, str],
        civility: str,
        family: str,
        given: str,
        profession: str,
        skill: str,
        mode: str,
        site: dict[str, str],
        email: str,
    ) -> str:
        f = [""] * len(ACTIVITY_COLUMNS)
        f[0], f[1], f[2] = id_type, ident, id_type + ident
        f[3], f[4] = title
        f[5], f[6] = civility, "Monsieur" if civility == "M" else "Madame"
        f[7], f[8], f[9], f[10] = family, given, profession, _PROFESSION_LABEL[profession]
        f[11], f[12] = "C", "Civil"
        if skill:
            f[13], f[14], f[15], f[16] = "S", "Spécialité ordinale", skill, display("TRE_R38", skill) or skill
        f[17], f[18] = mode, {"L": "Libéral, indépendant, artisan, commerçant", "S": "Salarié"}[mode]
        f[19] = site.get("siret", "")
        f[20] = f[19][:9]
        f[21], f[22], f[23] = site["finess"], site["finess_ej"], site["tech"]
        f[24] = site["name"] or (f"CABINET DU DR {family}" if title[0] else "")
        f[28], f[30], f[31], f[32] = site["num"], site["street_code"], site["street_type"], site["street"]
        f[34] = f"{site['postcode']} {site['city'].upper()}"
        f[35], f[36], f[37] = site["postcode"], site["commune"], site["city"]
        f[38], f[39] = "99100", "France"
        f[40], f[43] = site["phone"], email
        f[44] = site["dept"]
        f[47] = {"10": "CNOM/CNOM/CNOM", "21": "CNOP/CNOP/CNOP", "40": "CNOCD/CNOCD/CNOCD"}.get(
            profession, "ARS/ARS/ARS"
        )
        f[48] = site["sector"]
        f[49] = {
            "SA01": "Etablissement public de santé",
            "SA07": "Cabinet individuel",
            "SA08": "Cabinet de groupe",
            "SA09": "Exercice en société",
        }[site["sector"]]
        return "|".join(f) + "|"

    def finess_lines(self) -> Iterator[str]:
        yield f"finess;etalab;{len(self.establishments)};2026-01-01"
        for eg, ej, cat, name, town in self.establishments:
            label = next(e[1] for e in _ESTABLISHMENTS if e[0] == cat)
            dept = eg[:2]
            fields = [
                "structureet",
                eg,
                ej,
                name[:38],
                name,
                "",
                "",
                "1",
                "R",
                "DE L'HOPITAL",
                "",
                "",
                town.code[-3:],
                dept,
                town.name,
                f"{town.postcodes[0] if town.postcodes else ''} {town.name.upper()}",
                "0100000000",
                "",
                cat,
                label,
                "",
                "",
                "",
                "8610Z",
                "03",
                "ARS / DG EPS",
                "1",
                "Etablissement public",
                "1990-01-01",
                "1990-01-01",
                "2025-06-01",
                "",
            ]
            yield ";".join(fields)
        for eg, _ej, _cat, _name, town in self.establishments:
            if (
                town.latitude is None
                or town.longitude is None
                or not town.departement[:2].isdigit()
                or town.departement.startswith("97")
            ):
                continue
            x, y = wgs84_to_lambert93(town.latitude, town.longitude)
            source = "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93"
            yield f"geolocalisation;{eg};{x:.1f};{y:.1f};{source};2025-06-01"


def _mailbox_line(
    kind: str,
    address: str,
    id_type: str,
    ident: str,
    site: dict[str, str],
    title: str = "",
    family: str = "",
    given: str = "",
    profession: str = "",
    skill: str = "",
) -> str:
    """One line of the MSSanté extraction (31 `|` fields, see `mssante_file`)."""
    f = [""] * len(MSSANTE_COLUMNS)
    f[0], f[1] = kind, address
    if ident:
        f[2], f[3], f[4] = id_type, ident, id_type + ident
    if site.get("finess"):
        f[5], f[6] = "1", "1" + site["finess"]  # idNat_Struct of a FINESS establishment
    elif site.get("tech"):
        f[5], f[6] = "", site["tech"]
    f[7] = "Secrétariat médical" if kind == "ORG" else ""
    f[8], f[9], f[10] = title, family, given
    if profession:
        f[11], f[12], f[13], f[14] = "C", "Civil", profession, _PROFESSION_LABEL[profession]
    if skill:
        f[15], f[16] = skill, display("TRE_R38", skill) or skill
    f[17] = "O" if kind == "PER" else ""
    f[18] = site.get("name", "")
    f[22], f[24], f[25] = site.get("num", ""), site.get("street_code", ""), site.get("street", "")
    f[27] = f"{site.get('postcode', '')} {site.get('city', '').upper()}".strip()
    f[28], f[29], f[30] = site.get("postcode", ""), site.get("dept", ""), "France"
    return "|".join(f)


def _ascii(text: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in folded if c.isalnum())


def write_extraction(
    out: Path, professionals: int, *, seed: int = 1, encoding: str = "utf-8"
) -> tuple[Path, Path, int]:
    """Write the person/activity, FINESS and MSSanté files; (person file, FINESS file, person lines).

    The MSSanté extraction is `out / MSSANTE_FILE`: a personal mailbox for each professional whose
    person lines carry an MSSanté address, an organisational one for each hospital or clinic.
    """
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(seed, professionals)
    people = out / "PS_LibreAcces_Personne_activite_synthetic.txt"
    count = 0
    with (
        open(people, "w", encoding=encoding, errors="replace", newline="\n") as handle,
        open(out / MSSANTE_FILE, "w", encoding="utf-8", newline="\n") as mailboxes,
    ):
        handle.write("|".join(ACTIVITY_COLUMNS) + "|\n")
        mailboxes.write("|".join(MSSANTE_COLUMNS) + "\n")
        for line in writer.lines():
            handle.write(line + "\n")
            count += 1
            if writer.mailboxes:
                mailboxes.writelines(m + "\n" for m in writer.mailboxes)
                writer.mailboxes.clear()
        for eg, _, cat, name, town in writer.establishments:  # hospitals' organisational mailboxes
            if cat in ("355", "106", "128"):
                site = {"finess": eg, "name": name, "postcode": town.postcodes[0] if town.postcodes else ""}
                mailboxes.write(
                    _mailbox_line("ORG", f"secretariat@{eg}.etab.mssante.fr", "", "", site) + "\n"
                )
    finess = out / "etalab_cs1100507_stock_synthetic.csv"
    with open(finess, "w", encoding="latin-1", errors="replace", newline="\n") as handle:
        for line in writer.finess_lines():
            handle.write(line + "\n")
    return people, finess, count
