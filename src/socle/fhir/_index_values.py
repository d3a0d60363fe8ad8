"""Turn the values a search-parameter expression yields into the normalised values the store indexes.

One function per search type (R4 §3.1.1.4, https://hl7.org/fhir/R4/search.html#ptypes), each
accepting whatever FHIR data types that search type may be computed from, told apart by their JSON
shape (a CodeableConcept has `coding`/`text`, an Identifier `value`, a Period `start`/`end`, ...).
Extensions returned by `extension(url)` stand for their value[x].

Dates become half-open intervals [low, high) of integer microseconds since the epoch (UTC), at the
precision written (R4 §3.1.1.4.2 search.html#date): `2020` covers the year, `2020-03-01T10:00Z` the
minute, `...:05.123Z` the millisecond. A date or dateTime without a timezone is read as UTC: FHIR
says a time without zone is local to an unknown place, and UTC is the one reading every node shares.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from socle.fhir._ucum import UCUM, to_canonical
from socle.fhir.references import parse_reference

__all__ = [
    "OPEN_HIGH",
    "OPEN_LOW",
    "CompositeRow",
    "IndexValues",
    "canonical_quantity",
    "date_range",
    "normalize_string",
]

# Bounds of an open Period end; far outside any real date, far inside a signed 64-bit integer.
OPEN_LOW = -(2**62)
OPEN_HIGH = 2**62

_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,
)
# Typographic apostrophes fold to ASCII so that `O’Brien` and `O'Brien` index alike.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
# (param, key parts, part1, part2, value, value2, low, high, text, units, system):
# the columns of idx_composite before hashing; see socle.fhir._index_composites for what each holds.
CompositeRow = tuple[
    str,
    tuple[str, ...],
    tuple[str, ...] | None,
    tuple[str, ...] | None,
    float | None,
    float | None,
    int | None,
    int | None,
    str | None,
    str | None,
    str | None,
]
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _days(year: int, month: int, day: int) -> int:
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


def date_range(text: str) -> tuple[int, int]:
    """The [low, high) microsecond interval a FHIR date, dateTime or instant covers (ValueError if bad)."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a FHIR date, dateTime or instant")
    y, mo, d, hh, mi, ss, frac, tz = match.groups()
    year = int(y)
    if mo is None:
        return _days(year, 1, 1) * _US_PER_DAY, _days(year + 1, 1, 1) * _US_PER_DAY
    month = int(mo)
    if d is None:
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        return _days(year, month, 1) * _US_PER_DAY, _days(*following, 1) * _US_PER_DAY
    day_start = _days(year, month, int(d)) * _US_PER_DAY
    if hh is None:
        return day_start, day_start + _US_PER_DAY
    hour, minute = int(hh), int(mi)
    if hour > 23 or minute > 59:  # FHIR allows no 24:00 (datatypes.html#time)
        raise ValueError(f"{text!r} has an invalid time")
    low = day_start + (hour * 3600 + minute * 60) * 1_000_000
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        low -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * 1_000_000
    if ss is None:
        return low, low + 60_000_000
    second = int(ss)
    if second > 59:
        raise ValueError(f"{text!r} has an invalid time")
    low += second * 1_000_000
    if frac is None:
        return low, low + 1_000_000
    digits = frac[:6]
    low += int(digits) * 10 ** (6 - len(digits))
    return low, low + 10 ** (6 - len(digits))


def normalize_string(text: str) -> str:
    """Case- and accent-folded form for string search (R4 search.html#string): `Hélène` → `helene`."""
    if text.isascii():
        return text.lower().replace("`", "'")
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def canonical_quantity(value: float, system: str, code: str) -> tuple[float, str] | None:
    """`value code` in UCUM canonical units (`1 kg` → `1000 g`), None if not UCUM or not convertible.

    The quantity and composite indexes store it beside the original value, in the same row, so that
    a UCUM search in any compatible unit matches (R4 search.html#quantity, "canonical units"), while
    a search by number alone or by the original code compares the original. See `socle.fhir._ucum`.
    """
    if system != UCUM:
        return None
    return to_canonical(value, code)


@dataclass(slots=True)
class IndexValues:
    """The normalised search values of one resource, per search type, each tagged with its parameter."""

    tokens: set[tuple[str, str, str]] = field(default_factory=set)  # (param, system or "", code)
    strings: set[tuple[str, str, str]] = field(default_factory=set)  # (param, normalised, exact)
    dates: set[tuple[str, int, int]] = field(default_factory=set)  # (param, low, high)
    # (param, target type, target id, absolute URL): local `Patient/1` fills type and id only.
    references: set[tuple[str, str | None, str | None, str | None]] = field(default_factory=set)
    quantities: set[tuple[str, float, str, str]] = field(default_factory=set)  # (param, value, system, code)
    numbers: set[tuple[str, float]] = field(default_factory=set)
    uris: set[tuple[str, str]] = field(default_factory=set)
    # One row per element occurrence and combination of component values (see _index_composites).
    composites: set[CompositeRow] = field(default_factory=set)

    def count(self) -> int:
        """How many index rows these values make."""
        return (
            len(self.composites)
            + len(self.tokens)
            + len(self.strings)
            + len(self.dates)
            + len(self.references)
            + len(self.quantities)
            + len(self.numbers)
            + len(self.uris)
        )


def _unwrap(value: Any) -> Any:
    """An Extension stands for its value[x] (what `extension(url)`-based parameters mean)."""
    if type(value) is dict and "url" in value:
        for key, inner in value.items():
            if key.startswith("value"):
                return inner
    return value


def add_token(out: IndexValues, name: str, value: Any) -> None:
    """Token (search.html#token): Coding, CodeableConcept, Identifier, ContactPoint, code, boolean, string."""
    kind = type(value)
    if kind is str:
        out.tokens.add((name, "", value))
    elif kind is bool:
        out.tokens.add((name, "", "true" if value else "false"))
    elif kind is int:
        out.tokens.add((name, "", str(value)))
    elif kind is dict:
        value = _unwrap(value)
        if type(value) is not dict:
            add_token(out, name, value)
            return
        codings = value.get("coding")
        if codings is not None or ("text" in value and "code" not in value and "value" not in value):
            for coding in codings or ():
                add_token(out, name, coding)
            text = value.get("text")
            if type(text) is str:
                out.strings.add((name + ":text", normalize_string(text), text))
            return
        code = value.get("code", value.get("value"))
        if type(code) is str:
            system = value.get("system")
            out.tokens.add((name, system if type(system) is str else "", code))
            if "type" in value and "code" not in value:
                _add_identifier_type(out, name, value["type"], code)
        display = value.get("display")
        if type(display) is str:
            out.strings.add((name + ":text", normalize_string(display), display))


def _add_identifier_type(out: IndexValues, name: str, kind: Any, value: str) -> None:
    """`identifier:of-type=system|code|value` (search.html#token): a token row per Identifier.type coding.

    The row's system is `system|code` of the type: hashed as one part (hashing escapes the bar), so
    the search is one equality on `sys_value_hash` under `<param>:of-type`.
    """
    for coding in kind.get("coding", ()) if type(kind) is dict else ():
        if type(coding) is dict and type(coding.get("code")) is str:
            system = coding.get("system")
            type_system = system if type(system) is str else ""
            out.tokens.add((name + ":of-type", f"{type_system}|{coding['code']}", value))


def add_string(out: IndexValues, name: str, value: Any) -> None:
    """String (search.html#string): strings, and each part of a HumanName or Address."""
    if type(value) is str:
        out.strings.add((name, normalize_string(value), value))
    elif type(value) is dict:
        value = _unwrap(value)
        if type(value) is not dict:
            add_string(out, name, value)
            return
        parts = _ADDRESS_PARTS if "line" in value or "city" in value or "postalCode" in value else _NAME_PARTS
        for part in parts:
            item = value.get(part)
            for text in item if type(item) is list else (item,):
                if type(text) is str:
                    out.strings.add((name, normalize_string(text), text))


def add_date(out: IndexValues, name: str, value: Any) -> None:
    """Date (search.html#date): date, dateTime, instant, Period, Timing events."""
    if type(value) is str:
        try:
            low, high = date_range(value)
        except ValueError:
            return  # time-of-day values and malformed dates are not indexed
        out.dates.add((name, low, high))
    elif type(value) is dict:
        value = _unwrap(value)
        if type(value) is not dict:
            add_date(out, name, value)
        elif "start" in value or "end" in value:
            try:
                low = date_range(value["start"])[0] if "start" in value else OPEN_LOW
                high = date_range(value["end"])[1] if "end" in value else OPEN_HIGH
            except ValueError:
                return
            out.dates.add((name, low, high))
        elif "event" in value:
            for event in value["event"]:
                add_date(out, name, event)


def add_reference(out: IndexValues, name: str, value: Any) -> None:
    """Reference (search.html#reference): Reference, canonical/uri, or a resource (Bundle.entry[0].resource).

    `Reference.identifier` is also indexed as a token under `<name>:identifier` for the `:identifier`
    modifier (search.html#modifiers).
    """
    if type(value) is str:
        _add_target(out, name, value)
    elif type(value) is dict:
        if "resourceType" in value:
            if type(value.get("id")) is str:
                out.references.add((name, value["resourceType"], value["id"], None))
            return
        value = _unwrap(value)
        if type(value) is not dict:
            add_reference(out, name, value)
            return
        text = value.get("reference")
        if type(text) is str:
            _add_target(out, name, text)
        identifier = value.get("identifier")
        if type(identifier) is dict:
            add_token(out, name + ":identifier", identifier)


def _add_target(out: IndexValues, name: str, text: str) -> None:
    target = parse_reference(text)
    if target.kind == "relative":
        out.references.add((name, target.resource_type, target.id, None))
    elif target.kind in ("absolute", "urn", "other"):
        url = _strip_version(text)
        if url != text:
            target = parse_reference(url)
        out.references.add((name, target.resource_type, target.id, url))


def _strip_version(url: str) -> str:
    """Canonical `url|version` (references.html#canonical) and `/_history/n` both name the resource."""
    url = url.split("|", 1)[0]
    cut = url.find("/_history/")
    return url[:cut] if cut > 0 else url


def add_quantity(out: IndexValues, name: str, value: Any) -> None:
    """Quantity (search.html#quantity): Quantity and its kinds, Range bounds, Money, bare numbers."""
    if type(value) is not dict:
        if type(value) in (int, float):
            out.quantities.add((name, float(value), "", ""))
        return
    value = _unwrap(value)
    if type(value) is not dict:
        add_quantity(out, name, value)
        return
    number = value.get("value")
    if isinstance(number, int | float) and type(number) is not bool:
        system = value.get("system", "")
        code = value.get("code") or value.get("unit") or value.get("currency") or ""
        out.quantities.add((name, float(number), system, code))
    for bound in ("low", "high"):
        if type(value.get(bound)) is dict:
            add_quantity(out, name, value[bound])


def add_number(out: IndexValues, name: str, value: Any) -> None:
    """Number (search.html#number): integer, decimal, or the value of a Quantity or Range bound."""
    if type(value) in (int, float):
        out.numbers.add((name, float(value)))
    elif type(value) is dict:
        value = _unwrap(value)
        if type(value) is not dict:
            add_number(out, name, value)
            return
        for key in ("value", "low", "high"):
            inner = value.get(key)
            if inner is not None:
                add_number(out, name, inner)


def add_uri(out: IndexValues, name: str, value: Any) -> None:
    """Uri (search.html#uri): uri, url, canonical, oid, uuid."""
    if type(value) is str:
        out.uris.add((name, value))
    elif type(value) is dict:
        inner = _unwrap(value)
        if type(inner) is str:
            out.uris.add((name, inner))


ADDERS = {
    "token": add_token,
    "string": add_string,
    "date": add_date,
    "reference": add_reference,
    "quantity": add_quantity,
    "number": add_number,
    "uri": add_uri,
}
