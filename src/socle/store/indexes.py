"""Search index tables, one per search type, and the bulk writes the repository makes into them.

Modelled on HAPI FHIR's `HFJ_SPIDX_*` tables (see STYLE.md §3): each row holds one normalised value
of one search parameter of one resource, with 64-bit hashes (`socle.fhir.hashing`, frozen) so that a
token, reference or uri predicate is a single bigint equality, and every secondary index ends in
`resource_key` so a search is answered from indexes alone, never from JSON.

Layout choices:
- The primary key is (resource_key, seq), `seq` numbering a resource's rows in one table. On SQLite
  the tables are WITHOUT ROWID, i.e. clustered on that key: deleting a resource's rows (on update and
  delete) is a range delete with no extra index to maintain, and bulk loads append.
- Every table carries `compartment` (the Patient compartment key): the Citus distribution column.
- No foreign key to `resource`: the repository deletes index rows explicitly in the same
  transaction, and a foreign-key check per index row would cost ingest speed.
- Secondary indexes are few, since each slows every write: hash equalities (`code`, `system|code`,
  `Type/id`, uri), prefix ranges (strings), ranges (dates, numbers, quantities). Revision 0004 added
  `idx_token (param_hash, sys_hash)` for `system|` and `:missing`, a partial
  `idx_reference (param_hash, target_type, target_id) WHERE target_url IS NULL` that chains and
  `_has` join through (local references only: an absolute URL names another server's resource),
  `idx_uri (param_hash)` for `:below` and `:missing`, and the `idx_composite` table.
- `idx_composite` holds composite parameters (search.html#composite), one row per element
  occurrence so that components match within the same element: see `socle.fhir._index_composites`.
- `idx_string.value_normalized` uses the "C" collation on PostgreSQL (SQLite compares bytes already)
  so a prefix search is an index range `[v, v + U+10FFFF)` in both databases.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Double, Index, Integer, String, Table, Text, delete

from socle.fhir.compartment import patient_compartment
from socle.fhir.hashing import hash64, param_hash, system_value_hash, value_hash
from socle.fhir.search_params import CompositeRow, canonical_quantity, extract_index_values, registry
from socle.store import fulltext
from socle.store.schema import metadata

__all__ = [
    "INDEX_TABLES",
    "MAX_STRING_LENGTH",
    "delete_indexes",
    "idx_composite",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_string",
    "idx_token",
    "idx_uri",
    "parts_hash",
    "write_indexes",
]

# Longest normalised string kept in the index (as HAPI): prefix searches compare this many characters.
MAX_STRING_LENGTH = 200
_Normalized = String(MAX_STRING_LENGTH).with_variant(String(MAX_STRING_LENGTH, collation="C"), "postgresql")


def _index_table(
    name: str,
    *columns: Column[Any],
    indexes: Sequence[tuple[str, ...]],
    local: Sequence[tuple[str, ...]] = (),
) -> Table:
    table = Table(
        name,
        metadata,
        Column("resource_key", BigInteger, primary_key=True, autoincrement=False),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("compartment", String(64), nullable=True),
        Column("param_hash", BigInteger, nullable=False),  # hash64(resource type, param name)
        *columns,
        sqlite_with_rowid=False,
    )
    for cols in indexes:
        Index(_index_name(name, cols), *(table.c[c] for c in cols))
    for cols in local:  # partial: rows of local references only (target_url IS NULL)
        where = table.c.target_url.is_(None)
        Index(
            _index_name(name, cols), *(table.c[c] for c in cols), postgresql_where=where, sqlite_where=where
        )
    return table


def _index_name(table: str, cols: Sequence[str]) -> str:
    return f"ix_{table}_{'_'.join(c.removesuffix('_hash') for c in cols[:-1])}"


idx_token = _index_table(
    "idx_token",
    Column("system", String, nullable=True),
    Column("code", String, nullable=False),
    Column("value_hash", BigInteger, nullable=False),  # (type, param, code): `code`
    Column("sys_value_hash", BigInteger, nullable=False),  # (type, param, system or "", code)
    Column("sys_hash", BigInteger, nullable=False),  # (type, param, system): `system|`
    indexes=[
        ("value_hash", "resource_key"),
        ("sys_value_hash", "resource_key"),
        ("param_hash", "sys_hash", "resource_key"),
    ],
)

idx_string = _index_table(
    "idx_string",
    Column("value_normalized", _Normalized, nullable=False),
    Column("value_exact", Text, nullable=False),
    indexes=[("param_hash", "value_normalized", "resource_key")],
)

idx_date = _index_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),  # µs since epoch, inclusive
    Column("high", BigInteger, nullable=False),  # µs since epoch, exclusive
    indexes=[("param_hash", "low", "high", "resource_key"), ("param_hash", "high", "resource_key")],
)

idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("target_url", Text, nullable=True),
    # local `Type/id`: (type, param, target type, target id); absolute URL or URN: (type, param, url)
    Column("target_hash", BigInteger, nullable=False),
    indexes=[("target_hash", "resource_key")],
    local=[("param_hash", "target_type", "target_id", "resource_key")],
)

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Double, nullable=False),
    Column("system", String, nullable=True),
    Column("code", String, nullable=True),
    Column("units_hash", BigInteger, nullable=False),  # (type, param, code or unit)
    # UCUM quantities: the value in canonical units and (type, param, canonical code) (0004)
    Column("canonical", Double, nullable=True),
    Column("canonical_units_hash", BigInteger, nullable=True),
    indexes=[("param_hash", "value", "resource_key"), ("units_hash", "value", "resource_key")],
)
Index(
    "ix_idx_quantity_canonical_units_canonical",
    idx_quantity.c.canonical_units_hash,
    idx_quantity.c.canonical,
    idx_quantity.c.resource_key,
    postgresql_where=idx_quantity.c.canonical_units_hash.isnot(None),
    sqlite_where=idx_quantity.c.canonical_units_hash.isnot(None),
)

idx_number = _index_table(
    "idx_number",
    Column("value", Double, nullable=False),
    indexes=[("param_hash", "value", "resource_key")],
)

idx_uri = _index_table(
    "idx_uri",
    Column("uri", Text, nullable=False),
    Column("uri_hash", BigInteger, nullable=False),  # (type, param, uri)
    indexes=[("uri_hash", "resource_key"), ("param_hash", "resource_key")],
)

idx_composite = _index_table(
    "idx_composite",
    Column("key_hash", BigInteger, nullable=False),  # (type, param, *key parts): the `code$` form
    Column("part1_hash", BigInteger, nullable=True),  # (type, param, "S", system, code) of key 1
    Column("part2_hash", BigInteger, nullable=True),  # ... of key 2
    Column("value", Double, nullable=True),  # quantity or number component
    Column("value2", Double, nullable=True),  # a second number component
    Column("low", BigInteger, nullable=True),  # date component, as idx_date
    Column("high", BigInteger, nullable=True),
    Column("text", _Normalized, nullable=True),  # string component, normalised
    Column("units_hash", BigInteger, nullable=True),  # (type, param, unit code)
    Column("system", String, nullable=True),  # quantity system
    # UCUM quantity: canonical value and (type, param, canonical code); filtered after key_hash
    Column("canonical", Double, nullable=True),
    Column("canonical_units_hash", BigInteger, nullable=True),
    indexes=[("key_hash", "value", "resource_key")],
)

INDEX_TABLES: tuple[Table, ...] = (
    idx_token,
    idx_string,
    idx_date,
    idx_reference,
    idx_quantity,
    idx_number,
    idx_uri,
    idx_composite,
)

_Row = tuple[Any, ...]
# Column order of the tuples built below (every table starts with these four).
_KEY_COLUMNS = ("resource_key", "seq", "compartment", "param_hash")


_Item = tuple[int, str, str | None, dict[str, Any]]  # (resource_key, resource_type, compartment, resource)


def write_indexes(conn: Connection, items: Sequence[_Item]) -> None:
    """Insert the index rows of (resource_key, resource_type, compartment, resource) items.

    The repository calls this once per batch inside its write transaction. Rows are built as tuples
    and sent with one bulk statement per table (`insert_rows`), so the cost is per row, not per statement.
    """
    for table, rows in zip(INDEX_TABLES, _index_rows(items), strict=True):
        if rows:
            insert_rows(conn, table, rows)
    fulltext.write_text(conn, items)  # _text/_content rows (socle.store.fulltext)


def rewrite_indexes(
    conn: Connection, items: Sequence[_Item], previous: Sequence[dict[str, Any] | None]
) -> None:
    """Replace the index rows of updated resources, given the versions they replace (None: unknown).

    Only the tables whose rows change are rewritten (an update usually changes one or two values):
    a table whose rows, seq aside, are the same for both versions is left as it is. A resource
    whose previous version is unknown or was in another compartment has every row rewritten.
    """
    deletes: list[list[int]] = [[] for _ in INDEX_TABLES]
    inserts: list[list[_Row]] = [[] for _ in INDEX_TABLES]
    texts: list[_Item] = []
    for item, old in zip(items, previous, strict=True):
        key, rt, comp, resource = item
        new_rows = _index_rows([item])
        # Rows written before a custom parameter existed lack its values: those types rewrite all.
        full = old is None or patient_compartment(old) != comp or registry().customised(rt)
        old_rows = None if full or old is None else _index_rows([(key, rt, comp, old)])
        for i, rows in enumerate(new_rows):
            if old_rows is None or _unseq(rows) != _unseq(old_rows[i]):
                deletes[i].append(key)
                inserts[i].extend(rows)
        if old is None or old_rows is None or fulltext.texts(old) != fulltext.texts(resource):
            texts.append(item)
    for table, keys, rows in zip(INDEX_TABLES, deletes, inserts, strict=True):
        _delete_rows(conn, table, keys)
        if rows:
            insert_rows(conn, table, rows)
    fulltext.delete_text(conn, [key for key, *_ in texts])
    fulltext.write_text(conn, texts)


def _unseq(rows: list[_Row]) -> set[_Row]:
    return {(row[2], *row[3:]) for row in rows}


def _index_rows(items: Sequence[_Item]) -> tuple[list[_Row], ...]:
    """The rows of every index table (in `INDEX_TABLES` order) for these items."""
    tokens: list[_Row] = []
    strings: list[_Row] = []
    dates: list[_Row] = []
    refs: list[_Row] = []
    quantities: list[_Row] = []
    numbers: list[_Row] = []
    uris: list[_Row] = []
    composites: list[_Row] = []
    # Plain tuple displays, one per row: this loop runs for every index row of every write.
    for key, rt, comp, resource in items:
        values = extract_index_values(resource)
        for seq, (name, system, code) in enumerate(values.tokens):
            tokens.append(
                (
                    key,
                    seq,
                    comp,
                    param_hash(rt, name),
                    system or None,
                    code,
                    value_hash(rt, name, code),
                    system_value_hash(rt, name, system, code),
                    value_hash(rt, name, system),
                )
            )
        for seq, (name, normalized, exact) in enumerate(values.strings):
            strings.append((key, seq, comp, param_hash(rt, name), normalized[:MAX_STRING_LENGTH], exact))
        for seq, (name, low, high) in enumerate(values.dates):
            dates.append((key, seq, comp, param_hash(rt, name), low, high))
        for seq, (name, target_type, target_id, url) in enumerate(values.references):
            if url is not None:
                target = value_hash(rt, name, url)
            else:
                target = system_value_hash(rt, name, target_type or "", target_id or "")
            refs.append((key, seq, comp, param_hash(rt, name), target_type, target_id, url, target))
        for seq, (name, number, system, code) in enumerate(values.quantities):
            units = value_hash(rt, name, code)
            canonical = canonical_quantity(number, system, code)
            in_ucum = (
                (None, None) if canonical is None else (canonical[0], value_hash(rt, name, canonical[1]))
            )
            quantities.append(
                (key, seq, comp, param_hash(rt, name), number, system or None, code or None, units, *in_ucum)
            )
        for seq, (name, number) in enumerate(values.numbers):
            numbers.append((key, seq, comp, param_hash(rt, name), number))
        for seq, (name, uri) in enumerate(values.uris):
            uris.append((key, seq, comp, param_hash(rt, name), uri, value_hash(rt, name, uri)))
        for seq, row in enumerate(values.composites):
            composites.append(_composite_row(key, seq, comp, rt, row))
    return tokens, strings, dates, refs, quantities, numbers, uris, composites


def _composite_row(key: int, seq: int, comp: str | None, rt: str, row: CompositeRow) -> _Row:
    name, parts, part1, part2, value, value2, low, high, text, units, system = row
    canonical = None
    if value is not None and units is not None and system is not None:
        canonical = canonical_quantity(value, system, units)
    return (
        *(key, seq, comp, param_hash(rt, name), parts_hash(rt, name, parts)),
        None if part1 is None else parts_hash(rt, name, part1),
        None if part2 is None else parts_hash(rt, name, part2),
        *(value, value2, low, high, None if text is None else text[:MAX_STRING_LENGTH]),
        *(None if units is None else value_hash(rt, name, units), system),
        *((None, None) if canonical is None else (canonical[0], value_hash(rt, name, canonical[1]))),
    )


@functools.lru_cache(maxsize=65536)
def parts_hash(resource_type: str, param: str, parts: tuple[str, ...]) -> int:
    """hash64 of (type, param, *parts): composite keys repeat (one LOINC code, many Observations)."""
    return hash64(resource_type, param, *parts)


def insert_rows(conn: Connection, table: Table, rows: list[_Row]) -> None:
    """Bulk insert positional rows, bypassing per-row parameter processing in SQLAlchemy.

    Measured on Synthea (bench/): SQLAlchemy's `execute(insert(), dicts)` spent more time building
    parameters than the database spent inserting. PostgreSQL takes the rows through COPY (psycopg
    `Cursor.copy`, same connection and transaction); SQLite through `executemany`, which is already
    a prepared-statement loop in C.
    """
    columns = [c.name for c in table.columns]
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()
        return
    placeholders = ", ".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def delete_indexes(conn: Connection, resource_keys: Sequence[int]) -> None:
    """Remove every index row of these resources (before rewriting them on update, or on delete)."""
    keys = list(resource_keys)
    for table in INDEX_TABLES:
        _delete_rows(conn, table, keys)
    fulltext.delete_text(conn, keys)


def _delete_rows(conn: Connection, table: Table, keys: list[int]) -> None:
    for start in range(0, len(keys), 1000):  # stay well under both databases' bind-parameter limits
        conn.execute(delete(table).where(table.c.resource_key.in_(keys[start : start + 1000])))
