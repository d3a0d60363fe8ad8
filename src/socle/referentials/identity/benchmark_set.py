"""A labelled matching benchmark derived from the synthetic population: queries and their ground truth.

Positive queries take a stored person and apply realistic errors (corruption.py): 20 % untouched,
55 % one error, 25 % two. Negative queries look for people who are not stored: fresh people, and
homonyms of stored people (same birth name, first name, sex and birth date, other birthplace and other
given names), the case a matcher must not link. The truth is the index of the stored person, or None.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from socle.referentials.identity.corruption import corrupt
from socle.referentials.identity.population import Person, generate_people
from socle.referentials.identity.traits import Traits

__all__ = ["Query", "benchmark_queries", "query_to_json"]


@dataclass(frozen=True)
class Query:
    id: str
    traits: Traits
    truth: int | None  # index of the stored person, None when the person is not stored
    errors: tuple[str, ...]
    kind: str  # "positive" | "negative" | "homonym"


def benchmark_queries(
    people: Sequence[Person], seed: int, count: int, *, negative_share: float = 0.1
) -> list[Query]:
    rng = random.Random(seed * 7919 + 17)
    queries: list[Query] = []
    negatives = int(count * negative_share)
    outsiders = list(generate_people(negatives, seed + 1_000_003, start=10**9))
    for n in range(count - negatives):
        person = people[rng.randrange(len(people))]
        roll = rng.random()
        errors = 0 if roll < 0.2 else 1 if roll < 0.75 else 2
        traits, applied = (
            corrupt(person.traits, rng, errors=errors) if errors else (replace(person.traits, ins=None), ())
        )
        queries.append(Query(f"q{n}", traits, person.index, applied, "positive"))
    for n, outsider in enumerate(outsiders):
        if n % 2 == 0:
            # A homonym of a stored person: same strict traits but birthplace and further given names.
            target = people[rng.randrange(len(people))].traits
            traits = replace(
                outsider.traits,
                birth_name=target.birth_name,
                given_names=(target.given_names[0], *outsider.traits.given_names[1:])
                if target.given_names
                else (),
                sex=target.sex,
                birth_date=target.birth_date,
                used_name=None,
                used_given=None,
                ins=None,
            )
            if traits.birthplace == target.birthplace:
                traits = replace(traits, birthplace=None)
            kind = "homonym"
        else:
            traits, kind = replace(outsider.traits, ins=None), "negative"
        queries.append(Query(f"n{n}", traits, None, (), kind))
    rng.shuffle(queries)
    return queries


def query_to_json(query: Query, id_of: dict[int, str] | None = None) -> dict[str, Any]:
    t = query.traits
    return {
        "id": query.id,
        "kind": query.kind,
        "errors": list(query.errors),
        "truth": None if query.truth is None else (id_of[query.truth] if id_of else query.truth),
        "traits": {
            "birthName": t.birth_name,
            "givenNames": list(t.given_names),
            "usedName": t.used_name,
            "birthDate": t.birth_date.to_fhir() if t.birth_date else None,
            "sex": t.sex,
            "birthplace": t.birthplace,
        },
    }
