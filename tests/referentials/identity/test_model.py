"""The Fellegi–Sunter model's grades on the cases that decide identity-vigilance outcomes."""

from __future__ import annotations

from socle.referentials.identity import model
from socle.referentials.identity.comparison import compare, record_from_traits
from socle.referentials.identity.traits import PartialDate, Traits

PERSON = Traits("Dupont", ("Jean", "Paul"), PartialDate(1950, 3, 2), "male", "75114")
HOMONYM = Traits("Dupont", ("Jean", "Marc"), PartialDate(1950, 3, 2), "male", "13055")


def grades(query: Traits, *stored: Traits) -> list[str]:
    q = record_from_traits(query)
    scored = model.score([(i, compare(q, record_from_traits(s))) for i, s in enumerate(stored)])
    return [s.grade for s in sorted(scored, key=lambda s: s.key)]


def test_all_strict_traits_agree_is_certain() -> None:
    assert grades(PERSON, PERSON) == ["certain"]


def test_homonyms_with_the_same_birth_date_are_never_certain() -> None:
    # The query gives no birthplace: both homonyms fit equally; neither may be linked automatically.
    query = Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male")
    assert grades(query, PERSON, HOMONYM) == ["probable", "probable"]
    # With the birthplace, the homonym born elsewhere drops out.
    assert grades(PERSON, PERSON, HOMONYM)[0] == "certain"
    assert grades(PERSON, PERSON, HOMONYM)[1] in ("possible", "certainly-not")


def test_one_error_is_probable_not_certain() -> None:
    typo = Traits("Dupond", ("Jean", "Paul"), PartialDate(1950, 3, 2), "male", "75114")
    transposed = Traits("Dupont", ("Jean",), PartialDate(1950, 2, 3), "male", "75114")
    assert grades(typo, PERSON) == ["probable"]
    assert grades(transposed, PERSON) == ["probable"]


def test_unknown_birth_day_or_month() -> None:
    assert grades(Traits("Dupont", ("Jean",), PartialDate(1950), "male", "75114"), PERSON) == ["probable"]


def test_a_different_person_is_not_returned_as_a_match() -> None:
    other = Traits("Durand", ("Pierre",), PartialDate(1962, 7, 14), "male", "33063")
    assert grades(other, PERSON) == ["certainly-not"]


def test_a_different_ins_is_certainly_not() -> None:
    a = Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male", "75114", ins="150037511412312")
    b = Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male", "75114", ins="150037511412499")
    assert grades(a, b) == ["certainly-not"]


def test_probability_is_monotonic_and_bounded() -> None:
    assert 0 < model.probability(-50) < model.probability(0) < model.probability(40) <= 1


def test_fit_weights_orders_levels_by_evidence() -> None:
    match = ("exact", "exact", "exact", "agree", "exact", "missing")
    non = ("diff", "diff", "diff", "agree", "diff", "missing")
    fitted = model.fit_weights([match] * 90 + [non] * 10, [non] * 990 + [match] * 10)
    assert fitted["family"]["exact"] > 0 > fitted["family"]["diff"]
    assert fitted["family"]["missing"] == 0.0
