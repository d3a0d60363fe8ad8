from __future__ import annotations

import pytest

from socle.referentials.directory.identifiers import (
    InvalidIdentifier,
    check_adeli,
    check_finess,
    check_identifier,
    check_idnat_ps,
    check_rpps,
    check_siren,
    check_siret,
    luhn_ok,
)


def test_luhn_on_known_numbers() -> None:
    # From the fact sheet: sandbox RPPS, real FINESS, SIREN/SIRET examples.
    for value in ("99700218896", "99700366240", "99700427885", "300017985", "732829320", "73282932000074"):
        assert luhn_ok(value), value
    assert not luhn_ok("73282932000075")


def test_rpps_format_and_key_warning() -> None:
    assert check_rpps(" 99700218896 ").value == "99700218896"
    assert check_rpps("99700218896").warnings == ()
    # The IG example is fictitious: accepted, with a warning (the key rule is not confirmed by ANS).
    ig = check_rpps("10003461033")
    assert ig.warnings and "check digit" in ig.warnings[0]
    for bad in ("1000346103", "100034610333", "1000346103A", ""):
        with pytest.raises(InvalidIdentifier, match="RPPS"):
            check_rpps(bad)


def test_adeli() -> None:
    assert check_adeli("751234567").value == "751234567"
    assert check_adeli("2a1234567").value == "2A1234567"
    with pytest.raises(InvalidIdentifier, match="9 characters"):
        check_adeli("75123456")


def test_finess_departements_and_key() -> None:
    assert check_finess("300017985").warnings == ()
    assert check_finess("754567860").warnings  # IG example: fictitious key
    assert check_finess("2A0000123").value == "2A0000123"  # Corsica: key not checked
    assert check_finess("9A0000123").value == "9A0000123"  # overseas
    for bad in ("30001798", "3000179850", "2C0000123", "AB0000123"):
        with pytest.raises(InvalidIdentifier, match="FINESS"):
            check_finess(bad)


def test_siren_siret() -> None:
    assert check_siren("732 829 320").value == "732829320"
    assert check_siret("73282932000074").value == "73282932000074"
    with pytest.raises(InvalidIdentifier, match="SIREN 732829321: check digit"):
        check_siren("732829321")
    with pytest.raises(InvalidIdentifier, match="14 digits"):
        check_siret("7328293200007")
    with pytest.raises(InvalidIdentifier, match="SIRET 73282932000075: check digit"):
        check_siret("73282932000075")


def test_siret_la_poste_exception() -> None:
    # La Poste (SIREN 356000000): digit sum multiple of 5 instead of Luhn.
    siret = "35600000000010"
    assert not luhn_ok(siret) and sum(map(int, siret)) % 5 == 0
    assert check_siret(siret).warnings


def test_idnat_ps() -> None:
    assert check_idnat_ps("810003461033").kind == "IDNPS"
    assert check_idnat_ps("0751234567").value == "0751234567"
    assert check_idnat_ps("810003461033", id_type="8", identifier="10003461033").warnings
    with pytest.raises(InvalidIdentifier, match="does not match its type"):
        check_idnat_ps("810003461033", id_type="8", identifier="10003461034")
    with pytest.raises(InvalidIdentifier, match="unknown type prefix '7'"):
        check_idnat_ps("710003461033")
    with pytest.raises(InvalidIdentifier, match="RPPS"):
        check_idnat_ps("81000346103")  # 8 + 10 digits


def test_dispatch() -> None:
    assert check_identifier("SIRET", "73282932000074").kind == "SIRET"
    with pytest.raises(InvalidIdentifier, match="Unknown identifier kind"):
        check_identifier("nir", "1")
