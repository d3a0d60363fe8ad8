"""The INS matricule: NIR (or NIA, built the same way) syntax and its 2-digit key.

Layout `S AA MM DD CCC OOO KK` (15 characters, see shared/specs/ins.md §7): sex, year and month of
birth, then five characters naming the birthplace (department + commune, `97x` + 2-digit commune
overseas, `99` + INSEE country code when born abroad), the order number in that place's civil
register, and the key `97 − (body mod 97)` computed with `2A`→`19`, `2B`→`18`.

Errors name the faulty part ("month", "department", "key", ...) so that an operator typing a
number from a card sees what to fix; `NirError` is an `Invalid` (400) carrying that part.
The CNAM validator accepts only months 01–12; INSEE gives fictitious months (20, 30–42, 50–99) to
people whose civil status is incomplete. Socle accepts them and flags the NIR (`special_month`),
because refusing a real person's number is worse than storing a rare one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from socle.fhir.errors import Invalid

__all__ = ["Nir", "NirError", "format_nir", "make_nir", "nir_key", "parse_nir"]

# Accepted as input: spaces, dots and dashes between groups, as printed on cards and forms.
_SEPARATORS = re.compile(r"[\s.\-]")
# Overseas departments and collectivities written with 3 digits (97x, 98x) then a 2-digit commune.
_OVERSEAS = frozenset({"971", "972", "973", "974", "975", "976", "977", "978"})
_COLLECTIVITIES = frozenset({"984", "986", "987", "988", "989"})
# Fictitious months for incomplete civil status (INSEE practice; exact ranges UNVERIFIED, ins.md §7).
_SPECIAL_MONTHS = frozenset({20, *range(30, 43), *range(50, 100)})


class NirError(Invalid):
    """A malformed NIR/NIA: `part` names the faulty component (sex, year, month, ..., key)."""

    def __init__(self, part: str, diagnostics: str, *, expression: str | None = None) -> None:
        super().__init__(diagnostics, expression=expression)
        self.part = part


@dataclass(frozen=True)
class Nir:
    value: str  # 15 characters, upper case, no separators
    sex: int  # 1 male, 2 female
    year: str  # 2 digits (the century is not in the NIR)
    month: str  # 2 digits: 01–12, or a special value (see special_month)
    place: str  # 5 characters: INSEE COG code of the birth commune, or 99 + country code
    department: str  # "75", "2A", "974", "99"...
    order: str  # 3 digits
    key: int

    @property
    def body(self) -> str:
        return self.value[:13]

    @property
    def special_month(self) -> bool:
        """The month is a fictitious value given when the civil status is incomplete."""
        return not 1 <= int(self.month) <= 12

    @property
    def born_abroad(self) -> bool:
        return self.department == "99"

    @property
    def overseas(self) -> bool:
        return self.department in _OVERSEAS or self.department in _COLLECTIVITIES

    @property
    def corsica(self) -> bool:
        return self.department in ("2A", "2B", "20")


def nir_key(body: str) -> int:
    """The key of a 13-character body: 97 − (body mod 97), Corsica's letters replaced at positions 6–7."""
    digits = body[:5] + body[5:7].upper().replace("2A", "19").replace("2B", "18") + body[7:]
    if len(digits) != 13 or not digits.isdigit():
        raise NirError("body", f"A NIR body is 13 digits (2A/2B allowed at positions 6–7), got {body!r}")
    return 97 - int(digits) % 97


def format_nir(value: str) -> str:
    """`1 85 07 75 056 123 23`: the grouping printed on cards, for display."""
    v = value
    if v[5:7] in ("97", "98"):
        return f"{v[0]} {v[1:3]} {v[3:5]} {v[5:8]} {v[8:10]} {v[10:13]} {v[13:15]}"
    return f"{v[0]} {v[1:3]} {v[3:5]} {v[5:7]} {v[7:10]} {v[10:13]} {v[13:15]}"


def make_nir(sex: int, year: int, month: int, place: str, order: int) -> str:
    """Build a 15-character NIR (body + key) from its parts; `place` is the 5-character COG code."""
    body = f"{sex}{year % 100:02d}{month:02d}{place.upper()}{order:03d}"
    return f"{body}{nir_key(body):02d}"


def parse_nir(text: str, *, expression: str | None = None) -> Nir:
    """Validate a NIR or NIA and split it into its parts; `NirError` names the first faulty part.

    `expression` is the FHIRPath of the element the number came from, for the OperationOutcome.
    """

    def fail(part: str, message: str) -> NirError:
        return NirError(part, f"Invalid NIR {text!r}: {message}", expression=expression)

    if not isinstance(text, str):
        raise NirError("value", "A NIR is a string of 15 characters", expression=expression)
    value = _SEPARATORS.sub("", text).upper()
    if len(value) == 13:
        raise fail("key", "the 2-digit key is missing (13 characters given, 15 expected)")
    if len(value) != 15:
        raise fail("length", f"a NIR has 15 characters (13 + a 2-digit key), got {len(value)}")
    sex = value[0]
    if sex in ("7", "8"):
        raise fail("sex", "7 and 8 start a CNAM provisional number (NNP), not a NIR or NIA")
    if sex not in ("1", "2"):
        raise fail("sex", f"the first digit (sex) must be 1 or 2, got {sex!r}")
    year, month = value[1:3], value[3:5]
    if not year.isdigit():
        raise fail("year", f"the year of birth (characters 2–3) must be 2 digits, got {year!r}")
    if not month.isdigit():
        raise fail("month", f"the month of birth (characters 4–5) must be 2 digits, got {month!r}")
    if not (1 <= int(month) <= 12 or int(month) in _SPECIAL_MONTHS):
        raise fail(
            "month",
            f"the month of birth {month} is neither 01–12 nor a value used for incomplete civil "
            "status (20, 30–42, 50–99)",
        )
    department, commune = _split_place(value[5:10], fail)
    order = value[10:13]
    if not order.isdigit() or order == "000":
        raise fail("order", f"the order number (characters 11–13) must be 001–999, got {order!r}")
    key_text = value[13:15]
    if not key_text.isdigit():
        raise fail("key", f"the key (characters 14–15) must be 2 digits, got {key_text!r}")
    expected = nir_key(value[:13])
    if int(key_text) != expected:
        raise fail(
            "key", f"the key {key_text} does not match the first 13 characters (expected {expected:02d})"
        )
    return Nir(value, int(sex), year, month, value[5:10], department, order, expected)


def _split_place(place: str, fail: Callable[[str, str], NirError]) -> tuple[str, str]:
    """(department, commune or country) from characters 6–10, checking each."""
    head = place[:2]
    if head in ("2A", "2B"):
        commune = place[2:]
        if not commune.isdigit() or commune == "000":
            raise fail("commune", f"the commune code (characters 8–10) must be 001–999, got {commune!r}")
        return head, commune
    if not place.isdigit():
        raise fail(
            "department",
            f"the birthplace (characters 6–10) must be digits, or 2A/2B for Corsica, got {place!r}",
        )
    if head in ("97", "98"):
        department, commune = place[:3], place[3:]
        if department not in _OVERSEAS and department not in _COLLECTIVITIES:
            raise fail("department", f"{department} is not an overseas department or collectivity code")
        if commune == "00":
            raise fail("commune", "the overseas commune code (characters 9–10) cannot be 00")
        return department, commune
    if head == "99":
        country = place[2:]
        if not "101" <= country <= "599":
            raise fail("country", f"{country} is not an INSEE country code (99101–99599) for a birth abroad")
        return head, country
    if head == "00":
        raise fail("department", "the department of birth (characters 6–7) cannot be 00")
    if place[2:] == "000":
        raise fail("commune", "the commune code (characters 8–10) cannot be 000")
    return head, place[2:]
