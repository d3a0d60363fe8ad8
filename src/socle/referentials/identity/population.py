"""A synthetic French population: people with consistent strict traits, NIR/NIA, address and Vitale card.

Everything derives from one `random.Random(seed)`, so a seed gives the same people on any machine.
Realism where identity matching is hard: names drawn by decade from INSEE frequencies (homonyms
appear as in life), compound first names, married women using their spouse's name, births abroad
(about 13 %, some with an NIA rather than a NIR, a few with an unknown day or month of birth),
overseas births, Corsica, twins on their parent's Vitale card, and deliberate homonyms (same name,
first name, sex and birth date, another person).

The NIR is consistent with the traits: sex digit, year and month of birth (a fictitious month 20
when the month is unknown), the birthplace's COG code (99 + country abroad), a free order number
and the key. The numbers are fictitious: Socle tags them with the INS-NIR-DEMO OID by default.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.reference_data import communes, countries, first_names, surnames
from socle.referentials.identity.traits import PartialDate, Traits

__all__ = ["Address", "Person", "generate_people", "ins_style"]

REFERENCE_DAY = date(2026, 1, 1)  # ages are computed at this day, so output does not depend on today
_STREET_TYPES = ("rue", "rue", "rue", "avenue", "boulevard", "chemin", "impasse", "place", "allée", "route")
_STREET_NAMES = (
    "Victor Hugo",
    "de la République",
    "Jean Jaurès",
    "Pasteur",
    "du Général de Gaulle",
    "de la Gare",
    "des Écoles",
    "de l'Église",
    "Gambetta",
    "Jules Ferry",
    "du Moulin",
    "des Lilas",
    "de la Paix",
    "du Stade",
    "des Acacias",
    "Émile Zola",
    "Voltaire",
    "de Verdun",
    "de la Mairie",
    "des Tilleuls",
    "du Château",
    "de la Fontaine",
    "Anatole France",
    "Saint-Martin",
    "des Jardins",
    "du Port",
)


@dataclass(frozen=True)
class Address:
    line: str
    postal_code: str
    city: str
    commune: str  # INSEE code


@dataclass(frozen=True)
class Person:
    index: int
    traits: Traits  # names as written in the civil register (mixed case, accents); `ins` set
    kind: str  # "NIR" | "NIA"
    birthplace_name: str
    address: Address
    vitale_nir: str  # the NIR on the Vitale card carrying this person (a parent's for a minor)
    tags: tuple[str, ...] = field(default=())  # "twin", "homonym", "abroad", "overseas", "corsica", ...


def ins_style(text: str) -> str:
    """A name as INSi returns it: upper case without diacritics; hyphens, apostrophes, spaces kept."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def _age(rng: random.Random) -> int:
    # Flat to 60, then thinning out to 100: close enough to the French age pyramid for matching.
    while True:
        age = rng.randrange(0, 101)
        if age <= 60 or rng.random() < max(0.05, 1 - (age - 60) / 42):
            return age


def _given_names(rng: random.Random, sex: str, year: int) -> tuple[str, ...]:
    count = rng.choices((1, 2, 3, 4), weights=(35, 40, 20, 5))[0]
    table = first_names(sex, year)
    names: list[str] = []
    while len(names) < count:
        name = table.draw(rng)
        if name not in names:
            names.append(name)
    return tuple(names)


def _address(rng: random.Random) -> Address:
    sampler, _ = communes()
    commune = sampler.draw(rng)
    line = f"{rng.randrange(1, 120)} {rng.choice(_STREET_TYPES)} {rng.choice(_STREET_NAMES)}"
    return Address(line, commune.postal_code, commune.name, commune.code)


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        self.last_adult_nir: str | None = None
        self.previous: Person | None = None

    def nir(self, sex: str, birth: PartialDate, place: str) -> str:
        month = birth.month if birth.month is not None else 20
        while True:
            value = make_nir(1 if sex == "male" else 2, birth.year, month, place, self.rng.randrange(1, 1000))
            if value not in self.used:
                self.used.add(value)
                return value

    def person(self, index: int) -> Person:
        rng = self.rng
        previous = self.previous
        roll = rng.random()
        if previous is not None and roll < 0.01 and _is_minor(previous):
            person = self.twin(index, previous)
        elif previous is not None and roll < 0.015:
            person = self.homonym(index, previous)
        else:
            person = self.fresh(index)
        self.previous = person
        if not _is_minor(person) and person.kind == "NIR":
            self.last_adult_nir = person.traits.ins
        return person

    def fresh(self, index: int) -> Person:
        rng = self.rng
        sex = "female" if rng.random() < 0.515 else "male"
        age = _age(rng)
        born = REFERENCE_DAY - timedelta(days=age * 365 + rng.randrange(0, 365))
        tags: list[str] = []
        abroad = rng.random() < 0.13
        birth = PartialDate(born.year, born.month, born.day)
        if abroad:
            code, place_name = countries()[0].draw(rng)
            tags.append("abroad")
            unknown = rng.random()
            if unknown < 0.03:
                birth = PartialDate(born.year)
                tags.append("unknown-month")
            elif unknown < 0.06:
                birth = PartialDate(born.year, born.month)
                tags.append("unknown-day")
        else:
            commune = communes()[0].draw(rng)
            code, place_name = commune.code, commune.name
            if commune.department.startswith("97"):
                tags.append("overseas")
            if commune.department in ("2A", "2B"):
                tags.append("corsica")
        kind = "NIA" if abroad and rng.random() < 0.3 else "NIR"
        family = surnames(born.year).draw(rng)
        given = _given_names(rng, sex, born.year)
        used_name = None
        if sex == "female" and age >= 25 and rng.random() < 0.55:
            used_name = surnames(born.year).draw(rng)
            tags.append("married")
        used_given = given[1] if len(given) > 1 and rng.random() < 0.03 else None
        nir = self.nir(sex, birth, code)
        traits = Traits(family, given, birth, sex, code, used_name, used_given, nir)
        vitale = nir if age >= 16 or self.last_adult_nir is None else self.last_adult_nir
        return Person(index, traits, kind, place_name, _address(rng), vitale, tuple(tags))

    def twin(self, index: int, sibling: Person) -> Person:
        """A twin: same birth, surname, birthplace and Vitale card; own first names and number."""
        rng = self.rng
        sex = "female" if rng.random() < 0.5 else "male"
        birth = sibling.traits.birth_date
        assert birth is not None and sibling.traits.birthplace is not None
        given = _given_names(rng, sex, birth.year)
        nir = self.nir(sex, birth, sibling.traits.birthplace)
        traits = replace(sibling.traits, given_names=given, sex=sex, ins=nir, used_name=None, used_given=None)
        return Person(
            index,
            traits,
            sibling.kind,
            sibling.birthplace_name,
            sibling.address,
            sibling.vitale_nir,
            ("twin",),
        )

    def homonym(self, index: int, other: Person) -> Person:
        """Another person with the same birth name, first given name, sex and birth date."""
        fresh = self.fresh(index)
        t = other.traits
        assert t.birth_date is not None and t.sex is not None and fresh.traits.birthplace is not None
        given = (t.given_names[0], *[g for g in fresh.traits.given_names[1:] if g != t.given_names[0]])
        nir = self.nir(t.sex, t.birth_date, fresh.traits.birthplace)
        traits = replace(
            fresh.traits,
            birth_name=t.birth_name,
            given_names=given,
            sex=t.sex,
            birth_date=t.birth_date,
            ins=nir,
            used_name=None,
            used_given=None,
        )
        return replace(fresh, traits=traits, tags=(*fresh.tags, "homonym"))


def _is_minor(person: Person) -> bool:
    birth = person.traits.birth_date
    return birth is not None and REFERENCE_DAY.year - birth.year < 16


def generate_people(count: int, seed: int, *, start: int = 0) -> Iterator[Person]:
    """`count` people from `seed`; `start` offsets their indexes (ids stay unique across calls)."""
    generator = _Generator(seed)
    for index in range(start, start + count):
        yield generator.person(index)
