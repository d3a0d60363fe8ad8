"""The synthetic population: deterministic, NIR consistent with the traits, French realism."""

from __future__ import annotations

import collections

from socle.referentials.identity.nir import parse_nir
from socle.referentials.identity.population import generate_people, ins_style
from socle.referentials.identity.reference_data import communes, countries


def test_same_seed_same_people_other_seed_other_people() -> None:
    a = [p.traits for p in generate_people(200, 5)]
    assert a == [p.traits for p in generate_people(200, 5)]
    assert a != [p.traits for p in generate_people(200, 6)]


def test_nir_is_valid_and_consistent_with_sex_birth_and_birthplace() -> None:
    _, by_code = communes()
    country_names = countries()[1]
    numbers = set()
    for person in generate_people(3000, 2):
        t = person.traits
        assert t.ins and t.birth_date and t.sex and t.birthplace
        nir = parse_nir(t.ins)
        assert nir.sex == (1 if t.sex == "male" else 2)
        assert nir.year == f"{t.birth_date.year % 100:02d}"
        assert nir.month == (f"{t.birth_date.month:02d}" if t.birth_date.month else "20")
        assert nir.place == t.birthplace
        assert t.birthplace in by_code or t.birthplace in country_names
        numbers.add(t.ins)
    assert len(numbers) == 3000


def test_population_has_french_identity_reality() -> None:
    people = list(generate_people(20000, 3))
    tags = collections.Counter(tag for p in people for tag in p.tags)
    for tag in (
        "abroad",
        "overseas",
        "corsica",
        "married",
        "twin",
        "homonym",
        "unknown-day",
        "unknown-month",
    ):
        assert tags[tag] > 0, tag
    assert 0.10 < tags["abroad"] / len(people) < 0.16
    surnames = collections.Counter(p.traits.birth_name for p in people)
    assert surnames.most_common(1)[0][0] == "Martin"  # the most frequent French surname
    assert any(len(p.traits.given_names) >= 3 for p in people)
    assert any(p.kind == "NIA" for p in people)
    assert any("-" in g for p in people for g in p.traits.given_names)  # compound first names
    twins = [p for p in people if "twin" in p.tags]
    for twin in twins:
        sibling = people[twin.index - 1]
        assert twin.traits.birth_date == sibling.traits.birth_date and twin.vitale_nir == sibling.vitale_nir


def test_ins_style_is_upper_case_without_accents() -> None:
    assert ins_style("Lefèvre-Dupré d'Arc") == "LEFEVRE-DUPRE D'ARC"
