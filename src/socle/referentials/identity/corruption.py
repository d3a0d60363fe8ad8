"""Realistic errors in identities, for the labelled matching benchmark and the demo's duplicates.

Each error is what admissions desks actually produce (identity-vigilance reports): keyboard typos,
accents and case lost, a compound name shortened, a particle dropped or glued, the used (married)
name given for the birth name, first names in another order or one missing, first name and surname
swapped, day and month transposed, a digit mistyped, an unknown day or month, a missing sex or
birthplace. `corrupt` applies one or two of them and says which, so figures can be broken down.
"""

from __future__ import annotations

import random
import string
from dataclasses import replace

from socle.referentials.identity.names import PARTICLES
from socle.referentials.identity.traits import PartialDate, Traits

__all__ = ["ERRORS", "corrupt", "typo"]

# name → relative frequency among corrupted records
ERRORS: dict[str, float] = {
    "case-accents": 10,
    "typo-family": 10,
    "typo-given": 8,
    "phonetic-family": 6,
    "used-name": 8,
    "compound-partial": 4,
    "particle": 3,
    "given-order": 5,
    "given-missing-others": 6,
    "given-missing": 2,
    "swap-family-given": 2,
    "date-transposed": 5,
    "date-typo": 6,
    "date-partial": 3,
    "sex-missing": 4,
    "birthplace-missing": 8,
    "birthplace-other": 2,
}
_ACCENTS = str.maketrans("eaiouc", "éàïôûç")
_PHONETIC = (
    ("ph", "f"),
    ("f", "ph"),
    ("ll", "l"),
    ("l", "ll"),
    ("tt", "t"),
    ("t", "tt"),
    ("y", "i"),
    ("i", "y"),
    ("au", "o"),
    ("eau", "o"),
    ("c", "k"),
    ("qu", "k"),
    ("ss", "s"),
    ("ault", "aut"),
    ("d", "t"),
    ("ai", "é"),
    ("th", "t"),
    ("nn", "n"),
    ("mm", "m"),
)


def typo(text: str, rng: random.Random) -> str:
    """One keyboard error: substitution, deletion, insertion or transposition of adjacent letters."""
    for _ in range(20):
        changed = _one_typo(text, rng)
        if changed != text:
            return changed
    return text + "e"


def _one_typo(text: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 3:
        return text + rng.choice(string.ascii_lowercase)
    i = rng.choice(letters[1:])  # the first letter is rarely wrong
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + rng.choice(string.ascii_lowercase) + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + rng.choice(string.ascii_lowercase) + text[i:]
    j = i - 1
    return text[:j] + text[i] + text[j] + text[i + 1 :]


def _phonetic_variant(text: str, rng: random.Random) -> str:
    lower = text.lower()
    options = [(a, b) for a, b in _PHONETIC if a in lower[1:]]
    if not options:
        return typo(text, rng)
    a, b = rng.choice(options)
    at = lower.index(a, 1)
    return text[:at] + b + text[at + len(a) :]


def _apply(error: str, t: Traits, rng: random.Random) -> Traits | None:
    """The traits with one error, or None when the error does not apply to these traits."""
    family, given, birth = t.birth_name or "", list(t.given_names), t.birth_date
    if error == "case-accents":
        mode = rng.randrange(3)
        if mode == 0:
            return replace(t, birth_name=family.upper(), given_names=tuple(g.upper() for g in given))
        if mode == 1:
            return replace(t, birth_name=family.lower(), given_names=tuple(g.lower() for g in given))
        return replace(
            t, given_names=tuple(g.translate(_ACCENTS) if i == 0 else g for i, g in enumerate(given))
        )
    if error == "typo-family":
        return replace(t, birth_name=typo(family, rng))
    if error == "typo-given" and given:
        return replace(t, given_names=(typo(given[0], rng), *given[1:]))
    if error == "phonetic-family":
        return replace(t, birth_name=_phonetic_variant(family, rng))
    if error == "used-name" and t.used_name:
        # The desk only knew the married name: it went in as if it were the birth name.
        return replace(t, birth_name=t.used_name, used_name=None)
    if error == "compound-partial":
        for sep in ("-", " "):
            if sep in family.strip():
                return replace(t, birth_name=family.split(sep)[0])
        if "-" in (given[0] if given else ""):
            return replace(t, given_names=(given[0].split("-")[0], *given[1:]))
        return None
    if error == "particle":
        words = family.split()
        if len(words) > 1 and words[0].upper() in PARTICLES:
            return replace(t, birth_name="".join(words) if rng.random() < 0.5 else " ".join(words[1:]))
        return (
            replace(t, birth_name=rng.choice(("De ", "Le ", "Du ")) + family) if rng.random() < 0.2 else None
        )
    if error == "given-order" and len(given) > 1:
        return replace(t, given_names=(given[1], given[0], *given[2:]))
    if error == "given-missing-others" and len(given) > 1:
        return replace(t, given_names=(given[0],))
    if error == "given-missing":
        return replace(t, given_names=())
    if error == "swap-family-given" and given:
        return replace(t, birth_name=given[0], given_names=(family, *given[1:]))
    if (
        error == "date-transposed"
        and birth
        and birth.day
        and birth.month
        and birth.day <= 12
        and birth.day != birth.month
    ):
        return replace(t, birth_date=PartialDate(birth.year, birth.day, birth.month))
    if error == "date-typo" and birth and birth.day and birth.month:
        part = rng.choice(("day", "month", "year"))
        if part == "day":
            day = _digit_typo(birth.day, rng, 1, 28)
            return replace(t, birth_date=PartialDate(birth.year, birth.month, day))
        if part == "month":
            month = _digit_typo(birth.month, rng, 1, 12)
            return replace(t, birth_date=PartialDate(birth.year, month, min(birth.day, 28)))
        year = _digit_typo(birth.year % 100, rng, 0, 99) + birth.year // 100 * 100
        return replace(t, birth_date=PartialDate(min(year, 2025), birth.month, birth.day))
    if error == "date-partial" and birth and birth.month:
        return replace(
            t,
            birth_date=PartialDate(birth.year, birth.month)
            if rng.random() < 0.7
            else PartialDate(birth.year),
        )
    if error == "sex-missing":
        return replace(t, sex=None)
    if error == "birthplace-missing":
        return replace(t, birthplace=None)
    if error == "birthplace-other" and t.birthplace and not t.birthplace.startswith("99"):
        # A neighbouring commune of the same département (a hospital town for a village birth).
        code = t.birthplace
        return replace(t, birthplace=code[:2] + f"{(int(code[2:]) + rng.randrange(1, 40)) % 1000:03d}")
    return None


def _digit_typo(value: int, rng: random.Random, low: int, high: int) -> int:
    for _ in range(20):
        digits = list(f"{value:02d}")
        position = rng.randrange(2)
        digits[position] = str(rng.randrange(10))
        candidate = int("".join(digits))
        if candidate != value and low <= candidate <= high:
            return candidate
    return low if value != low else high


def corrupt(t: Traits, rng: random.Random, *, errors: int = 1) -> tuple[Traits, tuple[str, ...]]:
    """`t` with `errors` distinct errors drawn by frequency (and applicable), and their names.

    The INS matricule and other identifiers are dropped: a corrupted record is what a desk typed
    without the card.
    """
    kinds, weights = list(ERRORS), list(ERRORS.values())
    applied: list[str] = []
    result = replace(t, ins=None, other_identifiers=())
    attempts = 0
    while len(applied) < errors and attempts < 50:
        attempts += 1
        kind = rng.choices(kinds, weights=weights)[0]
        if kind in applied:
            continue
        changed = _apply(kind, result, rng)
        if changed is not None and changed != result:
            result = changed
            applied.append(kind)
    return result, tuple(applied)
