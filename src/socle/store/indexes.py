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
- `idx_token.sys_hash` (for `system|` searches) and the url/type columns of `idx_reference` are not
  indexed: those searches are rare, and each index slows every write.
- `idx_string.value_normalized` uses the "C" collation on PostgreSQL (SQLite compares bytes already)
  so a prefix search is an index range `[v, v + U+10FFFF)` in both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Double, Index, Integer, String, Table, Text, delete

from socle.fhir.hashing import param_hash, system_value_hash, value_hash
from socle.fhir.search_params import extract_index_values
from socle.store.schema import metadata

__all__ = [
    "INDEX_TABLES",
    "MAX_STRING_LENGTH",
    "delete_indexes",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_string",
    "idx_token",
    "idx_uri",
    "write_indexes",
]

# Longest normalised string kept in the index (as HAPI): prefix searches compare this many characters.
MAX_STRING_LENGTH = 200
_Normalized = String(MAX_STRING_LENGTH).with_variant(String(MAX_STRING_LENGTH, collation="C"), "postgresql")


def _index_table(name: str, *columns: Column[Any], indexes: Sequence[tuple[str, ...]]) -> Table:
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
        Index(
            f"ix_{name}_{'_'.join(c.removesuffix('_hash') for c in cols[:-1])}", *(table.c[c] for c in cols)
        )
    return table


idx_token = _index_table(
    "idx_token",
    Column("system", String, nullable=True),
    Column("code", String, nullable=False),
    Column("value_hash", BigInteger, nullable=False),  # (type, param, code): `code`
    Column("sys_value_hash", BigInteger, nullable=False),  # (type, param, system or "", code)
    Column("sys_hash", BigInteger, nullable=False),  # (type, param, system): `system|`
    indexes=[("value_hash", "resource_key"), ("sys_value_hash", "resource_key")],
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
)

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Double, nullable=False),
    Column("system", String, nullable=True),
    Column("code", String, nullable=True),
    Column("units_hash", BigInteger, nullable=False),  # (type, param, code or unit)
    indexes=[("param_hash", "value", "resource_key"), ("units_hash", "value", "resource_key")],
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
    indexes=[("uri_hash", "resource_key")],
)

INDEX_TABLES: tuple[Table, ...] = (
    idx_token,
    idx_string,
    idx_date,
    idx_reference,
    idx_quantity,
    idx_number,
    idx_uri,
)

_Row = tuple[Any, ...]
# Column order of the tuples built below (every table starts with these four).
_KEY_COLUMNS = ("resource_key", "seq", "compartment", "param_hash")


def write_indexes(conn: Connection, items: Sequence[tuple[int, str, str | None, dict[str, Any]]]) -> None:
    """Insert the index rows of (resource_key, resource_type, compartment, resource) items.

    The repository calls this once per batch inside its write transaction. Rows are built as tuples
    and sent with one bulk statement per table (`_insert`), so the cost is per row, not per statement.
    """
    tokens: list[_Row] = []
    strings: list[_Row] = []
    dates: list[_Row] = []
    refs: list[_Row] = []
    quantities: list[_Row] = []
    numbers: list[_Row] = []
    uris: list[_Row] = []
    for key, rt, comp, resource in items:
        values = extract_index_values(resource)
        for seq, (name, system, code) in enumerate(values.tokens):
            tokens.append(
                (
                    *(key, seq, comp, param_hash(rt, name)),
                    *(system or None, code, value_hash(rt, name, code)),
                    *(system_value_hash(rt, name, system, code), value_hash(rt, name, system)),
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
            quantities.append(
                (key, seq, comp, param_hash(rt, name), number, system or None, code or None, units)
            )
        for seq, (name, number) in enumerate(values.numbers):
            numbers.append((key, seq, comp, param_hash(rt, name), number))
        for seq, (name, uri) in enumerate(values.uris):
            uris.append((key, seq, comp, param_hash(rt, name), uri, value_hash(rt, name, uri)))
    for table, rows in zip(
        INDEX_TABLES, (tokens, strings, dates, refs, quantities, numbers, uris), strict=True
    ):
        if rows:
            _insert(conn, table, rows)


def _insert(conn: Connection, table: Table, rows: list[_Row]) -> None:
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
    for start in range(0, len(keys), 1000):  # stay well under both databases' bind-parameter limits
        chunk = keys[start : start + 1000]
        for table in INDEX_TABLES:
            conn.execute(delete(table).where(table.c.resource_key.in_(chunk)))
