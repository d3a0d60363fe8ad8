"""The master patient index: find the stored Patients that are a given identity, and duplicates.

`match` is `Patient/$match` without HTTP: blocking (index.py) then the Fellegi–Sunter model
(model.py) on the candidates' normalised traits; JSON is read only for the few results returned.
`find_duplicates` walks the store by slices of resource keys; for each slice one SQL statement pairs
every Patient with the later ones sharing a blocking key, and pairs are scored like `$match`
candidates. Memory stays bounded by the slice, whatever the population.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, select

from socle.referentials.identity import model
from socle.referentials.identity.comparison import Levels, compare, record_from_traits
from socle.referentials.identity.index import candidates, load_records
from socle.referentials.identity.registry_schema import mpi_block, mpi_traits
from socle.referentials.identity.traits import Traits
from socle.store.access import AccessFilter

__all__ = ["DuplicatePair", "find_duplicates", "match"]

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
        for key_a, key_b in pairs:
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
