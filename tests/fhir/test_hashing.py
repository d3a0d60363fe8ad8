"""The index hash is frozen: these values are stored in every database, so they must never change."""

from __future__ import annotations

import pytest

from socle.fhir.hashing import hash64, param_hash, system_value_hash, value_hash


def test_single_part_is_plain_murmur3_x64_128_first_half() -> None:
    # Published vector of MurmurHash3_x64_128("foo", seed 0), first 64 bits signed (mmh3 README).
    assert hash64("foo") == -2129773440516405919


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("Patient", "identifier"), -5794957684658959732),
        (("Patient", "identifier", "http://a", "b"), 8249818794448985933),
        (("Observation", "code", "http://loinc.org", "8302-2"), -7421648893729178526),
        (("Hélène",), -2479406426361027904),
        (("",), 0),
        (("a|b", "c"), 6050578203620468226),
        (("a", "b|c"), 8939134652543945657),
        (("a\\", "b"), -3661536846185568593),
    ],
)
def test_pinned_values(parts: tuple[str, ...], expected: int) -> None:
    assert hash64(*parts) == expected


def test_recipes_are_hash64_of_their_parts() -> None:
    assert param_hash("Patient", "identifier") == hash64("Patient", "identifier") == -5794957684658959732
    assert value_hash("Patient", "gender", "male") == -5898033889428474458
    assert system_value_hash("Patient", "identifier", "http://a", "b") == 8249818794448985933


def test_separator_inside_a_part_cannot_collide() -> None:
    assert hash64("a|b", "c") != hash64("a", "b|c")
    assert hash64("a\\", "b") != hash64("a", "\\b")
    assert hash64("T", "p", "x", "") != hash64("T", "p", "x")


def test_fits_a_signed_bigint() -> None:
    for text in ("", "x", "Observation|code|http://loinc.org|8302-2", "é" * 500):
        assert -(2**63) <= hash64(text) < 2**63
