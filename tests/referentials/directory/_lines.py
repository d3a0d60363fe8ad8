"""Hand-written extraction lines for the directory tests (52 columns, trailing `|`)."""

from __future__ import annotations

from pathlib import Path

from socle.referentials.directory.extraction import ACTIVITY_COLUMNS

HEADER = "|".join(ACTIVITY_COLUMNS) + "|"
# A Luhn-valid RPPS, FINESS and SIRET (see test_identifiers).
RPPS = "10101010105"  # fictitious, passes Luhn
_FIELDS = {name: i for i, name in enumerate(ACTIVITY_COLUMNS)}


def activity_line(**values: str) -> str:
    """One line; keyword names are short aliases of the columns (see `_ALIASES`)."""
    f = [""] * len(ACTIVITY_COLUMNS)
    defaults = {
        "id_type": "8",
        "identifier": RPPS,
        "title": "DR",
        "civility": "MME",
        "family": "LEFÈVRE",
        "given": "Hélène",
        "profession": "10",
        "profession_label": "Médecin",
        "skill_type": "S",
        "skill": "SM54",
        "skill_label": "Médecine générale",
        "mode": "L",
        "tech": "C0000000001",
        "name": "CABINET DU DR LEFÈVRE",
        "num": "12",
        "street": "RUE DE LA PAIX",
        "postcode": "75015",
        "commune": "75115",
        "city": "Paris 15e Arrondissement",
        "email": "",
        "sector": "SA07",
    }
    defaults.update(values)
    v = defaults
    f[0], f[1] = v["id_type"], v["identifier"]
    f[2] = v.get("idnat", v["id_type"] + v["identifier"])
    f[3], f[5], f[7], f[8] = v["title"], v["civility"], v["family"], v["given"]
    f[9], f[10] = v["profession"], v["profession_label"]
    f[11] = "C"
    f[13], f[15], f[16] = (
        v["skill_type"] if v["skill"] else "",
        v["skill"],
        v["skill_label"] if v["skill"] else "",
    )
    f[17] = v["mode"]
    f[19], f[20] = v.get("siret", ""), v.get("siret", "")[:9]
    f[21], f[22], f[23] = v.get("finess", ""), v.get("finess_ej", ""), v["tech"]
    f[24], f[28], f[32] = v["name"], v["num"], v["street"]
    f[34] = f"{v['postcode']} PARIS"
    f[35], f[36], f[37] = v["postcode"], v["commune"], v["city"]
    f[38], f[39] = "99100", "France"
    f[40], f[43] = "0102030405", v["email"]
    f[48] = v["sector"]
    return "|".join(f) + "|"


def write_file(path: Path, lines: list[str], encoding: str = "utf-8", bom: bool = False) -> Path:
    data = "\n".join([HEADER, *lines]) + "\n"
    raw = data.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    return path
