"""What SQL a search runs, and how the database plans it (`socle explain QUERY`).

The statement is the one `Store.search_page` sends for the first page: `compile_search` under the
given access filter (the CLI passes the system filter), limited to `_count + 1` rows, after
`:in`/`:not-in` value sets are expanded and tied criteria ordered as the search API does. It is printed
with its values inlined by the connected dialect, so it can be pasted into `sqlite3` or `psql`, and
the plan comes from the database itself: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` (or
`EXPLAIN (ANALYZE, BUFFERS)`, which runs the query) on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from socle.fhir.errors import Invalid
from socle.fhir.query import parse_query
from socle.store.access import AccessFilter
from socle.store.search import compile_search
from socle.store.selectivity import prefer_selective
from socle.store.value_sets import ValueSetCache, resolve_value_sets

__all__ = ["DEFAULT_COUNT", "Explanation", "explain_search"]

DEFAULT_COUNT = 50


@dataclass(frozen=True)
class Explanation:
    sql: str
    plan: list[str]
    unknown: tuple[str, ...]  # parameters the search ignores (lenient handling, as the API's default)


def explain_search(
    conn: Connection,
    resource_type: str,
    query: str | Iterable[tuple[str, str]],
    access: AccessFilter,
    *,
    analyze: bool = False,
) -> Explanation:
    parsed = resolve_value_sets(parse_query(resource_type, query), ValueSetCache(conn, access))
    parsed = prefer_selective(conn, parsed)
    count = DEFAULT_COUNT
    for name, value in parsed.controls:
        if name == "_count":
            if not value.isdigit():
                raise Invalid(f"_count must be a non-negative integer, not {value!r}")
            count = int(value)
    statement = compile_search(parsed, access, key_order=True).limit(count + 1)
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("%%", "%")  # escaped for a driver that formats parameters: there are none here
    return Explanation(sql, _plan(conn, sql, analyze), parsed.unknown)


def _plan(conn: Connection, sql: str, analyze: bool) -> list[str]:
    # The driver's own cursor, without parameters: psycopg then leaves a `%` of a LIKE pattern alone.
    cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return _sqlite_tree(cursor.fetchall())
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}" if analyze else f"EXPLAIN {sql}")
        return [str(row[0]) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _sqlite_tree(rows: list[tuple[int, int, int, str]]) -> list[str]:
    """(id, parent, _, detail) rows drawn as the indented tree the sqlite3 shell prints."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for id, parent, _unused, detail in rows:
        depth[id] = depth.get(parent, -1) + 1
        lines.append("  " * depth[id] + detail)
    return lines
