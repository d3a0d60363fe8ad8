"""Partial birth dates (unknown day or month) and their validation."""

from __future__ import annotations

import pytest

from socle.fhir.errors import Invalid
from socle.referentials.identity.traits import PartialDate, parse_partial_date


def test_full_and_partial_dates_round_trip() -> None:
    for text in ("1975-03-21", "1975-03", "1975"):
        assert parse_partial_date(text).to_fhir() == text
    assert parse_partial_date("1975-03-21").complete
    assert not parse_partial_date("1975-03").complete


def test_partial_dates_are_compatible_on_the_parts_they_have() -> None:
    full = PartialDate(1975, 3, 21)
    assert PartialDate(1975).compatible(full)
    assert PartialDate(1975, 3).compatible(full)
    assert not PartialDate(1975, 4).compatible(full)
    assert not PartialDate(1976).compatible(full)
    assert full.compatible(PartialDate(1975, 3))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1990-02-30", "day 30 does not exist"),
        ("1991-02-29", "day 29 does not exist"),
        ("1990-13-01", "month 13"),
        ("21/03/1975", "is not a date"),
        ("1700-01-01", "not plausible"),
    ],
)
def test_impossible_dates_are_refused_naming_the_field(text: str, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_partial_date(text, expression="Patient.birthDate")
    assert words in caught.value.diagnostics
    assert caught.value.expression == "Patient.birthDate"


def test_leap_day() -> None:
    assert parse_partial_date("2000-02-29").day == 29
