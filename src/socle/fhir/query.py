"""Parse a FHIR search query string into a typed query (R4 §3.1.1, https://hl7.org/fhir/R4/search.html).

`identifier=http://a|b&birthdate=ge2000-01&name:exact=Dupont&_id=1,2` becomes a `SearchQuery`:
clauses AND-ed together (one per parameter occurrence, §3.1.1.5.1), each holding values OR-ed
together (the comma, §3.1.1.5.2), the `SearchParam` it refers to, the modifier (`:exact`, §3.1.1.5.5)
and, per value, the prefix (`ge`, §3.1.1.4.1) and a typed, already-normalised value. Parsing is pure:
the store turns the query into SQL (`socle.store.search`).

Result parameters (`_count`, `_sort`, `_include`, ...) are kept raw in `controls` for the paging and
include layers. Parameters the registry does not know, chains and `_has` are collected in `unknown`
(lenient, as servers do by default, §3.1.1.3.2); `strict=True` raises `Invalid` naming them. A value
that cannot be read (a malformed date, a prefix on a token) is always an error.

Percent-decoding leaves `+` alone: clients send `%2B` for a plus, and a raw `+` in a dateTime
offset (`ge2020-01-01T10:00+01:00`) is far more common than a form-encoded space in a search value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal, cast, get_args
from urllib.parse import unquote

from socle.fhir.errors import Invalid, Issue
from socle.fhir.references import parse_reference
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import SearchParam, SearchParamRegistry, date_range, registry

__all__ = [
    "Clause",
    "DateValue",
    "MissingValue",
    "NumberValue",
    "Prefix",
    "QuantityValue",
    "ReferenceValue",
    "SearchQuery",
    "SearchValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "parse_query",
]

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: frozenset[str] = frozenset(get_args(Prefix))
CONTROLS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained"}
    | {"_containedType", "_format", "_pretty", "_offset"}
)
_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing", "of-type", "in", "not-in", "above", "below"}),
    "reference": frozenset({"missing", "identifier", "above", "below"}),
    "uri": frozenset({"missing", "above", "below"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "composite": frozenset({"missing"}),
    "special": frozenset({"missing"}),
}
_SPLIT_COMMA = re.compile(r"(?<!\\),")
_SPLIT_BAR = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class TokenValue:
    """`code` (any system: system None), `system|code`, `|code` (no system: ""), `system|` (code None)."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class StringValue:
    text: str


@dataclass(frozen=True)
class DateValue:
    """The [low, high) microsecond range of the value at its written precision, and the prefix."""

    prefix: Prefix
    low: int
    high: int


@dataclass(frozen=True)
class NumberValue:
    """The number and its implicit range from its digits: `100` is [99.5, 100.5) (search.html#number)."""

    prefix: Prefix
    value: Decimal
    low: float
    high: float


@dataclass(frozen=True)
class QuantityValue:
    prefix: Prefix
    value: Decimal
    low: float
    high: float
    system: str | None
    code: str | None


@dataclass(frozen=True)
class ReferenceValue:
    """`Patient/1` (type and id), `1` (id; type from a `:Type` modifier or a single target), or a URL."""

    resource_type: str | None
    id: str | None
    url: str | None


@dataclass(frozen=True)
class UriValue:
    uri: str


@dataclass(frozen=True)
class MissingValue:
    missing: bool


SearchValue = (
    TokenValue
    | StringValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | MissingValue
)


@dataclass(frozen=True)
class Clause:
    """One parameter occurrence: its values are OR-ed. Room to grow: a chain, a `_has` path."""

    param: SearchParam
    modifier: str | None
    values: tuple[SearchValue, ...]

    @property
    def name(self) -> str:
        return self.param.name


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    clauses: tuple[Clause, ...]
    unknown: tuple[str, ...] = ()
    controls: tuple[tuple[str, str], ...] = ()


def _unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def _split_bar(text: str) -> list[str]:
    return [_unescape(part) for part in _SPLIT_BAR.split(text)]


def _prefix(text: str) -> tuple[Prefix, str]:
    head = text[:2]
    if head in PREFIXES and len(text) > 2 and (text[2].isdigit() or text[2] in "-+."):
        return cast(Prefix, head), text[2:]
    return "eq", text


def _number(text: str, what: str) -> tuple[Decimal, float, float]:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"{text!r} is not a valid {what}") from None
    if not value.is_finite():
        raise Invalid(f"{text!r} is not a valid {what}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value, float(value - half), float(value + half)


def _value(param: SearchParam, modifier: str | None, text: str) -> SearchValue:
    """Read one (comma-separated) value according to the parameter's type and modifier."""
    kind = param.type
    if modifier == "missing":
        if text not in ("true", "false"):
            raise Invalid(f"{param.name}:missing takes true or false, not {text!r}")
        return MissingValue(text == "true")
    if (kind == "token" and modifier == "text") or kind == "string":
        return StringValue(_unescape(text))
    if kind == "token" or (kind == "reference" and modifier == "identifier"):
        parts = _split_bar(text)
        if len(parts) == 1:
            return TokenValue(None, parts[0])
        return TokenValue(parts[0], "|".join(parts[1:]) or None)
    if kind == "date":
        prefix, rest = _prefix(text)
        try:
            low, high = date_range(rest)
        except ValueError:
            raise Invalid(f"{text!r} is not a valid date for {param.name}") from None
        return DateValue(prefix, low, high)
    if kind == "number":
        prefix, rest = _prefix(text)
        return NumberValue(prefix, *_number(rest, f"number for {param.name}"))
    if kind == "quantity":
        prefix, rest = _prefix(text)
        parts = _split_bar(rest)
        if len(parts) not in (1, 3):
            raise Invalid(f"{text!r} is not a valid quantity: use [prefix]number|system|code")
        number = _number(parts[0], f"quantity for {param.name}")
        system, code = (parts[1] or None, parts[2] or None) if len(parts) == 3 else (None, None)
        return QuantityValue(prefix, *number, system, code)
    if kind == "reference":
        return _reference(param, modifier, _unescape(text))
    if kind == "uri":
        return UriValue(_unescape(text))
    return StringValue(_unescape(text))  # composite, special: kept raw; the store decides


def _reference(param: SearchParam, modifier: str | None, text: str) -> ReferenceValue:
    """A reference value; a `:Patient` type modifier (search.html#reference) fixes the target type."""
    target = parse_reference(text)
    type_modifier = modifier if modifier and modifier[0].isupper() else None
    if target.kind == "relative":
        if type_modifier is not None and type_modifier != target.resource_type:
            raise Invalid(f"{param.name}:{modifier} does not match {text!r}")
        return ReferenceValue(target.resource_type, target.id, None)
    if "://" in text or text.startswith("urn:"):
        url = text.split("|", 1)[0]
        return ReferenceValue(target.resource_type, target.id, url)
    if "/" in text or not text:
        raise Invalid(f"{text!r} is not a valid reference for {param.name}")
    if type_modifier is not None:
        return ReferenceValue(type_modifier, text, None)
    return ReferenceValue(param.targets[0] if len(param.targets) == 1 else None, text, None)


def _pairs(query: str | Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    if not isinstance(query, str):
        return query
    pairs = []
    for part in query.lstrip("?").split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def parse_query(
    resource_type: str,
    query: str | Iterable[tuple[str, str]],
    *,
    strict: bool = False,
    params: SearchParamRegistry | None = None,
) -> SearchQuery:
    """The typed query of `query` (a raw query string, or already-decoded name/value pairs)."""
    if resource_type not in resource_types():
        raise Invalid(f"{resource_type!r} is not a resource type")
    known = (params or registry()).params(resource_type)
    clauses: list[Clause] = []
    unknown: list[str] = []
    controls: list[tuple[str, str]] = []
    for raw_name, raw_value in _pairs(query):
        if raw_name in CONTROLS:
            controls.append((raw_name, raw_value))
            continue
        name, _, modifier = raw_name.partition(":")
        param = known.get(name)
        # Chains and `_has` (search.html#chaining) and expression-less parameters (`_text`,
        # `_content`, `_filter`, `near`) are not answered yet: reported as unknown.
        if param is None or "." in raw_name or param.expression is None or param.type == "special":
            unknown.append(raw_name)
            continue
        if modifier and modifier not in _MODIFIERS[param.type]:
            if not (param.type == "reference" and modifier in resource_types()):
                raise Invalid(f"Unknown modifier :{modifier} on {param.type} parameter {name}")
        if not raw_value:
            continue  # an empty value is ignored (search.html#errors)
        values = tuple(_value(param, modifier or None, v) for v in _SPLIT_COMMA.split(raw_value) if v)
        if values:
            clauses.append(Clause(param, modifier or None, values))
    if strict and unknown:
        issues = [
            Issue("not-supported", f"Unknown search parameter {n!r} for {resource_type}") for n in unknown
        ]
        raise Invalid(f"Unknown search parameter(s) for {resource_type}: {', '.join(unknown)}", issues=issues)
    return SearchQuery(resource_type, tuple(clauses), tuple(unknown), tuple(controls))
