"""Blocking keys: which stored identities are worth comparing with a query.

Scoring every stored Patient is O(N); blocking keeps only those sharing a key with the query. For
the cost of `$match` to stay near-flat as the population grows, every key combines enough traits
that a block holds a handful of people even at millions of identities (a birth date alone is ~30
people at 1M and ~1,800 at 66M; with the sex and the first-name initial, ~1 and ~60). The keys are
chosen so that any single realistic error (corruption.py), and most pairs of errors, leave at least
one key intact:
- `D|YYYYMMDD|sex|g`: exact birth date, sex, initial sound of the first given name (catches any
  surname error: typos, married names, particles);
- `NY|<phonetic surname>|YYYY|g`: surname sound, birth year, first-name initial (catches day/month
  errors, unknown day or month);
- `NG|<phonetic surname>|<phonetic first name>|YYY`: both name sounds and the decade of birth
  (catches a partial date together with a first-name or day error; `-` for no birth date);
- `GM|<phonetic first name>|YYYY-MM|s`: first-name sound, month of birth, surname initial (a
  surname typo together with a wrong or unknown day); `GY|<phonetic first name>|YYYY` for a stored
  date without month;
- `NM|<phonetic surname>|MM-DD|sex`: surname sound and day of the year (a wrong year together with a
  first-name error);
- `P|YYYY|<sound>|<sound>`: birth year and the surname and first-name sounds in sorted order, the
  same whichever field each name was typed in (stored records with surname and first name exchanged);
- `I|<INS>`: the matricule.
`g` and `s` are the first letter of the phonetic key (so `Ph`/`F` and accents agree) and the sex is
`M`, `F` or `U`. Surname keys are made for the birth and the used name, and for each part of a
compound name. The query side adds variants the stored side cannot know: every given name of the
query as the possible first one (names in another order), every initial when it has no first name
and every sex when it has none (a few dozen index seeks, each on a tiny block), the
date with day and month swapped, and surname and first name exchanged.
"""

from __future__ import annotations

from socle.fhir.hashing import hash64
from socle.referentials.identity.comparison import Record
from socle.referentials.identity.names import phonetic, significant_tokens

__all__ = ["block_hashes", "index_keys", "query_keys"]

_ALL_SEXES = ("M", "F", "U")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _surname_sounds(record: Record) -> set[str]:
    sounds: set[str] = set()
    for name in (record.birth, record.used):
        if not name:
            continue
        parts = significant_tokens(name)
        sounds.add(phonetic("".join(parts)))
        if len(parts) > 1:
            sounds.update(phonetic(p) for p in parts if len(p) >= 3)
    sounds.discard("")
    return sounds


def _keys(
    record: Record,
    sexes: tuple[str, ...],
    givens: tuple[str, ...],
    dates: tuple[tuple[int, int, int], ...],
    *,
    any_initial: bool = False,
) -> set[str]:
    """Keys for the given sexes, first-name sounds and complete dates (year, month, day);
    `any_initial`: the first name is unknown, probe every initial."""
    keys: set[str] = set()
    date = record.date
    surnames = _surname_sounds(record)
    initials = set(_ALPHABET) if any_initial else {g[0] for g in givens}
    surname_initials = {s[0] for s in surnames}
    for year, month, day in dates:
        for sex in sexes:
            keys.update(f"D|{year:04d}{month:02d}{day:02d}|{sex}|{g}" for g in initials)
            keys.update(f"NM|{s}|{month:02d}-{day:02d}|{sex}" for s in surnames)
    for sound in surnames:
        if date is not None:
            keys.update(f"NY|{sound}|{date.year:04d}|{g}" for g in initials)
        decade = f"{date.year // 10:03d}" if date is not None else "-"
        keys.update(f"NG|{sound}|{given}|{decade}" for given in givens)
    if date is not None:
        for given in givens:
            # Order-free pair of name sounds: the same key when surname and first name are exchanged.
            keys.update(f"P|{date.year:04d}|{'|'.join(sorted((s, given)))}" for s in surnames)
            if date.month is not None:
                keys.update(f"GM|{given}|{date.year:04d}-{date.month:02d}|{s}" for s in surname_initials)
            else:
                keys.add(f"GY|{given}|{date.year:04d}")
    if record.ins:
        keys.add(f"I|{record.ins}")
    return keys


def _complete(record: Record) -> tuple[int, int, int] | None:
    date = record.date
    if date is None or not date.complete or date.month is None or date.day is None:
        return None
    return (date.year, date.month, date.day)


def index_keys(record: Record) -> set[str]:
    given = phonetic(record.given[0]) if record.given else ""
    complete = _complete(record)
    return _keys(record, (record.sex or "U",), (given,) if given else (), (complete,) if complete else ())


def query_keys(record: Record) -> set[str]:
    sexes = (record.sex,) if record.sex else _ALL_SEXES
    givens = tuple(dict.fromkeys(s for s in (phonetic(g) for g in record.given) if s))
    complete = _complete(record)
    dates: tuple[tuple[int, int, int], ...] = ()
    if complete is not None:
        year, month, day = complete
        dates = ((year, month, day), (year, day, month)) if day <= 12 and day != month else (complete,)
    keys = _keys(record, sexes, givens, dates, any_initial=not givens)
    date = record.date
    if record.birth and record.given:
        # Surname and first name exchanged at the desk: the query's surname is the stored first name.
        swapped_given = phonetic(record.birth)
        swapped = Record(None, record.given[0], None, (record.birth,), None, date, record.sex, None, None)
        if swapped_given:
            keys |= _keys(swapped, sexes, (swapped_given,), dates)
    if record.given and date is not None:
        # Stored dates without a month are found by first name and year.
        keys.update(f"GY|{g}|{date.year:04d}" for g in givens)
    return keys


def block_hashes(keys: set[str]) -> list[int]:
    return sorted(hash64("mpi", key) for key in keys)
