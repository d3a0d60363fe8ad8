"""Which of several equally ranked criteria should drive a search: ask the index, cheaply.

`socle.store.search.driving_criterion` ranks criteria statically (a reference to one resource
before a code, a code before a date...). Two criteria of the same rank, such as
`PractitionerRole?role=X&specialty=Y`, may still differ by orders of magnitude in how many rows
they match. `prefer_selective` counts, for each tied criterion that reads an index table, its
matching rows up to `CAP` (an index-only read, stopped at the cap), and moves the smallest to the
front, where the tie-break of `driving_criterion` picks it. Only ties are measured: most searches
pay nothing; a tie pays one small count per tied criterion, at most CAP index entries each.

A `_has` that drives (`Patient?_has:Condition:patient:code=X`) builds the set of every resource
meeting its criterion before the first row of a page: a cost that grows with the data when X is
common. When its criterion matches at least LARGE_COHORT index rows and the searched type has at
most DENSE_RATIO times as many resources (so a match is expected every few resources), the query
is marked `probe_in_key_order`: the type's resources are then tested one by one in key order, and
a page stops after `_count + 1` matches (`socle.store.search.compile_search`). A bounded count
does not probe: it reads the distinct resources the criterion's sources reference, and stops after
`up_to + 1` of them (`socle.store.search`, `_referenced_from`).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import ColumnElement, Connection, FromClause, func, literal, select

from socle.fhir.errors import FhirError
from socle.fhir.query import Clause, Has, SearchQuery
from socle.store._search_values import Rows
from socle.store.schema import resource
from socle.store.search import clause_rows, criterion_rank, driving_criterion

__all__ = ["CAP", "DENSE_RATIO", "LARGE_COHORT", "prefer_selective"]

CAP = 5000
LARGE_COHORT = 1000
DENSE_RATIO = 20


def prefer_selective(conn: Connection, query: SearchQuery) -> SearchQuery:
    """`query` with the most selective of its best-ranked criteria first (same meaning: AND), marked
    `probe_in_key_order` when its driving criterion is a `_has` matching a large share of the type."""
    query = _tie_break(conn, query)
    cohort = _dense_has(conn, query)
    if cohort < LARGE_COHORT:
        return query
    return dataclasses.replace(query, probe_in_key_order=True)


def _dense_has(conn: Connection, query: SearchQuery) -> int:
    """Index rows (up to CAP) of the driving `_has` criterion when the type is not much larger, else 0."""
    driver = driving_criterion(query.clauses)
    if driver is None:
        return 0
    has = query.clauses[driver]
    if not isinstance(has, Has) or not isinstance(has.criterion, Clause):
        return 0
    try:
        rows = clause_rows(has.criterion)
    except FhirError:
        return 0  # the search itself reports it
    if not isinstance(rows, Rows):
        return 0
    cohort = _count(conn, rows.table, rows.where, CAP)
    if cohort < LARGE_COHORT:
        return 0
    of_type = resource.c.resource_type == query.resource_type  # index-only (deleted ones count too)
    dense = _count(conn, resource, of_type, DENSE_RATIO * cohort + 1) <= DENSE_RATIO * cohort
    return cohort if dense else 0


def _count(conn: Connection, table: FromClause, where: ColumnElement[bool], cap: int) -> int:
    """How many rows of `table` meet `where`, counted up to `cap` (an index-only read, stopped there)."""
    sample = select(literal(1)).select_from(table).where(where).limit(cap).subquery()
    return int(conn.execute(select(func.count()).select_from(sample)).scalar_one())


def _tie_break(conn: Connection, query: SearchQuery) -> SearchQuery:
    ranks = [criterion_rank(c) for c in query.clauses]
    ranked = [r for r in ranks if r is not None]
    if len(ranked) < 2:
        return query
    best = min(ranked)
    tied = [n for n, r in enumerate(ranks) if r == best and isinstance(query.clauses[n], Clause)]
    if len(tied) < 2 or any(r == best for n, r in enumerate(ranks) if n not in tied):
        return query
    sizes: dict[int, int] = {}
    for n in tied:
        clause = query.clauses[n]
        assert isinstance(clause, Clause)
        try:
            rows = clause_rows(clause)
        except FhirError:
            return query  # the search itself reports it
        if not isinstance(rows, Rows):
            return query
        sizes[n] = _count(conn, rows.table, rows.where, CAP)
    winner = min(tied, key=lambda n: (sizes[n], n))
    if winner == tied[0]:
        return query
    clauses = (query.clauses[winner], *(c for n, c in enumerate(query.clauses) if n != winner))
    return dataclasses.replace(query, clauses=clauses)
