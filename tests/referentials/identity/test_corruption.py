"""The error model of the benchmark and the duplicates: each error does what its name says."""

from __future__ import annotations

import random

from socle.referentials.identity.benchmark_set import benchmark_queries
from socle.referentials.identity.corruption import ERRORS, _apply, corrupt, typo
from socle.referentials.identity.population import generate_people
from socle.referentials.identity.traits import PartialDate, Traits

PERSON = Traits(
    "Martin-Dupont",
    ("Jean-Pierre", "Louis"),
    PartialDate(1960, 4, 9),
    "male",
    "75114",
    used_name=None,
    ins="160047511412345",
)


def test_typo_is_one_edit() -> None:
    rng = random.Random(1)
    for _ in range(100):
        changed = typo("Bernard", rng)
        assert changed != "Bernard" and abs(len(changed) - 7) <= 1


def test_each_error() -> None:
    rng = random.Random(2)
    assert _apply("date-transposed", PERSON, rng).birth_date == PartialDate(1960, 9, 4)  # type: ignore[union-attr]
    assert _apply("compound-partial", PERSON, rng).birth_name == "Martin"  # type: ignore[union-attr]
    assert _apply("given-order", PERSON, rng).given_names == ("Louis", "Jean-Pierre")  # type: ignore[union-attr]
    swapped = _apply("swap-family-given", PERSON, rng)
    assert swapped is not None and (swapped.birth_name, swapped.given_names[0]) == (
        "Jean-Pierre",
        "Martin-Dupont",
    )
    assert _apply("sex-missing", PERSON, rng).sex is None  # type: ignore[union-attr]
    assert _apply("used-name", PERSON, rng) is None  # no used name to confuse with
    partial = _apply("date-partial", PERSON, rng)
    assert partial is not None and not partial.birth_date.complete  # type: ignore[union-attr]


def test_corrupt_drops_the_ins_and_names_its_errors() -> None:
    rng = random.Random(3)
    changed, errors = corrupt(PERSON, rng, errors=2)
    assert changed.ins is None and len(errors) == 2 and set(errors) <= set(ERRORS)


def test_benchmark_queries_have_ground_truth() -> None:
    people = list(generate_people(500, 9))
    queries = benchmark_queries(people, 9, 300)
    kinds = {q.kind for q in queries}
    assert kinds == {"positive", "negative", "homonym"}
    for q in queries:
        if q.kind == "positive":
            assert q.truth is not None and 0 <= q.truth < 500
        else:
            assert q.truth is None
    homonym = next(q for q in queries if q.kind == "homonym")
    assert any(
        p.traits.birth_name == homonym.traits.birth_name and p.traits.birth_date == homonym.traits.birth_date
        for p in people
    )
