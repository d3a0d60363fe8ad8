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
Keys whose block would be large at millions of identities take one more trait (common_sounds.py:
name sounds borne by at least 0.05 % of people), chosen so that the error the key is there for still
keeps it: `D|...|g|<first name>` for a common first name; for a common surname, `NM` splits in two
(`...|g` and `...|<decade>`: a first-name error or a decade error alone keeps one), `NY` adds the sex
and the month (`-` unknown) and `NG` with a common first name too adds the month. The query side
probes every month its date may stand for. Blocks then grow about ×4 from 100k to 1M identities
instead of ×7 (bench/README.md).
`g` and `s` are the first letter of the phonetic key (so `Ph`/`F` and accents agree) and the sex is
`M`, `F` or `U`. Surname keys are made for the birth and the used name, and for each part of a
compound name. The query side adds variants the stored side cannot know: every given name of the
query as the possible first one (names in another order), every initial when it has no first name
and every sex when it has none (a few dozen index seeks, each on a tiny block), the
date with day and month swapped, and surname and first name exchanged.
"""

from __future__ import annotations

from socle.fhir.hashing import hash64
from socle.referentials.identity.common_sounds import COMMON_GIVEN_SOUNDS, COMMON_SURNAME_SOUNDS
from socle.referentials.identity.comparison import Record
from socle.referentials.identity.names import phonetic, significant_tokens
from socle.referentials.identity.traits import PartialDate

__all__ = ["block_hashes", "index_keys", "query_keys", "surname_sounds"]

_ALL_SEXES = ("M", "F", "U")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def surname_sounds(record: Record) -> set[str]:
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


def _months(date: PartialDate, *, query: bool) -> set[str]:
    """Month part of the refined keys: the stored month (`-` when unknown); a query probes every stored
    value its date may stand for (any month when it has none, day and month swapped, unknown)."""
    if not query:
        return {f"{date.month:02d}" if date.month is not None else "-"}
    if date.month is None:
        return {f"{m:02d}" for m in range(1, 13)} | {"-"}
    months = {f"{date.month:02d}", "-"}
    if date.day is not None and date.day <= 12:
        months.add(f"{date.day:02d}")
    return months


def _keys(
    record: Record,
    sexes: tuple[str, ...],
    givens: tuple[str, ...],
    dates: tuple[tuple[int, int, int], ...],
    *,
    any_initial: bool = False,
    query: bool = False,
) -> set[str]:
    """Keys for the given sexes, first-name sounds and complete dates (year, month, day);
    `any_initial`: the first name is unknown, probe every initial; `query`: the query side."""
    keys: set[str] = set()
    date = record.date
    surnames = surname_sounds(record)
    initials = set(_ALPHABET) if any_initial else {g[0] for g in givens}
    surname_initials = {s[0] for s in surnames}
    for year, month, day in dates:
        ymd, md = f"{year:04d}{month:02d}{day:02d}", f"{month:02d}-{day:02d}"
        for sex in sexes:
            keys.update(
                f"D|{ymd}|{sex}|{g[0]}|{g}" if g in COMMON_GIVEN_SOUNDS else f"D|{ymd}|{sex}|{g[0]}"
                for g in givens
            )
            if any_initial:
                keys.update(f"D|{ymd}|{sex}|{g}" for g in initials)
            for s in surnames:
                if s in COMMON_SURNAME_SOUNDS:
                    # Two finer keys, so that a first-name error or a decade error alone keeps one.
                    keys.update(f"NM|{s}|{md}|{sex}|{g}" for g in initials)
                    keys.add(f"NM|{s}|{md}|{sex}|{year // 10:03d}")
                else:
                    keys.add(f"NM|{s}|{md}|{sex}")
    months = _months(date, query=query) if date is not None else set()
    for sound in surnames:
        common = sound in COMMON_SURNAME_SOUNDS
        if date is not None:
            if common:
                keys.update(
                    f"NY|{sound}|{date.year:04d}|{g}|{x}|{m}" for g in initials for x in sexes for m in months
                )
            else:
                keys.update(f"NY|{sound}|{date.year:04d}|{g}" for g in initials)
        decade = f"{date.year // 10:03d}" if date is not None else "-"
        for given in givens:
            if common and given in COMMON_GIVEN_SOUNDS and date is not None:
                keys.update(f"NG|{sound}|{given}|{decade}|{m}" for m in months)
            else:
                keys.add(f"NG|{sound}|{given}|{decade}")
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
    keys = _keys(record, sexes, givens, dates, any_initial=not givens, query=True)
    date = record.date
    if record.birth and record.given:
        # Surname and first name exchanged at the desk: the query's surname is the stored first name.
        swapped_given = phonetic(record.birth)
        swapped = Record(None, record.given[0], None, (record.birth,), None, date, record.sex, None, None)
        if swapped_given:
            keys |= _keys(swapped, sexes, (swapped_given,), dates, query=True)
    if record.given and date is not None:
        # Stored dates without a month are found by first name and year.
        keys.update(f"GY|{g}|{date.year:04d}" for g in givens)
    return keys


def block_hashes(keys: set[str]) -> list[int]:
    return sorted(hash64("mpi", key) for key in keys)
