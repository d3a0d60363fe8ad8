"""The typed values of a search query and how each search type reads them (R4 search.html#ptypes).

One comma-separated value of a parameter becomes one of the dataclasses below, already normalised
for the store: a date its [low, high) microsecond range at the precision written, a number its
implicit precision range (`100` is [99.5, 100.5), search.html#number), a token its system and code
(`code`, `system|code`, `|code`, `system|`), a composite one value per component (`$`-separated,
search.html#composite). `\\,` `\\|` `\\$` escape the separators (search.html#escaping).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal, cast, get_args

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.references import parse_reference
from socle.fhir.search_params import SearchParam, SearchParamRegistry, date_range

__all__ = [
    "PREFIXES",
    "CompositeValue",
    "DateValue",
    "IdentifierTypeValue",
    "MissingValue",
    "NumberValue",
    "Prefix",
    "QuantityValue",
    "ReferenceValue",
    "SearchValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "read_value",
    "split_values",
    "unescape",
]

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: frozenset[str] = frozenset(get_args(Prefix))
_SPLIT_COMMA = re.compile(r"(?<!\\),")
_SPLIT_BAR = re.compile(r"(?<!\\)\|")
_SPLIT_DOLLAR = re.compile(r"(?<!\\)\$")


@dataclass(frozen=True)
class TokenValue:
    """`code` (any system: system None), `system|code`, `|code` (no system: ""), `system|` (code None)."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class IdentifierTypeValue:
    """`identifier:of-type=system|code|value`: an Identifier whose type has that coding, and that value."""

    type_system: str
    type_code: str
    value: str


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


@dataclass(frozen=True)
class CompositeValue:
    """`http://loinc.org|8480-6$gt100`: one value per component, in the definition's order."""

    parts: tuple[SearchValue, ...]


SearchValue = (
    TokenValue
    | IdentifierTypeValue
    | StringValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | MissingValue
    | CompositeValue
)


def unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def split_values(text: str) -> list[str]:
    """The comma-separated values of one parameter (OR-ed), escapes kept for `read_value`."""
    return [v for v in _SPLIT_COMMA.split(text) if v]


def _split_bar(text: str) -> list[str]:
    return [unescape(part) for part in _SPLIT_BAR.split(text)]


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


def read_value(
    param: SearchParam, modifier: str | None, text: str, params: SearchParamRegistry
) -> SearchValue:
    """Read one (comma-separated) value according to the parameter's type and modifier."""
    kind = param.type
    if modifier == "missing":
        if text not in ("true", "false"):
            raise Invalid(f"{param.name}:missing takes true or false, not {text!r}")
        return MissingValue(text == "true")
    if (kind == "token" and modifier == "text") or kind == "string":
        return StringValue(unescape(text))
    if kind == "token" and modifier in ("in", "not-in"):  # a value set: `url[|version]` or `ValueSet/id`
        return UriValue(unescape(text))
    if kind == "token" and modifier == "of-type":
        parts = _split_bar(text)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise Invalid(f"{param.name}:of-type takes system|code|value, not {text!r}")
        return IdentifierTypeValue(parts[0], parts[1], parts[2])
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
        return _reference(param, modifier, unescape(text))
    if kind == "uri":
        return UriValue(unescape(text))
    if kind == "composite":
        return _composite(param, text, params)
    return StringValue(unescape(text))  # special: kept raw; the store decides


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


def _composite(param: SearchParam, text: str, params: SearchParamRegistry) -> CompositeValue:
    """Each `$`-separated part read as its component's type (search.html#composite)."""
    parts = _SPLIT_DOLLAR.split(text)
    if len(parts) != len(param.components):
        raise Invalid(f"{param.name} takes {len(param.components)} values separated by '$', not {text!r}")
    values: list[SearchValue] = []
    for component, part in zip(param.components, parts, strict=True):
        definition = params.by_url(component.definition)
        if definition is None or definition.type in ("composite", "special"):
            raise NotSupported(f"Composite parameter {param.name} has a component Socle cannot read")
        values.append(read_value(definition, None, part, params))
    return CompositeValue(tuple(values))
