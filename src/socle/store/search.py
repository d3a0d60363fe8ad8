"""Compile a typed FHIR search query into one SQLAlchemy SELECT over the index tables.

Each clause of the query (AND) becomes `resource_key IN (SELECT resource_key FROM idx_<type> WHERE
...)`, its values (OR) one disjunction inside that subquery; token, reference and uri values are
equalities on the frozen 64-bit hashes (`socle.fhir.hashing`) that the writes in `indexes.py`
computed the same way. `_id` and `_lastUpdated` read the `resource` table. The access filter is
ANDed in, so the statement can only return rows the policy admitted.

Search semantics follow R4 §3.1.1.4 (https://hl7.org/fhir/R4/search.html#ptypes). Dates compare
ranges: a target [low, high) against the search value's [low, high) at its precision, e.g. `eq` is
"the target lies within the value", `gt` "the target reaches past the value's end". Not built yet
(raise NotSupported): `:missing`, `:above`/`:below`, `:in`/`:not-in`, `:of-type`, composite and
special parameters, chains and `_has` (reported in `SearchQuery.unknown` by the parser).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, Connection, Select, and_, false, not_, or_, select

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.hashing import param_hash, system_value_hash, value_hash
from socle.fhir.query import (
    Clause,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    SearchQuery,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
    parse_query,
)
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import normalize_string, registry
from socle.store import fulltext
from socle.store.access import AccessFilter
from socle.store.indexes import (
    MAX_STRING_LENGTH,
    idx_date,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
)
from socle.store.schema import resource

__all__ = ["compile_search", "find_keys", "supported_search_params"]

_Condition = ColumnElement[bool]
_V = TypeVar("_V", bound=SearchValue)
_PREFIX_END = "\U0010ffff"  # sorts after any character: [v, v + END) is "starts with v"


def compile_search(query: SearchQuery, access: AccessFilter) -> Select[int, str]:
    """Keys and ids of the current, non-deleted resources of the query's type matching every clause."""
    stmt = select(resource.c.resource_key, resource.c.id).where(
        resource.c.resource_type == query.resource_type,
        resource.c.deleted == false(),
        access.condition(resource),
    )
    for clause in query.clauses:
        stmt = stmt.where(_clause(query.resource_type, clause))
    return stmt.order_by(resource.c.resource_key)


def find_keys(
    conn: Connection, resource_type: str, query_string: str, access: AccessFilter, limit: int
) -> list[tuple[int, str]]:
    """Matches of a conditional create/update/delete or conditional reference (R4 http.html#cond).

    Strict: an unknown parameter is an error rather than ignored, and a query with no criteria is
    refused, since matching "everything" would make a conditional delete or update destructive.
    """
    query = parse_query(resource_type, query_string, strict=True)
    if not query.clauses:
        raise Invalid(f"A conditional operation on {resource_type} needs search criteria")
    rows = conn.execute(compile_search(query, access).limit(limit)).all()
    return [(int(key), str(id_)) for key, id_ in rows]


def supported_search_params(resource_type: str) -> list[tuple[str, str, str]]:
    """(name, definition URL, type) of the parameters this module can search on (CapabilityStatement)."""
    return sorted(
        (p.name, p.url, p.type)
        for p in registry().params(resource_type).values()
        if p.type in _BUILDERS and p.expression is not None
    )


def _clause(rt: str, clause: Clause) -> _Condition:
    param = clause.param
    if clause.modifier == "missing":
        raise NotSupported(f"The :missing modifier is not supported yet ({param.name})")
    if param.name == "_id":
        return _id_condition(clause)
    if param.name in fulltext.PARAMS:  # _text, _content
        return fulltext.condition(param.name, [v.text for v in _typed(clause, StringValue)], resource)
    if param.name == "_lastUpdated":
        column = resource.c.updated_at
        return or_(*(_date_condition(v, column, column + 1) for v in _typed(clause, DateValue)))
    build = _BUILDERS.get(param.type)
    if build is None or clause.modifier in ("above", "below", "in", "not-in", "of-type"):
        detail = f":{clause.modifier}" if clause.modifier else f" ({param.type} parameter)"
        raise NotSupported(f"Search on {param.name}{detail} is not supported yet")
    return build(rt, clause)


def _typed(clause: Clause, kind: type[_V]) -> list[_V]:
    values = [v for v in clause.values if isinstance(v, kind)]
    if len(values) != len(clause.values):
        raise Invalid(f"Unexpected value for {clause.name}")
    return values


def _id_condition(clause: Clause) -> _Condition:
    ids = [v.code for v in _typed(clause, TokenValue) if v.code is not None]
    condition = resource.c.id.in_(ids)
    return not_(condition) if clause.modifier == "not" else condition


def _token(rt: str, clause: Clause) -> _Condition:
    if clause.modifier == "text":
        return _string_values(rt, clause.name + ":text", _typed(clause, StringValue), None)
    keys = _token_keys(rt, clause.name, _typed(clause, TokenValue))
    if clause.modifier == "not":
        return resource.c.resource_key.not_in(keys)
    return resource.c.resource_key.in_(keys)


def _token_keys(rt: str, name: str, values: Sequence[TokenValue]) -> Select[int]:
    """`code`, `system|code`, `|code`, `system|` (search.html#token), each one hash equality."""
    by_value, by_system_value, by_system = [], [], []
    for v in values:
        if v.code is None:
            by_system.append(value_hash(rt, name, v.system or ""))
        elif v.system is None:
            by_value.append(value_hash(rt, name, v.code))
        else:
            by_system_value.append(system_value_hash(rt, name, v.system, v.code))
    parts: list[_Condition] = [
        column.in_(hashes)
        for column, hashes in (
            (idx_token.c.value_hash, by_value),
            (idx_token.c.sys_value_hash, by_system_value),
            (idx_token.c.sys_hash, by_system),
        )
        if hashes
    ]
    if by_system:  # sys_hash is not indexed: narrow by parameter first
        parts = [and_(idx_token.c.param_hash == param_hash(rt, name), or_(*parts))]
    return select(idx_token.c.resource_key).where(or_(*parts))


def _string(rt: str, clause: Clause) -> _Condition:
    return _string_values(rt, clause.name, _typed(clause, StringValue), clause.modifier)


def _string_values(rt: str, name: str, values: Sequence[StringValue], modifier: str | None) -> _Condition:
    """Default: starts with, on the case- and accent-folded form (search.html#string)."""
    column = idx_string.c.value_normalized
    parts = []
    for v in values:
        folded = normalize_string(v.text)[:MAX_STRING_LENGTH]
        if modifier == "exact":
            parts.append(and_(column == folded, idx_string.c.value_exact == v.text))
        elif modifier == "contains":
            parts.append(column.contains(folded, autoescape=True))
        else:
            parts.append(and_(column >= folded, column < folded + _PREFIX_END))
    keys = select(idx_string.c.resource_key).where(
        idx_string.c.param_hash == param_hash(rt, name), or_(*parts)
    )
    return resource.c.resource_key.in_(keys)


def _date_condition(v: DateValue, low: ColumnElement[int], high: ColumnElement[int]) -> _Condition:
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


def _date(rt: str, clause: Clause) -> _Condition:
    conditions = [_date_condition(v, idx_date.c.low, idx_date.c.high) for v in _typed(clause, DateValue)]
    keys = select(idx_date.c.resource_key).where(
        idx_date.c.param_hash == param_hash(rt, clause.name), or_(*conditions)
    )
    return resource.c.resource_key.in_(keys)


def _number_condition(v: NumberValue | QuantityValue, column: ColumnElement[float]) -> _Condition:
    """Numbers are points; `eq` uses the value's implicit precision range (search.html#number)."""
    exact = float(v.value)
    if v.prefix == "eq":
        return and_(column >= v.low, column < v.high)
    if v.prefix == "ne":
        return or_(column < v.low, column >= v.high)
    if v.prefix in ("gt", "sa"):
        return column > exact
    if v.prefix in ("lt", "eb"):
        return column < exact
    if v.prefix == "ge":
        return column >= exact
    if v.prefix == "le":
        return column <= exact
    margin = abs(exact) / 10  # ap: within 10%
    return and_(column >= exact - margin, column <= exact + margin)


def _number(rt: str, clause: Clause) -> _Condition:
    conditions = [_number_condition(v, idx_number.c.value) for v in _typed(clause, NumberValue)]
    where = and_(idx_number.c.param_hash == param_hash(rt, clause.name), or_(*conditions))
    return resource.c.resource_key.in_(select(idx_number.c.resource_key).where(where))


def _quantity(rt: str, clause: Clause) -> _Condition:
    """`5.4|http://unitsofmeasure.org|mg`: value, then the unit code (and system when given)."""
    parts = []
    for v in _typed(clause, QuantityValue):
        condition = _number_condition(v, idx_quantity.c.value)
        if v.code is not None:
            condition = and_(idx_quantity.c.units_hash == value_hash(rt, clause.name, v.code), condition)
        else:
            condition = and_(idx_quantity.c.param_hash == param_hash(rt, clause.name), condition)
        if v.system is not None:
            condition = and_(condition, idx_quantity.c.system == v.system)
        parts.append(condition)
    return resource.c.resource_key.in_(select(idx_quantity.c.resource_key).where(or_(*parts)))


def _reference(rt: str, clause: Clause) -> _Condition:
    name = clause.name
    if clause.modifier == "identifier":  # Reference.identifier, indexed as a token (search_params)
        return resource.c.resource_key.in_(_token_keys(rt, name + ":identifier", _typed(clause, TokenValue)))
    hashes: list[int] = []
    for v in _typed(clause, ReferenceValue):
        if v.url is not None:
            hashes.append(value_hash(rt, name, v.url))
        elif v.id is not None:
            targets = (
                [v.resource_type] if v.resource_type else clause.param.targets or sorted(resource_types())
            )
            hashes.extend(system_value_hash(rt, name, target, v.id) for target in targets)
    if not hashes:
        return false()
    return resource.c.resource_key.in_(
        select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(hashes))
    )


def _uri(rt: str, clause: Clause) -> _Condition:
    hashes = [value_hash(rt, clause.name, v.uri) for v in _typed(clause, UriValue)]
    return resource.c.resource_key.in_(select(idx_uri.c.resource_key).where(idx_uri.c.uri_hash.in_(hashes)))


_BUILDERS: dict[str, Callable[[str, Clause], _Condition]] = {
    "token": _token,
    "string": _string,
    "date": _date,
    "number": _number,
    "quantity": _quantity,
    "reference": _reference,
    "uri": _uri,
}
