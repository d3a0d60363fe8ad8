"""The master patient index: find the stored Patients that are a given identity, and duplicates.

`match` is `Patient/$match` without HTTP: blocking (index.py) then the Fellegi–Sunter model
(model.py) on the candidates' normalised traits; JSON is read only for the few results returned.
`find_duplicates` walks the store by slices of resource keys; for each slice one SQL statement pairs
every Patient with the later ones sharing a blocking key, and pairs are scored like `$match`
candidates. Memory stays bounded by the slice, whatever the population. Before the per-pair
comparison, `prefilter` drops, one Patient's partners at a time in rapidfuzz's C loop, the pairs
whose surnames and first names are all far apart (Jaro–Winkler < 0.75 both ways, not exchanged):
such a pair is graded certainly-not whatever its dates and places (family and given `diff` weigh
-13 together, more than an exact date, sex and place can make up against the prior), so only pairs
that could be probable reach the Python comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler
from sqlalchemy import Connection, and_, func, select

from socle.referentials.identity import model
from socle.referentials.identity.comparison import Levels, Record, compare, record_from_traits
from socle.referentials.identity.index import candidates, load_records
from socle.referentials.identity.registry_schema import mpi_block, mpi_traits
from socle.referentials.identity.traits import Traits
from socle.store.access import AccessFilter

__all__ = ["DuplicatePair", "find_duplicates", "match", "prefilter"]

# Below this Jaro–Winkler similarity two names are `diff` for comparison.py (its fuzzy level starts at
# 0.88, or equal phonetic keys: those agree at 0.75 for the names seen in the benchmark).
_FAR = 0.75

_GRADE_ORDER = {grade: index for index, grade in enumerate(model.GRADES)}


def match(
    conn: Connection,
    access: AccessFilter,
    traits: Traits,
    *,
    count: int = 10,
    only_certain: bool = False,
    exclude_key: int | None = None,
) -> list[model.Scored]:
    """Candidates graded certain, probable or possible, best first (at most `count`)."""
    query = record_from_traits(traits)
    found = candidates(conn, query, access, exclude=exclude_key)
    scored = model.score([(c.key, compare(query, c)) for c in found if c.key is not None])
    kept = [s for s in scored if s.grade != "certainly-not" and (not only_certain or s.grade == "certain")]
    return kept[:count]


@dataclass(frozen=True)
class DuplicatePair:
    key_a: int
    key_b: int
    id_a: str
    id_b: str
    levels: Levels
    weight: float
    probability: float
    grade: str


def find_duplicates(
    conn: Connection,
    access: AccessFilter,
    *,
    min_grade: str = "probable",
    slice_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[DuplicatePair]:
    """Pairs of live Patients at least `min_grade` alike; `progress(patients, pairs)` after each slice."""
    threshold = _GRADE_ORDER[min_grade]
    bounds = conn.execute(
        select(func.min(mpi_traits.c.resource_key), func.max(mpi_traits.c.resource_key))
    ).one()
    if bounds[0] is None:
        return
    low, high = int(bounds[0]), int(bounds[1])
    a, b = mpi_block.alias("a"), mpi_block.alias("b")
    while low <= high:
        top = low + slice_size
        pairs = [
            (_int(x), _int(y))
            for x, y in conn.execute(
                select(a.c.resource_key, b.c.resource_key)
                .join(b, and_(b.c.key_hash == a.c.key_hash, b.c.resource_key > a.c.resource_key))
                .where(a.c.resource_key >= low, a.c.resource_key < top)
                .distinct()
            )
        ]
        records = load_records(conn, sorted({k for pair in pairs for k in pair}), access)
        slice_patients = conn.execute(
            select(func.count())
            .select_from(mpi_traits)
            .where(mpi_traits.c.resource_key >= low, mpi_traits.c.resource_key < top)
        ).scalar_one()
        for key_a, key_b in prefilter(pairs, records) if threshold <= _GRADE_ORDER["probable"] else pairs:
            record_a, record_b = records.get(key_a), records.get(key_b)
            if record_a is None or record_b is None:
                continue  # inactive (merged away) or hidden by the policy
            levels = compare(record_a, record_b)
            w = model.weight(levels)
            grade = model.grade(levels, w, None)
            if _GRADE_ORDER[grade] <= threshold:
                yield DuplicatePair(
                    key_a, key_b, str(record_a.id), str(record_b.id), levels, w, model.probability(w), grade
                )
        if progress:
            progress(int(slice_patients), len(pairs))
        low = top


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def prefilter(pairs: list[tuple[int, int]], records: dict[int, Record]) -> list[tuple[int, int]]:
    """The pairs that may be alike enough to be worth `compare` (see the module docstring).

    A pair is kept when the two records share a name word (compound names, other given names), an
    INS, or when any of one's names (birth, used, first given; compact) is within Jaro–Winkler 0.75
    of any of the other's, which covers typos, particles, married names and exchanged fields. The
    similarities of one Patient against all its partners' names are one rapidfuzz call per name."""
    partners: dict[int, list[int]] = {}
    for a, b in pairs:
        partners.setdefault(a, []).append(b)
    kept: list[tuple[int, int]] = []
    for a, others in partners.items():
        ra = records.get(a)
        if ra is None:
            continue
        words_a = _words(ra)
        owners: list[int] = []
        choices: list[str] = []
        for b in others:
            rb = records.get(b)
            if rb is None:
                continue
            if (ra.ins is not None and ra.ins == rb.ins) or not words_a or words_a & _words(rb):
                kept.append((a, b))
                continue
            for name in _names(rb):
                owners.append(b)
                choices.append(name)
        if not choices:
            continue
        near: set[int] = set()
        for name in _names(ra):
            near.update(
                owners[index]
                for _, _, index in process.extract(
                    name, choices, scorer=JaroWinkler.similarity, score_cutoff=_FAR, limit=None
                )
            )
        kept.extend((a, b) for b in sorted(near))
    return kept


def _words(record: Record) -> set[str]:
    words: set[str] = set()
    for name in (record.birth, record.used, *record.given):
        if name:
            words.update(w for w in name.split() if len(w) >= 3)
    return words


def _names(record: Record) -> list[str]:
    return [n.replace(" ", "") for n in (record.birth, record.used, record.first_given) if n]
