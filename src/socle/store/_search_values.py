"""SQL conditions for the equality-like search types: token, string, reference, uri, and `:missing`.

Each builder takes the resource type, the clause and the `resource_key` column of the (possibly
aliased) `resource` row being filtered. Most return `Rows`: "the resource has at least one row of
this index table meeting this predicate", which the compiler (`socle.store.search`) turns either
into the driving set of the query, `key IN (SELECT resource_key FROM idx_x WHERE ...)`, or into a
correlated test of one candidate, `EXISTS (SELECT 1 FROM idx_x WHERE resource_key = key AND ...)`.
An anti-join (`:not`, `:missing=true`) is returned as a ready (NOT) EXISTS condition. Token,
reference and uri values are equalities on the frozen 64-bit hashes (`socle.fhir.hashing`) that
`socle.store.indexes` wrote the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.hashing import param_hash, system_value_hash, value_hash
from socle.fhir.query import (
    Clause,
    IdentifierTypeValue,
    MissingValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
)
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import normalize_string
from socle.store.indexes import (
    MAX_STRING_LENGTH,
    idx_composite,
    idx_date,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
)

__all__ = [
    "Built",
    "ProbeOnly",
    "Rows",
    "as_condition",
    "missing",
    "reference",
    "row_exists",
    "string",
    "string_values",
    "token",
    "typed",
    "uri",
]

Condition = ColumnElement[bool]
Key = ColumnElement[int]
_V = TypeVar("_V", bound=SearchValue)
_PREFIX_END = "\U0010ffff"  # sorts after any character: [v, v + END) is "starts with v"

# Leading columns of the indexes that serve a RANGE after them (`(param_hash, value, resource_key)`
# and the like). In a correlated probe of one resource they are wrapped so that SQLite reaches the
# rows through the primary key (resource_key, seq) instead of scanning every value of the parameter
# in that range: see `ProbeOnly`. The hash columns of exact lookups (`value_hash`, `sys_value_hash`,
# `target_hash`, `uri_hash`) stay usable: `(hash, resource_key)` is then a single-entry probe.
_RANGE_LEADERS = frozenset({"param_hash", "units_hash", "canonical_units_hash", "key_hash"})


@dataclass(frozen=True)
class Rows:
    """A resource matches when it has at least one row of `table` meeting `where`.

    `key_ordered`: `where` is one equality on an index whose next column is `resource_key`, so the
    rows come out of it in key order (a page can stream them, `socle.store.search`)."""

    table: Table
    where: Condition
    key_ordered: bool = False

    def keys(self) -> Select[Any]:
        """The keys of the matching resources (the driving set of a query)."""
        return select(self.table.c.resource_key).where(self.where)

    def drive(self, key: Key) -> Condition:
        return key.in_(self.keys())

    def probe(self, key: Key, *, correlated: bool = False) -> Condition:
        """Whether the resource of `key` has such a row: a correlated EXISTS on its own rows
        (`correlated`: kept a per-candidate test on PostgreSQL too, see `row_exists`)."""
        table = self.table
        return row_exists(
            table, table.c.resource_key == key, ProbeWhere(self.where, table), correlated=correlated
        )


Built = Condition | Rows


def row_exists(table: FromClause, *where: Condition, correlated: bool = False) -> Condition:
    """`EXISTS (SELECT 1 FROM table WHERE ...)`: selecting no column lets SQLite answer from a
    covering index; `exists().where()` renders `SELECT *`, which reads every table row it tests.

    `correlated`: `OFFSET 0` keeps PostgreSQL from turning the EXISTS into a semi-join, which
    hashes every row meeting `where` before the first candidate is tested: right for a full
    count, wrong for a statement that stops after a few rows (SQLite keeps a correlated EXISTS as
    it is written)."""
    probe: Select[Any] = select(literal_column("1")).select_from(table).where(*where)
    return exists(probe.suffix_with("OFFSET 0", dialect="postgresql") if correlated else probe)


def as_condition(built: Built, key: Key, *, drive: bool = False, correlated: bool = False) -> Condition:
    """`built` as a condition on the row whose key is `key`: a driving IN or a correlated EXISTS."""
    if isinstance(built, Rows):
        return built.drive(key) if drive else built.probe(key, correlated=correlated)
    return built


class ProbeOnly(ColumnElement[Any]):
    """A column SQLite must not look up by index here: rendered `+column` (the unary plus that
    SQLite documents for this), plain on PostgreSQL, whose cost-based planner needs no hint."""

    __visit_name__ = "socle_probe_only"
    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(ProbeOnly)
def _compile_probe_only(element: ProbeOnly, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.column, **kw)
    return f"+{text}" if compiler.dialect.name == "sqlite" else text


class ProbeWhere(ColumnElement[bool]):
    """The predicate of a correlated probe on `table`, rendered with its range-leading columns
    (`_RANGE_LEADERS`) as `ProbeOnly` on SQLite. Marked at compile time rather than by rewriting
    the predicate (`replacement_traverse` copied every element of it: about 6 % of the server CPU of
    a patient-scoped search); compiled statements are cached, so the marking costs nothing after."""

    __visit_name__ = "socle_probe_where"
    inherit_cache = True
    _traverse_internals = [
        ("where", InternalTraversal.dp_clauseelement),
        ("table", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate already: no `= 1` on SQLite

    def __init__(self, where: Condition, table: FromClause) -> None:
        self.where = where
        self.table = table

    def self_group(self, against: Any = None) -> Any:
        return ProbeWhere(self.where.self_group(against=against), self.table)  # `a OR b` in an AND


@compiles(ProbeWhere)
def _compile_probe_where(element: ProbeWhere, compiler: SQLCompiler, **kw: Any) -> str:
    if compiler.dialect.name == "sqlite":
        kw["socle_probe_table"] = element.table
    return compiler.process(element.where, **kw)


@compiles(Column, "sqlite")
def _compile_probe_column(element: Column[Any], compiler: SQLCompiler, **kw: Any) -> str:
    table = kw.pop("socle_probe_table", None)
    text = compiler.visit_column(element, **kw)
    if table is not None and element.table is table and element.name in _RANGE_LEADERS:
        return f"+{text}"
    return text


def typed(clause: Clause, kind: type[_V]) -> list[_V]:
    values = [v for v in clause.values if isinstance(v, kind)]
    if len(values) != len(clause.values):
        raise Invalid(f"Unexpected value for {clause.text}")
    return values


def token(rt: str, clause: Clause, key: Key) -> Built:
    """search.html#token; `:not` keeps resources with no value at all (an anti-join, as R4 says)."""
    name, modifier = clause.name, clause.modifier
    if modifier == "text":  # display / CodeableConcept.text, indexed as strings under `<name>:text`
        return string_values(rt, name + ":text", typed(clause, StringValue), None, key)
    if modifier == "of-type":
        hashes = [
            system_value_hash(rt, name + ":of-type", f"{v.type_system}|{v.type_code}", v.value)
            for v in typed(clause, IdentifierTypeValue)
        ]
        return Rows(idx_token, idx_token.c.sys_value_hash.in_(hashes))
    if modifier in ("above", "below"):
        raise NotSupported(
            f"{clause.text} needs a terminology server (code system hierarchies): not supported"
        )
    if modifier in ("in", "not-in"):  # the search API expands the value set first (store.value_sets)
        raise NotSupported(f"{clause.text} is supported by the search API only (value set expansion)")
    values = typed(clause, TokenValue)
    condition = _token_condition(rt, name, values)
    if modifier == "not":
        return not_(row_exists(idx_token, idx_token.c.resource_key == key, condition))
    # one `code` or `system|code`: one hash on `(value_hash | sys_value_hash, resource_key)`
    return Rows(idx_token, condition, key_ordered=len(values) == 1 and values[0].code is not None)


def _token_condition(rt: str, name: str, values: Sequence[TokenValue]) -> Condition:
    """`code`, `system|code`, `|code`, `system|`: each one hash equality on an indexed column."""
    by_value, by_system_value, by_system = [], [], []
    for v in values:
        if v.code is None:
            by_system.append(value_hash(rt, name, v.system or ""))
        elif v.system is None:
            by_value.append(value_hash(rt, name, v.code))
        else:
            by_system_value.append(system_value_hash(rt, name, v.system, v.code))
    parts: list[Condition] = []
    if by_value:
        parts.append(idx_token.c.value_hash.in_(by_value))
    if by_system_value:
        parts.append(idx_token.c.sys_value_hash.in_(by_system_value))
    if by_system:  # ix_idx_token_param_sys
        parts.append(
            and_(idx_token.c.param_hash == param_hash(rt, name), idx_token.c.sys_hash.in_(by_system))
        )
    return or_(*parts)


def string(rt: str, clause: Clause, key: Key) -> Built:
    return string_values(rt, clause.name, typed(clause, StringValue), clause.modifier, key)


def string_values(rt: str, name: str, values: Sequence[StringValue], modifier: str | None, key: Key) -> Rows:
    """Default: starts with, on the case- and accent-folded form (search.html#string); `:exact`
    compares the original text; `:contains` is a substring anywhere (no index range: it filters the
    parameter's rows)."""
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
    return Rows(idx_string, and_(idx_string.c.param_hash == param_hash(rt, name), or_(*parts)))


def reference(rt: str, clause: Clause, key: Key) -> Built:
    """search.html#reference: `Type/id`, `id` (every possible target type), absolute URL, `:Type`,
    `:identifier` (Reference.identifier, indexed as a token under `<name>:identifier`)."""
    name = clause.name
    if clause.modifier == "identifier":
        condition = _token_condition(rt, name + ":identifier", typed(clause, TokenValue))
        return Rows(idx_token, condition)
    if clause.modifier in ("above", "below"):
        raise NotSupported(f"{clause.text}: hierarchical reference search is not supported")
    hashes: list[int] = []
    for v in typed(clause, ReferenceValue):
        if v.url is not None:
            hashes.append(value_hash(rt, name, v.url))
        elif v.id is not None:
            targets = (
                [v.resource_type] if v.resource_type else clause.param.targets or sorted(resource_types())
            )
            hashes.extend(system_value_hash(rt, name, target, v.id) for target in targets)
    if not hashes:
        return false()
    return Rows(idx_reference, idx_reference.c.target_hash.in_(hashes))


def uri(rt: str, clause: Clause, key: Key) -> Built:
    """search.html#uri: equality; `:above` the stored uri is a `/`-prefix of the value (each prefix
    is one more hash), `:below` the value is a prefix of the stored uri (filters the parameter's rows)."""
    name = clause.name
    values = [v.uri for v in typed(clause, UriValue)]
    if clause.modifier == "below":
        column = idx_uri.c.uri
        starts = [func.substr(column, 1, len(v)) == v for v in values]
        where = and_(idx_uri.c.param_hash == param_hash(rt, name), or_(*starts))
        return Rows(idx_uri, where)
    if clause.modifier == "above":
        values = [prefix for v in values for prefix in _uri_prefixes(v)]
    hashes = [value_hash(rt, name, v) for v in values]
    return Rows(idx_uri, idx_uri.c.uri_hash.in_(hashes))


def _uri_prefixes(uri: str) -> list[str]:
    """`http://a.org/fhir/ValueSet/1` and its parents down to `http://a.org`, never the bare scheme."""
    out = [uri]
    start = uri.find("://")
    floor = uri.find("/", start + 3) if start >= 0 else 0
    cut = uri.rfind("/")
    while cut > max(floor, 0):
        uri = uri[:cut]
        out.append(uri)
        cut = uri.rfind("/")
    if floor > 0 and uri[:floor] not in out:
        out.append(uri[:floor])
    return out


# Where each search type keeps its rows, and the extra rows that also mean "has a value".
_MISSING_TABLES: dict[str, tuple[tuple[Table, str], ...]] = {
    "token": ((idx_token, ""), (idx_string, ":text")),
    "string": ((idx_string, ""),),
    "date": ((idx_date, ""),),
    "number": ((idx_number, ""),),
    "quantity": ((idx_quantity, ""),),
    "reference": ((idx_reference, ""), (idx_token, ":identifier")),
    "uri": ((idx_uri, ""),),
    "composite": ((idx_composite, ""),),
}


def missing(rt: str, clause: Clause, key: Key) -> Condition:
    """`:missing=true`: no index row for the parameter (NOT EXISTS); `false`: at least one.

    Correlated on `resource_key`, the leading column of every index table's primary key, so
    each probe is a range read of one resource's rows.
    """
    param = clause.param
    tables = _MISSING_TABLES.get(param.type)
    if tables is None:
        raise NotSupported(f"{clause.text} is not supported")
    names = param.union_of or (param.name,)
    has_value = or_(
        *(
            row_exists(
                table, table.c.resource_key == key, table.c.param_hash == param_hash(rt, name + suffix)
            )
            for table, suffix in tables
            for name in names
        )
    )
    wanted = typed(clause, MissingValue)
    conditions = [not_(has_value) if v.missing else has_value for v in wanted]
    return or_(*conditions)
