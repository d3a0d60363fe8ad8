"""Which of several equally ranked criteria should drive a search: ask the index, cheaply.

`socle.store.search.driving_criterion` ranks criteria statically (a reference to one resource
before a code, a code before a date...). Two criteria of the same rank, such as
`PractitionerRole?role=X&specialty=Y`, may still differ by orders of magnitude in how many rows
they match. `prefer_selective` counts, for each tied criterion that reads an index table, its
matching rows up to `CAP` (an index-only read, stopped at the cap), and moves the smallest to the
front, where the tie-break of `driving_criterion` picks it. Only ties are measured: most searches
pay nothing; a tie pays one small count per tied criterion, at most CAP index entries each.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import Connection, func, literal, select

from socle.fhir.errors import FhirError
from socle.fhir.query import Clause, SearchQuery
from socle.store._search_values import Rows
from socle.store.search import clause_rows, criterion_rank

__all__ = ["CAP", "prefer_selective"]

CAP = 5000


def prefer_selective(conn: Connection, query: SearchQuery) -> SearchQuery:
    """`query` with the most selective of its best-ranked criteria first (same meaning: AND)."""
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
        sample = select(literal(1)).select_from(rows.table).where(rows.where).limit(CAP).subquery()
        sizes[n] = int(conn.execute(select(func.count()).select_from(sample)).scalar_one())
    winner = min(tied, key=lambda n: (sizes[n], n))
    if winner == tied[0]:
        return query
    clauses = (query.clauses[winner], *(c for n, c in enumerate(query.clauses) if n != winner))
    return dataclasses.replace(query, clauses=clauses)
