"""NIR/NIA syntax and key (shared/specs/ins.md §7): worked examples and each faulty part named."""

from __future__ import annotations

import pytest

from socle.referentials.identity.nir import NirError, format_nir, make_nir, nir_key, parse_nir


@pytest.mark.parametrize(
    ("value", "department", "place"),
    [
        ("185077505612323", "75", "75056"),  # Paris (ins.md worked example)
        ("185072A00412388", "2A", "2A004"),  # Corse-du-Sud: key on 19 instead of 2A
        ("253072B07300470", "2B", "2B073"),  # Haute-Corse (python-stdnum doctest)
        ("290039741104541", "974", "97411"),  # La Réunion: 3-digit département, 2-digit commune
        ("295109912611193", "99", "99126"),  # born abroad (Greece, 99126)
        ("279035121518989", "51", "51215"),  # FR Core example
    ],
)
def test_valid_numbers_and_their_parts(value: str, department: str, place: str) -> None:
    nir = parse_nir(value)
    assert (nir.department, nir.place, nir.value) == (department, place, value)
    assert nir.key == int(value[13:])


def test_parts_and_flags() -> None:
    corsica, reunion, abroad = (
        parse_nir("185072A00412388"),
        parse_nir("290039741104541"),
        parse_nir("295109912611193"),
    )
    assert corsica.corsica and not corsica.overseas and not corsica.born_abroad
    assert reunion.overseas and reunion.sex == 2 and reunion.year == "90" and reunion.month == "03"
    assert abroad.born_abroad and abroad.place == "99126"


def test_key_algorithm_and_corsica_substitution() -> None:
    assert nir_key("1850775056123") == 23
    assert nir_key("185072A004123") == nir_key("1850719004123") == 88
    assert nir_key("253072B073004") == nir_key("2530718073004") == 70


def test_separators_and_case_are_accepted() -> None:
    assert parse_nir("1 85 07 2a 004 123 88").value == "185072A00412388"
    assert parse_nir("1.85.07.75.056.123.23").value == "185077505612323"
    assert format_nir("185077505612323") == "1 85 07 75 056 123 23"
    assert format_nir("290039741104541") == "2 90 03 974 11 045 41"


def test_special_months_for_incomplete_civil_status() -> None:
    for month in (20, 30, 42, 50, 99):
        nir = parse_nir(make_nir(1, 60, month, "99350", 12))
        assert nir.special_month
    assert not parse_nir("185077505612323").special_month


@pytest.mark.parametrize(
    ("value", "part", "words"),
    [
        ("284058832102530", "key", "expected 32"),  # the CNAM README example has a wrong key
        ("1850775056123", "key", "missing"),
        ("18507750561232", "length", "15 characters"),
        ("385077505612323", "sex", "1 or 2"),
        ("785077505612323", "sex", "NNP"),
        ("1X5077505612323", "year", "year"),
        ("185137505612323", "month", "13"),
        ("185007505612323", "month", "00"),
        ("185070005612323", "department", "00"),
        ("185072C00412388", "department", "2A/2B"),
        ("185079790112323", "department", "979"),
        ("185079910012323", "country", "100"),
        ("185077500012323", "commune", "000"),
        ("185077505600023", "order", "001–999"),
        ("1850775056123AB", "key", "2 digits"),
    ],
)
def test_errors_name_the_faulty_part(value: str, part: str, words: str) -> None:
    with pytest.raises(NirError) as caught:
        parse_nir(value, expression="Patient.identifier[0].value")
    assert caught.value.part == part
    assert words in caught.value.diagnostics
    assert caught.value.status == 400
    assert caught.value.outcome()["issue"][0]["expression"] == ["Patient.identifier[0].value"]


def test_make_nir_is_consistent_with_parse() -> None:
    value = make_nir(2, 1987, 11, "2B033", 45)
    nir = parse_nir(value)
    assert (nir.sex, nir.year, nir.month, nir.place, nir.order) == (2, "87", "11", "2B033", "045")
