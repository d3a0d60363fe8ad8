"""Comparison levels on the French identity cases matching must absorb (or must not)."""

from __future__ import annotations

from socle.referentials.identity.comparison import compare, record_from_traits
from socle.referentials.identity.traits import PartialDate, Traits

BASE = Traits(
    "Lefèvre", ("Marie-Hélène", "Anne"), PartialDate(1975, 3, 8), "female", "69381", used_name="Martin"
)


def levels(query: Traits, stored: Traits = BASE) -> tuple[str, ...]:
    return compare(record_from_traits(query), record_from_traits(stored))


def test_accents_and_case() -> None:
    assert levels(Traits("LEFEVRE", ("marie-helene",), PartialDate(1975, 3, 8), "female", "69381"))[:3] == (
        "exact",
        "exact",
        "exact",
    )


def test_compound_names_and_particles() -> None:
    assert levels(Traits("Lefèvre", ("Marie",)))[1] == "compound"
    stored = Traits("Martin-Dupont", ("Jean",))
    assert levels(Traits("Martin", ("Jean",)), stored)[0] == "compound"
    particle = Traits("de La Fontaine", ("Jean",))
    assert levels(Traits("Lafontaine", ("Jean",)), particle)[0] == "particle"
    assert levels(Traits("Fontaine", ("Jean",)), particle)[0] == "particle"


def test_used_name_after_marriage() -> None:
    assert levels(Traits("Martin", ("Marie-Hélène",), PartialDate(1975, 3, 8)))[0] == "used"


def test_first_names_in_another_order_or_missing() -> None:
    assert levels(Traits("Lefèvre", ("Anne", "Marie-Hélène")))[1] == "other"
    assert levels(Traits("Lefèvre", ()))[1] == "missing"


def test_surname_and_first_name_swapped() -> None:
    assert levels(Traits("Marie-Hélène", ("Lefèvre",), PartialDate(1975, 3, 8)))[:2] == ("swap", "swap")


def test_typos_and_phonetic_spellings() -> None:
    assert levels(Traits("Lefevrre", ("Marie-Hélène",)))[0] == "fuzzy-high"
    philippe = Traits("Dupont", ("Philippe",))
    # DUPOND/DUPONT: below the Jaro-Winkler bar of fuzzy-high, caught by the phonetic key.
    assert levels(Traits("Dupond", ("Phillipe",)), philippe)[:2] == ("fuzzy", "fuzzy-high")
    assert levels(Traits("Bernard", ("Marie-Hélène",)))[0] == "diff"


def test_dates_transposed_typo_partial_and_different() -> None:
    assert levels(Traits(birth_date=PartialDate(1975, 8, 3)))[2] == "transposed"
    assert levels(Traits(birth_date=PartialDate(1975, 3, 9)))[2] == "typo"
    assert levels(Traits(birth_date=PartialDate(1976, 3, 8)))[2] == "typo"
    assert levels(Traits(birth_date=PartialDate(1975, 3)))[2] == "partial"
    assert levels(Traits(birth_date=PartialDate(1975)))[2] == "partial"
    assert levels(Traits(birth_date=PartialDate(1975, 4)))[2] == "diff"
    assert levels(Traits(birth_date=PartialDate(1980, 11, 21)))[2] == "diff"
    assert levels(Traits())[2] == "missing"


def test_sex_birthplace_and_ins() -> None:
    assert levels(Traits(sex="male"))[3] == "diff"
    assert levels(Traits(birthplace="69123"))[4] == "department"
    assert levels(Traits(birthplace="99350"))[4] == "diff"
    same, other = Traits(ins="185077505612323"), Traits(ins="285077505612312")
    assert compare(record_from_traits(same), record_from_traits(same))[5] == "agree"
    assert compare(record_from_traits(same), record_from_traits(other))[5] == "diff"
