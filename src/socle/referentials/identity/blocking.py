"""Blocking keys: which stored identities are worth comparing with a query.

Scoring every stored Patient is O(N); blocking keeps only those sharing a key with the query, so the
cost of `$match` follows the size of blocks, which grows far slower than the population. The keys are
chosen so that any single realistic error (corruption.py) leaves at least one key intact:
- `D|YYYYMMDD`: the exact birth date (catches any name error, married names, swapped names);
- `NY|<phonetic surname>|YYYY`: surname sound + birth year (catches day/month errors and typos);
- `NG|<phonetic surname>|<phonetic first name>`: (catches year errors and unknown birth dates);
- `GM|<phonetic first name>|YYYY-MM`: first name sound + month of birth (catches a surname error
  together with a wrong or unknown day); `GY|<phonetic first name>|YYYY` for a date without month;
- `NM|<phonetic surname>|MM-DD`: surname sound + day of the year (catches a wrong year together with
  a first-name error);
- `I|<INS>`: the matricule.
Surname keys are made for the birth and the used name, and for each part of a compound name.
The query side adds variants the stored side cannot know: the date with day and month swapped, and
surname and first name exchanged.
"""

from __future__ import annotations

from socle.fhir.hashing import hash64
from socle.referentials.identity.comparison import Record
from socle.referentials.identity.names import phonetic, significant_tokens

__all__ = ["block_hashes", "index_keys", "query_keys"]


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


def index_keys(record: Record) -> set[str]:
    keys: set[str] = set()
    date = record.date
    if date is not None and date.complete:
        keys.add(f"D|{date.to_fhir()}")
    given = phonetic(record.given[0]) if record.given else ""
    for sound in _surname_sounds(record):
        if date is not None:
            keys.add(f"NY|{sound}|{date.year}")
        if given:
            keys.add(f"NG|{sound}|{given}")
        if date is not None and date.complete:
            keys.add(f"NM|{sound}|{date.month:02d}-{date.day:02d}")
    if given and date is not None:
        if date.month is not None:
            keys.add(f"GM|{given}|{date.year:04d}-{date.month:02d}")
        else:
            keys.add(f"GY|{given}|{date.year:04d}")
    if record.ins:
        keys.add(f"I|{record.ins}")
    return keys


def query_keys(record: Record) -> set[str]:
    keys = index_keys(record)
    date = record.date
    if (
        date is not None
        and date.complete
        and date.day is not None
        and date.month is not None
        and date.day <= 12
    ):
        keys.add(f"D|{date.year:04d}-{date.day:02d}-{date.month:02d}")
    if record.birth and record.given:
        keys.add(f"NG|{phonetic(record.given[0])}|{phonetic(record.birth)}")
    if record.given and date is not None:
        # A given name typed in the surname field: search its sound with the year too.
        keys.add(f"NY|{phonetic(record.given[0])}|{date.year}")
        # Stored dates without a month are found by first name and year.
        keys.add(f"GY|{phonetic(record.given[0])}|{date.year:04d}")
    return keys


def block_hashes(keys: set[str]) -> list[int]:
    return sorted(hash64("mpi", key) for key in keys)
