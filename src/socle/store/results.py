"""The result side of search (R4 §3.1.1.5, search.html#return): sort, stable pages, totals.

A search's matches come from a `socle.store.matches.MatchSet` (the criteria compiled by
`socle.store.search`, possibly over several types or restricted to a patient compartment, or the
`$everything` scope). This module adds what the client asked about the *result*:

- `_sort` (§3.1.1.5.6): each key is a correlated scalar subquery over its index table, `min` of the
  values for ascending and `max` for descending (R4: "the lowest value ... the highest value" of a
  multi-valued element). Resources without a value sort LAST in both directions: R4 leaves it open,
  and "last" keeps the useful ones on the first page either way. `_id` and `_lastUpdated` read the
  `resource` row. The resource key ends every ordering, so the order is total.
- Paging (§3.1.1.5.7 `_count`) is keyset, never OFFSET: a page is "the `count + 1` rows after the
  previous page's last (sort values…, resource key)", the extra row telling whether a next page
  exists. The cursor also carries the largest resource key at the first page (`high`): resources
  created afterwards get larger keys (the key is an identity column), so they never enter a page of
  a search already being paged. Rows therefore never shift, repeat or go missing across pages when
  others create resources; an update that changes a sort value may still move a row, as in any
  keyset scheme (R4 does not ask for snapshot isolation across pages).
- Totals (`_total`, §3.1.1.5.10): a `COUNT(*)` of the same match set, or on PostgreSQL the planner's
  estimate (`EXPLAIN`) when `estimate` is asked.

Includes (`_include`/`_revinclude`) are in `socle.store.includes`. One statement reads a page with
its JSON: the key/sort subquery is limited first, then joined to `resource` for the content, so JSON
is fetched for `count + 1` rows only.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from socle.fhir.errors import Invalid
from socle.fhir.hashing import param_hash
from socle.fhir.search_params import registry
from socle.store.access import AccessFilter
from socle.store.indexes import (
    idx_date,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
)
from socle.store.matches import MatchSet
from socle.store.schema import resource
from socle.store.versioned import StoredVersion

__all__ = [
    "Cursor",
    "ResultPage",
    "SortKey",
    "count_matches",
    "fetch_page",
    "parse_sort",
    "version_columns",
    "version_from_row",
]

_MAX_INT = 2**63 - 1


# -- sort keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """One `_sort` key resolved for the searched types: which column, which direction."""

    name: str
    descending: bool
    kind: str  # "_id", "_lastUpdated" or a search type: string, token, date, number, quantity, reference, uri
    hashes: tuple[int, ...] = ()  # param_hash per searched type that has the parameter

    @property
    def value_type(self) -> tuple[type, ...]:
        """Python types a cursor may carry for this key (checked before they reach SQL)."""
        if self.kind in ("date", "_lastUpdated"):
            return (int,)
        if self.kind in ("number", "quantity"):
            return (int, float)
        return (str,)


_SORTABLE = {"string", "token", "date", "number", "quantity", "reference", "uri"}


def parse_sort(text: str, resource_types: Sequence[str]) -> tuple[list[SortKey], list[str]]:
    """`_sort=status,-date` → sort keys, plus the names that cannot be sorted on (unknown, composite…).

    A parameter is accepted when at least one searched type has it; the others sort as "missing".
    """
    keys: list[SortKey] = []
    rejected: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        descending = item.startswith("-")
        name = item.lstrip("-")
        if name in ("_id", "_lastUpdated"):
            keys.append(SortKey(name, descending, name))
            continue
        params = [(t, registry().params(t).get(name)) for t in resource_types]
        found = [(t, p) for t, p in params if p is not None and p.indexed and p.type in _SORTABLE]
        kinds = {p.type for _, p in found}
        if len(kinds) != 1:
            rejected.append(item)
            continue
        hashes = tuple(param_hash(t, name) for t, _ in found)
        keys.append(SortKey(name, descending, kinds.pop(), hashes))
    return keys, rejected


def _sort_column(key: SortKey) -> ColumnElement[Any]:
    """The sort value of the `resource` row in scope: a correlated aggregate over its index rows."""
    if key.kind == "_id":
        return resource.c.id
    if key.kind == "_lastUpdated":
        return resource.c.updated_at
    column: ColumnElement[Any]
    table: FromClause
    if key.kind == "date":
        table, column = idx_date, (idx_date.c.high if key.descending else idx_date.c.low)
    elif key.kind == "reference":
        table = idx_reference
        local = idx_reference.c.target_type + literal("/") + idx_reference.c.target_id
        column = func.coalesce(local, idx_reference.c.target_url)
    else:
        table, name = {
            "string": (idx_string, "value_normalized"),
            "token": (idx_token, "code"),
            "number": (idx_number, "value"),
            "quantity": (idx_quantity, "value"),
            "uri": (idx_uri, "uri"),
        }[key.kind]
        column = table.c[name]
    aggregate = func.max(column) if key.descending else func.min(column)
    # `param_hash + 0`: an expression, so no index on param_hash is usable and the lookup goes through
    # the primary key (resource_key, seq), i.e. the few rows of this one resource. Without it SQLite
    # picked `ix_idx_date_param_high` and scanned every value of the parameter for each candidate.
    return (
        select(aggregate)
        .where(table.c.resource_key == resource.c.resource_key, (table.c.param_hash + 0).in_(key.hashes))
        .scalar_subquery()
    )


def _candidates(
    matches: MatchSet,
    access: AccessFilter,
    extra: Sequence[ColumnElement[Any]],
    *,
    key_order: bool = False,
    bounded: bool = False,
) -> FromClause:
    branches = matches.branches(access, extra, key_order=key_order, bounded=bounded)
    if len(branches) == 1:
        return branches[0].subquery("c")
    return union_all(*branches).subquery("c")


# -- cursors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position between two rows: after (or, `backward`, before) the row with these sort values
    and key, among the rows with a key up to `high`. Opaque to clients (base64url of JSON)."""

    values: tuple[Any, ...]
    key: int
    high: int
    backward: bool = False

    def encode(self, sort: Sequence[SortKey]) -> str:
        payload = [1, int(self.backward), self.high, self.key, list(self.values), _fingerprint(sort)]
        return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, sort: Sequence[SortKey]) -> Cursor:
        """Read a token this server issued for the same `_sort`; `Invalid` (400) on anything else."""
        error = Invalid(f"_cursor {token[:80]!r} is not a cursor this server issued", expression="_cursor")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = orjson.loads(raw)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise error from None
        if not (isinstance(payload, list) and len(payload) == 6 and payload[0] == 1):
            raise error
        _, backward, high, key, values, fingerprint = payload
        if backward not in (0, 1) or fingerprint != _fingerprint(sort):
            raise error
        if not (isinstance(values, list) and len(values) == len(sort)):
            raise error
        for number in (high, key):
            if type(number) is not int or not 0 <= number <= _MAX_INT:
                raise error
        for value, sort_key in zip(values, sort, strict=True):
            if value is None:
                continue
            if type(value) not in sort_key.value_type or (type(value) is int and abs(value) > _MAX_INT):
                raise error
            if isinstance(value, str) and "\x00" in value:
                raise error
        return cls(tuple(values), key, high, bool(backward))


def _fingerprint(sort: Sequence[SortKey]) -> int:
    """Ties a cursor to the `_sort` it was made for (a different sort makes it meaningless)."""
    text = ",".join(("-" if k.descending else "") + k.name for k in sort)
    return zlib.crc32(text.encode())


# -- pages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultPage:
    versions: list[StoredVersion]
    next: Cursor | None
    previous: Cursor | None
    # The largest resource key the paging considers (fixed at the first page), None on an empty page.
    high: int | None = None


# (column, descending, nulls last); None for a NOT NULL column: an explicit NULLS clause on the key
# stops SQLite from reading the driving index in order, so it sorted every match before LIMIT.
_Order = tuple[KeyedColumnElement[Any], bool, bool | None]


def _order_by(ordering: Sequence[_Order]) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for column, descending, nulls_last in ordering:
        clause = column.desc() if descending else column.asc()
        if nulls_last is not None:
            clause = clause.nulls_last() if nulls_last else clause.nulls_first()
        clauses.append(clause)
    return clauses


def _after(ordering: Sequence[_Order], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in `ordering` (lexicographic, with explicit NULL placement)."""
    alternatives: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for (column, descending, nulls_last), value in zip(ordering, values, strict=True):
        if value is None:
            beyond: ColumnElement[bool] = false() if nulls_last else column.is_not(None)
            same = column.is_(None)
        else:
            beyond = column < value if descending else column > value
            if nulls_last:
                beyond = or_(beyond, column.is_(None))
            same = column == value
        alternatives.append(and_(*equal, beyond))
        equal.append(same)
    return or_(*alternatives)


def fetch_page(
    conn: Connection,
    matches: MatchSet,
    access: AccessFilter,
    content: ColumnElement[Any],
    sort: Sequence[SortKey],
    count: int,
    cursor: Cursor | None,
) -> ResultPage:
    """One page of matches in `sort` order, with their JSON, in ONE statement (`count + 1` rows)."""
    labels = [f"s{i}" for i in range(len(sort))]
    extra = [_sort_column(k).label(n) for k, n in zip(sort, labels, strict=True)]
    c = _candidates(matches, access, extra, key_order=not sort)
    ordering: list[_Order] = [(c.c[n], k.descending, True) for k, n in zip(sort, labels, strict=True)]
    ordering.append((c.c.resource_key, False, None))
    backward = cursor is not None and cursor.backward
    if backward:
        ordering = [(col, not desc, None if last is None else not last) for col, desc, last in ordering]
    inner = select(c.c.resource_key, *(c.c[n] for n in labels))
    if cursor is not None:
        inner = inner.where(c.c.resource_key <= cursor.high, _after(ordering, [*cursor.values, cursor.key]))
    page = inner.order_by(*_order_by(ordering)).limit(count + 1).subquery("p")
    if cursor is not None:
        high: ColumnElement[Any] = literal(cursor.high)
    else:
        newest = resource.alias("newest")
        high = select(func.max(newest.c.resource_key)).where(access.condition(newest)).scalar_subquery()
    outer_ordering = [(page.c[col.key], desc, last) for col, desc, last in ordering]
    stmt = (
        select(*version_columns(), content, high.label("high"), *(page.c[n] for n in labels))
        .select_from(resource.join(page, resource.c.resource_key == page.c.resource_key))
        .where(access.condition(resource))
        .order_by(*_order_by(outer_ordering))
    )
    rows = list(conn.execute(stmt).all())
    more = len(rows) > count
    rows = rows[:count]
    if backward:
        rows.reverse()
    if not rows:
        return ResultPage([], None, None, cursor.high if cursor is not None else None)
    top = int(rows[0].high)

    def at(row: Any, backward: bool) -> Cursor:
        return Cursor(tuple(row._mapping[n] for n in labels), int(row.resource_key), top, backward)

    has_next = (not backward and more) or backward
    has_previous = (backward and more) or (not backward and cursor is not None)
    return ResultPage(
        [version_from_row(r) for r in rows],
        at(rows[-1], False) if has_next else None,
        at(rows[0], True) if has_previous else None,
        top,
    )


def version_columns() -> tuple[ColumnElement[Any], ...]:
    """The `resource` columns of a StoredVersion, in the order `version_from_row` reads (then content)."""
    return (
        resource.c.resource_key,
        resource.c.resource_type,
        resource.c.id,
        resource.c.version,
        resource.c.updated_at,
        resource.c.compartment,
    )


def version_from_row(row: Any) -> StoredVersion:
    """A StoredVersion from a row of `version_columns()` followed by the content."""
    raw = row[6]
    if isinstance(raw, str):
        raw = raw.encode()
    return StoredVersion(row[0], row[1], row[2], row[3], row[4], False, row[5], bytes(raw))


# -- totals ----------------------------------------------------------------------------------------


def count_matches(
    conn: Connection,
    matches: MatchSet,
    access: AccessFilter,
    *,
    high: int | None,
    estimate: bool,
    up_to: int | None = None,
) -> int:
    """How many resources match (rows up to key `high` when paging); the planner's guess if `estimate`.

    The estimate is PostgreSQL's row estimate of the match query (`EXPLAIN`, no execution): cheap on
    any size, and fine for "about 12 000 results". SQLite has no such estimate: it counts.
    `up_to`: stop counting after `up_to + 1` rows (a result above `up_to` means "more than that").
    """
    c = _candidates(matches, access, [], bounded=up_to is not None)
    keys = select(c.c.resource_key)
    if high is not None:
        keys = keys.where(c.c.resource_key <= high)
    if up_to is not None:
        keys = keys.limit(up_to + 1)
    if estimate and conn.dialect.name == "postgresql":
        compiled = keys.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        plan: Any = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
        if isinstance(plan, str | bytes):
            plan = orjson.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])
    return int(conn.execute(select(func.count()).select_from(keys.subquery())).scalar_one())
