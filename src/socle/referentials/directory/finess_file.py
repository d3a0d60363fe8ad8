"""The FINESS establishment extraction (data.gouv.fr "etalab" file), in its two public shapes.

1. The raw etalab file: `;`-separated, Latin-1, a first line `finess;etalab;…`, then one
   `structureet;` line per establishment (31 fields after the tag: nofinesset, nofinessej, rs,
   rslongue, complrs, compldistrib, numvoie, typvoie, voie, compvoie, lieuditbp, commune,
   departement, libdepartement, ligneacheminement, telephone, telecopie, categetab, libcategetab,
   categagretab, libcategagretab, siret, codeape, codemft, libmft, codesph, libsph, dateouv,
   dateautor, datemaj, numuai) and, at the end, one `geolocalisation;nofinesset;coordx;coordy;
   source;date` line per establishment (Lambert 93 in metropolitan France).
2. A header-named CSV (as republished with columns `nofinesset;nofinessej;rs;…;cog;codepostal;…;
   coordx;coordy`): fields are read by name.

In the raw file the commune is 3 digits within the département (`departement` `75` + `commune`
`056` = INSEE `75056`); overseas départements are coded `9A`…`9F` there, mapped to INSEE `97x`
by the commune's own 3 digits (`9A` + `101` → `97101`): UNVERIFIED beyond the examples seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from socle.referentials.directory.extraction import LineError
from socle.referentials.directory.identifiers import InvalidIdentifier, check_finess, check_siret

__all__ = [
    "Establishment",
    "FinessLayout",
    "finess_layout",
    "lambert93_to_wgs84",
    "parse_establishment",
    "parse_geolocation",
    "wgs84_to_lambert93",
]

_RAW = (
    "nofinesset nofinessej rs rslongue complrs compldistrib numvoie typvoie voie compvoie lieuditbp "
    "commune departement libdepartement ligneacheminement telephone telecopie categetab libcategetab "
    "categagretab libcategagretab siret codeape codemft libmft codesph libsph dateouv dateautor datemaj "
    "numuai"
).split()


@dataclass(frozen=True)
class FinessLayout:
    """How to read a FINESS file: `raw` (tagged lines) or named columns from a header line."""

    raw: bool
    columns: tuple[str, ...]


def finess_layout(header: str) -> FinessLayout | None:
    """The layout of a file from its first line, None if it is not a FINESS extraction."""
    lowered = header.strip().lower()
    if lowered.startswith("finess;etalab") or lowered.startswith("structureet;"):
        return FinessLayout(True, tuple(_RAW))
    names = tuple(c.strip().strip('"').lower() for c in header.split(";"))
    if "nofinesset" in names and "nofinessej" in names:
        return FinessLayout(False, names)
    return None


@dataclass(frozen=True, slots=True)
class Establishment:
    finess: str  # établissement (entité géographique)
    legal_finess: str  # entité juridique
    name: str
    short_name: str
    address_lines: tuple[str, ...]
    commune_code: str  # INSEE COG
    postcode: str
    city: str
    phone: str
    fax: str
    category: str  # TRE_R66
    category_label: str
    siret: str
    opened: str  # YYYY-MM-DD or ''
    x: float | None  # as in the file (Lambert 93 in metropolitan France)
    y: float | None
    coordinate_source: str
    warnings: tuple[str, ...]


def _insee(departement: str, commune: str) -> str:
    dept, com = departement.strip().upper(), commune.strip()
    if not com:
        return ""
    if len(com) == 5:  # already a full COG code (header-named files)
        return com
    if len(dept) == 2 and dept[0] == "9" and dept[1].isalpha():
        return "97" + com
    return dept + com


def _float(text: str) -> float | None:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_establishment(text: str, layout: FinessLayout) -> Establishment | None:
    """A `structureet` line (or a named-column row) → `Establishment`; None for lines to skip.

    Raises `LineError` for a line that should have been an establishment but cannot be one.
    """
    fields = text.split(";")
    if layout.raw:
        tag = fields[0].strip().lower()
        if tag != "structureet":
            return None  # header, geolocalisation lines (read separately) and other record kinds
        values = fields[1:]
        if len(values) < 22:
            raise LineError(f"expected at least 22 fields after 'structureet', got {len(values)}")
        row = dict(zip(layout.columns, (v.strip() for v in values), strict=False))
    else:
        if len(fields) != len(layout.columns):
            raise LineError(f"expected {len(layout.columns)} fields separated by ';', got {len(fields)}")
        row = {k: v.strip().strip('"') for k, v in zip(layout.columns, fields, strict=True)}
    warnings: list[str] = []
    try:
        checked = check_finess(row.get("nofinesset", ""))
        legal = check_finess(row["nofinessej"]).value if row.get("nofinessej") else ""
        warnings.extend(checked.warnings)
        siret = row.get("siret", "")
        if siret:
            try:
                siret = check_siret(siret).value
            except InvalidIdentifier as error:
                warnings.append(f"{error.diagnostics} (SIRET ignored)")
                siret = ""
    except InvalidIdentifier as error:
        raise LineError(error.diagnostics) from None
    routing = row.get("ligneacheminement", "")
    postcode = row.get("codepostal", "") or (routing[:5] if routing[:5].isdigit() else "")
    city = routing[6:].strip() if routing[:5].isdigit() else row.get("libelle_routage", "") or routing
    street = " ".join(p for p in (row.get("numvoie", ""), row.get("typvoie", ""), row.get("voie", "")) if p)
    lines = tuple(
        p
        for p in (row.get("complrs", ""), row.get("compldistrib", ""), street, row.get("lieuditbp", ""))
        if p
    )
    commune = row.get("cog", "") or _insee(row.get("departement", ""), row.get("commune", ""))
    return Establishment(
        finess=checked.value,
        legal_finess=legal,
        name=row.get("rslongue", "") or row.get("rs", ""),
        short_name=row.get("rs", ""),
        address_lines=lines,
        commune_code=commune,
        postcode=postcode,
        city=city,
        phone=row.get("telephone", ""),
        fax=row.get("telecopie", ""),
        category=row.get("categetab", ""),
        category_label=row.get("libcategetab", ""),
        siret=siret,
        opened=row.get("dateouv", "") or row.get("dateouvert", ""),
        x=_float(row.get("coordx", "")),
        y=_float(row.get("coordy", "")),
        coordinate_source=row.get("sourcegeocod", ""),
        warnings=tuple(warnings),
    )


def parse_geolocation(text: str) -> tuple[str, float, float, str] | None:
    """(finess, x, y, source) of a raw `geolocalisation;` line, None for any other line."""
    fields = text.split(";")
    if len(fields) < 4 or fields[0].strip().lower() != "geolocalisation":
        return None
    x, y = _float(fields[2]), _float(fields[3])
    if x is None or y is None:
        return None
    return fields[1].strip(), x, y, fields[4].strip() if len(fields) > 4 else ""


# Lambert 93 (RGF93, EPSG:2154) inverse projection, IGN note NTG 71 / ALG0004 constants.
_N = 0.7256077650
_C = 11754255.426
_XS = 700000.0
_YS = 12655612.050
_E = 0.0818191910428158
_LON0 = math.radians(3.0)


def lambert93_to_wgs84(x: float, y: float) -> tuple[float, float] | None:
    """(latitude, longitude) in degrees of a Lambert 93 point; None if outside metropolitan France."""
    dx, dy = x - _XS, _YS - y
    r = math.hypot(dx, dy)
    if r == 0:
        return None
    gamma = math.atan2(dx, dy)
    lon = _LON0 + gamma / _N
    iso = -math.log(r / _C) / _N
    lat = 2 * math.atan(math.exp(iso)) - math.pi / 2
    for _ in range(12):
        s = _E * math.sin(lat)
        lat = 2 * math.atan(((1 + s) / (1 - s)) ** (_E / 2) * math.exp(iso)) - math.pi / 2
    lat_deg, lon_deg = math.degrees(lat), math.degrees(lon)
    if not (41.0 <= lat_deg <= 51.5 and -5.5 <= lon_deg <= 10.0):
        return None
    return lat_deg, lon_deg


def wgs84_to_lambert93(latitude: float, longitude: float) -> tuple[float, float]:
    """(x, y) in Lambert 93 of a WGS 84 point (the synthetic FINESS file writes coordinates this way)."""
    phi = math.radians(latitude)
    s = _E * math.sin(phi)
    iso = math.log(math.tan(math.pi / 4 + phi / 2) * ((1 - s) / (1 + s)) ** (_E / 2))
    r = _C * math.exp(-_N * iso)
    gamma = _N * (math.radians(longitude) - _LON0)
    return _XS + r * math.sin(gamma), _YS - r * math.cos(gamma)
