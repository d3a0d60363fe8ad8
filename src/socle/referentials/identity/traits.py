"""The strict traits of an identity (shared/specs/ins.md §3) and the partial dates they may carry.

Traits INS: birth name, the list of birth given names (and so the first one), birth date, sex and
the INSEE COG code of the birthplace. The used name and used first name (after a marriage, for
instance) are local traits kept beside them: they help matching, never replace a strict trait.

Birth dates may be partial: the RNIV keeps what INSi returns, and some people born abroad have an
unknown day or month. FHIR `date` allows `YYYY` and `YYYY-MM`, so a partial date is kept as such
and compared only on the parts it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from socle.fhir.errors import Invalid

__all__ = ["PartialDate", "Traits", "parse_partial_date"]

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class PartialDate:
    year: int
    month: int | None = None
    day: int | None = None

    @property
    def complete(self) -> bool:
        return self.day is not None

    def to_fhir(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def compatible(self, other: PartialDate) -> bool:
        """Equal on every part both dates know."""
        if self.year != other.year:
            return False
        if self.month is None or other.month is None:
            return True
        if self.month != other.month:
            return False
        return self.day is None or other.day is None or self.day == other.day


def parse_partial_date(text: object, *, expression: str = "birthDate") -> PartialDate:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` (FHIR `date`), with an `Invalid` naming the field otherwise."""
    if not isinstance(text, str):
        raise Invalid(f"{expression} must be a date string such as 1975-03-21", expression=expression)
    match = _DATE.match(text.strip())
    if match is None:
        raise Invalid(
            f"{expression} {text!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", expression=expression
        )
    year = int(match[1])
    month = int(match[2]) if match[2] else None
    day = int(match[3]) if match[3] else None
    if year < 1850:
        raise Invalid(f"{expression} {text!r}: the year {year} is not plausible", expression=expression)
    if month is not None and not 1 <= month <= 12:
        raise Invalid(f"{expression} {text!r}: the month {month:02d} does not exist", expression=expression)
    if day is not None:
        assert month is not None
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        last = 29 if month == 2 and leap else 28 if month == 2 else _DAYS[month - 1]
        if not 1 <= day <= last:
            raise Invalid(
                f"{expression} {text!r}: day {day:02d} does not exist in month {month:02d} of {year}",
                expression=expression,
            )
    return PartialDate(year, month, day)


@dataclass(frozen=True)
class Traits:
    """An identity as compared by matching and by the INSi-like lookup; every part may be missing."""

    birth_name: str | None = None
    given_names: tuple[str, ...] = ()
    birth_date: PartialDate | None = None
    sex: str | None = None  # "male" | "female" (FHIR gender); "unknown"/other → None
    birthplace: str | None = None  # INSEE COG code, 5 characters (99xxx abroad)
    used_name: str | None = None
    used_given: str | None = None
    ins: str | None = None  # matricule INS (NIR or NIA), 15 characters
    other_identifiers: tuple[str, ...] = field(default=())  # "system|value", e.g. a hospital IPP

    @property
    def first_given(self) -> str | None:
        return self.given_names[0] if self.given_names else None
