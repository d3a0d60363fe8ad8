"""SQL conditions for the ordered search types: date, number, quantity, and composites.

Prefixes follow R4 search.html#prefix. A date is a range on both sides: the target [low, high)
against the search value's [low, high) at its precision, so `eq` is "the target lies within the
value", `gt` "the target reaches past the value's end", `sa` "starts after it". A number or
quantity is a point in the index and a range in the search, from its significant digits (`100` is
[99.5, 100.5)): `eq` is "within that range", `gt` "above the value", `ap` "within 10%".

Quantities in UCUM with a convertible unit are compared in canonical units (`socle.fhir._ucum`),
against the canonical value stored beside each UCUM row: `5.4|http://unitsofmeasure.org|g/L`
matches `540 mg/dL`. Other quantities compare the value with the unit code as written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, false, or_

from socle.fhir._ucum import UCUM, to_canonical
from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.hashing import param_hash, value_hash
from socle.fhir.query import (
    Clause,
    CompositeValue,
    DateValue,
    NumberValue,
    Prefix,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
)
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import normalize_string
from socle.store._search_values import Condition, Key, Rows, typed
from socle.store.indexes import (
    MAX_STRING_LENGTH,
    idx_composite,
    idx_date,
    idx_number,
    idx_quantity,
    parts_hash,
)

__all__ = ["composite", "date", "date_condition", "number", "quantity"]

_PREFIX_END = "\U0010ffff"


def date_condition(v: DateValue, low: ColumnElement[int], high: ColumnElement[int]) -> Condition:
    within = and_(low >= v.low, high <= v.high)
    if v.prefix == "eq":
        return within
    if v.prefix == "ne":
        return or_(low < v.low, high > v.high)
    if v.prefix == "gt":
        return high > v.high
    if v.prefix == "lt":
        return low < v.low
    if v.prefix == "ge":
        return or_(high > v.high, within)
    if v.prefix == "le":
        return or_(low < v.low, within)
    if v.prefix == "sa":
        return low >= v.high
    if v.prefix == "eb":
        return high <= v.low
    # ap: overlaps the value widened by 10% of its distance from now (search.html#prefix), at least a day
    margin = max(abs(int(time.time() * 1e6) - v.low) // 10, 86_400_000_000)
    return and_(low < v.high + margin, high > v.low - margin)


def date(rt: str, clause: Clause, key: Key) -> Rows:
    conditions = [date_condition(v, idx_date.c.low, idx_date.c.high) for v in typed(clause, DateValue)]
    return Rows(idx_date, and_(idx_date.c.param_hash == param_hash(rt, clause.name), or_(*conditions)))


class _Bounds(NamedTuple):
    """A number as searched: the value, its implicit-precision range, and its ±10% range (`ap`)."""

    prefix: Prefix
    exact: float
    low: float
    high: float
    ap_low: float
    ap_high: float


def _bounds(v: NumberValue | QuantityValue) -> _Bounds:
    exact = float(v.value)
    margin = abs(exact) / 10
    return _Bounds(v.prefix, exact, v.low, v.high, exact - margin, exact + margin)


def _canonical_bounds(b: _Bounds, code: str) -> tuple[_Bounds, str] | None:
    """The bounds in UCUM canonical units (conversions are increasing, so each bound maps alone)."""
    converted = [to_canonical(x, code) for x in (b.exact, b.low, b.high, b.ap_low, b.ap_high)]
    if any(c is None for c in converted):
        return None
    values = [c[0] for c in converted if c is not None]
    unit = converted[0][1] if converted[0] is not None else ""
    return _Bounds(b.prefix, *values), unit


def number_condition(b: _Bounds, column: ColumnElement[float]) -> Condition:
    if b.prefix == "eq":
        return and_(column >= b.low, column < b.high)
    if b.prefix == "ne":
        return or_(column < b.low, column >= b.high)
    if b.prefix in ("gt", "sa"):
        return column > b.exact
    if b.prefix in ("lt", "eb"):
        return column < b.exact
    if b.prefix == "ge":
        return column >= b.exact
    if b.prefix == "le":
        return column <= b.exact
    return and_(column >= b.ap_low, column <= b.ap_high)


def number(rt: str, clause: Clause, key: Key) -> Rows:
    conditions = [number_condition(_bounds(v), idx_number.c.value) for v in typed(clause, NumberValue)]
    return Rows(idx_number, and_(idx_number.c.param_hash == param_hash(rt, clause.name), or_(*conditions)))


def quantity(rt: str, clause: Clause, key: Key) -> Rows:
    """`[prefix]number[|system|code]` (search.html#quantity)."""
    name, table = clause.name, idx_quantity
    parts = []
    for v in typed(clause, QuantityValue):
        bounds = _bounds(v)
        canonical = _canonical_bounds(bounds, v.code) if v.system == UCUM and v.code else None
        if canonical is not None:
            units = value_hash(rt, name, canonical[1])
            parts.append(
                and_(table.c.canonical_units_hash == units, number_condition(canonical[0], table.c.canonical))
            )
            continue
        condition = number_condition(bounds, table.c.value)
        if v.code is not None:
            condition = and_(table.c.units_hash == value_hash(rt, name, v.code), condition)
        else:
            condition = and_(table.c.param_hash == param_hash(rt, name), condition)
        if v.system is not None:
            condition = and_(condition, table.c.system == v.system)
        parts.append(condition)
    return Rows(table, or_(*parts))


def composite(rt: str, clause: Clause, key: Key) -> Rows:
    """search.html#composite, against idx_composite rows (one per element: see _index_composites).

    The key components (token, reference, uri) give `key_hash` (their `code` forms) and, when a
    token has a system, the `part<n>_hash` of its `system|code`; the ordered component (quantity,
    number, date, string) filters the typed columns of those rows. A union composite (R4 `combo-*`)
    searches the rows of each composite it unites.
    """
    param = clause.param
    names = param.union_of or (param.name,)
    kinds = [component.type for component in param.components]
    conditions = [
        _composite_value(rt, name, kinds, value) for value in typed(clause, CompositeValue) for name in names
    ]
    return Rows(idx_composite, or_(*conditions))


def _composite_value(rt: str, name: str, kinds: Sequence[str | None], value: CompositeValue) -> Condition:
    table = idx_composite
    keys: list[tuple[str, ...]] = [()]
    filters: list[Condition] = []
    key_index = 0
    numbers = iter((table.c.value, table.c.value2))
    for kind, part in zip(kinds, value.parts, strict=True):
        if kind in ("token", "reference", "uri"):
            key_index += 1
            forms = _key_parts(part, key_index, name, rt, filters)
            keys = [k + form for k in keys for form in forms]
        elif isinstance(part, QuantityValue):
            filters.append(_composite_quantity(rt, name, part))
        elif isinstance(part, NumberValue):
            filters.append(number_condition(_bounds(part), next(numbers)))
        elif isinstance(part, DateValue):
            filters.append(date_condition(part, table.c.low, table.c.high))
        elif isinstance(part, StringValue):
            folded = normalize_string(part.text)[:MAX_STRING_LENGTH]
            filters.append(and_(table.c.text >= folded, table.c.text < folded + _PREFIX_END))
        else:
            raise Invalid(f"Unexpected value in composite {name}")
    if not keys:
        return false()
    hashes = [parts_hash(rt, name, k) for k in keys]
    return and_(table.c.key_hash.in_(hashes), *filters)


def _key_parts(
    part: SearchValue, index: int, name: str, rt: str, filters: list[Condition]
) -> list[tuple[str, ...]]:
    """The tagged key parts of one key component's value (as _index_composites writes them)."""
    if isinstance(part, TokenValue):
        if part.code is None:
            raise NotSupported(f"{name}: `system|` without a code is not supported in a composite")
        if part.system is not None:
            if index > 2:
                raise NotSupported(f"{name}: a system on the third key component is not supported")
            column = idx_composite.c.part1_hash if index == 1 else idx_composite.c.part2_hash
            filters.append(column == parts_hash(rt, name, ("S", part.system, part.code)))
        return [("T", part.code)]
    if isinstance(part, ReferenceValue):
        if part.url is not None:
            return [("U", part.url)]
        targets = [part.resource_type] if part.resource_type else sorted(resource_types())
        return [("R", target, part.id or "") for target in targets]
    if isinstance(part, UriValue):
        return [("U", part.uri)]
    raise Invalid(f"Unexpected value in composite {name}")


def _composite_quantity(rt: str, name: str, v: QuantityValue) -> Condition:
    table = idx_composite
    bounds = _bounds(v)
    canonical = _canonical_bounds(bounds, v.code) if v.system == UCUM and v.code else None
    if canonical is not None:
        units = value_hash(rt, name, canonical[1])
        return and_(table.c.canonical_units_hash == units, number_condition(canonical[0], table.c.canonical))
    condition = number_condition(bounds, table.c.value)
    if v.code is not None:
        condition = and_(condition, table.c.units_hash == value_hash(rt, name, v.code))
    if v.system is not None:
        condition = and_(condition, table.c.system == v.system)
    return condition
