"""The duplicate pre-filter drops only pairs that the full comparison grades certainly-not."""

from __future__ import annotations

import random
from collections import defaultdict

from socle.referentials.identity import model
from socle.referentials.identity.blocking import block_hashes, index_keys
from socle.referentials.identity.comparison import Record, compare, record_from_traits
from socle.referentials.identity.corruption import corrupt
from socle.referentials.identity.mpi import prefilter
from socle.referentials.identity.population import generate_people


def _graded(pairs: list[tuple[int, int]], records: dict[int, Record]) -> set[tuple[int, int]]:
    found = set()
    for a, b in pairs:
        levels = compare(records[a], records[b])
        if model.grade(levels, model.weight(levels), None) in ("certain", "probable", "possible"):
            found.add((a, b))
    return found


def test_prefilter_keeps_every_pair_that_could_match() -> None:
    rng = random.Random(5)
    people = list(generate_people(3000, 21))
    records = {p.index: record_from_traits(p.traits, p.index) for p in people}
    for p in people[:600]:  # second records with one or two realistic errors
        traits, _ = corrupt(p.traits, rng, errors=rng.choice((1, 2)))
        key = 100_000 + p.index
        records[key] = record_from_traits(traits, key)
    blocks: dict[int, list[int]] = defaultdict(list)
    for key, record in records.items():
        for h in block_hashes(index_keys(record)):
            blocks[h].append(key)
    pairs = sorted({(a, b) for keys in blocks.values() for a in keys for b in keys if a < b})
    kept = prefilter(pairs, records)
    assert set(kept) <= set(pairs)
    assert len(kept) < len(pairs)  # it does drop pairs (the homonym date blocks)
    assert _graded(kept, records) == _graded(pairs, records)
    # The generated second records are still found.
    assert sum((p.index, 100_000 + p.index) in set(kept) for p in people[:600]) > 500
