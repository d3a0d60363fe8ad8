"""Checks of FHIR R4 primitive values as they appear in JSON.

FHIR R4 JSON (https://hl7.org/fhir/R4/json.html#primitive) represents `boolean` as a JSON boolean,
`integer`, `positiveInt`, `unsignedInt` and `decimal` as JSON numbers and every other primitive as a
JSON string; the lexical rule of each is the regex published in its StructureDefinition
(https://hl7.org/fhir/R4/datatypes.html). `structure.py` reads those regexes from the package and
compiles each once through `compile_primitive`; this module only knows how to apply them.

Three deliberate departures from a literal reading of the published regexes, each stricter or
equivalent, never more lenient:
- The regexes are XML Schema regexes, whose `\\s` is `[ \\t\\n\\r]`; Python's Unicode `\\s` would also
  match U+00A0 and reject `"12\\u00a0mg"`. They are compiled with `re.ASCII`, so `\\s` only covers
  ASCII whitespace; for strings that also rejects \\f and \\v, which FHIR forbids anyway (below).
- FHIR forbids control characters below U+0020 other than tab, CR and LF in strings
  (datatypes.html#string); a lookahead adds that rule to every string-valued primitive.
- The base64Binary regex `(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+` backtracks exponentially on a long invalid
  value with line breaks; it is replaced by the equivalent `\\s*([0-9a-zA-Z+/=]{4}\\s*)+`.
Dates SHALL be valid calendar dates (datatypes.html#date), which no regex says: `2023-02-30` fails.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable

# FHIR integers are 32-bit signed (datatypes.html#integer).
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

_BASE64_PUBLISHED = r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"
_BASE64_SAFE = r"\s*(?:[0-9a-zA-Z+/=]{4}\s*)+"
_NO_CONTROL = r"(?=[^\x00-\x08\x0b\x0c\x0e-\x1f]*\Z)"

_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "integer": (INT32_MIN, INT32_MAX),
    "positiveInt": (1, INT32_MAX),
    "unsignedInt": (0, INT32_MAX),
}

# JSON kinds of primitive values.
JSON_STRING = 0
JSON_BOOLEAN = 1
JSON_INTEGER = 2
JSON_NUMBER = 3

Extra = Callable[[str], str | None]
_KNOWN_LENGTH, _KNOWN_SIZE = 64, 4096  # the valid strings each Primitive remembers


class Primitive:
    """One compiled primitive type: its JSON kind, its regex and any rule a regex cannot say."""

    __slots__ = ("name", "json", "match", "extra", "low", "high", "known")

    def __init__(
        self,
        name: str,
        json: int,
        match: Callable[[str], object] | None,
        extra: Extra | None = None,
        low: int = INT32_MIN,
        high: int = INT32_MAX,
    ) -> None:
        self.name = name
        self.json = json
        self.match = match
        self.extra = extra
        self.low = low
        self.high = high
        # Short strings already found valid (codes, systems, units repeat in every resource): a set
        # lookup instead of the regex. Bounded, and never holds a long string.
        self.known: set[str] = set()

    def check(self, value: object) -> str | None:
        """The reason `value` is not a valid JSON form of this primitive, or None when it is."""
        kind = self.json
        if kind == JSON_STRING:
            if type(value) is not str:
                return f"{self.name} must be a JSON string, not {_json_name(value)}"
            if value in self.known:
                return None
            if not value:
                return f"an empty string is not a valid {self.name}"
            if self.match is not None and self.match(value) is None:
                return f"{_show(value)} is not a valid {self.name}"
            problem = None if self.extra is None else self.extra(value)
            if problem is None and len(value) <= _KNOWN_LENGTH and len(self.known) < _KNOWN_SIZE:
                self.known.add(value)
            return problem
        if kind == JSON_BOOLEAN:
            if type(value) is bool:
                return None
            return f"boolean must be JSON true or false, not {_json_name(value)}"
        if kind == JSON_INTEGER:
            if type(value) is not int:
                return f"{self.name} must be a JSON integer, not {_json_name(value)}"
            if not self.low <= value <= self.high:
                return f"{value} is out of range for {self.name} ({self.low}..{self.high})"
            return None
        # JSON_NUMBER (decimal): any JSON number; a string such as "1.5" is not a decimal.
        if type(value) is int or type(value) is float:
            return None
        return f"decimal must be a JSON number, not {_json_name(value)}"


def compile_primitive(name: str, regex: str | None) -> Primitive:
    """Build the checker of primitive type `name` from the regex of its StructureDefinition."""
    if name == "boolean":
        return Primitive(name, JSON_BOOLEAN, None)
    if name in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[name]
        return Primitive(name, JSON_INTEGER, None, low=low, high=high)
    if name == "decimal":
        return Primitive(name, JSON_NUMBER, None)
    if name == "xhtml":
        return Primitive(name, JSON_STRING, None, _check_xhtml)
    match = None
    if regex is not None:
        if regex == _BASE64_PUBLISHED:
            regex = _BASE64_SAFE
        match = re.compile(_NO_CONTROL + "(?:" + regex + ")", re.ASCII).fullmatch
    extra = _check_calendar if name in ("date", "dateTime", "instant") else None
    return Primitive(name, JSON_STRING, match, extra)


def _check_calendar(value: str) -> str | None:
    """Reject days that the month does not have; the regex already fixed the layout."""
    if len(value) < 10:
        return None
    day = int(value[8:10])
    if day <= 28:
        return None
    year, month = int(value[0:4]), int(value[5:7])
    if day > calendar.monthrange(year, month)[1]:
        return f"{_show(value)} is not a valid date: day {day} does not exist in {value[0:7]}"
    return None


_XHTML_START = re.compile(r"\s*<div[\s>/]")


def _check_xhtml(value: str) -> str | None:
    """Narrative.div must be an XHTML `<div>` (https://hl7.org/fhir/R4/narrative.html#xhtml).

    Only the outer element is checked; parsing the XHTML and its allowed-element rules is not done.
    """
    if _XHTML_START.match(value) is None:
        return "narrative xhtml must be a single <div> element"
    return None


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _json_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
