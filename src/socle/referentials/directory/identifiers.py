"""Validation of the French directory identifiers: RPPS, ADELI, idNat_PS, FINESS, SIREN and SIRET.

Facts (see shared/specs/directory.md): RPPS is 11 digits, ADELI 9 characters, FINESS 9 characters
whose first two are the département (`2A`/`2B` in Corsica), SIREN 9 digits and SIRET 14 digits
(SIREN + 5-digit NIC), both with a Luhn key. The RPPS and FINESS keys look like Luhn too (real
numbers pass, fictitious IG examples do not) but no ANS text states it: a failed key there is a
*warning*, never a rejection, so real data is not refused on a guess. idNat_PS is the type prefix
(TRE_G08) followed by the national identifier; software must not build it, but it may check that a
file's `Identification nationale PP` agrees with its own type and identifier columns.

Every failure raises `InvalidIdentifier` (a 400 `Invalid`) naming the identifier and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from socle.fhir.errors import Invalid

__all__ = [
    "IDNAT_PS_PREFIXES",
    "IdentifierCheck",
    "InvalidIdentifier",
    "check_adeli",
    "check_finess",
    "check_idnat_ps",
    "check_identifier",
    "check_rpps",
    "check_siren",
    "check_siret",
    "luhn_ok",
]

# TRE_G08-TypeIdentifiantPersonne (OID 1.2.250.1.71.1.2.15): prefix of idNat_PS.
IDNAT_PS_PREFIXES: dict[str, str] = {
    "0": "N° ADELI",
    "1": "Id cabinet ADELI / n° de registre",
    "2": "N° DRASS (ended 2020)",
    "3": "FINESS / n° de registre",
    "4": "SIREN / n° de registre",
    "5": "SIRET / n° de registre",
    "6": "Id cabinet RPPS / n° de registre",
    "8": "N° RPPS",
    "9": "N° étudiant (ended 2020)",
    "10": "Adresse MSSanté",
}

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ADELI = re.compile(r"[0-9]{2}[0-9A-Z]{7}|2[AB][0-9A-Z]{7}", re.ASCII)
_FINESS = re.compile(r"(?:[0-9]{2}|2[AB]|9[A-F])[0-9]{7}", re.ASCII)
_LA_POSTE_SIREN = "356000000"


class InvalidIdentifier(Invalid):
    """An identifier that breaks its format or check-digit rule."""


@dataclass(frozen=True)
class IdentifierCheck:
    """A valid identifier (normalised: trimmed) and the doubts that did not make it invalid."""

    kind: str
    value: str
    warnings: tuple[str, ...] = field(default=())


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) key: double every second digit from the right, sum, divisible by 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _clean(value: str, kind: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidIdentifier(f"{kind}: empty identifier")
    return text


def check_rpps(value: str) -> IdentifierCheck:
    """RPPS: exactly 11 digits; a Luhn failure is only a warning (the key rule is unconfirmed)."""
    text = _clean(value, "RPPS")
    if len(text) != 11 or not _DIGITS.fullmatch(text):
        raise InvalidIdentifier(f"RPPS {text!r}: expected 11 digits, got {len(text)} characters")
    warnings = () if luhn_ok(text) else (f"RPPS {text}: check digit (Luhn) does not match",)
    return IdentifierCheck("RPPS", text, warnings)


def check_adeli(value: str) -> IdentifierCheck:
    """ADELI: 9 characters, the first two a département; it carries no key we can verify."""
    text = _clean(value, "ADELI").upper()
    if len(text) != 9 or not _ADELI.fullmatch(text):
        raise InvalidIdentifier(f"ADELI {text!r}: expected 9 characters starting with a département")
    return IdentifierCheck("ADELI", text)


def check_finess(value: str) -> IdentifierCheck:
    """FINESS (legal entity or establishment): 9 characters, département first, then 7 digits.

    The last digit is a Luhn key on every real all-digit number seen; a mismatch is a warning. For
    Corsican (`2A`, `2B`) and overseas (`9A`…`9F`) numbers the key's treatment of the letter is not
    known, so it is not checked.
    """
    text = _clean(value, "FINESS").upper()
    if len(text) != 9 or not _FINESS.fullmatch(text):
        raise InvalidIdentifier(
            f"FINESS {text!r}: expected 9 characters, a département (digits, 2A/2B or 9A-9F) then 7 digits"
        )
    warnings: tuple[str, ...] = ()
    if text.isdigit() and not luhn_ok(text):
        warnings = (f"FINESS {text}: check digit (Luhn) does not match",)
    return IdentifierCheck("FINESS", text, warnings)


def check_siren(value: str) -> IdentifierCheck:
    text = _clean(value, "SIREN").replace(" ", "")
    if len(text) != 9 or not _DIGITS.fullmatch(text):
        raise InvalidIdentifier(f"SIREN {text!r}: expected 9 digits")
    if not luhn_ok(text):
        raise InvalidIdentifier(f"SIREN {text}: check digit (Luhn) does not match")
    return IdentifierCheck("SIREN", text)


def check_siret(value: str) -> IdentifierCheck:
    """SIRET: SIREN + NIC, 14 digits, Luhn over all 14 (La Poste's establishments excepted)."""
    text = _clean(value, "SIRET").replace(" ", "")
    if len(text) != 14 or not _DIGITS.fullmatch(text):
        raise InvalidIdentifier(f"SIRET {text!r}: expected 14 digits")
    check_siren(text[:9])
    if not luhn_ok(text):
        # La Poste has more establishments than the Luhn key allows; INSEE gives them a digit sum
        # that is a multiple of 5 instead (commonly documented exception, not in our fact sheet).
        if text[:9] == _LA_POSTE_SIREN and sum(int(c) for c in text) % 5 == 0:
            return IdentifierCheck("SIRET", text, (f"SIRET {text}: La Poste key rule applied",))
        raise InvalidIdentifier(f"SIRET {text}: check digit (Luhn) does not match")
    return IdentifierCheck("SIRET", text)


def check_idnat_ps(
    value: str, *, id_type: str | None = None, identifier: str | None = None
) -> IdentifierCheck:
    """idNat_PS: a TRE_G08 prefix then the identifier it names (RPPS after `8`, ADELI after `0`).

    With `id_type` and `identifier` (the extraction file's own columns), also checks that the
    national id is exactly their concatenation, the rule the public files follow.
    """
    text = _clean(value, "idNat_PS")
    if id_type is not None and identifier is not None and text != id_type + identifier:
        raise InvalidIdentifier(
            f"idNat_PS {text!r} does not match its type {id_type!r} and identifier {identifier!r}"
        )
    prefix = text[:2] if text.startswith("10") and "@" in text else text[:1]
    if prefix not in IDNAT_PS_PREFIXES:
        raise InvalidIdentifier(f"idNat_PS {text!r}: unknown type prefix {prefix!r} (TRE_G08)")
    rest = text[len(prefix) :]
    if not rest:
        raise InvalidIdentifier(f"idNat_PS {text!r}: nothing after the type prefix")
    warnings: tuple[str, ...] = ()
    if prefix == "8":
        inner = check_rpps(rest)
        warnings = inner.warnings
    elif prefix == "0":
        check_adeli(rest)
    return IdentifierCheck("IDNPS", text, warnings)


_CHECKERS = {
    "rpps": check_rpps,
    "adeli": check_adeli,
    "idnat_ps": check_idnat_ps,
    "idnps": check_idnat_ps,
    "finess": check_finess,
    "siren": check_siren,
    "siret": check_siret,
}


def check_identifier(kind: str, value: str) -> IdentifierCheck:
    """Dispatch by name (`rpps`, `adeli`, `idnat_ps`, `finess`, `siren`, `siret`), for the CLI and API."""
    checker = _CHECKERS.get(kind.lower())
    if checker is None:
        raise InvalidIdentifier(
            f"Unknown identifier kind {kind!r}: use one of {', '.join(sorted(_CHECKERS))}"
        )
    return checker(value)
