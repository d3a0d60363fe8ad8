"""Normalised forms of French names, for comparing identities (not for display: INS traits are kept as given).

What identity-vigilance teams see every day and what these forms absorb:
- accents, case, apostrophes and hyphens: `Lefèvre`, `LEFEVRE`, `Le Fèvre` (→ `LEFEVRE`, `LE FEVRE`);
- particles: `de La Fontaine` / `Lafontaine` / `Fontaine` share a variant (`variants`);
- compound names: `Martin-Dupont` registered as `Martin` keeps a common token (`tokens`);
- spelling that sounds alike (`Phillipe`/`Philippe`, `Mathieu`/`Matthieu`): `phonetic`.

`phonetic` is a French phonetic key after F. Brouard's SOUNDEX2 (2002): groups that sound alike are
rewritten (GU/QU/C before A-O-U → K, PH → F, SCH → S, ...), vowels after the first letter dropped,
doubled letters merged and a silent final letter removed. It keeps 6 letters rather than 4 so that
blocking stays selective on a national population.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["PARTICLES", "compact", "normalize_name", "phonetic", "significant_tokens", "tokens", "variants"]

# Lower-case particles of French (and frequent neighbouring) surnames; "D" and "L" come from elisions.
PARTICLES = frozenset(
    {
        "DE",
        "DU",
        "DES",
        "LA",
        "LE",
        "LES",
        "D",
        "L",
        "DEL",
        "DELLA",
        "DELA",
        "DI",
        "DA",
        "DOS",
        "DAS",
        "VAN",
        "VON",
        "DER",
        "DEN",
        "TER",
        "TEN",
        "Y",
        "ST",
        "SAINT",
        "SAINTE",
        "STE",
    }
)
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})
_NOT_LETTER = re.compile(r"[^A-Z]+")


@functools.lru_cache(maxsize=65536)
def normalize_name(text: str) -> str:
    """Upper case A–Z words separated by single spaces: accents, hyphens, apostrophes folded."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    return _NOT_LETTER.sub(" ", ascii_text).strip()


def tokens(text: str) -> list[str]:
    return normalize_name(text).split()


@functools.lru_cache(maxsize=65536)
def significant_tokens(text: str) -> tuple[str, ...]:
    """Tokens without particles (`DE LA FONTAINE` → `FONTAINE`); all tokens if only particles."""
    all_tokens = tuple(tokens(text))
    kept = tuple(t for t in all_tokens if t not in PARTICLES)
    return kept or all_tokens


def compact(text: str) -> str:
    """All letters, no spaces: `Jean-Pierre` and `Jean Pierre` are the same first name."""
    return normalize_name(text).replace(" ", "")


@functools.lru_cache(maxsize=65536)
def variants(text: str) -> frozenset[str]:
    """Compact forms with leading particles dropped one by one: `DE LA FONTAINE` →
    {DELAFONTAINE, LAFONTAINE, FONTAINE}; also the form without any particle."""
    parts = tokens(text)
    found = {"".join(parts)}
    index = 0
    while index < len(parts) - 1 and parts[index] in PARTICLES:
        index += 1
        found.add("".join(parts[index:]))
    found.add("".join(significant_tokens(text)))
    found.discard("")
    return frozenset(found)


_PHONETIC_RULES = (
    ("GUI", "KI"),
    ("GUE", "KE"),
    ("GA", "KA"),
    ("GO", "KO"),
    ("GU", "K"),
    ("CA", "KA"),
    ("CO", "KO"),
    ("CU", "KU"),
    ("Q", "K"),
    ("CC", "K"),
    ("CK", "K"),
    ("PH", "F"),
    ("SCH", "S"),
    ("SH", "S"),
    ("CH", "S"),
    ("KN", "N"),
    ("PF", "F"),
    ("TH", "T"),
    ("W", "V"),
    ("Z", "S"),
    ("X", "S"),
    ("EAU", "O"),
    ("AU", "O"),
    ("OU", "U"),
    ("AI", "E"),
    ("EI", "E"),
    ("Y", "I"),
    ("D", "T"),
)
_VOWELS = frozenset("AEIOU")


@functools.lru_cache(maxsize=131072)
def phonetic(text: str, length: int = 6) -> str:
    """French phonetic key of a name (see the module docstring); "" for an empty name."""
    word = compact(text)
    if not word:
        return ""
    for old, new in _PHONETIC_RULES:
        word = word.replace(old, new)
    # Silent final letter of French spellings (-D, -T, -S, -X → S): dropped once, before vowels go.
    if len(word) > 2 and word[-1] in "DTS":
        word = word[:-1]
    # H is silent except in the groups already rewritten (CH, SH, PH).
    word = word.replace("H", "") or "H"
    first, rest = word[0], word[1:]
    rest = "".join(c for c in rest if c not in _VOWELS)
    merged = [first]
    for c in rest:
        if c != merged[-1]:
            merged.append(c)
    key = "".join(merged)
    return key[:length]
